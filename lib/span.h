/* SPDX-License-Identifier: MIT */
/* The units of a copy: spans of a request and pieces of a plan. */
#ifndef BLKCOPY_SPAN_H
#define BLKCOPY_SPAN_H

#include <stdint.h>

/*
 * A span: bytes that go from src to dst unchanged in length.  A request is a
 * list of spans in destination order; its destination is contiguous.
 */
struct bc_span {
	uint64_t src;
	uint64_t len;
};

/* One piece of a plan: consecutive segments whose destination is contiguous. */
struct bc_piece {
	uint64_t dst;		/* destination offset of the first byte */
	uint64_t len;		/* sum of the segment lengths */
	uint32_t nr_segs;
};

#endif
