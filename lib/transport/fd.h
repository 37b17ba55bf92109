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

/* Zoned block devices (fd_zone.c): @d->zoned from sysfs. */
void bc_fd_zoned_probe(struct blkcopy_dev *d);
/* BLKREPORTZONE on @fd: up to @nr zones from the one holding @off; the number or -errno. */
ssize_t bc_fd_report_zones(int fd, uint64_t off, struct blkcopy_zone *z, size_t nr);
/* Make the kernel re-read the write pointer of @z, a sequential zone written part way (O_DIRECT @fd). */
void bc_fd_zone_sync(int fd, uint32_t lbs, const struct blkcopy_zone *z);
/* A kernel of this release (uname -r) caches zones' write pointers (zone write plugging). */
bool bc_kernel_plugs_zone_writes(const char *release);

#endif
