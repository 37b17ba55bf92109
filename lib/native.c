/* SPDX-License-Identifier: MIT */
/*
 * Native execution.  Each lane (a leaf pair with a backend) runs its cut
 * pieces: one at a time until one succeeds (a device that refuses copy
 * refuses the first), then up to the queue depth.  A piece refused before
 * any write is handed back to planning to be emulated; any other failure
 * stops the copy, and the watermark loses the piece.  Native commands
 * bypass page caches: what is dirty is written back before the first, and
 * the destination's cached pages are dropped at the end.
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <sys/epoll.h>

#include "layer.h"
#include "native.h"
#include "plan.h"
#include "transport.h"
#include "util.h"
#include "zone.h"

void bc_lane_free(struct bc_lane *l)
{
	if (!l)
		return;
	if (l->queue)
		l->backend->queue_destroy(l->queue);
	for (uint32_t i = 0; l->slots && i < l->nr_slots; i++) {
		free(l->slots[i].segs);
		free(l->slots[i].refs);
	}
	free(l->slots);
	bc_lane_free_plan(l);
	free(l);
}

/* Slots, and a queue when the backend has one, on the lane's first piece. */
static int lane_setup(struct bc_leg *j, struct bc_lane *l)
{
	const struct bc_backend *b = l->backend;
	int ret;

	l->set_up = true;
	l->nr_slots = 1;
	if (b->caps & BC_BACKEND_QUEUED) {
		/* A zone takes commands in order only, and the device may run two in any order. */
		uint32_t depth = l->zoned ? 1 : bc_min_u64(j->queue_depth, BC_MAX_NATIVE_DEPTH);

		ret = b->queue_create(l->src, l->dst, depth, &l->queue);
		/* The table was checked at registration: only such a backend has copy() to fall back on. */
		if (ret == -EOPNOTSUPP && !(b->caps & BC_BACKEND_QUEUE_MAY_REFUSE))
			ret = -EIO;
		if (ret && ret != -EOPNOTSUPP)
			return ret;
		if (!ret) {
			struct epoll_event ev = { .events = EPOLLIN, .data.fd = b->queue_fd(l->queue) };

			l->nr_slots = depth;
			if (epoll_ctl(j->queues_fd, EPOLL_CTL_ADD, ev.data.fd, &ev))
				return -errno;
		}
	}
	l->slots = calloc(l->nr_slots, sizeof(*l->slots));
	if (!l->slots)
		return -ENOMEM;
	for (uint32_t i = 0; i < l->nr_slots; i++) {
		l->slots[i].segs = calloc(l->nsegs_cap, sizeof(struct bc_span));
		l->slots[i].refs = calloc(l->nsegs_cap, sizeof(struct bc_seg_ref));
		if (!l->slots[i].segs || !l->slots[i].refs)
			return -ENOMEM;
	}
	return 0;
}

/* A leaf's own account of a failure, on the handle the caller holds. */
static void adopt_error(struct blkcopy_dev *top, const struct blkcopy_dev *leaf)
{
	if (top != leaf && leaf->error[0])
		snprintf(top->error, sizeof(top->error), "%.40s: %.110s", leaf->path, leaf->error);
}

/* @len bytes from leaf byte @dst are written natively: their cached pages go at the end. */
static void lane_wrote(struct bc_lane *l, uint64_t dst, uint64_t len)
{
	l->dst_lo = bc_min_u64(l->dst_lo, dst);
	if (dst + len > l->dst_hi)
		l->dst_hi = dst + len;
}

/*
 * A piece that did not land: the copy stops, and nothing from the piece on
 * counts, except what a zone's write pointer shows the device wrote of it
 * (a zone is written in order, so that much of the piece is there).
 */
static void native_fail(struct bc_leg *j, struct bc_lane *l, struct bc_slot *slot, int err)
{
	const uint64_t low = bc_slot_low(l, slot);
	const uint64_t landed = l->zoned ? bc_zone_landed(l->dst, slot->piece.dst,
							   slot->piece.len) : 0;

	adopt_error(j->src, l->src);
	adopt_error(j->dst, l->dst);
	if (landed) {
		uint64_t bytes[BLKCOPY_METHOD_MAX] = { 0 };

		bytes[l->method] = landed;
		bc_wm_native_done(&j->wm, low, landed, bytes);
		lane_wrote(l, slot->piece.dst, landed);
	}
	bc_wm_lose(&j->wm, low + landed);
	bc_plan_stop(j, err == -E2BIG ? -EOPNOTSUPP : err);
}

