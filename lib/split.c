/* SPDX-License-Identifier: MIT */
/*
 * The planner's cutter: turns a span list into pieces that respect a set of
 * limits (segments per piece, bytes per segment, bytes per piece).  Native
 * backends cut by the device's copy limits; emulation cuts by its chunk size.
 */
#include <errno.h>

#include "split.h"
#include "util.h"

static uint64_t align_down(uint64_t v, uint32_t a)
{
	return v - v % a;
}

int bc_split_init(struct bc_splitter *s, const struct bc_span *spans, size_t nr,
		  uint64_t dst_off, const struct bc_split_limits *lim)
{
	if (!lim->align)
		return -EINVAL;
	/* A limit below the alignment could never make progress. */
	if ((lim->max_piece_bytes && lim->max_piece_bytes < lim->align) ||
	    (lim->max_seg_bytes && lim->max_seg_bytes < lim->align) ||
	    lim->dst_boundary % lim->align || lim->src_boundary % lim->align)
		return -EINVAL;
	*s = (struct bc_splitter){
		.spans = spans,
		.nr_spans = nr,
		.dst = dst_off,
		.lim = *lim,
	};
	s->lim.max_piece_bytes = lim->max_piece_bytes ? align_down(lim->max_piece_bytes, lim->align)
						      : UINT64_MAX;
	s->lim.max_seg_bytes = lim->max_seg_bytes ? align_down(lim->max_seg_bytes, lim->align)
						  : UINT64_MAX;
	s->lim.max_segs = lim->max_segs ? lim->max_segs : UINT32_MAX;
	return 0;
}

int bc_split_next(struct bc_splitter *s, struct bc_span *segs, uint32_t cap,
		  struct bc_piece *piece)
{
	uint32_t max_segs = s->lim.max_segs < cap ? s->lim.max_segs : cap;
	uint64_t room = s->lim.max_piece_bytes;

	if (s->idx >= s->nr_spans || !max_segs)
		return 0;

	if (s->lim.dst_boundary)
		room = bc_min_u64(room, s->lim.dst_boundary - s->dst % s->lim.dst_boundary);
	*piece = (struct bc_piece){ .dst = s->dst };
	while (s->idx < s->nr_spans && piece->nr_segs < max_segs && room) {
		const struct bc_span *sp = &s->spans[s->idx];
		uint64_t left = sp->len - s->skip;
		uint64_t take = bc_min_u64(bc_min_u64(left, s->lim.max_seg_bytes), room);

		if (s->lim.src_boundary) {
			const uint64_t at = sp->src + s->skip;

			take = bc_min_u64(take, s->lim.src_boundary - at % s->lim.src_boundary);
		}

		/* Cut only at aligned points unless the span ends here. */
		if (take < left)
			take = align_down(take, s->lim.align);
		if (!take)
			break;

		segs[piece->nr_segs++] = (struct bc_span){ .src = sp->src + s->skip, .len = take };
		piece->len += take;
		room -= take;
		s->skip += take;
		if (s->skip == sp->len) {
			s->idx++;
			s->skip = 0;
		}
	}
	s->dst += piece->len;
	return piece->nr_segs ? 1 : 0;
}

int bc_split_limits_from(const struct blkcopy_limits *l, uint32_t align,
			 struct bc_split_limits *out)
{
	if (!l->max_copy_sectors || !l->max_copy_nr_ranges || !l->max_copy_range_sectors || !align)
		return -EOPNOTSUPP;
	/* Sector counts from a device are untrusted: clamp before scaling. */
	const uint64_t cap = UINT64_MAX / BC_SECTOR;
	*out = (struct bc_split_limits){
		.max_piece_bytes = bc_min_u64(l->max_copy_sectors, cap) * BC_SECTOR,
		.max_seg_bytes = bc_min_u64(l->max_copy_range_sectors, cap) * BC_SECTOR,
		.max_segs = l->max_copy_nr_ranges,
		.align = align,
	};
	if (out->max_piece_bytes < align || out->max_seg_bytes < align)
		return -EOPNOTSUPP;
	return 0;
}
