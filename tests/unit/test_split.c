/* SPDX-License-Identifier: MIT */
/*
 * The splitter, exhaustively over small inputs: every span list of up to
 * four spans of 1..5 blocks against every combination of limits, checking
 * that the pieces reproduce the input byte for byte, respect every limit,
 * cut only at aligned points, and are as large as the limits allow.
 */
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "check.h"
#include "request.h"
#include "split.h"

static unsigned long cases;

static void check_plan(const struct bc_span *spans, size_t nr, const struct bc_split_limits *lim)
{
	struct bc_splitter s;
	struct bc_span segs[64];
	struct bc_piece piece;
	uint64_t dst = 1 << 20, total = 0;
	size_t idx = 0;		/* the span the next segment must continue */
	uint64_t skip = 0;

	for (size_t i = 0; i < nr; i++)
		total += spans[i].len;
	CHECK_EQ(bc_split_init(&s, spans, nr, dst, lim), 0);
	const uint64_t max_piece = lim->max_piece_bytes ? lim->max_piece_bytes - lim->max_piece_bytes % lim->align : UINT64_MAX;
	const uint64_t max_seg = lim->max_seg_bytes ? lim->max_seg_bytes - lim->max_seg_bytes % lim->align : UINT64_MAX;
	const uint32_t max_segs = lim->max_segs ? lim->max_segs : 64;
	uint64_t seen = 0;

	while (bc_split_next(&s, segs, 64, &piece)) {
		cases++;
		CHECK(piece.nr_segs >= 1 && piece.nr_segs <= max_segs, "nr_segs %u", piece.nr_segs);
		CHECK(piece.len <= max_piece, "piece %llu > %llu", (unsigned long long)piece.len,
		      (unsigned long long)max_piece);
		CHECK_EQ(piece.dst, dst + seen);
		uint64_t sum = 0;
		for (uint32_t i = 0; i < piece.nr_segs; i++) {
			const struct bc_span *g = &segs[i];
			CHECK(g->len > 0 && g->len <= max_seg, "seg len %llu", (unsigned long long)g->len);
			/* The segment continues the input exactly where the last one stopped. */
			CHECK(idx < nr, "more output than input");
			if (idx >= nr)
				return;
			CHECK_EQ(g->src, spans[idx].src + skip);
			CHECK(skip % lim->align == 0, "cut at unaligned point %llu", (unsigned long long)skip);
			CHECK(g->len <= spans[idx].len - skip, "segment runs past its span");
			/* A zoned source: no segment reads across a zone boundary. */
			if (lim->src_boundary)
				CHECK(g->src / lim->src_boundary == (g->src + g->len - 1) / lim->src_boundary,
				      "segment %llu+%llu crosses a source zone",
				      (unsigned long long)g->src, (unsigned long long)g->len);
			skip += g->len;
			if (skip == spans[idx].len) {
				idx++;
				skip = 0;
			}
			sum += g->len;
		}
		CHECK_EQ(sum, piece.len);
		/* A zoned destination: no piece writes across a zone boundary. */
		const uint64_t db = lim->dst_boundary;
		if (db)
			CHECK(piece.dst / db == (piece.dst + piece.len - 1) / db,
			      "piece %llu+%llu crosses a destination zone",
			      (unsigned long long)piece.dst, (unsigned long long)piece.len);
		seen += piece.len;
		/*
		 * Greedy: a piece ends early only when a limit leaves no room for
		 * one more block, at a destination zone's end, or where a source
		 * zone ends inside its last segment's span.
		 */
		const struct bc_span *last = &segs[piece.nr_segs - 1];
		const bool src_cut = lim->src_boundary && idx < nr &&
				     (last->src + last->len) % lim->src_boundary == 0;
		if (idx < nr)
			CHECK(piece.nr_segs == max_segs || max_piece - piece.len < lim->align ||
			      (db && (piece.dst + piece.len) % db == 0) || src_cut,
			      "piece cut short: %u segs, %llu bytes", piece.nr_segs,
			      (unsigned long long)piece.len);
	}
	CHECK_EQ(seen, total);
	CHECK_EQ(idx, nr);
}

