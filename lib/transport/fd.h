/* SPDX-License-Identifier: MIT */
/* The fd transport's services to backends that send commands through a descriptor. */
#ifndef BLKCOPY_TRANSPORT_FD_H
#define BLKCOPY_TRANSPORT_FD_H

#include <sys/stat.h>

#include "../device.h"

/* open(2)'s access mode for blkcopy_open() @flags. */
int bc_fd_open_mode(unsigned int flags);

/* @d's buffered descriptor, or -1 when @d is not reached through a descriptor. */
int bc_fd_of(const struct blkcopy_dev *d);

/*
 * A new descriptor on the whole disk under @d (a partition's disk, else @d
 * itself), for commands the kernel takes only there.  -errno on failure.
 */
int bc_fd_open_whole(const struct blkcopy_dev *d);

/* Fill @b for the regular file open as @fd (@st its fstat), device offset 0 at file offset @base. */
void bc_fd_backing_file(struct bc_backing_file *b, int fd, bool own_fd, const struct stat *st,
			uint64_t base);

#endif
