/* SPDX-License-Identifier: MIT */
/*
 * Planning, a batch at a time: each stretch of the request is mapped down
 * the layers of both devices (a plain device is its own leaf) to a run on a
 * source leaf and a destination leaf.  A run whose leaves can copy natively
 * joins that pair's lane; every other run is grouped for emulation through
 * the devices the caller opened.  Planning never talks to a device: lanes
 * are executed by native.c, groups by the emulation engine.
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "layer.h"
#include "plan.h"
#include "util.h"
#include "zone.h"

#define BATCH_RUNS 4096u	/* runs mapped per planning step: bounds the plan's memory */

void bc_walk_init(struct bc_leaf_walk *w, const struct blkcopy_dev *src,
		  const struct bc_span *spans, size_t nr, const struct blkcopy_dev *dst,
		  uint64_t dst_off)
{
	*w = (struct bc_leaf_walk){ .src = src, .dst = dst, .spans = spans, .nr = nr,
				    .dst_pos = dst_off };
}

int bc_walk_next(struct bc_leaf_walk *w, struct bc_leaf_run *r)
{
	if (w->idx >= w->nr)
		return 0;
	const struct bc_span *sp = &w->spans[w->idx];
	uint64_t len = sp->len - w->skip;

	r->top = (struct bc_top_pos){ .src = sp->src + w->skip, .dst = w->dst_pos };
	len = bc_map_leaf(w->src, r->top.src, len, &r->src, &r->src_off);
	if (len)
		len = bc_map_leaf(w->dst, r->top.dst, len, &r->dst, &r->dst_off);
	if (!len)
		return -EIO;
	/* A run ends with its destination zone: zones go to different lanes, in parallel. */
	const uint64_t zs = bc_zone_boundary(r->dst);
	if (zs)
		len = bc_min_u64(len, zs - r->dst_off % zs);
	r->len = len;
	w->skip += len;
	w->dst_pos += len;
	if (w->skip == sp->len) {
		w->idx++;
		w->skip = 0;
	}
	return 1;
}

/* Can leaf @src -> leaf @dst go native?  Fills the pair's limits, or says why not. */
static const struct bc_backend *native_pair(const struct blkcopy_dev *src,
					    const struct blkcopy_dev *dst,
					    struct blkcopy_limits *lim, char *why, size_t size)
{
	if (!src->backend || !dst->backend) {
		const struct blkcopy_dev *d = src->backend ? dst : src;

		if (bc_is_stacked(d))
			snprintf(why, size, "%.100s: a part of its table that blkcopy does not map "
				 "(only linear and striped targets are followed)", d->path);
		else
			snprintf(why, size, "%.100s: %.250s", d->path, d->reason);
		return NULL;
	}
	if (src->backend != dst->backend) {
		snprintf(why, size, "%.100s and %.100s: different native backends (%s, %s)",
			 src->path, dst->path, src->backend->name, dst->backend->name);
		return NULL;
	}
	if (!src->limits.copy_offload || !dst->limits.copy_offload) {
		snprintf(why, size, "%.100s: native copy switched off (copy_offload 0)",
			 src->limits.copy_offload ? dst->path : src->path);
		return NULL;
	}
	if (src->backend->pair(src, dst, lim, why, size))
		return NULL;
	return src->backend;
}

bool bc_native_allowed(const struct blkcopy_dev *src, const struct blkcopy_dev *dst,
		       unsigned int flags)
{
	return !(flags & BLKCOPY_NOOFFLOAD) && src->limits.copy_offload &&
	       dst->limits.copy_offload;
}

static bool run_aligned(const struct bc_leaf_run *r, uint32_t align)
{
	return !(r->src_off % align) && !(r->dst_off % align) && !(r->len % align);
}

static uint32_t pair_align(const struct blkcopy_dev *src, const struct blkcopy_dev *dst)
{
	return src->lbs > dst->lbs ? src->lbs : dst->lbs;
}

