/* SPDX-License-Identifier: MIT */
/*
 * Requests in flight.  A job validates its request, then plans it in
 * destination order, a batch at a time: each stretch of the request is
 * mapped down the stack of both devices (dm tables; a plain device is its
 * own leaf) to a run on a source leaf and a destination leaf.  A run whose
 * leaves can copy natively joins that pair's lane, where the pair's limits
 * cut it into pieces; every other run is emulated through the devices the
 * caller opened.  A native piece the device refuses falls back to
 * emulation.  The core never builds a device command: it talks to backends
 * through struct bc_backend only.
 */
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <unistd.h>

#include "internal.h"

#define MAX_QUEUE_DEPTH 4096u
#define MAX_NATIVE_DEPTH 64u	/* native commands in flight per lane; each may copy MiBs */
#define MAX_LANES 64u		/* leaf pairs per job; pairs beyond are emulated */
#define BATCH_RUNS 4096u	/* runs mapped per planning step: bounds the plan's memory */
#define VERIFY_MS 1		/* dm tables re-checked at most this often while native runs */

/* Where a run lies on the devices the caller opened. */
struct top_pos {
	uint64_t src;
	uint64_t dst;
};

/* A run as planned: on the leaves and on the caller's devices. */
struct part {
	uint64_t src;		/* leaf source offset */
	struct top_pos top;
	uint64_t len;
};

/* Where a segment of a piece starts: a span of its lane and an offset in it. */
struct seg_ref {
	size_t span;
	uint64_t off;
};

/* A native piece between planning and completion. */
struct native_slot {
	struct bc_piece piece;	/* leaf offsets */
	struct bc_span *segs;	/* leaf offsets */
	struct seg_ref *refs;	/* each segment's place in the lane's plan */
	bool busy;
};

/* A leaf pair: its native backend (NULL: not native) and its work. */
struct lane {
	struct blkcopy_dev *src, *dst;
	const struct bc_backend *backend;
	struct bc_split_limits sl;
	uint32_t nsegs_cap;
	struct bc_native_queue *queue;	/* NULL: pieces run synchronously */
	struct native_slot *slots;
	uint32_t nr_slots;
	uint32_t inflight;
	bool proven;		/* a piece succeeded: more may go in flight */
	bool refused;		/* the device refused copy before any piece succeeded */
	bool flushed;
	uint64_t dst_lo, dst_hi;	/* leaf bytes written natively, to invalidate */

	/*
	 * This batch's runs in destination order (parts), and the spans the
	 * splitter cuts: parts that continue each other on both leaves merge,
	 * as a stripe's chunks do, so one command can cover many of them.  A
	 * chain is spans whose leaf destinations continue each other.
	 */
	struct part *parts;
	size_t nr_parts, cap_parts;
	struct bc_span *spans;	/* leaf source offset, length */
	uint64_t *span_dst;	/* leaf destination offset */
	size_t *span_part;	/* first part of each span */
	size_t nr_spans, cap_spans;
	size_t next_span;	/* first span of the next chain */
	size_t chain;		/* first span of the chain being split */
	bool splitting;
	struct bc_splitter split;
};

/* A request mapped down to the leaves, one run at a time. */
struct run_iter {
	const struct blkcopy_dev *src, *dst;
	const struct bc_span *spans;
	size_t nr, idx;
	uint64_t skip, dst_pos;
};

struct run {
	struct blkcopy_dev *src, *dst;	/* leaves */
	uint64_t src_off, dst_off;	/* on the leaves */
	struct top_pos top;
	uint64_t len;
};

struct blkcopy_job {
	struct blkcopy_dev *src, *dst;
	struct bc_span *spans;
	size_t nr_spans;
	uint64_t dst_off;
	uint64_t total;
	unsigned int flags;
	uint32_t queue_depth;
	bool try_native;	/* the flags and both devices allow native pieces */
	bool stacked;		/* a dm table lies under either end */

	struct run_iter plan;
	bool planned_all;

	struct bc_emu *emu;
	int epfd;		/* the emulation ring and every lane's queue */
	struct bc_span *emu_group;	/* emulated runs with a contiguous destination */
	size_t emu_nr, emu_cap;
	uint64_t emu_dst, emu_end;	/* the group's destination, first byte and past the last */

	struct lane *lanes[MAX_LANES];
	uint32_t nr_lanes;
	bool native_started;	/* caches flushed, so they must be invalidated at the end */
	uint64_t native_done;
	struct bc_copy_stats stats;
	uint64_t native_fail_low;	/* lowest destination byte native copy left unwritten */
	uint64_t unverified_low;	/* lowest one written since dm tables were last checked */
	int64_t verified_ms;
	bool stale;

	int error;
	bool cancelled;
	bool finished;
};

static uint64_t min_u64(uint64_t a, uint64_t b)
{
	return a < b ? a : b;
}

/* ------------------------------------------------------------------------ */
/* Mapping the request                                                      */

