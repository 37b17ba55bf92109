/* SPDX-License-Identifier: MIT */
/* Cutting a span list into pieces that respect a device's copy limits. */
#ifndef BLKCOPY_SPLIT_H
#define BLKCOPY_SPLIT_H

#include <stddef.h>
#include <stdint.h>

#include "blkcopy.h"
#include "span.h"

/* Limits the splitter honours, in bytes.  0 means unlimited. */
struct bc_split_limits {
	uint64_t max_piece_bytes;
	uint64_t max_seg_bytes;
	uint32_t max_segs;
	uint32_t align;		/* all cut points are multiples of this (>= 1) */
	/* Zones: no piece crosses a multiple of dst_boundary, no segment one of src_boundary. */
	uint64_t dst_boundary, src_boundary;	/* 0: none */
};

/*
 * Cuts a span list into pieces.  Cut points inside a span are aligned to
 * @align relative to the span start, so a span that is aligned stays so.
 */
struct bc_splitter {
	const struct bc_span *spans;
	size_t nr_spans;
	size_t idx;		/* current span */
	uint64_t skip;		/* bytes of spans[idx] already handed out */
	uint64_t dst;		/* destination of the next byte */
	struct bc_split_limits lim;
};

int bc_split_init(struct bc_splitter *s, const struct bc_span *spans, size_t nr,
		  uint64_t dst_off, const struct bc_split_limits *lim);
/*
 * Next piece: writes up to lim.max_segs (or @cap, the smaller) segments
 * into @segs.  Returns 1 with *@piece filled, 0 when nothing is left.
 */
int bc_split_next(struct bc_splitter *s, struct bc_span *segs, uint32_t cap,
		  struct bc_piece *piece);
/* Translate device limits (sectors) into splitter limits (bytes). */
int bc_split_limits_from(const struct blkcopy_limits *l, uint32_t align,
			 struct bc_split_limits *out);

#endif