int bc_plan_all_native(const struct blkcopy_dev *src, const struct bc_span *spans, size_t nr,
		       const struct blkcopy_dev *dst, uint64_t dst_off, unsigned int flags,
		       char *why, size_t why_size)
{
	const struct blkcopy_dev *pairs[BC_MAX_LANES][2];
	const struct blkcopy_dev *last_src = NULL, *last_dst = NULL;
	uint32_t nr_pairs = 0;
	struct bc_split_limits sl;
	struct blkcopy_limits lim;
	struct bc_leaf_walk w;
	struct bc_leaf_run r;
	int ret;

	if (!bc_native_allowed(src, dst, flags)) {
		native_pair(src, dst, &lim, why, why_size);
		return -EOPNOTSUPP;
	}
	bc_walk_init(&w, src, spans, nr, dst, dst_off);
	while ((ret = bc_walk_next(&w, &r)) > 0) {
		if (r.src != last_src || r.dst != last_dst) {
			uint32_t k = 0;

			if (!native_pair(r.src, r.dst, &lim, why, why_size))
				return -EOPNOTSUPP;
			if (bc_split_limits_from(&lim, pair_align(r.src, r.dst), &sl)) {
				snprintf(why, why_size, "%.100s: copy limits too small for its block size",
					 r.dst->path);
				return -EOPNOTSUPP;
			}
			/* The job keeps BC_MAX_LANES pairs; runs on more would be emulated. */
			while (k < nr_pairs && (pairs[k][0] != r.src || pairs[k][1] != r.dst))
				k++;
			if (k == nr_pairs) {
				if (nr_pairs == BC_MAX_LANES) {
					snprintf(why, why_size, "more than %u pairs of devices under the copy",
						 BC_MAX_LANES);
					return -EOPNOTSUPP;
				}
				/* Two sources' lanes would race for one zone's write pointer. */
				for (uint32_t p = 0; bc_zoned_seq(r.dst) && p < nr_pairs; p++) {
					if (pairs[p][1] == r.dst) {
						snprintf(why, why_size, "%.100s: a zoned destination fed "
							 "natively from two devices", r.dst->path);
						return -EOPNOTSUPP;
					}
				}
				pairs[nr_pairs][0] = r.src;
				pairs[nr_pairs++][1] = r.dst;
			}
			last_src = r.src;
			last_dst = r.dst;
		}
		if (!run_aligned(&r, sl.align)) {
			snprintf(why, why_size, "a piece on %.100s is not aligned to its %u-byte blocks",
				 r.dst->path, sl.align);
			return -EOPNOTSUPP;
		}
	}
	return ret;
}

bool bc_plan_none_native(const struct blkcopy_dev *src, const struct bc_span *spans, size_t nr,
			 const struct blkcopy_dev *dst, uint64_t dst_off, unsigned int flags)
{
	const struct blkcopy_dev *last_src = NULL, *last_dst = NULL;
	struct blkcopy_limits lim;
	struct bc_leaf_walk w;
	struct bc_leaf_run r;
	char why[512];	/* not read: the size only keeps -Wformat-truncation quiet */

	if (!bc_native_allowed(src, dst, flags))
		return true;
	bc_walk_init(&w, src, spans, nr, dst, dst_off);
	while (bc_walk_next(&w, &r) > 0) {
		if (r.src == last_src && r.dst == last_dst)
			continue;
		if (native_pair(r.src, r.dst, &lim, why, sizeof(why)))
			return false;
		last_src = r.src;
		last_dst = r.dst;
	}
	return true;	/* a table that maps no byte is emulated through its node */
}

/* ------------------------------------------------------------------------ */
/* Lanes                                                                    */

void bc_lane_free_plan(struct bc_lane *l)
{
	free(l->parts);
	free(l->spans);
	free(l->span_dst);
	free(l->span_part);
}

/*
 * Zones a copy writes at once on a host-managed leaf: a few (each takes one
 * command at a time), never more than the device keeps open or active.
 */
#define ZONE_LANES 4u

