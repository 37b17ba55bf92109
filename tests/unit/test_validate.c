/* SPDX-License-Identifier: MIT */
/* Request validation on described devices: each bad input gets its own error. */
#include <errno.h>
#include <sys/sysmacros.h>

#include "check.h"
#include "device.h"
#include "request.h"

static struct blkcopy_dev disk(uint32_t lbs, uint64_t cap, dev_t whole, uint64_t part_start)
{
	struct blkcopy_dev d = {
		.kind = BLKCOPY_KIND_BLOCK,
		.lbs = lbs,
		.capacity = cap,
		.rdev = part_start ? whole + 1 : whole,
		.open_flags = BLKCOPY_OPEN_READ | BLKCOPY_OPEN_WRITE,
	};

	bc_medium_set_disk(&d.medium, whole);
	d.medium.base = part_start;
	return d;
}

/* Held by the file (@st_dev, @ino), device offset 0 at @base in it. */
static void backed_by(struct blkcopy_dev *d, dev_t st_dev, ino_t ino, uint64_t base)
{
	d->backing = (struct bc_backing_file){ .valid = true, .fs = st_dev,
					       .medium = { .base = base } };
	bc_medium_set_file(&d->backing.medium, st_dev, ino);
	if (d->kind == BLKCOPY_KIND_FILE)
		d->medium = d->backing.medium;
}

static int v(const struct blkcopy_dev *s, const struct blkcopy_range *r, size_t nr,
	     const struct blkcopy_dev *d, uint64_t off, size_t *bad)
{
	return bc_validate(s, r, nr, d, off, 0, NULL, bad);
}

