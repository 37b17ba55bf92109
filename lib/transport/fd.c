/* SPDX-License-Identifier: MIT */
/*
 * The fd transport: regular files and block devices, through a buffered
 * descriptor and, where the medium takes it, an O_DIRECT one.  Emulation's
 * reads and writes go into the engine's io_uring on these descriptors.  An
 * NVMe passthrough node (/dev/ngXnY) opens as its namespace's block node.
 */
#include <errno.h>
#include <fcntl.h>
#include <liburing.h>
#include <limits.h>
#include <linux/fs.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/stat.h>
#include <sys/statvfs.h>
#include <sys/sysmacros.h>
#include <unistd.h>

#include "../nvme.h"
#include "../sysfs.h"
#include "../transport.h"
#include "fd.h"

/* The kernel caps a single read or write below 2 GiB anyway. */
#define MAX_IO (1u << 30)

struct fd_dev {
	int fd;			/* buffered */
	int fd_direct;		/* O_DIRECT, or -1 when the medium refuses it */
	bool block;
};

int bc_fd_open_mode(unsigned int flags)
{
	return (flags & BLKCOPY_OPEN_WRITE) ? O_RDWR : O_RDONLY;
}

int bc_fd_of(const struct blkcopy_dev *d)
{
	const struct fd_dev *f = d->transport == &bc_transport_fd ? d->transport_data : NULL;

	return f ? f->fd : -1;
}

int bc_fd_open_whole(const struct blkcopy_dev *d)
{
	char name[64], path[PATH_MAX];
	int fd, ret;

	if (d->medium.disk == d->rdev) {
		fd = dup(bc_fd_of(d));
		return fd < 0 ? -errno : fd;
	}
	ret = bc_sysfs_devname("block", d->medium.disk, name, sizeof(name));
	if (ret)
		return ret;
	snprintf(path, sizeof(path), "/dev/%s", name);
	fd = open(path, bc_fd_open_mode(d->open_flags) | O_CLOEXEC);
	return fd < 0 ? -errno : fd;
}

static bool fd_claims(const char *path)
{
	return true;	/* registered last: everything no other transport claims */
}

static int probe_block(struct blkcopy_dev *d, struct fd_dev *f, const struct stat *st)
{
	unsigned long long size;
	int lbs, ro;

	if (ioctl(f->fd, BLKSSZGET, &lbs) || ioctl(f->fd, BLKGETSIZE64, &size) ||
	    ioctl(f->fd, BLKROGET, &ro))
		return -errno;
	if (lbs < 512 || (lbs & (lbs - 1)))
		return -EIO;
	f->block = true;
	d->lbs = d->dio_align = (uint32_t)lbs;
	d->capacity = size;
	d->read_only = ro;
	d->rdev = st->st_rdev;
	/* The disk itself; a partition layer moves the medium onto its disk. */
	bc_medium_set_disk(&d->medium, st->st_rdev);
	bc_fd_zoned_probe(d);
	return 0;
}

static uint32_t clone_align(int fd)
{
	struct statvfs vfs;

	if (fstatvfs(fd, &vfs) == 0 && vfs.f_frsize >= 512 && vfs.f_frsize <= (1u << 20) &&
	    !(vfs.f_frsize & (vfs.f_frsize - 1)))
		return (uint32_t)vfs.f_frsize;
	return 4096;
}

void bc_fd_backing_file(struct bc_backing_file *b, int fd, bool own_fd, const struct stat *st,
			uint64_t base)
{
	*b = (struct bc_backing_file){
		.valid = true,
		.fd = fd,
		.own_fd = own_fd,
		.medium = { .base = base },
		.fs = st->st_dev,
		.clone_align = clone_align(fd),
	};
	bc_medium_set_file(&b->medium, st->st_dev, st->st_ino);
}

static void probe_file(struct blkcopy_dev *d, struct fd_dev *f, const struct stat *st)
{
	struct statvfs vfs;

	d->lbs = 1;
	/* The file system block size is always a safe O_DIRECT alignment. */
	d->dio_align = st->st_blksize >= 512 ? (uint32_t)st->st_blksize : 4096;
	d->capacity = (uint64_t)st->st_size;
	d->read_only = (fstatvfs(f->fd, &vfs) == 0 && (vfs.f_flag & ST_RDONLY)) ||
		       access(d->path, W_OK) != 0;
	bc_fd_backing_file(&d->backing, f->fd, false, st, 0);
	d->medium = d->backing.medium;
}

static int fd_open(struct blkcopy_dev *d, const char *path, char *why, size_t why_size)
{
	char block_path[PATH_MAX];
	const char *data_path = path;
	struct fd_dev *f;
	struct stat st;
	int oflags;

	/* Look before opening: opening some char devices has side effects. */
	if (stat(path, &st))
		return -errno;
	/* An NVMe passthrough node stands for its namespace: data I/O goes to the block node. */
	if (S_ISCHR(st.st_mode)) {
		int ret = bc_nvme_block_path(st.st_rdev, block_path, sizeof(block_path));

		if (ret)
			return ret;
		data_path = block_path;
		if (stat(data_path, &st))
			return -errno;
	}
	if (!S_ISBLK(st.st_mode) && !S_ISREG(st.st_mode))
		return -ENOTBLK;
	f = calloc(1, sizeof(*f));
	if (!f)
		return -ENOMEM;
	f->fd = f->fd_direct = -1;
	d->transport_data = f;

	oflags = bc_fd_open_mode(d->open_flags) | O_CLOEXEC;
	if (S_ISBLK(st.st_mode) && (d->open_flags & BLKCOPY_OPEN_EXCL))
		oflags |= O_EXCL;
	f->fd = open(data_path, oflags);
	if (f->fd < 0) {
		int ret = -errno;

		/* A read-only medium says EACCES or EPERM for block devices. */
		if ((d->open_flags & BLKCOPY_OPEN_WRITE) && (ret == -EACCES || ret == -EPERM)) {
			int ro = 0, fd = open(data_path, O_RDONLY | O_CLOEXEC);
			if (fd >= 0 && S_ISBLK(st.st_mode) && !ioctl(fd, BLKROGET, &ro) && ro)
				ret = -EROFS;
			if (fd >= 0)
				close(fd);
		}
		return ret;
	}
	if (fstat(f->fd, &st))
		return -errno;
	if (S_ISBLK(st.st_mode)) {
		int ret = probe_block(d, f, &st);

		if (ret)
			return ret;
	} else {
		probe_file(d, f, &st);
	}
	/* Not every medium takes O_DIRECT; emulation then stays buffered. */
	f->fd_direct = open(data_path, bc_fd_open_mode(d->open_flags) | O_CLOEXEC | O_DIRECT);
	return 0;
}