uint32_t bc_zone_lanes(const struct blkcopy_dev *dst)
{
	uint32_t n = ZONE_LANES;

	if (dst->zoned.max_open && dst->zoned.max_open < n)
		n = dst->zoned.max_open;
	if (dst->zoned.max_active && dst->zoned.max_active < n)
		n = dst->zoned.max_active;
	return n ? n : 1;
}

/*
 * The lane of a run's leaf pair (and zone stripe), made on first sight.
 * NULL (and 0) when emulated, with the reason in *@why.
 */
static int lane_for(struct bc_leg *j, const struct bc_leaf_run *r, struct bc_lane **lp,
		    enum blkcopy_emulated *why_not)
{
	struct blkcopy_dev *src = r->src, *dst = r->dst;
	const bool zoned = bc_zoned_seq(dst);
	const uint32_t stripe = zoned ? (uint32_t)(r->dst_off / dst->zoned.zone_size %
						   bc_zone_lanes(dst)) : 0;
	struct blkcopy_limits lim;
	struct bc_lane *l;
	char why[256];

	*lp = NULL;
	*why_not = BLKCOPY_EMULATED_NO_NATIVE;
	for (uint32_t i = 0; i < j->nr_lanes; i++) {
		if (j->lanes[i]->src == src && j->lanes[i]->dst == dst &&
		    j->lanes[i]->zone_stripe == stripe) {
			*lp = j->lanes[i]->backend && !j->lanes[i]->refused ? j->lanes[i] : NULL;
			*why_not = j->lanes[i]->why_not;
			return 0;
		}
	}
	if (j->nr_lanes == BC_MAX_LANES)
		return 0;
	l = calloc(1, sizeof(*l));
	if (!l)
		return -ENOMEM;
	*l = (struct bc_lane){ .src = src, .dst = dst, .dst_lo = UINT64_MAX, .zoned = zoned,
			       .zone_stripe = stripe, .why_not = BLKCOPY_EMULATED_NO_NATIVE };
	j->lanes[j->nr_lanes++] = l;
	l->backend = native_pair(src, dst, &lim, why, sizeof(why));
	/* Limits too small to cut anything: not native after all. */
	if (l->backend && bc_split_limits_from(&lim, pair_align(src, dst), &l->sl))
		l->backend = NULL;
	if (!src->limits.copy_offload || !dst->limits.copy_offload)
		l->why_not = BLKCOPY_EMULATED_NO_OFFLOAD;
	*why_not = l->why_not;
	if (!l->backend)
		return 0;
	/* Onto zones every piece is native (or none is): no policy there. */
	bc_policy_init(&l->policy, zoned ? 0 : j->native_min,
		       !zoned && (l->backend->caps & BC_BACKEND_COSTLY_COMMANDS));
	/* A command writes into one zone and reads from one (devices refuse reads across zones). */
	l->sl.dst_boundary = bc_zone_boundary(dst);
	l->sl.src_boundary = bc_zone_boundary(src);
	/* Devices advertise up to 256 ranges (SCSI, NVMe MSRC+1); never trust more. */
	l->nsegs_cap = l->sl.max_segs && l->sl.max_segs < 4096 ? l->sl.max_segs : 4096;
	*lp = l;
	return 0;
}

static int lane_add(struct bc_lane *l, const struct bc_leaf_run *r)
{
	if (l->nr_parts == l->cap_parts) {
		size_t cap = l->cap_parts ? 2 * l->cap_parts : 64;

		if (!bc_resize((void **)&l->parts, cap, sizeof(*l->parts)))
			return -ENOMEM;
		l->cap_parts = cap;
	}
	l->parts[l->nr_parts++] = (struct bc_part){ .src = r->src_off, .top = r->top, .len = r->len };

	if (l->nr_spans) {
		struct bc_span *last = &l->spans[l->nr_spans - 1];

		if (last->src + last->len == r->src_off &&
		    l->span_dst[l->nr_spans - 1] + last->len == r->dst_off) {
			last->len += r->len;
			return 0;
		}
	}
	if (l->nr_spans == l->cap_spans) {
		size_t cap = l->cap_spans ? 2 * l->cap_spans : 64;

		if (!bc_resize((void **)&l->spans, cap, sizeof(*l->spans)) ||
		    !bc_resize((void **)&l->span_dst, cap, sizeof(*l->span_dst)) ||
		    !bc_resize((void **)&l->span_part, cap, sizeof(*l->span_part)))
			return -ENOMEM;
		l->cap_spans = cap;
	}
	l->spans[l->nr_spans] = (struct bc_span){ .src = r->src_off, .len = r->len };
	l->span_dst[l->nr_spans] = r->dst_off;
	l->span_part[l->nr_spans] = l->nr_parts - 1;
	l->nr_spans++;
	return 0;
}

