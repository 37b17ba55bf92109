/* SPDX-License-Identifier: MIT */
/* The commit watermark: the destination prefix known to hold the copy. */
#include <string.h>

#include "commit.h"
#include "util.h"

void bc_wm_init(struct bc_watermark *w, uint64_t dst_off, uint64_t total, bool stacked)
{
	*w = (struct bc_watermark){ .dst_off = dst_off, .total = total, .lost = UINT64_MAX,
				    .unverified = UINT64_MAX, .stacked = stacked };
}

void bc_wm_lose(struct bc_watermark *w, uint64_t low)
{
	w->lost = bc_min_u64(w->lost, low);
}

void bc_wm_native_done(struct bc_watermark *w, uint64_t low, uint64_t len,
		       const uint64_t bytes[BLKCOPY_METHOD_MAX])
{
	w->native_done += len;
	for (int m = 0; m < BLKCOPY_METHOD_MAX; m++)
		w->method_bytes[m] += bytes[m];
	if (w->stale)
		bc_wm_lose(w, low);	/* it may have gone to where the old table pointed */
	else if (w->stacked)
		w->unverified = bc_min_u64(w->unverified, low);
}

void bc_wm_verified(struct bc_watermark *w)
{
	if (!w->stale)
		w->unverified = UINT64_MAX;
}

void bc_wm_stale(struct bc_watermark *w)
{
	w->stale = true;
	bc_wm_lose(w, w->unverified);
}

uint64_t bc_wm_committed(const struct bc_watermark *w, uint64_t pending_low)
{
	const uint64_t low = bc_min_u64(pending_low, bc_min_u64(w->lost, w->unverified));

	return low == UINT64_MAX ? w->total : low - w->dst_off;
}
