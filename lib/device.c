/* SPDX-License-Identifier: MIT */
/* Device handles: open, probe the geometry and the kind, find a native backend. */
#include <errno.h>
#include <fcntl.h>
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

#include "internal.h"

const char *blkcopy_version(void)
{
	return BLKCOPY_VERSION_STRING;
}

const char *blkcopy_kind_name(enum blkcopy_kind kind)
{
	switch (kind) {
	case BLKCOPY_KIND_FILE: return "file";
	case BLKCOPY_KIND_LOOP: return "loop";
	case BLKCOPY_KIND_NVME: return "nvme";
	case BLKCOPY_KIND_SCSI: return "scsi";
	case BLKCOPY_KIND_DM: return "dm";
	case BLKCOPY_KIND_MD: return "md";
	case BLKCOPY_KIND_BLOCK: return "block";
	case BLKCOPY_KIND_ISCSI: return "iscsi";
	}
	return "unknown";
}

/* Read a small sysfs attribute of block device @devno into @buf.  Returns 0 or -errno. */
int bc_sysfs_read(dev_t devno, const char *attr, char *buf, size_t size)
{
	char path[PATH_MAX];
	ssize_t n;
	int fd;

	snprintf(path, sizeof(path), "/sys/dev/block/%u:%u/%s", major(devno), minor(devno), attr);
	fd = open(path, O_RDONLY | O_CLOEXEC);
	if (fd < 0)
		return -errno;
	n = read(fd, buf, size - 1);
	close(fd);
	if (n < 0)
		return -errno;
	buf[n] = '\0';
	buf[strcspn(buf, "\n")] = '\0';
	return 0;
}

static bool sysfs_exists(dev_t devno, const char *attr)
{
	char path[PATH_MAX];

	snprintf(path, sizeof(path), "/sys/dev/block/%u:%u/%s", major(devno), minor(devno), attr);
	return access(path, F_OK) == 0;
}

int bc_sysfs_devname(const char *class, dev_t devno, char *name, size_t size)
{
	char path[PATH_MAX], line[256];
	FILE *f;

	name[0] = '\0';
	snprintf(path, sizeof(path), "/sys/dev/%s/%u:%u/uevent", class, major(devno), minor(devno));
	f = fopen(path, "re");
	if (!f)
		return -errno;
	while (fgets(line, sizeof(line), f)) {
		if (!strncmp(line, "DEVNAME=", 8)) {
			snprintf(name, size, "%.*s", (int)strcspn(line + 8, "\n"), line + 8);
			break;
		}
	}
	fclose(f);
	return name[0] ? 0 : -ENOENT;
}

static int open_mode(unsigned int flags)
{
	return (flags & BLKCOPY_OPEN_WRITE) ? O_RDWR : O_RDONLY;
}

int bc_open_whole(const struct blkcopy_dev *d)
{
	char name[64], path[PATH_MAX];
	int fd, ret;

	if (!d->partition) {
		fd = dup(d->fd);
		return fd < 0 ? -errno : fd;
	}
	ret = bc_sysfs_devname("block", d->whole, name, sizeof(name));
	if (ret)
		return ret;
	snprintf(path, sizeof(path), "/dev/%s", name);
	fd = open(path, open_mode(d->open_flags) | O_CLOEXEC);
	return fd < 0 ? -errno : fd;
}

static int probe_partition(struct blkcopy_dev *d)
{
	char buf[64], dev[32];
	unsigned int maj, min;

	d->whole = d->rdev;
	if (!sysfs_exists(d->rdev, "partition"))
		return 0;
	/* A partition's sysfs directory sits inside its disk's: "../dev" is the disk. */
	if (bc_sysfs_read(d->rdev, "start", buf, sizeof(buf)) ||
	    bc_sysfs_read(d->rdev, "../dev", dev, sizeof(dev)) ||
	    sscanf(dev, "%u:%u", &maj, &min) != 2)
		return -EIO;
	d->partition = true;
	d->part_start = strtoull(buf, NULL, 10) * BC_SECTOR;
	d->whole = makedev(maj, min);
	return 0;
}

static enum blkcopy_kind block_kind(dev_t whole)
{
	char name[64];