/* The part holding byte @off of span @s: parts of a span continue each other on the leaf. */
static const struct bc_part *part_at(const struct bc_lane *l, size_t s, uint64_t off)
{
	size_t lo = l->span_part[s];
	size_t hi = s + 1 < l->nr_spans ? l->span_part[s + 1] : l->nr_parts;
	const uint64_t src = l->spans[s].src + off;

	while (hi - lo > 1) {
		size_t mid = lo + (hi - lo) / 2;

		if (l->parts[mid].src <= src)
			lo = mid;
		else
			hi = mid;
	}
	return &l->parts[lo];
}

static uint64_t top_dst_at(const struct bc_lane *l, size_t s, uint64_t off)
{
	const struct bc_part *p = part_at(l, s, off);

	return p->top.dst + (l->spans[s].src + off - p->src);
}

bool bc_lane_has_work(const struct bc_lane *l)
{
	return (l->splitting && l->split.idx < l->split.nr_spans) || l->next_span < l->nr_spans;
}

/* Lowest destination byte (caller's offsets) of the lane's work not yet cut into pieces. */
static uint64_t lane_unsplit_low(const struct bc_lane *l)
{
	if (l->splitting && l->split.idx < l->split.nr_spans)
		return top_dst_at(l, l->chain + l->split.idx, l->split.skip);
	if (l->next_span < l->nr_spans)
		return l->parts[l->span_part[l->next_span]].top.dst;
	return UINT64_MAX;
}

/* Cut the next piece of the lane into @slot; false when the batch's spans are all cut. */
/* The pair's limits, and pieces no larger than the rate limit's cap. */
static void cap_pieces(struct bc_lane *l)
{
	uint64_t cap = l->piece_cap ? l->piece_cap / l->sl.align * l->sl.align : 0;

	if (l->piece_cap && !cap)
		cap = l->sl.align;
	l->split.lim.max_piece_bytes = cap ? bc_min_u64(l->sl.max_piece_bytes, cap)
					   : l->sl.max_piece_bytes;
	l->split.lim.max_seg_bytes = cap ? bc_min_u64(l->sl.max_seg_bytes, cap) : l->sl.max_seg_bytes;
}

bool bc_lane_next_piece(struct bc_lane *l, struct bc_slot *slot)
{
	for (;;) {
		if (l->splitting) {
			size_t sp = l->chain + l->split.idx;
			uint64_t off = l->split.skip;

			cap_pieces(l);
			if (bc_split_next(&l->split, slot->segs, l->nsegs_cap, &slot->piece)) {
				/* Segments never straddle spans: walk the spans alongside. */
				for (uint32_t k = 0; k < slot->piece.nr_segs; k++) {
					slot->refs[k] = (struct bc_seg_ref){ .span = sp, .off = off };
					off += slot->segs[k].len;
					if (off == l->spans[sp].len) {
						sp++;
						off = 0;
					}
				}
				return true;
			}
			l->splitting = false;
		}
		if (l->next_span >= l->nr_spans)
			return false;
		size_t end = l->next_span + 1;
		while (end < l->nr_spans &&
		       l->span_dst[end] == l->span_dst[end - 1] + l->spans[end - 1].len)
			end++;
		/* Limits were checked when the lane was made: this cannot fail. */
		bc_split_init(&l->split, l->spans + l->next_span, end - l->next_span,
			      l->span_dst[l->next_span], &l->sl);
		l->chain = l->next_span;
		l->next_span = end;
		l->splitting = true;
	}
}