static void native_complete(struct bc_leg *j, struct bc_lane *l, struct bc_slot *slot,
			    int ret, const struct bc_copy_stats *st)
{
	if (slot->busy) {
		slot->busy = false;
		l->inflight--;
	}
	/* Neither success nor an error: never a byte count that reaches the caller. */
	if (ret > 0)
		ret = -EIO;
	bc_policy_completed(&l->policy, slot->piece.len, ret == 0, bc_now_ns());
	if (ret == 0) {
		for (int m = 0; m < BLKCOPY_METHOD_MAX; m++)
			if (st->bytes[m])
				l->method = (enum blkcopy_method)m;
		l->proven = true;
		lane_wrote(l, slot->piece.dst, slot->piece.len);
		bc_wm_native_done(&j->wm, bc_slot_low(l, slot), slot->piece.len, st->bytes);
		return;
	}
	if ((ret == -EOPNOTSUPP || ret == -E2BIG) && !(j->flags & BLKCOPY_NOEMULATION) &&
	    !j->error) {
		/*
		 * Refused before any piece succeeded: the pair cannot copy, stop
		 * asking.  A zone must not get native pieces after an emulated
		 * one: emulation takes all the rest of a zoned lane.
		 */
		const bool refuses = (ret == -EOPNOTSUPP && !l->proven) || l->zoned;

		if (l->zoned && l->dst_lo < l->dst_hi)
			bc_zone_sync(l->dst, l->dst_lo, l->dst_hi);

		ret = bc_plan_emulate_slot(j, l, slot);
		if (!ret && refuses) {
			l->refused = true;
			l->why_not = BLKCOPY_EMULATED_REFUSED;
			ret = bc_plan_emulate_unsplit(j, l);
		}
		if (!ret)
			return;
	}
	native_fail(j, l, slot, ret);
}

/* Until one piece succeeds, one at a time: a device that refuses copy refuses the first. */
static bool window_open(const struct bc_lane *l)
{
	return l->inflight < (l->proven ? l->nr_slots : 1);
}

static struct bc_slot *free_slot(struct bc_lane *l)
{
	if (!window_open(l))
		return NULL;
	for (uint32_t i = 0; i < l->nr_slots; i++)
		if (!l->slots[i].busy)
			return &l->slots[i];
	return NULL;
}

static bool lane_live(const struct bc_lane *l)
{
	return l->backend && !l->refused;
}

/*
 * Native commands bypass a block device's page cache.  Before: write back
 * what is dirty on both ends (and on the leaves under a stack), so that no
 * later writeback lands on top of the copy.  After: drop the destination's
 * cached pages, so that the next buffered read sees the copy.
 */
static int writeback(struct blkcopy_dev *d)
{
	return d->transport->writeback ? d->transport->writeback(d) : 0;
}

static void invalidate(struct blkcopy_dev *d, uint64_t off, uint64_t len)
{
	if (d->transport->invalidate)
		d->transport->invalidate(d, off, len);
}

static int flush_lane(struct bc_leg *j, struct bc_lane *l)
{
	int ret = 0;

	l->flushed = true;
	if (!j->native_started) {
		j->native_started = true;
		ret = writeback(j->src);
		if (!ret)
			ret = writeback(j->dst);
	}
	if (!ret && l->src != j->src)
		ret = writeback(l->src);
	if (!ret && l->dst != j->dst)
		ret = writeback(l->dst);
	return ret;
}

void bc_native_invalidate(struct bc_leg *j)
{
	bool zoned = false;

	if (!j->native_started)
		return;
	invalidate(j->dst, j->dst_off, j->total);
	for (uint32_t i = 0; i < j->nr_lanes; i++) {
		const struct bc_lane *l = j->lanes[i];

		if (l->dst_lo >= l->dst_hi)
			continue;
		if (l->dst != j->dst)
			invalidate(l->dst, l->dst_lo, l->dst_hi - l->dst_lo);
		/* The kernel's write pointers of the zones native pieces wrote into (Linux 6.10+). */
		if (l->zoned) {
			bc_zone_sync(l->dst, l->dst_lo, l->dst_hi);
			zoned = true;
		}
	}
	/* A stacked zoned device (dm) keeps write pointers of its own. */
	if (zoned && bc_is_stacked(j->dst))
		bc_zone_sync(j->dst, j->dst_off, j->dst_off + j->total);
}

/*
 * The piece policy sends a cut piece to emulation instead: false when it
 * goes native.  Never under NOEMULATION.  (A learnt policy diverts only
 * once native pieces of that size have landed, so a device that refuses
 * copy is still seen refusing.)
 */
static bool divert(struct bc_leg *j, struct bc_lane *l, struct bc_slot *slot)
{
	enum blkcopy_emulated why;
	struct bc_emu_rate er;
	int ret;

	if (j->flags & BLKCOPY_NOEMULATION)
		return false;
	bc_emu_rate(j->emu, &er);
	if (!bc_policy_emulate(&l->policy, slot->piece.len, &er, &why))
		return false;
	ret = bc_plan_divert_slot(j, l, slot, why);
	if (ret)
		native_fail(j, l, slot, ret);
	return true;
}

/* The piece policy holds the lane back while it measures emulation. */
static bool lane_waits(const struct bc_leg *j, const struct bc_lane *l)
{
	struct bc_emu_rate er;

	if (!l->policy.learn)
		return false;
	bc_emu_rate(j->emu, &er);
	er.idle = er.idle && !j->emu_nr;	/* a group still being built is work to come */
	return bc_policy_waits(&l->policy, &er);
}

