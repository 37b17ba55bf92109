/* SPDX-License-Identifier: MIT */
/*
 * What the fake native backends of the unit tests share: a probe that
 * claims nothing (the tests put the backend on the handles themselves) and
 * a piece copied with pread()/pwrite() between the files, as a device's
 * copy engine would move it.
 */
#ifndef BLKCOPY_TEST_FAKE_NATIVE_H
#define BLKCOPY_TEST_FAKE_NATIVE_H

#include <errno.h>
#include <unistd.h>

#include "backend.h"
#include "transport/fd.h"

static inline int fake_probe(struct blkcopy_dev *d)
{
	return -ENODEV;
}

/* Copy @p's segments from @s to @d through @buf (large enough for any segment). */
static inline int fake_move(struct blkcopy_dev *s, struct blkcopy_dev *d, const struct bc_span *segs,
			    const struct bc_piece *p, char *buf)
{
	uint64_t off = p->dst;

	for (uint32_t i = 0; i < p->nr_segs; i++) {
		if (pread(bc_fd_of(s), buf, segs[i].len, (off_t)segs[i].src) != (ssize_t)segs[i].len ||
		    pwrite(bc_fd_of(d), buf, segs[i].len, (off_t)off) != (ssize_t)segs[i].len)
			return -EIO;
		off += segs[i].len;
	}
	return 0;
}

#endif