/* Forget the lane's spans not yet cut: returns the lowest destination byte among them. */
static uint64_t lane_drop_unsplit(struct bc_lane *l)
{
	uint64_t low = lane_unsplit_low(l);

	/* Pieces in flight still look their parts up: keep the arrays. */
	l->splitting = false;
	l->next_span = l->nr_spans;
	return low;
}

/* ------------------------------------------------------------------------ */
/* Emulated work                                                            */

/* Emulated work                                                            */

static int emu_flush(struct bc_leg *j)
{
	int ret = 0;

	if (j->emu_nr)
		ret = bc_emu_add(j->emu, j->emu_group, j->emu_nr, j->emu_dst, true);
	j->emu_nr = 0;
	return ret;
}

/* Emulate @len bytes from caller offset @src to @dst, after what is already grouped. */
static int emu_push(struct bc_leg *j, uint64_t src, uint64_t dst, uint64_t len,
		    enum blkcopy_emulated why)
{
	int ret;

	j->emulated[why] += len;

	if (j->emu_nr) {
		struct bc_span *last = &j->emu_group[j->emu_nr - 1];

		if (j->emu_end != dst) {
			ret = emu_flush(j);
			if (ret)
				return ret;
		} else if (last->src + last->len == src) {
			last->len += len;
			j->emu_end += len;
			return 0;
		}
	}
	if (j->emu_nr == j->emu_cap) {
		size_t cap = j->emu_cap ? j->emu_cap * 2 : 64;
		struct bc_span *g = realloc(j->emu_group, cap * sizeof(*g));

		if (!g)
			return -ENOMEM;
		j->emu_group = g;
		j->emu_cap = cap;
	}
	if (!j->emu_nr)
		j->emu_dst = j->emu_end = dst;
	j->emu_group[j->emu_nr++] = (struct bc_span){ .src = src, .len = len };
	j->emu_end += len;
	return 0;
}

/* Emulate @len bytes of span @s of lane @l from @off, part by part. */
static int emulate_span(struct bc_leg *j, const struct bc_lane *l, size_t s, uint64_t off,
			uint64_t len, enum blkcopy_emulated why)
{
	while (len) {
		const struct bc_part *p = part_at(l, s, off);
		const uint64_t d = l->spans[s].src + off - p->src;
		const uint64_t take = bc_min_u64(len, p->len - d);
		int ret = emu_push(j, p->top.src + d, p->top.dst + d, take, why);

		if (ret)
			return ret;
		off += take;
		len -= take;
	}
	return 0;
}

/* A piece's parts go up in the caller's offsets: its lowest byte starts a segment. */
uint64_t bc_slot_low(const struct bc_lane *l, const struct bc_slot *s)
{
	uint64_t low = UINT64_MAX;

	for (uint32_t k = 0; k < s->piece.nr_segs; k++)
		low = bc_min_u64(low, top_dst_at(l, s->refs[k].span, s->refs[k].off));
	return low;
}

/*
 * Group a piece's bytes for emulation, in the caller's offsets.  They join
 * the group being built: bc_plan_flush() hands it over, and must before
 * anyone asks what is pending.
 */
int bc_plan_divert_slot(struct bc_leg *j, const struct bc_lane *l, const struct bc_slot *s,
			enum blkcopy_emulated why)
{
	int ret = 0;

	for (uint32_t k = 0; k < s->piece.nr_segs && !ret; k++)
		ret = emulate_span(j, l, s->refs[k].span, s->refs[k].off, s->segs[k].len, why);
	return ret;
}

int bc_plan_flush(struct bc_leg *j)
{
	return emu_flush(j);
}

int bc_plan_emulate_slot(struct bc_leg *j, const struct bc_lane *l, const struct bc_slot *s)
{
	int ret = bc_plan_divert_slot(j, l, s, BLKCOPY_EMULATED_REFUSED);

	return ret ? ret : emu_flush(j);
}

