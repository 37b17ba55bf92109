/* SPDX-License-Identifier: MIT */
/*
 * Native copy by the file system: regular files, and loop devices through
 * their backing files.  The block-aligned middle of a piece is cloned with
 * FICLONERANGE (XFS, btrfs: extents become shared, no data moves); what the
 * file system will not clone, and unaligned heads and tails, go through
 * copy_file_range(), which lets the file system (or a network file system's
 * server) copy without the data passing through us.
 */
#include <errno.h>
#include <linux/fs.h>
#include <stdio.h>
#include <sys/ioctl.h>
#include <sys/vfs.h>
#include <unistd.h>

#include "../backend.h"
#include "../util.h"

/* One piece at most: bounds the time one synchronous call holds the job (cancel, progress). */
#define PIECE_BYTES (1ull << 30)

static const char *fs_name(int fd)
{
	struct statfs sfs;

	if (fstatfs(fd, &sfs))
		return "unknown file system";
	switch ((unsigned long)sfs.f_type) {
	case 0x58465342: return "xfs";
	case 0x9123683e: return "btrfs";
	case 0xef53: return "ext4";
	case 0x01021994: return "tmpfs";
	case 0x6969: return "nfs";
	case 0xfe534d42: return "smb";
	case 0x794c7630: return "overlayfs";
	case 0x2fc12fc1: return "zfs";
	case 0x65735546: return "fuse";
	}
	return "unknown file system";
}

static int file_probe(struct blkcopy_dev *d)
{
	if (!d->backing.valid)
		return -ENODEV;
	d->probed = (struct blkcopy_limits){
		.copy_offload = 1,
		.max_copy_sectors = PIECE_BYTES / BC_SECTOR,
		.max_copy_nr_ranges = 1,
		.max_copy_range_sectors = PIECE_BYTES / BC_SECTOR,
	};
	snprintf(d->probe_reason, sizeof(d->probe_reason),
		 "%s on %s: reflink (FICLONERANGE) where the file system clones, else copy_file_range",
		 d->kind == BLKCOPY_KIND_FILE ? "file" : "backing file", fs_name(d->backing.fd));
	return 0;
}

/* The kernel copies only within one file system (since 5.19 for copy_file_range). */
static int file_pair(const struct blkcopy_dev *src, const struct blkcopy_dev *dst,
		     struct blkcopy_limits *lim, char *why, size_t why_size)
{
	if (!dst->backing.valid) {
		snprintf(why, why_size, "file: the destination is not held by a regular file");
		return -EOPNOTSUPP;
	}
	if (src->backing.fs != dst->backing.fs) {
		snprintf(why, why_size, "file: source and destination are on different file systems");
		return -EOPNOTSUPP;
	}
	*lim = src->limits;
	return 0;
}

/* Errors that mean "this file system will not do that", not "the data is in trouble". */
static bool refused(int err)
{
	return err == -EOPNOTSUPP || err == -EXDEV || err == -EINVAL || err == -ENOSYS ||
	       err == -ENOTTY || err == -ETXTBSY;
}

static int copy_range(int in, uint64_t in_off, int out, uint64_t out_off, uint64_t len)
{
	loff_t ioff = (loff_t)in_off, ooff = (loff_t)out_off;

	while (len) {
		ssize_t n = copy_file_range(in, &ioff, out, &ooff, len, 0);

		if (n < 0)
			return refused(-errno) ? -EOPNOTSUPP : -errno;
		if (n == 0)
			return -EIO;	/* the source ended early */
		len -= (uint64_t)n;
	}
	return 0;
}

static int clone_range(int in, uint64_t in_off, int out, uint64_t out_off, uint64_t len)
{
	struct file_clone_range fcr = {
		.src_fd = in,
		.src_offset = in_off,
		.src_length = len,
		.dest_offset = out_off,
	};

	return ioctl(out, FICLONERANGE, &fcr) ? -errno : 0;
}

static int file_copy(struct blkcopy_dev *src, struct blkcopy_dev *dst, const struct bc_span *segs,
		     const struct bc_piece *piece, struct bc_copy_stats *stats)
{
	const struct bc_backing_file *sf = &src->backing, *df = &dst->backing;
	const int in = sf->fd, out = df->fd;
	uint64_t so = sf->medium.base + segs[0].src, dof = df->medium.base + piece->dst;
	uint64_t len = piece->len;
	uint32_t a = sf->clone_align > df->clone_align ? sf->clone_align : df->clone_align;
	int ret;

	if (piece->nr_segs != 1)
		return -E2BIG;
	/* Extents can be shared only if both ends sit at the same offset within a block. */
	if (so % a == dof % a) {
		uint64_t head = (a - so % a) % a;
		if (head > len)
			head = len;
		uint64_t mid = (len - head) / a * a;

		if (mid) {
			ret = clone_range(in, so + head, out, dof + head, mid);
			if (ret == 0) {
				stats->bytes[BLKCOPY_METHOD_REFLINK] += mid;
				ret = copy_range(in, so, out, dof, head);
				if (!ret)
					ret = copy_range(in, so + head + mid, out, dof + head + mid,
							 len - head - mid);
				if (!ret)
					stats->bytes[BLKCOPY_METHOD_COPY_FILE_RANGE] += len - mid;
				return ret;
			}
			if (!refused(ret))
				return ret;
		}
	}
	ret = copy_range(in, so, out, dof, len);
	if (!ret)
		stats->bytes[BLKCOPY_METHOD_COPY_FILE_RANGE] += len;
	return ret;
}

const struct bc_backend bc_backend_file = {
	.name = "file",
	.caps = BC_BACKEND_SYNC,
	.probe = file_probe,
	.pair = file_pair,
	.copy = file_copy,
};