/* Which driver serves the disk. */
static enum blkcopy_kind fd_kind(const struct blkcopy_dev *d)
{
	const struct fd_dev *f = d->transport_data;
	const dev_t disk = d->medium.disk;
	char name[64];

	if (!f->block)
		return BLKCOPY_KIND_FILE;
	if (bc_sysfs_exists(disk, "dm"))
		return BLKCOPY_KIND_DM;
	if (bc_sysfs_exists(disk, "md"))
		return BLKCOPY_KIND_MD;
	if (bc_sysfs_exists(disk, "loop"))
		return BLKCOPY_KIND_LOOP;
	bc_sysfs_devname("block", disk, name, sizeof(name));
	if (!strncmp(name, "nvme", 4))
		return BLKCOPY_KIND_NVME;
	if (bc_sysfs_exists(disk, "device/scsi_disk"))
		return BLKCOPY_KIND_SCSI;
	return BLKCOPY_KIND_BLOCK;
}

static void fd_close(struct blkcopy_dev *d)
{
	struct fd_dev *f = d->transport_data;

	if (!f)
		return;
	if (f->fd_direct >= 0)
		close(f->fd_direct);
	if (f->fd >= 0)
		close(f->fd);
	free(f);
	d->transport_data = NULL;
}

/* fdatasync on a block device also flushes the drive's volatile cache. */
static int fd_flush(struct blkcopy_dev *d)
{
	const struct fd_dev *f = d->transport_data;

	return fdatasync(f->fd) ? -errno : 0;
}

/* A block device's page cache; a file's is the file system's, which native copies keep coherent. */
static int fd_writeback(struct blkcopy_dev *d)
{
	const struct fd_dev *f = d->transport_data;

	return f->block ? fd_flush(d) : 0;
}

static void fd_invalidate(struct blkcopy_dev *d, uint64_t off, uint64_t len)
{
	const struct fd_dev *f = d->transport_data;

	if (f->block && len)
		posix_fadvise(f->fd, (off_t)off, (off_t)len, POSIX_FADV_DONTNEED);
}

static ssize_t fd_report_zones(struct blkcopy_dev *d, uint64_t off, struct blkcopy_zone *z,
			       size_t nr)
{
	const struct fd_dev *f = d->transport_data;

	return bc_fd_report_zones(f->fd, off, z, nr);
}

static void fd_zone_sync(struct blkcopy_dev *d, const struct blkcopy_zone *z)
{
	const struct fd_dev *f = d->transport_data;

	/* Through O_DIRECT only: a buffered write would fail later, in writeback. */
	if (f->fd_direct >= 0)
		bc_fd_zone_sync(f->fd_direct, d->lbs, z);
}

static bool fd_direct_ok(const struct blkcopy_dev *d)
{
	const struct fd_dev *f = d->transport_data;

	return f->fd_direct >= 0;
}

static uint32_t fd_io_max(const struct blkcopy_dev *d)
{
	return MAX_IO;
}

static int fd_io_open(struct bc_io_end *e)
{
	const struct fd_dev *f = e->dev->transport_data;

	e->fd = e->direct ? f->fd_direct : f->fd;
	return 0;
}

static int fd_io_submit(struct bc_io_end *e, bool write, void *buf, uint32_t len, uint64_t off,
			int buf_index, uint64_t tag)
{
	struct io_uring_sqe *sqe = bc_io_sqe(e);
	const int fd = e->fixed_file >= 0 ? e->fixed_file : e->fd;

	if (!sqe)
		return -EAGAIN;
	if (e->fixed_bufs) {
		if (write)
			io_uring_prep_write_fixed(sqe, fd, buf, len, off, buf_index);
		else
			io_uring_prep_read_fixed(sqe, fd, buf, len, off, buf_index);
	} else if (write) {
		io_uring_prep_write(sqe, fd, buf, len, off);
	} else {
		io_uring_prep_read(sqe, fd, buf, len, off);
	}
	if (e->fixed_file >= 0)
		sqe->flags |= IOSQE_FIXED_FILE;
	io_uring_sqe_set_data64(sqe, tag);
	return 0;
}

const struct bc_transport bc_transport_fd = {
	.name = "fd",
	.claims = fd_claims,
	.open = fd_open,
	.kind = fd_kind,
	.close = fd_close,
	.flush = fd_flush,
	.writeback = fd_writeback,
	.invalidate = fd_invalidate,
	.report_zones = fd_report_zones,
	.zone_sync = fd_zone_sync,
	.direct_ok = fd_direct_ok,
	.io_max = fd_io_max,
	.io_open = fd_io_open,
	.io_submit = fd_io_submit,
};