/* The lane's device refused copy outright: its runs not yet cut are emulated. */
int bc_plan_emulate_unsplit(struct bc_leg *j, struct bc_lane *l)
{
	int ret = 0;

	size_t first = l->splitting ? l->chain + l->split.idx : l->next_span;

	for (size_t sp = first; sp < l->nr_spans && !ret; sp++) {
		uint64_t skip = l->splitting && sp == first ? l->split.skip : 0;

		ret = emulate_span(j, l, sp, skip, l->spans[sp].len - skip,
				   BLKCOPY_EMULATED_REFUSED);
	}
	lane_drop_unsplit(l);
	return ret ? ret : emu_flush(j);
}

/* ------------------------------------------------------------------------ */
/* Batches                                                                  */

/* Every lane's batch cut and completed: its arrays may be reused. */
static bool lanes_drained(const struct bc_leg *j)
{
	for (uint32_t i = 0; i < j->nr_lanes; i++)
		if (bc_lane_has_work(j->lanes[i]) || j->lanes[i]->inflight)
			return false;
	return true;
}

/* Planning waits for the lanes to finish their batch and for emulation to catch up. */
bool bc_plan_ready(const struct bc_leg *j)
{
	return !j->planned_all && lanes_drained(j) && bc_emu_queued(j->emu) < 2 * BATCH_RUNS;
}

static int plan_batch(struct bc_leg *j)
{
	struct bc_leaf_run r;
	int ret = 0;

	for (uint32_t i = 0; i < j->nr_lanes; i++) {
		struct bc_lane *l = j->lanes[i];

		l->nr_parts = l->nr_spans = l->next_span = 0;
		l->splitting = false;
	}
	for (uint32_t n = 0; n < BATCH_RUNS; n++) {
		enum blkcopy_emulated why = BLKCOPY_EMULATED_NO_OFFLOAD;
		struct bc_lane *l = NULL;

		ret = bc_walk_next(&j->walk, &r);
		if (ret <= 0) {
			if (!ret)
				j->planned_all = true;
			break;
		}
		if (j->try_native) {
			ret = lane_for(j, &r, &l, &why);
			if (ret)
				break;
		}
		if (l && run_aligned(&r, l->sl.align))
			ret = lane_add(l, &r);
		else
			ret = emu_push(j, r.top.src, r.top.dst, r.len,
				       l ? BLKCOPY_EMULATED_NO_NATIVE : why);
		if (ret)
			break;
	}
	if (!ret)
		ret = emu_flush(j);
	return ret;
}

void bc_plan_more(struct bc_leg *j)
{
	while (!j->error && bc_plan_ready(j)) {
		int ret = plan_batch(j);

		if (ret < 0) {
			bc_plan_stop(j, ret);
			return;
		}
		if (!lanes_drained(j))
			return;
	}
}

void bc_plan_stop(struct bc_leg *j, int error)
{
	if (!j->error)
		j->error = error;
	/* Work never issued is not written: keep it out of the committed prefix. */
	if (!j->planned_all) {
		bc_wm_lose(&j->wm, j->walk.dst_pos);
		j->planned_all = true;
	}
	for (uint32_t i = 0; i < j->nr_lanes; i++)
		bc_wm_lose(&j->wm, lane_drop_unsplit(j->lanes[i]));
	bc_emu_stop(j->emu, error);
}

int bc_plan_start(struct bc_leg *j)
{
	bc_walk_init(&j->walk, j->src, j->spans, j->nr_spans, j->dst, j->dst_off);
	return plan_batch(j);
}

uint64_t bc_plan_pending_low(const struct bc_leg *j)
{
	uint64_t low = j->planned_all ? UINT64_MAX : j->walk.dst_pos;

	for (uint32_t i = 0; i < j->nr_lanes; i++) {
		const struct bc_lane *l = j->lanes[i];

		low = bc_min_u64(low, lane_unsplit_low(l));
		for (uint32_t s = 0; s < l->nr_slots; s++)
			if (l->slots[s].busy)
				low = bc_min_u64(low, bc_slot_low(l, &l->slots[s]));
	}
	return low;
}