static void run_iter_init(struct run_iter *it, const struct blkcopy_dev *src,
			  const struct bc_span *spans, size_t nr, const struct blkcopy_dev *dst,
			  uint64_t dst_off)
{
	*it = (struct run_iter){ .src = src, .dst = dst, .spans = spans, .nr = nr,
				 .dst_pos = dst_off };
}

/* Next run, or 0 at the end; -EIO when a table does not cover a byte it must. */
static int run_next(struct run_iter *it, struct run *r)
{
	if (it->idx >= it->nr)
		return 0;
	const struct bc_span *sp = &it->spans[it->idx];
	uint64_t len = sp->len - it->skip;

	r->top = (struct top_pos){ .src = sp->src + it->skip, .dst = it->dst_pos };
	len = bc_stack_map(it->src, r->top.src, len, &r->src, &r->src_off);
	if (len)
		len = bc_stack_map(it->dst, r->top.dst, len, &r->dst, &r->dst_off);
	if (!len)
		return -EIO;
	r->len = len;
	it->skip += len;
	it->dst_pos += len;
	if (it->skip == sp->len) {
		it->idx++;
		it->skip = 0;
	}
	return 1;
}

/* Can leaf @src -> leaf @dst go native?  Fills the pair's limits. */
static const struct bc_backend *native_pair(const struct blkcopy_dev *src,
					    const struct blkcopy_dev *dst,
					    struct blkcopy_limits *lim)
{
	if (!src->backend || src->backend != dst->backend || !src->limits.copy_offload ||
	    !dst->limits.copy_offload)
		return NULL;
	if (src->backend->pair(src, dst, lim))
		return NULL;
	return src->backend;
}

static bool native_allowed(const struct blkcopy_dev *src, const struct blkcopy_dev *dst,
			   unsigned int flags)
{
	return !(flags & BLKCOPY_NOOFFLOAD) && src->limits.copy_offload &&
	       dst->limits.copy_offload;
}

static bool run_aligned(const struct run *r, uint32_t align)
{
	return !(r->src_off % align) && !(r->dst_off % align) && !(r->len % align);
}

static uint32_t pair_align(const struct blkcopy_dev *src, const struct blkcopy_dev *dst)
{
	return src->lbs > dst->lbs ? src->lbs : dst->lbs;
}

/* Would every run of the request go native?  (BLKCOPY_NOEMULATION, before any write.) */
static int check_all_native(const struct blkcopy_dev *src, const struct bc_span *spans,
			    size_t nr, const struct blkcopy_dev *dst, uint64_t dst_off,
			    unsigned int flags)
{
	const struct blkcopy_dev *pairs[MAX_LANES][2];
	const struct blkcopy_dev *last_src = NULL, *last_dst = NULL;
	uint32_t nr_pairs = 0;
	struct bc_split_limits sl;
	struct blkcopy_limits lim;
	struct run_iter it;
	struct run r;
	int ret;

	if (!native_allowed(src, dst, flags))
		return -EOPNOTSUPP;
	run_iter_init(&it, src, spans, nr, dst, dst_off);
	while ((ret = run_next(&it, &r)) > 0) {
		if (r.src != last_src || r.dst != last_dst) {
			uint32_t k = 0;

			if (!native_pair(r.src, r.dst, &lim) ||
			    bc_split_limits_from(&lim, pair_align(r.src, r.dst), &sl))
				return -EOPNOTSUPP;
			/* The job keeps MAX_LANES pairs; runs on more would be emulated. */
			while (k < nr_pairs && (pairs[k][0] != r.src || pairs[k][1] != r.dst))
				k++;
			if (k == nr_pairs) {
				if (nr_pairs == MAX_LANES)
					return -EOPNOTSUPP;
				pairs[nr_pairs][0] = r.src;
				pairs[nr_pairs++][1] = r.dst;
			}
			last_src = r.src;
			last_dst = r.dst;
		}
		if (!run_aligned(&r, sl.align))
			return -EOPNOTSUPP;
	}
	return ret;
}

/* Re-read both stacks: tables change between requests. */
static int refresh_stacks(struct blkcopy_dev *src, struct blkcopy_dev *dst)
{
	const int rs = bc_stack_refresh(src), rd = bc_stack_refresh(dst);

	/* Other failures leave a device emulated through its node: not an error. */
	for (int i = 0; i < 2; i++) {
		const int ret = i ? rd : rs;

		if (ret == -ENOMEM || ret == -ESTALE || ret == -EBUSY)
			return ret;
	}
	return 0;
}

int blkcopy_check(const struct blkcopy_dev *src, const struct blkcopy_range *ranges,
		  size_t nr, const struct blkcopy_dev *dst, uint64_t dst_off,
		  unsigned int flags, size_t *bad_range)
{
	struct bc_span *spans;
	ssize_t n;
	int ret;

	if (!src || !dst)
		return -EINVAL;
	/* The resolved tables are a cache inside the handles, re-read for every request. */
	ret = refresh_stacks((struct blkcopy_dev *)src, (struct blkcopy_dev *)dst);
	if (ret)
		return ret;
	ret = bc_validate(src, ranges, nr, dst, dst_off, flags, NULL, bad_range);
	if (ret || !(flags & BLKCOPY_NOEMULATION))
		return ret;
	n = bc_coalesce(ranges, nr, &spans);
	if (n < 0)
		return (int)n;
	ret = check_all_native(src, spans, (size_t)n, dst, dst_off, flags);
	free(spans);
	return ret;
}

