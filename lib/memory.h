/* SPDX-License-Identifier: MIT */
/*
 * Where the emulation engine's buffers come from: host memory, or PCI
 * peer-to-peer memory (p2p.c) that the devices reach by DMA without host
 * RAM.  The engine maps all its buffers at once and unmaps them at the end;
 * whether it may register them with io_uring depends on the kind (P2P
 * memory moves by O_DIRECT only: the job checks that before it picks it).
 */
#ifndef BLKCOPY_MEMORY_H
#define BLKCOPY_MEMORY_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

struct bc_memory;

struct bc_memory_ops {
	/* A mapping of @len bytes (a page multiple), or NULL with errno set. */
	void *(*map)(const struct bc_memory *m, size_t len);
	void (*unmap)(const struct bc_memory *m, void *p, size_t len);
};

struct bc_memory {
	const struct bc_memory_ops *ops;
	/*
	 * io_uring may register it as fixed buffers: registration pins with
	 * FOLL_LONGTERM, which P2P pages refuse.
	 */
	bool registrable;
	uint64_t limit;		/* bytes it can map at most (UINT64_MAX: no limit of its own) */
	int fd;			/* P2P: the provider's p2pmem/allocate */
	char name[16];		/* P2P: the provider's PCI address */
};

/* Host memory: anonymous private mappings. */
extern const struct bc_memory bc_host_memory;

static inline void *bc_memory_map(const struct bc_memory *m, size_t len)
{
	return m->ops->map(m, len);
}

static inline void bc_memory_unmap(const struct bc_memory *m, void *p, size_t len)
{
	m->ops->unmap(m, p, len);
}

#endif
