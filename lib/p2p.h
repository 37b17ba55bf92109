/* SPDX-License-Identifier: MIT */
/*
 * PCI peer-to-peer memory (BLKCOPY_P2P): a PCI function's memory that the
 * kernel publishes as p2pmem (an NVMe controller memory buffer), mapped by
 * user space through sysfs; O_DIRECT reads and writes of NVMe namespaces
 * DMA to and from it directly.  The emulation engine takes its buffers
 * from it (memory.h).
 */
#ifndef BLKCOPY_P2P_H
#define BLKCOPY_P2P_H

#include <stddef.h>
#include <stdint.h>

#include "blkcopy.h"
#include "memory.h"
#include "span.h"

/* A job's P2P memory: the provider's allocate file, the memory's limit. */
struct bc_p2p {
	struct bc_memory memory;
};

/*
 * BLKCOPY_P2P for a request from @src (@spans) to @t: the memory @which
 * names, checked against every end by a one-block read of each into it
 * (nothing is written).  0 and *@pp (bc_p2p_close()), or -EOPNOTSUPP
 * with the reason in the device's error, -ENOMEM, -errno.
 */
int bc_p2p_open(struct blkcopy_dev *src, const struct bc_span *spans, size_t nr_spans,
		const struct blkcopy_target *t, size_t nr_targets, uint64_t which,
		struct bc_p2p **pp);
void bc_p2p_close(struct bc_p2p *p);

#endif