/* ------------------------------------------------------------------------ */
/* Lanes                                                                    */

static void free_lane(struct lane *l)
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
	free(l->parts);
	free(l->spans);
	free(l->span_dst);
	free(l->span_part);
	free(l);
}

static int epoll_add(struct blkcopy_job *j, int fd)
{
	struct epoll_event ev = { .events = EPOLLIN, .data.fd = fd };

	if (fd >= 0 && epoll_ctl(j->epfd, EPOLL_CTL_ADD, fd, &ev))
		return -errno;
	return 0;
}

static int setup_native(struct blkcopy_job *j, struct lane *l, const struct blkcopy_limits *lim,
			uint32_t depth)
{
	int ret = bc_split_limits_from(lim, pair_align(l->src, l->dst), &l->sl);

	if (ret)
		return ret;
	/* Devices advertise up to 256 ranges (SCSI, NVMe MSRC+1); never trust more. */
	l->nsegs_cap = l->sl.max_segs && l->sl.max_segs < 4096 ? l->sl.max_segs : 4096;
	l->nr_slots = 1;
	if (l->backend->queue_create) {
		depth = depth < MAX_NATIVE_DEPTH ? depth : MAX_NATIVE_DEPTH;
		ret = l->backend->queue_create(l->src, l->dst, depth, &l->queue);
		if (ret && ret != -EOPNOTSUPP)
			return ret;
		if (!ret) {
			l->nr_slots = depth;
			ret = epoll_add(j, l->backend->queue_fd(l->queue));
			if (ret)
				return ret;
		}
	}
	l->slots = calloc(l->nr_slots, sizeof(*l->slots));
	if (!l->slots)
		return -ENOMEM;
	for (uint32_t i = 0; i < l->nr_slots; i++) {
		l->slots[i].segs = calloc(l->nsegs_cap, sizeof(struct bc_span));
		l->slots[i].refs = calloc(l->nsegs_cap, sizeof(struct seg_ref));
		if (!l->slots[i].segs || !l->slots[i].refs)
			return -ENOMEM;
	}
	return 0;
}

/* The lane of a leaf pair, made on first sight.  NULL (and 0) when the pair is emulated. */
static int lane_for(struct blkcopy_job *j, struct blkcopy_dev *src, struct blkcopy_dev *dst,
		    struct lane **lp)
{
	struct blkcopy_limits lim;
	struct lane *l;
	int ret;

	*lp = NULL;
	for (uint32_t i = 0; i < j->nr_lanes; i++) {
		if (j->lanes[i]->src == src && j->lanes[i]->dst == dst) {
			*lp = j->lanes[i]->backend && !j->lanes[i]->refused ? j->lanes[i] : NULL;
			return 0;
		}
	}
	if (j->nr_lanes == MAX_LANES)
		return 0;
	l = calloc(1, sizeof(*l));
	if (!l)
		return -ENOMEM;
	*l = (struct lane){ .src = src, .dst = dst, .dst_lo = UINT64_MAX };
	j->lanes[j->nr_lanes++] = l;
	l->backend = native_pair(src, dst, &lim);
	if (!l->backend)
		return 0;
	ret = setup_native(j, l, &lim, j->queue_depth);
	if (ret == -EOPNOTSUPP) {	/* limits too small to cut anything: not native after all */
		l->backend = NULL;
		return 0;
	}
	if (ret)
		return ret;
	*lp = l;
	return 0;
}

/* Resize *@p to @n elements of @size bytes.  False: no memory, *@p unchanged. */
static bool resize(void **p, size_t n, size_t size)
{
	void *q = realloc(*p, n * size);

	if (q)
		*p = q;
	return q != NULL;
}