static void exhaustive(void)
{
	const uint32_t aligns[] = { 1, 512, 4096 };

	for (size_t a = 0; a < 3; a++) {
		const uint32_t al = aligns[a];
		for (size_t nr = 1; nr <= 4; nr++) {
			size_t combos = 1;
			for (size_t i = 0; i < nr; i++)
				combos *= 5;
			for (size_t c = 0; c < combos; c++) {
				struct bc_span spans[4];
				size_t v = c;
				for (size_t i = 0; i < nr; i++, v /= 5)
					spans[i] = (struct bc_span){ .src = (i * 37 + 3) * al * 8,
								     .len = (v % 5 + 1) * al };
				for (uint32_t ms = 0; ms <= 3; ms++)
					for (uint64_t sb = 0; sb <= 5; sb++)
						for (uint64_t pb = 0; pb <= 7; pb++)
							for (uint64_t z = 0; z < 9; z++) {
							/* Unaligned limits (here +al/2) must round down. */
							struct bc_split_limits lim = {
								.max_segs = ms,
								.max_seg_bytes = sb ? sb * al + al / 2 : 0,
								.max_piece_bytes = pb ? pb * al : 0,
								.align = al,
								/* Zones of 0 (none), 2 or 3 blocks. */
								.dst_boundary = (z % 3 ? z % 3 + 1 : 0) * al,
								.src_boundary = (z / 3 ? z / 3 + 1 : 0) * al,
							};
							check_plan(spans, nr, &lim);
						}
			}
		}
	}
}

static void bad_limits(void)
{
	struct bc_splitter s;
	struct bc_span sp = { 0, 4096 };
	struct bc_split_limits lim = { .align = 4096, .max_seg_bytes = 2048 };

	CHECK_EQ(bc_split_init(&s, &sp, 1, 0, &lim), -EINVAL);
	lim = (struct bc_split_limits){ .align = 4096, .max_piece_bytes = 4095 };
	CHECK_EQ(bc_split_init(&s, &sp, 1, 0, &lim), -EINVAL);
	lim = (struct bc_split_limits){ .align = 0 };
	CHECK_EQ(bc_split_init(&s, &sp, 1, 0, &lim), -EINVAL);
	/* A zone boundary that is not a block boundary could never be honoured. */
	lim = (struct bc_split_limits){ .align = 4096, .dst_boundary = 6144 };
	CHECK_EQ(bc_split_init(&s, &sp, 1, 0, &lim), -EINVAL);
	lim = (struct bc_split_limits){ .align = 4096, .src_boundary = 2048 };
	CHECK_EQ(bc_split_init(&s, &sp, 1, 0, &lim), -EINVAL);
}

/* Device limits come from firmware: zero, tiny or absurd values must not overflow or divide by zero. */
static void device_limits(void)
{
	struct bc_split_limits sl;
	struct blkcopy_limits l = { .max_copy_sectors = 64, .max_copy_nr_ranges = 4,
				    .max_copy_range_sectors = 16 };

	CHECK_EQ(bc_split_limits_from(&l, 512, &sl), 0);
	CHECK_EQ(sl.max_piece_bytes, 64 * 512);
	CHECK_EQ(sl.max_seg_bytes, 16 * 512);
	CHECK_EQ(sl.max_segs, 4);
	l.max_copy_sectors = 0;
	CHECK_EQ(bc_split_limits_from(&l, 512, &sl), -EOPNOTSUPP);
	l = (struct blkcopy_limits){ .max_copy_sectors = UINT64_MAX, .max_copy_nr_ranges = UINT32_MAX,
				     .max_copy_range_sectors = UINT64_MAX };
	CHECK_EQ(bc_split_limits_from(&l, 4096, &sl), 0);
	CHECK(sl.max_piece_bytes >= UINT64_MAX / 1024, "clamped too hard");
	l = (struct blkcopy_limits){ .max_copy_sectors = 4, .max_copy_nr_ranges = 1,
				     .max_copy_range_sectors = 4 };
	/* 2 KiB per command cannot carry one 4 KiB block. */
	CHECK_EQ(bc_split_limits_from(&l, 4096, &sl), -EOPNOTSUPP);
	l.max_copy_nr_ranges = 0;
	CHECK_EQ(bc_split_limits_from(&l, 512, &sl), -EOPNOTSUPP);
}

static void coalesce(void)
{
	const struct blkcopy_range r[] = {
		{ 0, 512 }, { 512, 512 }, { 4096, 512 }, { 1024, 512 }, { 1536, 1024 }, { 0, 512 },
	};
	struct bc_span *sp;
	ssize_t n = bc_coalesce(r, 6, &sp);

	CHECK_EQ(n, 4);
	if (n == 4) {
		CHECK(sp[0].src == 0 && sp[0].len == 1024, "first");
		CHECK(sp[1].src == 4096 && sp[1].len == 512, "second");
		/* Only ranges adjacent in the given order merge: order is the copy's meaning. */
		CHECK(sp[2].src == 1024 && sp[2].len == 1536, "third");
		CHECK(sp[3].src == 0 && sp[3].len == 512, "fourth");
	}
	free(sp);
}

int main(void)
{
	exhaustive();
	bad_limits();
	device_limits();
	coalesce();
	printf("%lu pieces checked\n", cases);
	return check_done("split");
}
