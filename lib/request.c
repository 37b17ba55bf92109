/* SPDX-License-Identifier: MIT */
/* Request validation: everything is checked before the first write. */
#include <errno.h>
#include <limits.h>
#include <stdlib.h>

#include "layer.h"
#include "request.h"

/* Every byte offset must fit in off_t: pread() and pwrite() take no more. */
#define OFF_MAX ((uint64_t)INT64_MAX)
#define KNOWN_FLAGS (BLKCOPY_NOEMULATION | BLKCOPY_NOOFFLOAD | BLKCOPY_SYNC | BLKCOPY_BUFFERED | \
		     BLKCOPY_VERIFY | BLKCOPY_P2P)

/*
 * Two devices are the same medium when the same file holds both (a file and
 * a loop device over it, two loop devices over one file) or they are the
 * same whole disk.  The bases belong to the comparison made: a loop device
 * whose file is resolved on one handle and not on another is still compared
 * as a disk, in disk offsets, on both.
 */
bool bc_same_medium(const struct blkcopy_dev *a, const struct blkcopy_dev *b,
		    uint64_t *abase, uint64_t *bbase)
{
	const struct bc_medium *ma = &a->medium, *mb = &b->medium;

	if (a->backing.valid && b->backing.valid) {
		ma = &a->backing.medium;
		mb = &b->backing.medium;
	}
	/* A file and a device not resolved to a file have different kinds of id: never the same. */
	*abase = ma->base;
	*bbase = mb->base;
	return bc_medium_same(ma, mb);
}

static bool overlaps(uint64_t a, uint64_t alen, uint64_t b, uint64_t blen)
{
	return a < b + blen && b < a + alen;
}

/* Report an error about range @i. */
static int bad(size_t *bad_range, size_t i, int err)
{
	if (bad_range)
		*bad_range = i;
	return err;
}

/* Bytes of a leaf, as the destination's footprint. */
struct extent {
	const struct blkcopy_dev *leaf;
	uint64_t off, len;
};

/*
 * The destination's footprint on the leaves under it, merged where a leaf's
 * pieces continue each other (a stripe's chunks do): a handful of extents
 * for linear and striped tables, however long the copy.
 */
static int footprint(const struct blkcopy_dev *dst, uint64_t dst_off, uint64_t total,
		     struct extent **extp, size_t *nrp)
{
	struct extent *ext = NULL;
	size_t n = 0, cap = 0;

	for (uint64_t pos = 0; pos < total;) {
		struct blkcopy_dev *leaf;
		uint64_t off, run = bc_map_leaf(dst, dst_off + pos, total - pos, &leaf, &off);
		size_t k;

		if (!run) {
			free(ext);
			return -EIO;
		}
		for (k = 0; k < n; k++)
			if (ext[k].leaf == leaf && ext[k].off + ext[k].len == off)
				break;
		if (k < n) {
			ext[k].len += run;
		} else {
			if (n == cap) {
				struct extent *e = realloc(ext, (cap = cap ? 2 * cap : 8) * sizeof(*e));
				if (!e) {
					free(ext);
					return -ENOMEM;
				}
				ext = e;
			}
			ext[n++] = (struct extent){ .leaf = leaf, .off = off, .len = run };
		}
		pos += run;
	}
	*extp = ext;
	*nrp = n;
	return 0;
}

/*
 * Two different dm devices, or a dm device and what lies under it, can put
 * a source and the destination on the same bytes: compare on the leaves.
 */
static int stacked_overlap(const struct blkcopy_dev *src, const struct blkcopy_range *ranges,
			   size_t nr, const struct blkcopy_dev *dst, uint64_t dst_off,
			   uint64_t total, size_t *bad_range)
{
	struct extent *ext;
	size_t n;
	int ret = footprint(dst, dst_off, total, &ext, &n);

	if (ret)
		return ret;
	for (size_t i = 0; i < nr && !ret; i++) {
		for (uint64_t pos = 0; pos < ranges[i].len && !ret;) {
			struct blkcopy_dev *leaf;
			uint64_t off, sbase, dbase;
			uint64_t run = bc_map_leaf(src, ranges[i].offset + pos, ranges[i].len - pos,
						    &leaf, &off);

			if (!run) {
				ret = -EIO;
				break;
			}
			for (size_t k = 0; k < n; k++) {
				if (bc_same_medium(leaf, ext[k].leaf, &sbase, &dbase) &&
				    overlaps(sbase + off, run, dbase + ext[k].off, ext[k].len)) {
					ret = bad(bad_range, i, -EADDRINUSE);
					break;
				}
			}
			pos += run;
		}
	}
	free(ext);
	return ret;
}


