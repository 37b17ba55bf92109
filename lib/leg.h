/* SPDX-License-Identifier: MIT */
/*
 * A leg of a job: the request carried to one destination, or, emulated
 * whole, to several from one read of the source (its fan-out).  A job
 * (job.c) drives one leg per destination that may go native and one for
 * the destinations emulated together.  The leg's state is shared by its
 * stages: planning (plan.c) maps the request onto leaf pairs and groups it
 * into lanes and emulated runs; native execution (native.c) runs the
 * lanes' pieces; the leg (leg.c) drives both from its event loop.  The
 * commit watermark (commit.c) says how much is done.
 */
#ifndef BLKCOPY_LEG_H
#define BLKCOPY_LEG_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "backend.h"
#include "commit.h"
#include "device.h"
#include "emulate.h"
#include "policy.h"
#include "split.h"

#define BC_MAX_LANES 64u	/* leaf pairs per job; pairs beyond are emulated */
#define BC_MAX_NATIVE_DEPTH 64u	/* native commands in flight per lane; each may copy MiBs */

/* Where a stretch of the request lies on the devices the caller opened. */
struct bc_top_pos {
	uint64_t src;
	uint64_t dst;
};

/* A stretch of the request mapped onto one source leaf and one destination leaf. */
struct bc_leaf_run {
	struct blkcopy_dev *src, *dst;	/* leaves */
	uint64_t src_off, dst_off;	/* on the leaves */
	struct bc_top_pos top;
	uint64_t len;
};

/* A request mapped down to the leaves, one leaf run at a time. */
struct bc_leaf_walk {
	const struct blkcopy_dev *src, *dst;
	const struct bc_span *spans;
	size_t nr, idx;
	uint64_t skip, dst_pos;
};

/* A leaf run as a lane keeps it: leaf source offset, caller's offsets, length. */
struct bc_part {
	uint64_t src;
	struct bc_top_pos top;
	uint64_t len;
};

/* Where a segment of a piece starts: a span of its lane and an offset in it. */
struct bc_seg_ref {
	size_t span;
	uint64_t off;
};

/* A native piece between planning and completion. */
struct bc_slot {
	struct bc_piece piece;	/* leaf offsets */
	struct bc_span *segs;	/* leaf offsets */
	struct bc_seg_ref *refs;	/* each segment's place in the lane's plan */
	bool busy;
};

/* A leaf pair: its native backend (NULL: not native) and its work. */
struct bc_lane {
	struct blkcopy_dev *src, *dst;
	const struct bc_backend *backend;
	struct bc_split_limits sl;
	uint32_t nsegs_cap;
	uint64_t piece_cap;	/* the rate limit's largest piece (0: the pair's limits only) */

	/* Native execution (native.c). */
	bool set_up;		/* slots (and the queue, if any) exist */
	struct bc_native_queue *queue;	/* NULL: pieces run synchronously */
	struct bc_slot *slots;
	uint32_t nr_slots;
	uint32_t inflight;
	bool proven;		/* a piece succeeded: more may go in flight */
	bool refused;		/* the device refused copy before any piece succeeded */
	bool flushed;
	uint64_t dst_lo, dst_hi;	/* leaf bytes written natively, to invalidate */
	/*
	 * A host-managed destination leaf: one piece in flight (a zone takes
	 * writes in order only), and the lane holds the zones whose index is
	 * zone_stripe modulo the job's zone lanes, so that zones go in parallel.
	 */
	bool zoned;
	uint32_t zone_stripe;
	enum blkcopy_method method;	/* of its last piece that landed */
	/* Which pieces go native (none onto zones: all native or all emulated there). */
	struct bc_policy policy;
	/* Why its runs are emulated when the lane has no backend, or was refused. */
	enum blkcopy_emulated why_not;

	/*
	 * Planning (plan.c): this batch's runs in destination order (parts),
	 * and the spans the splitter cuts: parts that continue each other on
	 * both leaves merge, as a stripe's chunks do, so one command can
	 * cover many of them.  A chain is spans whose leaf destinations
	 * continue each other.
	 */
	struct bc_part *parts;
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

struct bc_leg {
	struct blkcopy_dev *src, *dst;
	/* Destinations beyond dst, written by emulation from the same reads (then nothing native). */
	struct blkcopy_target fanout[BLKCOPY_MAX_TARGETS - 1];
	size_t nr_fanout;
	struct bc_span *spans;
	size_t nr_spans;
	uint64_t dst_off;
	uint64_t total;
	unsigned int flags;
	uint32_t queue_depth;
	uint64_t native_min;	/* blkcopy_opts.native_min */
	bool try_native;	/* the flags and both devices allow native pieces */
	bool stacked;		/* a layer maps either end onto other devices */

