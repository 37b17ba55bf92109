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
#include <fcntl.h>
#include <stdlib.h>
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

/* A temporary file made from the template @path, holding @size bytes of @data (NULL: empty). */
static inline void fake_make_file(char *path, const char *data, size_t size)
{
	int fd = mkstemp(path);

	if (fd < 0 || (data && write(fd, data, size) != (ssize_t)size))
		abort();
	close(fd);
}

/*
 * A fresh pair: the destination file rewritten with @dst_data (every case
 * starts from the pristine destination), both opened, and the fake backend
 * @b with @lim put on both handles.
 */
static inline void fake_open_pair(const char *src_path, const char *dst_path, const char *dst_data,
				  size_t size, const struct bc_backend *b,
				  const struct blkcopy_limits *lim, struct blkcopy_dev **s,
				  struct blkcopy_dev **d)
{
	int fd = open(dst_path, O_WRONLY);

	if (fd < 0 || pwrite(fd, dst_data, size, 0) != (ssize_t)size)
		abort();
	close(fd);
	if (blkcopy_open(src_path, BLKCOPY_OPEN_READ, s) ||
	    blkcopy_open(dst_path, BLKCOPY_OPEN_READ | BLKCOPY_OPEN_WRITE, d))
		abort();
	(*s)->backend = (*d)->backend = b;
	(*s)->limits = (*d)->limits = *lim;
}

#endif