int bc_validate(const struct blkcopy_dev *src, const struct blkcopy_range *ranges, size_t nr,
		const struct blkcopy_dev *dst, uint64_t dst_off, unsigned int flags,
		uint64_t *totalp, size_t *bad_range)
{
	uint64_t total = 0;
	size_t i;

	if (bad_range)
		*bad_range = SIZE_MAX;
	if (!src || !dst || (nr && !ranges) || (flags & ~KNOWN_FLAGS))
		return -EINVAL;
	if ((flags & BLKCOPY_NOEMULATION) && (flags & BLKCOPY_NOOFFLOAD))
		return -EINVAL;
	if (!nr)
		return -ENODATA;
	if (nr > BLKCOPY_MAX_RANGES)
		return -E2BIG;

	/* Both block sizes are powers of two, so the larger is a multiple of the smaller. */
	const uint64_t align = src->lbs > dst->lbs ? src->lbs : dst->lbs;

	/* Arithmetic first: the later checks add offsets and must not wrap. */
	for (i = 0; i < nr; i++) {
		const struct blkcopy_range *r = &ranges[i];
		uint64_t end;

		if (!r->len)
			return bad(bad_range, i, -ENODATA);
		if (__builtin_add_overflow(r->offset, r->len, &end) || end > OFF_MAX ||
		    __builtin_add_overflow(total, r->len, &total) || total > OFF_MAX)
			return bad(bad_range, i, -EOVERFLOW);
	}
	uint64_t dst_end;
	if (__builtin_add_overflow(dst_off, total, &dst_end) || dst_end > OFF_MAX)
		return -EOVERFLOW;

	for (i = 0; i < nr; i++) {
		const struct blkcopy_range *r = &ranges[i];

		if (r->offset % align || r->len % align)
			return bad(bad_range, i, -EINVAL);
		if (r->offset + r->len > src->capacity)
			return bad(bad_range, i, -ENXIO);
	}
	if (dst_off % align)
		return -EINVAL;
	if (dst_end > dst->capacity)
		return -ENOSPC;
	if (dst->read_only)
		return -EROFS;
	if (!(dst->open_flags & BLKCOPY_OPEN_WRITE))
		return -EBADF;

	uint64_t sbase, dbase;
	if (bc_same_medium(src, dst, &sbase, &dbase)) {
		for (i = 0; i < nr; i++)
			if (overlaps(sbase + ranges[i].offset, ranges[i].len, dbase + dst_off, total))
				return bad(bad_range, i, -EADDRINUSE);
	}
	if (bc_is_stacked(src) || bc_is_stacked(dst)) {
		int ret = stacked_overlap(src, ranges, nr, dst, dst_off, total, bad_range);
		if (ret)
			return ret;
	}

	if (totalp)
		*totalp = total;
	return 0;
}

int bc_validate_disjoint(const struct blkcopy_dev *a, uint64_t a_off, const struct blkcopy_dev *b,
			 uint64_t b_off, uint64_t len)
{
	const struct blkcopy_range r = { .offset = a_off, .len = len };
	uint64_t abase, bbase;

	if (bc_same_medium(a, b, &abase, &bbase) && overlaps(abase + a_off, len, bbase + b_off, len))
		return -EADDRINUSE;
	if (bc_is_stacked(a) || bc_is_stacked(b))
		return stacked_overlap(a, &r, 1, b, b_off, len, NULL);
	return 0;
}

ssize_t bc_coalesce(const struct blkcopy_range *ranges, size_t nr, struct bc_span **spansp)
{
	struct bc_span *spans = malloc(nr * sizeof(*spans));
	size_t n = 0;

	if (!spans)
		return -ENOMEM;
	for (size_t i = 0; i < nr; i++) {
		/* Adjacent ranges become one: fewer commands, larger I/O. */
		if (n && spans[n - 1].src + spans[n - 1].len == ranges[i].offset)
			spans[n - 1].len += ranges[i].len;
		else
			spans[n++] = (struct bc_span){ .src = ranges[i].offset, .len = ranges[i].len };
	}
	*spansp = spans;
	return (ssize_t)n;
}