int main(void)
{
	const uint64_t MiB = 1 << 20;
	struct blkcopy_dev a = disk(512, 64 * MiB, makedev(8, 0), 0);
	struct blkcopy_dev b = disk(4096, 64 * MiB, makedev(8, 16), 0);
	struct blkcopy_dev p1 = disk(512, 16 * MiB, makedev(8, 0), 1 * MiB);
	struct blkcopy_dev p2 = disk(512, 16 * MiB, makedev(8, 0), 17 * MiB);
	size_t bad;
	uint64_t total;

	/* Good requests. */
	struct blkcopy_range ok[] = { { 0, 4096 }, { 8 * MiB, 8192 } };
	CHECK_EQ(bc_validate(&a, ok, 2, &b, 4096, 0, &total, &bad), 0);
	CHECK_EQ(total, 12288);
	CHECK_EQ(bad, SIZE_MAX);

	/* Zero-length, and no ranges at all. */
	struct blkcopy_range zero[] = { { 0, 4096 }, { 4096, 0 } };
	CHECK_EQ(v(&a, zero, 2, &b, 0, &bad), -ENODATA);
	CHECK_EQ(bad, 1);
	CHECK_EQ(v(&a, ok, 0, &b, 0, &bad), -ENODATA);

	/* Too many ranges: refused before any range is looked at. */
	CHECK_EQ(v(&a, ok, (size_t)BLKCOPY_MAX_RANGES + 1, &b, 0, &bad), -E2BIG);

	/* Misaligned to the larger block size (4096 here), for offset, length and destination. */
	struct blkcopy_range mis1[] = { { 512, 4096 } }, mis2[] = { { 0, 1024 } };
	CHECK_EQ(v(&a, mis1, 1, &b, 0, &bad), -EINVAL);
	CHECK_EQ(bad, 0);
	CHECK_EQ(v(&a, mis2, 1, &b, 0, &bad), -EINVAL);
	CHECK_EQ(v(&a, ok, 2, &b, 512, &bad), -EINVAL);
	CHECK_EQ(bad, SIZE_MAX);
	CHECK_EQ(v(&a, mis2, 1, &a, 4 * MiB, &bad), 0);

	/* Past the end of the source, and of the destination. */
	struct blkcopy_range past[] = { { 0, 4096 }, { 64 * MiB - 4096, 8192 } };
	CHECK_EQ(v(&a, past, 2, &b, 0, &bad), -ENXIO);
	CHECK_EQ(bad, 1);
	struct blkcopy_range end[] = { { 64 * MiB - 4096, 4096 } };
	CHECK_EQ(v(&a, end, 1, &b, 0, &bad), 0);
	CHECK_EQ(v(&a, end, 1, &b, 64 * MiB - 4096, &bad), 0);
	CHECK_EQ(v(&a, end, 1, &b, 64 * MiB, &bad), -ENOSPC);

	/* Overflow: offset + len, sum of lengths, destination end. */
	struct blkcopy_range of1[] = { { UINT64_MAX - 511, 1024 } };
	CHECK_EQ(v(&a, of1, 1, &b, 0, &bad), -EOVERFLOW);
	struct blkcopy_range of2[] = { { 0, UINT64_MAX / 2 + 1 }, { 0, UINT64_MAX / 2 + 1 } };
	CHECK_EQ(v(&a, of2, 2, &b, 0, &bad), -EOVERFLOW);
	CHECK_EQ(bad, 0);	/* the first alone exceeds SSIZE_MAX */
	CHECK_EQ(v(&a, ok, 2, &b, UINT64_MAX - 4095, &bad), -EOVERFLOW);
	/* Past off_t is overflow too, and is reported before "past the end". */
	CHECK_EQ(v(&a, ok, 2, &b, (uint64_t)INT64_MAX - 4095, &bad), -EOVERFLOW);
	struct blkcopy_range of3[] = { { 0, 1ull << 62 }, { 0, 1ull << 62 } };
	CHECK_EQ(v(&a, of3, 2, &b, 0, &bad), -EOVERFLOW);
	CHECK_EQ(bad, 1);

	/* Read-only destination, and one not opened for writing. */
	struct blkcopy_dev ro = b;
	ro.read_only = true;
	CHECK_EQ(v(&a, ok, 2, &ro, 0, &bad), -EROFS);
	struct blkcopy_dev rd = b;
	rd.open_flags = BLKCOPY_OPEN_READ;
	CHECK_EQ(v(&a, ok, 2, &rd, 0, &bad), -EBADF);

	/* Overlap on the same medium, in absolute terms across partitions. */
	struct blkcopy_range o1[] = { { 0, 4096 }, { 1 * MiB, 4096 } };
	CHECK_EQ(v(&a, o1, 2, &a, 1 * MiB - 4096, &bad), -EADDRINUSE);
	CHECK_EQ(bad, 1);
	CHECK_EQ(v(&a, o1, 2, &a, 2 * MiB, &bad), 0);
	/* p1 offset 0 is disk offset 1 MiB: the source in the whole disk overlaps. */
	struct blkcopy_range whole_r[] = { { 1 * MiB, 4096 } };
	CHECK_EQ(v(&a, whole_r, 1, &p1, 0, &bad), -EADDRINUSE);
	CHECK_EQ(v(&p1, ok, 1, &p2, 0, &bad), 0);
	struct blkcopy_range tail[] = { { 16 * MiB - 4096, 4096 } };
	CHECK_EQ(v(&p1, tail, 1, &p2, 0, &bad), 0);	/* adjacent, not overlapping */
	CHECK_EQ(v(&p1, tail, 1, &a, 17 * MiB - 4096, &bad), -EADDRINUSE);

	/* Argument errors. */
	CHECK_EQ(bc_validate(&a, ok, 2, &b, 0, 1u << 30, NULL, &bad), -EINVAL);
	CHECK_EQ(bc_validate(&a, ok, 2, &b, 0, BLKCOPY_NOEMULATION | BLKCOPY_NOOFFLOAD, NULL, &bad),
		 -EINVAL);
	CHECK_EQ(bc_validate(NULL, ok, 2, &b, 0, 0, NULL, &bad), -EINVAL);
	CHECK_EQ(bc_validate(&a, NULL, 2, &b, 0, 0, NULL, &bad), -EINVAL);

	/* Files: same inode overlaps, a different inode does not. */
	struct blkcopy_dev f1 = { .kind = BLKCOPY_KIND_FILE, .lbs = 1, .capacity = MiB,
				  .open_flags = BLKCOPY_OPEN_WRITE };
	backed_by(&f1, 5, 10, 0);
	struct blkcopy_dev f2 = f1;
	backed_by(&f2, 5, 11, 0);
	struct blkcopy_range fr[] = { { 3, 100 } };
	CHECK_EQ(v(&f1, fr, 1, &f1, 50, &bad), -EADDRINUSE);
	CHECK_EQ(v(&f1, fr, 1, &f2, 50, &bad), 0);
	CHECK_EQ(v(&f1, fr, 1, &f1, 103, &bad), 0);

	/* A loop device (offset 1 MiB into its file) and a file device over that file. */
	struct blkcopy_dev loop_a = disk(512, 8 * MiB, makedev(7, 0), 0);
	loop_a.kind = BLKCOPY_KIND_LOOP;
	backed_by(&loop_a, 5, 10, MiB);
	struct blkcopy_dev f3 = f1;
	f3.capacity = 16 * MiB;
	struct blkcopy_range lr[] = { { 0, 4096 } };
	CHECK_EQ(v(&loop_a, lr, 1, &f3, MiB, &bad), -EADDRINUSE);
	CHECK_EQ(v(&loop_a, lr, 1, &f3, 0, &bad), 0);
	/* The same loop device with its file unresolved on one handle: compared as a disk. */
	struct blkcopy_dev loop_b = loop_a;
	loop_b.backing.valid = false;
	CHECK_EQ(v(&loop_a, lr, 1, &loop_b, 2048, &bad), -EADDRINUSE);
	CHECK_EQ(v(&loop_a, lr, 1, &loop_b, 4096, &bad), 0);

	return check_done("validate");
}