	if (sysfs_exists(whole, "dm"))
		return BLKCOPY_KIND_DM;
	if (sysfs_exists(whole, "md"))
		return BLKCOPY_KIND_MD;
	if (sysfs_exists(whole, "loop"))
		return BLKCOPY_KIND_LOOP;
	bc_sysfs_devname("block", whole, name, sizeof(name));
	if (!strncmp(name, "nvme", 4))
		return BLKCOPY_KIND_NVME;
	if (sysfs_exists(whole, "device/scsi_disk"))
		return BLKCOPY_KIND_SCSI;
	return BLKCOPY_KIND_BLOCK;
}

static int probe_block(struct blkcopy_dev *d, const struct stat *st)
{
	unsigned long long size;
	int lbs, ro, ret;

	if (ioctl(d->fd, BLKSSZGET, &lbs) || ioctl(d->fd, BLKGETSIZE64, &size) ||
	    ioctl(d->fd, BLKROGET, &ro))
		return -errno;
	if (lbs < 512 || (lbs & (lbs - 1)))
		return -EIO;
	d->lbs = d->dio_align = (uint32_t)lbs;
	d->capacity = size;
	d->read_only = ro;
	d->rdev = st->st_rdev;
	ret = probe_partition(d);
	if (ret)
		return ret;
	d->kind = block_kind(d->whole);
	return 0;
}

static void probe_file(struct blkcopy_dev *d, const struct stat *st)
{
	struct statvfs vfs;

	d->kind = BLKCOPY_KIND_FILE;
	d->lbs = 1;
	/* The file system block size is always a safe O_DIRECT alignment. */
	d->dio_align = st->st_blksize >= 512 ? (uint32_t)st->st_blksize : 4096;
	d->capacity = (uint64_t)st->st_size;
	d->read_only = (fstatvfs(d->fd, &vfs) == 0 && (vfs.f_flag & ST_RDONLY)) ||
		       access(d->path, W_OK) != 0;
}

static void probe_native(struct blkcopy_dev *d)
{
	for (const struct bc_backend *const *b = bc_backends; *b; b++) {
		if ((*b)->probe(d) == 0) {
			d->backend = *b;
			d->limits.copy_offload = d->limits.max_copy_sectors ? 1 : 0;
			return;
		}
	}
	memset(&d->limits, 0, sizeof(d->limits));
	if (d->reason[0])
		return;		/* the resolver already said why */
	if (d->kind == BLKCOPY_KIND_DM || d->kind == BLKCOPY_KIND_MD)
		snprintf(d->reason, sizeof(d->reason),
			 "%s device: emulation only (stacked mapping not resolved)",
			 blkcopy_kind_name(d->kind));
	else
		snprintf(d->reason, sizeof(d->reason), "no native copy backend for %s devices",
			 blkcopy_kind_name(d->kind));
}

/* Why the last failed open failed, in words: blkcopy_open_error(). */
static _Thread_local char open_error[512];

const char *blkcopy_open_error(void)
{
	return open_error;
}

int blkcopy_open(const char *path, unsigned int flags, struct blkcopy_dev **devp)
{
	return bc_open_depth(path, flags, 0, devp);
}

/* A LUN by URL: no node, no descriptor; the session is the device. */
static int open_remote(struct blkcopy_dev *d, const char *url)
{
	int ret = bc_iscsi_open(d, url, open_error, sizeof(open_error));

	if (ret)
		return ret;
	if ((d->open_flags & BLKCOPY_OPEN_WRITE) && d->read_only) {
		snprintf(open_error, sizeof(open_error),
			 "read-only: the logical unit is write protected (MODE SENSE WP bit)");
		return -EROFS;
	}
	probe_native(d);
	return 0;
}