static void issue_lanes(struct bc_leg *j)
{
	for (uint32_t i = 0; i < j->nr_lanes && !j->error; i++) {
		struct bc_lane *l = j->lanes[i];
		struct bc_slot *slot;

		if (!lane_live(l) || !bc_lane_has_work(l))
			continue;
		if (!l->set_up) {
			int ret = lane_setup(j, l);

			if (ret) {
				bc_plan_stop(j, ret);
				return;
			}
		}
		/* Under a rate limit a piece is a burst's worth at most: the limit holds. */
		l->piece_cap = bc_rate_piece_cap(j->rate);
		while (!j->error && (slot = free_slot(l))) {
			struct bc_copy_stats st = { 0 };
			int ret;

			if (!bc_rate_ready(j->rate, bc_now_ns()) || lane_waits(j, l) ||
			    !bc_lane_next_piece(l, slot))
				break;
			if (divert(j, l, slot))
				continue;	/* emulation charges it to the rate when it loads it */
			bc_rate_charge(j->rate, slot->piece.len);
			if (!l->inflight)
				bc_policy_busy(&l->policy, bc_now_ns());
			if (!l->flushed) {
				ret = flush_lane(j, l);
				if (ret) {
					native_fail(j, l, slot, ret);
					return;
				}
			}
			if (!l->queue) {
				ret = l->backend->copy(l->src, l->dst, slot->segs, &slot->piece, &st);
				native_complete(j, l, slot, ret, &st);
				return;	/* one synchronous piece per call: callers stay responsive */
			}
			slot->busy = true;
			l->inflight++;
			ret = l->backend->queue_submit(l->queue, slot->segs, &slot->piece,
						       (uint32_t)(slot - l->slots));
			if (ret)
				native_complete(j, l, slot, ret, &st);
		}
	}
}

void bc_native_issue(struct bc_leg *j)
{
	issue_lanes(j);
	/* Diverted pieces go to emulation together: its chunks then take many of them. */
	const int ret = bc_plan_flush(j);

	if (ret)
		bc_plan_stop(j, ret);
}

static void lane_reap(struct bc_leg *j, struct bc_lane *l, bool wait)
{
	struct bc_native_cqe cqes[BC_MAX_NATIVE_DEPTH];
	int n;

	if (!l->queue || !l->inflight)
		return;
	n = l->backend->queue_reap(l->queue, cqes, BC_MAX_NATIVE_DEPTH, wait);
	if (n < 0) {
		/* The queue broke: what it held is lost, so none of it counts as written. */
		for (uint32_t i = 0; i < l->nr_slots; i++) {
			if (l->slots[i].busy)
				bc_wm_lose(&j->wm, bc_slot_low(l, &l->slots[i]));
			l->slots[i].busy = false;
		}
		l->inflight = 0;
		bc_plan_stop(j, n);
		return;
	}
	for (int i = 0; i < n; i++) {
		struct bc_copy_stats st = { 0 };
		struct bc_slot *slot;

		if (cqes[i].tag >= l->nr_slots || !l->slots[cqes[i].tag].busy)
			continue;	/* not ours: never trust a tag blindly */
		slot = &l->slots[cqes[i].tag];
		if (cqes[i].result == 0 && cqes[i].method < BLKCOPY_METHOD_MAX)
			st.bytes[cqes[i].method] = slot->piece.len;
		native_complete(j, l, slot, cqes[i].result, &st);
	}
}

void bc_native_reap(struct bc_leg *j, bool wait)
{
	for (uint32_t i = 0; i < j->nr_lanes; i++)
		lane_reap(j, j->lanes[i], wait);
}

bool bc_native_work(const struct bc_leg *j)
{
	for (uint32_t i = 0; i < j->nr_lanes; i++)
		if (lane_live(j->lanes[i]) && bc_lane_has_work(j->lanes[i]))
			return true;
	return false;
}

bool bc_native_active(const struct bc_leg *j)
{
	for (uint32_t i = 0; i < j->nr_lanes; i++)
		if (j->lanes[i]->inflight)
			return true;
	return bc_native_work(j);
}

bool bc_native_ready(const struct bc_leg *j)
{
	for (uint32_t i = 0; i < j->nr_lanes; i++) {
		const struct bc_lane *l = j->lanes[i];

		if (lane_live(l) && bc_lane_has_work(l) && window_open(l) && !lane_waits(j, l) &&
		    bc_rate_ready(j->rate, bc_now_ns()))
			return true;
	}
	return false;
}

bool bc_native_waiting(const struct bc_leg *j)
{
	for (uint32_t i = 0; i < j->nr_lanes; i++) {
		const struct bc_lane *l = j->lanes[i];

		if (lane_live(l) && bc_lane_has_work(l) && lane_waits(j, l))
			return true;
	}
	return false;
}

bool bc_native_queued(const struct bc_leg *j)
{
	for (uint32_t i = 0; i < j->nr_lanes; i++)
		if (j->lanes[i]->queue && j->lanes[i]->inflight)
			return true;
	return false;
}
