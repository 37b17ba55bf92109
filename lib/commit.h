/* SPDX-License-Identifier: MIT */
/*
 * The commit watermark: how much of the destination, from its start, is
 * known to hold the copy.  Bytes count as committed only when every byte
 * before them is done; work that was given up (a failed or refused piece,
 * a stopped plan) is lost, and native bytes on a stacked device count only
 * once a check of its tables after them has passed.  A resume journal
 * records exactly this.
 */
#ifndef BLKCOPY_COMMIT_H
#define BLKCOPY_COMMIT_H

#include <stdbool.h>
#include <stdint.h>

#include "blkcopy.h"

struct bc_watermark {
	uint64_t dst_off, total;	/* the destination span */
	uint64_t native_done;		/* bytes written by native pieces, any order */
	uint64_t method_bytes[BLKCOPY_METHOD_MAX];
	uint64_t lost;			/* lowest destination byte of work given up */
	uint64_t unverified;		/* lowest native byte written since tables were checked */
	bool stacked;			/* native bytes wait for a table check */
	bool stale;			/* a table changed: native bytes no longer count */
};

void bc_wm_init(struct bc_watermark *w, uint64_t dst_off, uint64_t total, bool stacked);
/* Work from destination byte @low on will not be written by anyone. */
void bc_wm_lose(struct bc_watermark *w, uint64_t low);
/* A native piece landed: @len bytes from @low, @bytes of them by each method. */
void bc_wm_native_done(struct bc_watermark *w, uint64_t low, uint64_t len,
		       const uint64_t bytes[BLKCOPY_METHOD_MAX]);
/* The tables under the copy were checked and are as resolved. */
void bc_wm_verified(struct bc_watermark *w);
/* They changed or were suspended: nothing written since the last check counts. */
void bc_wm_stale(struct bc_watermark *w);
/* Bytes committed, given the lowest destination byte still pending anywhere (UINT64_MAX: none). */
uint64_t bc_wm_committed(const struct bc_watermark *w, uint64_t pending_low);

#endif