int bc_open_depth(const char *path, unsigned int flags, int depth, struct blkcopy_dev **devp)
{
	const unsigned int known = BLKCOPY_OPEN_READ | BLKCOPY_OPEN_WRITE | BLKCOPY_OPEN_EXCL;
	struct blkcopy_dev *d;
	struct stat st;
	int ret;

	open_error[0] = '\0';
	if (!path || !devp || (flags & ~known) || !(flags & (BLKCOPY_OPEN_READ | BLKCOPY_OPEN_WRITE)))
		return -EINVAL;
	d = calloc(1, sizeof(*d));
	if (!d)
		return -ENOMEM;
	d->fd = d->fd_direct = -1;
	d->open_flags = flags;
	d->depth = depth;
	d->path = strdup(path);
	if (!d->path) {
		ret = -ENOMEM;
		goto fail;
	}
	if (bc_is_iscsi_url(path)) {
		ret = open_remote(d, path);
		if (ret)
			goto fail;
		*devp = d;
		return 0;
	}

	/* Look before opening: opening some char devices has side effects. */
	if (stat(path, &st)) {
		ret = -errno;
		goto fail;
	}
	/* An NVMe passthrough node stands for its namespace: data I/O goes to the block node. */
	char block_path[PATH_MAX];
	const char *data_path = path;
	if (S_ISCHR(st.st_mode)) {
		ret = bc_nvme_block_path(st.st_rdev, block_path, sizeof(block_path));
		if (ret)
			goto fail;
		data_path = block_path;
		if (stat(data_path, &st)) {
			ret = -errno;
			goto fail;
		}
	}
	if (!S_ISBLK(st.st_mode) && !S_ISREG(st.st_mode)) {
		ret = -ENOTBLK;
		goto fail;
	}
	int oflags = open_mode(flags) | O_CLOEXEC;
	if (S_ISBLK(st.st_mode) && (flags & BLKCOPY_OPEN_EXCL))
		oflags |= O_EXCL;
	d->fd = open(data_path, oflags);
	if (d->fd < 0) {
		ret = -errno;
		/* A read-only medium says EACCES or EPERM for block devices. */
		if ((flags & BLKCOPY_OPEN_WRITE) && (ret == -EACCES || ret == -EPERM)) {
			int ro = 0, fd = open(data_path, O_RDONLY | O_CLOEXEC);
			if (fd >= 0 && S_ISBLK(st.st_mode) && !ioctl(fd, BLKROGET, &ro) && ro)
				ret = -EROFS;
			if (fd >= 0)
				close(fd);
		}
		goto fail;
	}
	if (fstat(d->fd, &st)) {
		ret = -errno;
		goto fail;
	}
	if (S_ISBLK(st.st_mode)) {
		ret = probe_block(d, &st);
		if (ret)
			goto fail;
	} else {
		probe_file(d, &st);
	}
	if ((flags & BLKCOPY_OPEN_WRITE) && d->read_only) {
		ret = -EROFS;
		goto fail;
	}
	/* Not every medium takes O_DIRECT; emulation then stays buffered. */
	d->fd_direct = open(data_path, open_mode(flags) | O_CLOEXEC | O_DIRECT);
	bc_resolve_file(d);
	probe_native(d);
	/* A table blkcopy cannot read leaves the device emulation-only, with the reason. */
	ret = bc_stack_refresh(d);
	if (ret == -ENOMEM || ret == -ELOOP)
		goto fail;
	*devp = d;
	return 0;
fail:
	blkcopy_close(d);
	return ret;
}

void blkcopy_close(struct blkcopy_dev *d)
{
	if (!d)
		return;
	if (d->backend && d->backend->close)
		d->backend->close(d);
	if (d->remote)
		d->remote->close(d);
	bc_stack_release(d);
	bc_release_file(d);
	if (d->fd_direct >= 0)
		close(d->fd_direct);
	if (d->fd >= 0)
		close(d->fd);
	free(d->path);
	free(d);
}

int blkcopy_get_info(const struct blkcopy_dev *d, struct blkcopy_info *info)
{
	if (!d || !info)
		return -EINVAL;
	*info = (struct blkcopy_info){
		.path = d->path,
		.backend = d->backend ? d->backend->name : "emulate",
		.native_reason = d->reason,
		.kind = d->kind,
		.logical_block_size = d->lbs,
		.capacity = d->capacity,
		.read_only = d->read_only,
		.partition = d->partition,
		.partition_start = d->part_start,
		.major = d->kind == BLKCOPY_KIND_FILE ? 0 : major(d->rdev),
		.minor = d->kind == BLKCOPY_KIND_FILE ? 0 : minor(d->rdev),
		.limits = d->limits,
	};
	return 0;
}

int bc_dev_flush(struct blkcopy_dev *d)
{
	if (d->remote)
		return d->remote->flush(d);
	return fdatasync(d->fd) ? -errno : 0;
}

const char *blkcopy_dev_error(const struct blkcopy_dev *d)
{
	return d ? d->error : "";
}

int blkcopy_set_copy_offload(struct blkcopy_dev *d, bool enable)
{
	if (!d)
		return -EINVAL;
	if (enable && !d->limits.max_copy_sectors)
		return -EOPNOTSUPP;
	d->offload_off = !enable;
	d->limits.copy_offload = enable;
	return 0;
}
