/* SPDX-License-Identifier: MIT */
/*
 * Stack resolution: what lies under a device.  A partition is a window onto
 * its whole disk (device.c finds the start); a loop device is a window onto
 * its backing file.  Resolved here so that overlap checks and native
 * backends work in the terms of the medium that really holds the bytes.
 */
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <linux/loop.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/stat.h>
#include <sys/statvfs.h>
#include <sys/sysmacros.h>
#include <unistd.h>

#include "internal.h"

static uint32_t clone_align(int fd)
{
	struct statvfs vfs;

	if (fstatvfs(fd, &vfs) == 0 && vfs.f_frsize >= 512 && vfs.f_frsize <= (1u << 20) &&
	    !(vfs.f_frsize & (vfs.f_frsize - 1)))
		return (uint32_t)vfs.f_frsize;
	return 4096;
}

static void map_file(struct blkcopy_dev *d, int fd, bool own_fd, const struct stat *st,
		     uint64_t base)
{
	d->file = (struct bc_file_map){
		.valid = true,
		.fd = fd,
		.own_fd = own_fd,
		.base = base,
		.st_dev = st->st_dev,
		.ino = st->st_ino,
		.clone_align = clone_align(fd),
	};
}

static void resolve_loop(struct blkcopy_dev *d)
{
	struct loop_info64 info;
	char path[PATH_MAX];
	struct stat st;
	int fd;

	if (bc_sysfs_read(d->whole, "loop/backing_file", path, sizeof(path))) {
		snprintf(d->reason, sizeof(d->reason), "loop device: backing file unknown");
		return;
	}
	fd = open(path, ((d->open_flags & BLKCOPY_OPEN_WRITE) ? O_RDWR : O_RDONLY) | O_CLOEXEC);
	if (fd < 0) {
		snprintf(d->reason, sizeof(d->reason), "loop device: cannot open backing file: %s",
			 strerror(errno));
		return;
	}
	/* The path may name another file by now (renamed, deleted, other mount namespace). */
	if (fstat(fd, &st) || !S_ISREG(st.st_mode) || ioctl(d->fd, LOOP_GET_STATUS64, &info) ||
	    info.lo_inode != st.st_ino || info.lo_device != st.st_dev) {
		snprintf(d->reason, sizeof(d->reason),
			 "loop device: its backing file path now names another file");
		close(fd);
		return;
	}
	map_file(d, fd, true, &st, info.lo_offset + (d->partition ? d->part_start : 0));
}

void bc_resolve_file(struct blkcopy_dev *d)
{
	struct stat st;

	if (d->kind == BLKCOPY_KIND_FILE && !fstat(d->fd, &st))
		map_file(d, d->fd, false, &st, 0);
	else if (d->kind == BLKCOPY_KIND_LOOP)
		resolve_loop(d);
}

void bc_release_file(struct blkcopy_dev *d)
{
	if (d->file.valid && d->file.own_fd)
		close(d->file.fd);
	d->file.valid = false;
}