	/* Planning. */
	struct bc_leaf_walk walk;
	bool planned_all;
	struct bc_span *emu_group;	/* emulated runs with a contiguous destination */
	size_t emu_nr, emu_cap;
	uint64_t emu_dst, emu_end;	/* the group's destination, first byte and past the last */
	uint64_t emulated[BLKCOPY_EMULATED_MAX];	/* bytes handed to emulation, by reason */
	struct bc_lane *lanes[BC_MAX_LANES];
	uint32_t nr_lanes;

	/* Execution. */
	struct bc_emu *emu;
	struct bc_emu_params emu_params;
	struct bc_emu *verify;	/* BLKCOPY_VERIFY, once the copy is done */
	struct bc_rate *rate;	/* the job's: blkcopy_opts.rate, blkcopy_job_set_rate() */
	int timer;		/* timerfd in epfd: wakes a poller when the rate lets more go */
	int epfd;		/* blkcopy_job_fd(): the ring, queues_fd, the kick, the timer */
	int queues_fd;		/* epoll: every lane's queue */
	int kick;		/* eventfd: readable while work can go without a completion */
	bool native_started;	/* caches flushed, so they must be invalidated at the end */
	int64_t verified_ms;
	struct bc_watermark wm;
	/* Per destination (0: dst, 1 + i: fanout[i]), from the end: flush, verification. */
	int end_error[BLKCOPY_MAX_TARGETS];
	uint64_t lost[BLKCOPY_MAX_TARGETS];	/* lowest byte found wrong (UINT64_MAX: none) */

	int error;
	bool cancelled;
	bool finished;
};

/*
 * What a leg carries: the request, validated against every destination
 * (tables refreshed, bc_validate(), zones) by the job, and its destinations
 * (the first is the leg's dst).
 */
struct bc_leg_args {
	struct blkcopy_dev *src;
	const struct blkcopy_range *ranges;
	size_t nr;
	uint64_t total;				/* the ranges' bytes, as validation summed them */
	const struct blkcopy_target *dsts;	/* more than one: all emulated, from one read */
	size_t nr_dsts;
	const struct blkcopy_opts *opts;	/* resolved: bc_resolve_opts() */
	struct bc_rate *rate;			/* shared by the job's legs */
	const struct bc_memory *memory;		/* emulation's buffers (NULL: host memory) */
};

/* Defaults in, then checked: 0 or -EINVAL. */
int bc_resolve_opts(const struct blkcopy_opts *in, struct blkcopy_opts *out);
/* Plan the validated request; nothing goes out before the first bc_leg_wait(). */
int bc_leg_submit(const struct bc_leg_args *a, struct bc_leg **legp);
/* blkcopy_job_wait() for one leg: 1 once it finished, 0 otherwise. */
int bc_leg_wait(struct bc_leg *j, int timeout_ms);
/*
 * Block until the leg has a completion or @fd polls readable, for up to
 * @timeout_ms: 0, or -EINTR for a signal.  For a job waiting on several.
 */
int bc_leg_block(struct bc_leg *j, int fd, int timeout_ms);
bool bc_leg_finished(const struct bc_leg *j);
/* Destination @k of the leg (0: dst, 1 + i: fanout[i]): as blkcopy_job_progress(). */
void bc_leg_progress(const struct bc_leg *j, size_t k, struct blkcopy_progress *p);
/* blkcopy_job_stats() of the leg, destination @k's verification. */
void bc_leg_stats(const struct bc_leg *j, size_t k, struct blkcopy_stats *st);
/* The job's rate changed: what the old one held back may go now. */
void bc_leg_kick(struct bc_leg *j);
void bc_leg_cancel(struct bc_leg *j);
int bc_leg_fd(const struct bc_leg *j);
/* Free a leg: finished, or never waited on (then nothing was written). */
void bc_leg_free(struct bc_leg *j);

/*
 * Re-read the tables under both ends: tables change between requests.
 * -ENOMEM, -ESTALE or -EBUSY (with the device's error); other failures
 * leave a device emulated through its node.
 */
int bc_refresh_pair(struct blkcopy_dev *src, struct blkcopy_dev *dst);

/* Emulation of these spans would use O_DIRECT on both ends (the flags allow it, they are aligned). */
bool bc_emulate_direct(const struct blkcopy_dev *src, const struct bc_span *spans, size_t nr,
		       const struct blkcopy_dev *dst, uint64_t dst_off, unsigned int flags);
/*
 * A host-managed destination is emulated through O_DIRECT only (@direct:
 * bc_emulate_direct()): 0, or -EINVAL with the reason on @dst.
 */
int bc_check_zoned_direct(const struct blkcopy_dev *src, struct blkcopy_dev *dst, bool direct);

/* BLKCOPY_NOEMULATION: every run can go native, else -EOPNOTSUPP with the reason on @dst. */
int bc_check_all_native(struct blkcopy_dev *src, const struct bc_span *spans, size_t nr,
			struct blkcopy_dev *dst, uint64_t dst_off, unsigned int flags);

#endif