static int lane_add(struct lane *l, const struct run *r)
{
	if (l->nr_parts == l->cap_parts) {
		size_t cap = l->cap_parts ? 2 * l->cap_parts : 64;

		if (!resize((void **)&l->parts, cap, sizeof(*l->parts)))
			return -ENOMEM;
		l->cap_parts = cap;
	}
	l->parts[l->nr_parts++] = (struct part){ .src = r->src_off, .top = r->top, .len = r->len };

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

		if (!resize((void **)&l->spans, cap, sizeof(*l->spans)) ||
		    !resize((void **)&l->span_dst, cap, sizeof(*l->span_dst)) ||
		    !resize((void **)&l->span_part, cap, sizeof(*l->span_part)))
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
static const struct part *part_at(const struct lane *l, size_t s, uint64_t off)
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

static uint64_t top_dst_at(const struct lane *l, size_t s, uint64_t off)
{
	const struct part *p = part_at(l, s, off);

	return p->top.dst + (l->spans[s].src + off - p->src);
}

static bool lane_has_work(const struct lane *l)
{
	return (l->splitting && l->split.idx < l->split.nr_spans) || l->next_span < l->nr_spans;
}

/* Lowest destination byte (caller's offsets) of the lane's work not yet cut into pieces. */
static uint64_t lane_unsplit_low(const struct lane *l)
{
	if (l->splitting && l->split.idx < l->split.nr_spans)
		return top_dst_at(l, l->chain + l->split.idx, l->split.skip);
	if (l->next_span < l->nr_spans)
		return l->parts[l->span_part[l->next_span]].top.dst;
	return UINT64_MAX;
}

/* Cut the next piece of the lane into @slot; false when the batch's spans are all cut. */
static bool lane_next_piece(struct lane *l, struct native_slot *slot)
{
	for (;;) {
		if (l->splitting) {
			size_t sp = l->chain + l->split.idx;
			uint64_t off = l->split.skip;

			if (bc_split_next(&l->split, slot->segs, l->nsegs_cap, &slot->piece)) {
				/* Segments never straddle spans: walk the spans alongside. */
				for (uint32_t k = 0; k < slot->piece.nr_segs; k++) {
					slot->refs[k] = (struct seg_ref){ .span = sp, .off = off };
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
static uint64_t lane_drop_unsplit(struct lane *l)
{
	uint64_t low = lane_unsplit_low(l);

	/* Pieces in flight still look their parts up: keep the arrays. */
	l->splitting = false;
	l->next_span = l->nr_spans;
	return low;
}

/* ------------------------------------------------------------------------ */
/* Emulated work                                                            */

static int emu_flush(struct blkcopy_job *j)
{
	int ret = 0;

	if (j->emu_nr)
		ret = bc_emu_add(j->emu, j->emu_group, j->emu_nr, j->emu_dst, true);
	j->emu_nr = 0;
	return ret;
}

/* Emulate @len bytes from caller offset @src to @dst, after what is already grouped. */
static int emu_push(struct blkcopy_job *j, uint64_t src, uint64_t dst, uint64_t len)
{
	int ret;

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
static int emulate_span(struct blkcopy_job *j, const struct lane *l, size_t s, uint64_t off,
			uint64_t len)
{
	while (len) {
		const struct part *p = part_at(l, s, off);
		const uint64_t d = l->spans[s].src + off - p->src;
		const uint64_t take = min_u64(len, p->len - d);
		int ret = emu_push(j, p->top.src + d, p->top.dst + d, take);

		if (ret)
			return ret;
		off += take;
		len -= take;
	}
	return 0;
}

/* ------------------------------------------------------------------------ */
/* Planning                                                                 */

static void stop(struct blkcopy_job *j, int error);

static void lower_fail(struct blkcopy_job *j, uint64_t low)
{
	if (low < j->native_fail_low)
		j->native_fail_low = low;
}

/* Every lane's batch cut and completed: its arrays may be reused. */
static bool lanes_drained(const struct blkcopy_job *j)
{
	for (uint32_t i = 0; i < j->nr_lanes; i++)
		if (lane_has_work(j->lanes[i]) || j->lanes[i]->inflight)
			return false;
	return true;
}

/* Planning waits for the lanes to finish their batch and for emulation to catch up. */
static bool plan_ready(const struct blkcopy_job *j)
{
	return !j->planned_all && lanes_drained(j) && bc_emu_queued(j->emu) < 2 * BATCH_RUNS;
}

static int plan_batch(struct blkcopy_job *j)
{
	struct run r;
	int ret = 0;

	for (uint32_t i = 0; i < j->nr_lanes; i++) {
		struct lane *l = j->lanes[i];

		l->nr_parts = l->nr_spans = l->next_span = 0;
		l->splitting = false;
	}
	for (uint32_t n = 0; n < BATCH_RUNS; n++) {
		struct lane *l = NULL;

		ret = run_next(&j->plan, &r);
		if (ret <= 0) {
			if (!ret)
				j->planned_all = true;
			break;
		}
		if (j->try_native) {
			ret = lane_for(j, r.src, r.dst, &l);
			if (ret)
				break;
		}
		if (l && run_aligned(&r, l->sl.align))
			ret = lane_add(l, &r);
		else
			ret = emu_push(j, r.top.src, r.top.dst, r.len);
		if (ret)
			break;
	}
	if (!ret)
		ret = emu_flush(j);
	return ret;
}

static void plan_more(struct blkcopy_job *j)
{
	while (!j->error && plan_ready(j)) {
		int ret = plan_batch(j);

		if (ret < 0) {
			stop(j, ret);
			return;
		}
		if (!lanes_drained(j))
			return;
	}
}

/* ------------------------------------------------------------------------ */
/* Submission                                                               */

static int resolve_opts(const struct blkcopy_opts *in, struct blkcopy_opts *out)
{
	*out = in ? *in : (struct blkcopy_opts){ 0 };
	if (!out->queue_depth)
		out->queue_depth = BC_DEFAULT_QUEUE_DEPTH;
	if (!out->max_inflight)
		out->max_inflight = BC_DEFAULT_INFLIGHT;
	if (!out->chunk_size)
		out->chunk_size = BC_DEFAULT_CHUNK;
	if (out->queue_depth > MAX_QUEUE_DEPTH || out->max_inflight < 4096 ||
	    out->chunk_size < 4096)
		return -EINVAL;
	if (out->chunk_size > out->max_inflight)
		out->chunk_size = out->max_inflight;
	return 0;
}

static void free_job(struct blkcopy_job *j)
{
	for (uint32_t i = 0; i < j->nr_lanes; i++)
		free_lane(j->lanes[i]);
	if (j->epfd >= 0)
		close(j->epfd);
	bc_emu_destroy(j->emu);
	free(j->emu_group);
	free(j->spans);
	free(j);
}

int blkcopy_job_submit(struct blkcopy_dev *src, const struct blkcopy_range *ranges, size_t nr,
		       struct blkcopy_dev *dst, uint64_t dst_off,
		       const struct blkcopy_opts *opts, struct blkcopy_job **jobp)
{
	struct blkcopy_opts o;
	struct blkcopy_job *j;
	uint64_t total;
	ssize_t n;
	int ret;

	if (!jobp || !src || !dst || resolve_opts(opts, &o))
		return -EINVAL;
	ret = refresh_stacks(src, dst);
	if (ret)
		return ret;
	ret = bc_validate(src, ranges, nr, dst, dst_off, o.flags, &total, NULL);
	if (ret)
		return ret;

	j = calloc(1, sizeof(*j));
	if (!j)
		return -ENOMEM;
	*j = (struct blkcopy_job){
		.src = src,
		.dst = dst,
		.dst_off = dst_off,
		.total = total,
		.flags = o.flags,
		.try_native = native_allowed(src, dst, o.flags),
		.stacked = src->stack || dst->stack,
		.native_fail_low = UINT64_MAX,
		.unverified_low = UINT64_MAX,
		.epfd = -1,
	};
	n = bc_coalesce(ranges, nr, &j->spans);
	if (n < 0) {
		free(j);
		return (int)n;
	}
	j->nr_spans = (size_t)n;
	if (o.flags & BLKCOPY_NOEMULATION) {
		ret = check_all_native(src, j->spans, j->nr_spans, dst, dst_off, o.flags);
		if (ret)
			goto fail;
	}
	run_iter_init(&j->plan, src, j->spans, j->nr_spans, dst, dst_off);

	const struct bc_emu_params ep = {
		.queue_depth = o.queue_depth,
		.max_inflight = o.max_inflight,
		.chunk_size = o.chunk_size,
		.expected_bytes = total,
		.direct = !(o.flags & BLKCOPY_BUFFERED) &&
			  bc_emu_direct_ok(src, dst, j->spans, j->nr_spans, dst_off),
	};
	ret = bc_emu_create(src, dst, &ep, &j->emu);
	if (ret)
		goto fail;
	/* One descriptor for callers' poll loops: emulation and every native queue. */
	j->epfd = epoll_create1(EPOLL_CLOEXEC);
	if (j->epfd < 0 || epoll_add(j, bc_emu_fd(j->emu))) {
		ret = -errno;
		goto fail;
	}
	j->queue_depth = o.queue_depth;
	j->verified_ms = bc_now_ms();
	ret = plan_batch(j);
	if (ret < 0)
		goto fail;
	src->jobs++;
	dst->jobs++;
	*jobp = j;
	return 0;
fail:
	free_job(j);
	return ret;
}

/* ------------------------------------------------------------------------ */
/* Native pieces                                                            */

static void stop(struct blkcopy_job *j, int error)
{
	if (!j->error)
		j->error = error;
	/* Work never issued is not written: keep it out of the committed prefix. */
	if (!j->planned_all) {
		lower_fail(j, j->plan.dst_pos);
		j->planned_all = true;
	}
	for (uint32_t i = 0; i < j->nr_lanes; i++)
		lower_fail(j, lane_drop_unsplit(j->lanes[i]));
	bc_emu_stop(j->emu, error);
}

/* A table under either end changed or was suspended: nothing unchecked counts. */
static void go_stale(struct blkcopy_job *j, int error)
{
	j->stale = true;
	lower_fail(j, j->unverified_low);
	stop(j, error);
}

static int verify_stacks(struct blkcopy_job *j)
{
	int ret = bc_stack_verify(j->src);

	if (!ret)
		ret = bc_stack_verify(j->dst);
	j->verified_ms = bc_now_ms();
	if (!ret)
		j->unverified_low = UINT64_MAX;
	return ret;
}

/* A piece's parts go up in the caller's offsets: its lowest byte starts a segment. */
static uint64_t slot_low(const struct lane *l, const struct native_slot *s)
{
	uint64_t low = UINT64_MAX;

	for (uint32_t k = 0; k < s->piece.nr_segs; k++)
		low = min_u64(low, top_dst_at(l, s->refs[k].span, s->refs[k].off));
	return low;
}

/* Hand emulation the pieces' bytes, in the caller's offsets. */
static int emulate_slot(struct blkcopy_job *j, const struct lane *l, const struct native_slot *s)
{
	int ret = 0;

	for (uint32_t k = 0; k < s->piece.nr_segs && !ret; k++)
		ret = emulate_span(j, l, s->refs[k].span, s->refs[k].off, s->segs[k].len);
	return ret ? ret : emu_flush(j);
}

/* The lane's device refused copy outright: its runs not yet cut are emulated. */
static int emulate_unsplit(struct blkcopy_job *j, struct lane *l)
{
	int ret = 0;

	size_t first = l->splitting ? l->chain + l->split.idx : l->next_span;

	for (size_t sp = first; sp < l->nr_spans && !ret; sp++) {
		uint64_t skip = l->splitting && sp == first ? l->split.skip : 0;

		ret = emulate_span(j, l, sp, skip, l->spans[sp].len - skip);
	}
	lane_drop_unsplit(l);
	return ret ? ret : emu_flush(j);
}

/* A leaf's own account of a failure, on the handle the caller holds. */
static void adopt_error(struct blkcopy_dev *top, const struct blkcopy_dev *leaf)
{
	if (top != leaf && leaf->error[0])
		snprintf(top->error, sizeof(top->error), "%.40s: %.110s", leaf->path, leaf->error);
}

static void native_complete(struct blkcopy_job *j, struct lane *l, struct native_slot *slot,
			    int ret, const struct bc_copy_stats *st)
{
	if (slot->busy) {
		slot->busy = false;
		l->inflight--;
	}
	if (ret == 0) {
		const uint64_t low = slot_low(l, slot);

		j->native_done += slot->piece.len;
		l->proven = true;
		l->dst_lo = min_u64(l->dst_lo, slot->piece.dst);
		if (slot->piece.dst + slot->piece.len > l->dst_hi)
			l->dst_hi = slot->piece.dst + slot->piece.len;
		for (int m = 0; m < BLKCOPY_METHOD_MAX; m++)
			j->stats.bytes[m] += st->bytes[m];
		if (j->stale)
			lower_fail(j, low);
		else if (j->stacked)
			j->unverified_low = min_u64(j->unverified_low, low);
		return;
	}
	if ((ret == -EOPNOTSUPP || ret == -E2BIG) && !(j->flags & BLKCOPY_NOEMULATION) &&
	    !j->error) {
		/* Refused before any piece succeeded: the pair cannot copy, stop asking. */
		const bool refuses = ret == -EOPNOTSUPP && !l->proven;

		ret = emulate_slot(j, l, slot);
		if (!ret && refuses) {
			l->refused = true;
			ret = emulate_unsplit(j, l);
		}
		if (!ret)
			return;
	}
	adopt_error(j->src, l->src);
	adopt_error(j->dst, l->dst);
	lower_fail(j, slot_low(l, slot));
	stop(j, ret == -E2BIG ? -EOPNOTSUPP : ret);
}

/* Until one piece succeeds, one at a time: a device that refuses copy refuses the first. */
static bool window_open(const struct lane *l)
{
	return l->inflight < (l->proven ? l->nr_slots : 1);
}

static struct native_slot *free_slot(struct lane *l)
{
	if (!window_open(l))
		return NULL;
	for (uint32_t i = 0; i < l->nr_slots; i++)
		if (!l->slots[i].busy)
			return &l->slots[i];
	return NULL;
}

static bool lane_live(const struct lane *l)
{
	return l->backend && !l->refused;
}

/*
 * Native commands bypass a block device's page cache.  Before: write back
 * what is dirty on both ends (and on the leaves under a stack), so that no
 * later writeback lands on top of the copy.  After: drop the destination's
 * cached pages, so that the next buffered read sees the copy.
 */
static int flush_dev(struct blkcopy_dev *d)
{
	/* A remote LU has no page cache here to write back. */
	return d->kind != BLKCOPY_KIND_FILE && !d->remote ? bc_dev_flush(d) : 0;
}

static void invalidate(const struct blkcopy_dev *d, uint64_t off, uint64_t len)
{
	if (d->kind != BLKCOPY_KIND_FILE && !d->remote && len)
		posix_fadvise(d->fd, (off_t)off, (off_t)len, POSIX_FADV_DONTNEED);
}

static int flush_lane(struct blkcopy_job *j, struct lane *l)
{
	int ret = 0;

	l->flushed = true;
	if (!j->native_started) {
		j->native_started = true;
		ret = flush_dev(j->src);
		if (!ret)
			ret = flush_dev(j->dst);
	}
	if (!ret && l->src != j->src)
		ret = flush_dev(l->src);
	if (!ret && l->dst != j->dst)
		ret = flush_dev(l->dst);
	return ret;
}

static void native_issue(struct blkcopy_job *j)
{
	for (uint32_t i = 0; i < j->nr_lanes && !j->error; i++) {
		struct lane *l = j->lanes[i];
		struct native_slot *slot;

		if (!lane_live(l))
			continue;
		while (!j->error && (slot = free_slot(l))) {
			struct bc_copy_stats st = { 0 };
			int ret;

			if (!lane_next_piece(l, slot))
				break;
			if (!l->flushed) {
				ret = flush_lane(j, l);
				if (ret) {
					lower_fail(j, slot_low(l, slot));
					stop(j, ret);
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

static void lane_reap(struct blkcopy_job *j, struct lane *l, bool wait)
{
	struct bc_native_cqe cqes[MAX_NATIVE_DEPTH];
	int n;

	if (!l->queue || !l->inflight)
		return;
	n = l->backend->queue_reap(l->queue, cqes, MAX_NATIVE_DEPTH, wait);
	if (n < 0) {
		/* The queue broke: what it held is lost, so none of it counts as written. */
		for (uint32_t i = 0; i < l->nr_slots; i++) {
			if (l->slots[i].busy)
				lower_fail(j, slot_low(l, &l->slots[i]));
			l->slots[i].busy = false;
		}
		l->inflight = 0;
		stop(j, n);
		return;
	}
	for (int i = 0; i < n; i++) {
		struct bc_copy_stats st = { 0 };
		struct native_slot *slot;

		if (cqes[i].tag >= l->nr_slots || !l->slots[cqes[i].tag].busy)
			continue;	/* not ours: never trust a tag blindly */
		slot = &l->slots[cqes[i].tag];
		if (cqes[i].result == 0 && cqes[i].method < BLKCOPY_METHOD_MAX)
			st.bytes[cqes[i].method] = slot->piece.len;
		native_complete(j, l, slot, cqes[i].result, &st);
	}
}

static void reap_all(struct blkcopy_job *j, bool wait)
{
	for (uint32_t i = 0; i < j->nr_lanes; i++)
		lane_reap(j, j->lanes[i], wait);
}

static bool native_work(const struct blkcopy_job *j)
{
	for (uint32_t i = 0; i < j->nr_lanes; i++)
		if (lane_live(j->lanes[i]) && lane_has_work(j->lanes[i]))
			return true;
	return false;
}

static bool native_active(const struct blkcopy_job *j)
{
	for (uint32_t i = 0; i < j->nr_lanes; i++)
		if (j->lanes[i]->inflight)
			return true;
	return native_work(j);
}

/* Native work that could go now, without waiting for a completion. */
static bool native_ready(const struct blkcopy_job *j)
{
	for (uint32_t i = 0; i < j->nr_lanes; i++) {
		const struct lane *l = j->lanes[i];

		if (lane_live(l) && lane_has_work(l) && window_open(l))
			return true;
	}
	return false;
}

/* Move the job along without blocking. */
static void step(struct blkcopy_job *j)
{
	reap_all(j, false);
	plan_more(j);
	if (j->stacked && !j->error && native_work(j) &&
	    bc_now_ms() - j->verified_ms >= VERIFY_MS) {
		int ret = verify_stacks(j);

		if (ret) {
			go_stale(j, ret);
			return;
		}
	}
	native_issue(j);
	reap_all(j, false);
}

/* Block until some engine has a completion, a signal, or @timeout_ms. */
static void wait_any(struct blkcopy_job *j, int timeout_ms)
{
	struct epoll_event ev[4];
	bool queued = false;

	for (uint32_t i = 0; i < j->nr_lanes; i++)
		queued |= j->lanes[i]->queue != NULL;
	if (queued) {
		epoll_wait(j->epfd, ev, 4, timeout_ms);
		return;
	}
	reap_all(j, true);
}

static void finish_up(struct blkcopy_job *j)
{
	uint64_t done, low;
	int err;

	bc_emu_state(j->emu, &done, &low, &err);
	if (!j->error && err)
		j->error = err;
	if (!j->error && j->cancelled)
		j->error = -ECANCELED;
	/* Native bytes count only once a table check after them has passed. */
	if (j->native_started && j->stacked && !j->stale) {
		int ret = verify_stacks(j);

		if (ret) {
			j->stale = true;
			lower_fail(j, j->unverified_low);
			if (!j->error)
				j->error = ret;
		}
	}
	if (j->native_started) {
		invalidate(j->dst, j->dst_off, j->total);
		for (uint32_t i = 0; i < j->nr_lanes; i++) {
			const struct lane *l = j->lanes[i];

			if (l->dst != j->dst && l->dst_lo < l->dst_hi)
				invalidate(l->dst, l->dst_lo, l->dst_hi - l->dst_lo);
		}
	}
	/* fdatasync on a block device also flushes the drive's volatile cache. */
	if (!j->error && (j->flags & BLKCOPY_SYNC)) {
		int ret = bc_dev_flush(j->dst);

		if (ret)
			j->error = ret;
	}
	j->finished = true;
}

int blkcopy_job_wait(struct blkcopy_job *j, int timeout_ms)
{
	const int64_t deadline = timeout_ms > 0 ? bc_now_ms() + timeout_ms : 0;

	while (!j->finished) {
		int wait = timeout_ms;

		if (j->cancelled && !j->error)
			stop(j, -ECANCELED);
		step(j);
		if (timeout_ms > 0) {
			int64_t left = deadline - bc_now_ms();
			wait = left > 0 ? (int)left : 0;
		}

		bool busy = native_active(j) || plan_ready(j);
		int idle = bc_emu_run(j->emu, busy ? 0 : wait);
		if (idle < 0)
			stop(j, idle);	/* the ring failed: finish with its error */
		if (idle != 0 && !native_active(j) && j->planned_all) {
			finish_up(j);
			break;
		}
		if (timeout_ms == 0 || (timeout_ms > 0 && bc_now_ms() >= deadline))
			return 0;
		if (native_ready(j) || plan_ready(j))
			continue;
		if (native_active(j))
			wait_any(j, wait);
		/* Back to the caller after one blocking pass: a signal may want an answer. */
		return 0;
	}
	return 1;
}

int blkcopy_job_poll(struct blkcopy_job *j)
{
	return blkcopy_job_wait(j, 0);
}

void blkcopy_job_progress(const struct blkcopy_job *j, struct blkcopy_progress *p)
{
	uint64_t edone, low;
	int err;

	bc_emu_state(j->emu, &edone, &low, &err);
	if (!j->planned_all)
		low = min_u64(low, j->plan.dst_pos);
	for (uint32_t i = 0; i < j->nr_lanes; i++) {
		const struct lane *l = j->lanes[i];

		low = min_u64(low, lane_unsplit_low(l));
		for (uint32_t s = 0; s < l->nr_slots; s++)
			if (l->slots[s].busy)
				low = min_u64(low, slot_low(l, &l->slots[s]));
	}
	low = min_u64(low, min_u64(j->native_fail_low, j->unverified_low));
	*p = (struct blkcopy_progress){
		.total = j->total,
		.done = j->native_done + edone,
		.committed = low == UINT64_MAX ? j->total : low - j->dst_off,
		.native_bytes = j->native_done,
		.emulated_bytes = edone,
		.error = j->error ? j->error : err,
		.finished = j->finished,
	};
	memcpy(p->method_bytes, j->stats.bytes, sizeof(p->method_bytes));
	p->method_bytes[BLKCOPY_METHOD_EMULATE] = edone;
}

void blkcopy_job_cancel(struct blkcopy_job *j)
{
	j->cancelled = true;
}

int blkcopy_job_fd(const struct blkcopy_job *j)
{
	return j->epfd;
}

ssize_t blkcopy_job_finish(struct blkcopy_job *j, struct blkcopy_progress *res)
{
	ssize_t ret;

	if (!j)
		return -EINVAL;
	while (!blkcopy_job_wait(j, -1))
		;
	if (res)
		blkcopy_job_progress(j, res);
	ret = j->error ? j->error : (ssize_t)j->total;
	j->src->jobs--;
	j->dst->jobs--;
	free_job(j);
	return ret;
}

ssize_t blkcopy_copy_ex(struct blkcopy_dev *src, const struct blkcopy_range *ranges, size_t nr,
			struct blkcopy_dev *dst, uint64_t dst_off,
			const struct blkcopy_opts *opts, struct blkcopy_progress *res)
{
	struct blkcopy_job *j;
	int ret = blkcopy_job_submit(src, ranges, nr, dst, dst_off, opts, &j);

	if (ret) {
		if (res)
			*res = (struct blkcopy_progress){ .error = ret, .finished = true };
		return ret;
	}
	return blkcopy_job_finish(j, res);
}

ssize_t blkcopy_copy(struct blkcopy_dev *src, const struct blkcopy_range *ranges, size_t nr,
		     struct blkcopy_dev *dst, uint64_t dst_off, unsigned int flags)
{
	const struct blkcopy_opts opts = { .flags = flags };

	return blkcopy_copy_ex(src, ranges, nr, dst, dst_off, &opts, NULL);
}

const char *blkcopy_method_name(enum blkcopy_method m)
{
	switch (m) {
	case BLKCOPY_METHOD_EMULATE: return "emulate";
	case BLKCOPY_METHOD_REFLINK: return "reflink";
	case BLKCOPY_METHOD_COPY_FILE_RANGE: return "copy_file_range";
	case BLKCOPY_METHOD_NVME_COPY: return "nvme_copy";
	case BLKCOPY_METHOD_SCSI_XCOPY: return "scsi_xcopy";
	case BLKCOPY_METHOD_MAX: break;
	}
	return NULL;
}

const char *blkcopy_strerror(int err)
{
	switch (err < 0 ? -err : err) {
	case ENODATA: return "zero-length range";
	case E2BIG: return "too many ranges";
	case EOVERFLOW: return "range arithmetic overflows";
	case EINVAL: return "invalid argument (offset or length not aligned to the logical block size?)";
	case ENXIO: return "source range past the end of the source";
	case ENOSPC: return "destination range past the end of the destination";
	case EROFS: return "destination is read-only";
	case EBADF: return "destination not opened for writing";
	case EADDRINUSE: return "source range overlaps the destination";
	case EOPNOTSUPP: return "native copy not available and emulation forbidden";
	case ECANCELED: return "copy cancelled";
	case ESTALE: return "a device-mapper table under the copy changed or was suspended during it";
	case EBUSY: return "device busy (a suspended device-mapper device, or claimed by another user)";
	case ENOTBLK: return "not a block device or regular file";
	}
	return strerror(err < 0 ? -err : err);
}
