/* SPDX-License-Identifier: MIT */
/*
 * A leg's life: validate and plan at submit, then an event loop that moves
 * planning, native execution and emulation along, until everything is done
 * or the copy stopped; the final checks (tables, caches, durability) and
 * verification at the end.  The leg has no thread: its job drives it.
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/eventfd.h>
#include <sys/timerfd.h>
#include <unistd.h>

#include "device.h"
#include "layer.h"
#include "memory.h"
#include "native.h"
#include "plan.h"
#include "request.h"
#include "transport.h"
#include "util.h"
#include "zone.h"

#define DEFAULT_QUEUE_DEPTH 128u
#define DEFAULT_INFLIGHT (16ull << 20)
#define DEFAULT_CHUNK (1ull << 20)
#define MAX_QUEUE_DEPTH 4096u
#define VERIFY_MS 1		/* tables re-checked at most this often while native runs */

/* ------------------------------------------------------------------------ */
/* Submission                                                               */

int bc_resolve_opts(const struct blkcopy_opts *in, struct blkcopy_opts *out)
{
	*out = in ? *in : (struct blkcopy_opts){ 0 };
	for (size_t i = 0; i < sizeof(out->reserved) / sizeof(out->reserved[0]); i++)
		if (out->reserved[i])
			return -EINVAL;
	if (!out->queue_depth)
		out->queue_depth = DEFAULT_QUEUE_DEPTH;
	if (!out->max_inflight)
		out->max_inflight = DEFAULT_INFLIGHT;
	if (!out->chunk_size)
		out->chunk_size = DEFAULT_CHUNK;
	if (out->queue_depth > MAX_QUEUE_DEPTH || out->max_inflight < 4096 ||
	    out->chunk_size < 4096)
		return -EINVAL;
	if (out->chunk_size > out->max_inflight)
		out->chunk_size = out->max_inflight;
	/* Whose P2P memory means something only with BLKCOPY_P2P, which moves data by O_DIRECT. */
	if (out->p2p_memory > BLKCOPY_P2P_DST ||
	    (out->p2p_memory && !(out->flags & BLKCOPY_P2P)) ||
	    ((out->flags & BLKCOPY_P2P) && (out->flags & BLKCOPY_BUFFERED)))
		return -EINVAL;
	return 0;
}

int bc_refresh_pair(struct blkcopy_dev *src, struct blkcopy_dev *dst)
{
	const int rs = bc_dev_refresh(src, src->jobs > 0);
	const int rd = dst == src ? 0 : bc_dev_refresh(dst, dst->jobs > 0);

	/* Other failures leave a device emulated through its node: not an error. */
	for (int i = 0; i < 2; i++) {
		const int ret = i ? rd : rs;

		if (ret == -ENOMEM || ret == -ESTALE || ret == -EBUSY)
			return ret;
	}
	return 0;
}

int bc_check_all_native(struct blkcopy_dev *src, const struct bc_span *spans, size_t nr,
			struct blkcopy_dev *dst, uint64_t dst_off, unsigned int flags)
{
	char why[sizeof(dst->error)] = "";
	int ret = bc_plan_all_native(src, spans, nr, dst, dst_off, flags, why, sizeof(why));

	if (ret == -EOPNOTSUPP && why[0])
		snprintf(dst->error, sizeof(dst->error), "%s", why);
	return ret;
}

bool bc_emulate_direct(const struct blkcopy_dev *src, const struct bc_span *spans, size_t nr,
		       const struct blkcopy_dev *dst, uint64_t dst_off, unsigned int flags)
{
	return !(flags & BLKCOPY_BUFFERED) && bc_emu_direct_ok(src, dst, spans, nr, dst_off);
}

int bc_check_zoned_direct(const struct blkcopy_dev *src, struct blkcopy_dev *dst, bool direct)
{
	/* The page cache writes back in any order: a zone takes only its write pointer. */
	if (!bc_zoned_seq(dst) || direct)
		return 0;
	snprintf(dst->error, sizeof(dst->error), "a zoned destination is written with O_DIRECT "
		 "only (no BLKCOPY_BUFFERED; every range aligned to %u bytes)",
		 src->dio_align > dst->dio_align ? src->dio_align : dst->dio_align);
	return -EINVAL;
}

static void free_leg(struct bc_leg *j)
{
	for (uint32_t i = 0; i < j->nr_lanes; i++)
		bc_lane_free(j->lanes[i]);
	if (j->epfd >= 0)
		close(j->epfd);
	if (j->queues_fd >= 0)
		close(j->queues_fd);
	if (j->kick >= 0)
		close(j->kick);
	if (j->timer >= 0)
		close(j->timer);
	bc_emu_destroy(j->emu);
	bc_emu_destroy(j->verify);
	free(j->emu_group);
	free(j->spans);
	free(j);
}

static int epoll_add(int epfd, int fd)
{
	struct epoll_event ev = { .events = EPOLLIN, .data.fd = fd };

	return epoll_ctl(epfd, EPOLL_CTL_ADD, fd, &ev) ? -errno : 0;
}

/* The job's descriptor wakes its poller: there is work that needs no completion to go. */
static void kick(struct bc_leg *j)
{
	const uint64_t one = 1;

	if (write(j->kick, &one, sizeof(one)) < 0 && errno != EAGAIN)
		return;		/* the counter is full: it is readable anyway */
}

static void unkick(struct bc_leg *j)
{
	uint64_t v;

	if (read(j->kick, &v, sizeof(v)) < 0 && errno != EAGAIN)
		return;		/* nothing to drain */
}

int bc_leg_submit(const struct bc_leg_args *a, struct bc_leg **legp)
{
	const struct blkcopy_opts o = *a->opts;
	struct blkcopy_dev *src = a->src, *dst = a->dsts[0].dev;
	const uint64_t dst_off = a->dsts[0].offset;
	const uint64_t total = a->total;
	struct bc_leg *j;
	ssize_t n;
	int ret;

	j = calloc(1, sizeof(*j));
	if (!j)
		return -ENOMEM;
	*j = (struct bc_leg){
		.src = src,
		.dst = dst,
		.nr_fanout = a->nr_dsts - 1,
		.dst_off = dst_off,
		.total = total,
		.flags = o.flags,
		.queue_depth = o.queue_depth,
		.native_min = o.native_min,
		/* A fan-out is emulated whole: its destinations share every read. */
		.try_native = a->nr_dsts == 1 && bc_native_allowed(src, dst, o.flags),
		.stacked = bc_is_stacked(src) || bc_is_stacked(dst),
		.rate = a->rate,
		.epfd = -1,
		.queues_fd = -1,
		.kick = -1,
		.timer = -1,
	};
	memcpy(j->fanout, a->dsts + 1, j->nr_fanout * sizeof(*j->fanout));
	for (size_t k = 0; k < BLKCOPY_MAX_TARGETS; k++)
		j->lost[k] = UINT64_MAX;
	bc_wm_init(&j->wm, dst_off, total, j->stacked);
	n = bc_coalesce(a->ranges, a->nr, &j->spans);
	if (n < 0) {
		free(j);
		return (int)n;
	}
	j->nr_spans = (size_t)n;
	bool direct = bc_emulate_direct(src, j->spans, j->nr_spans, dst, dst_off, o.flags);
	for (size_t k = 0; k < j->nr_fanout; k++)
		direct = direct && bc_emulate_direct(src, j->spans, j->nr_spans, j->fanout[k].dev,
						     j->fanout[k].offset, o.flags);
	ret = bc_check_zoned_direct(src, dst, direct);
	if (ret)
		goto fail;
	if (o.flags & BLKCOPY_NOEMULATION) {
		ret = bc_check_all_native(src, j->spans, j->nr_spans, dst, dst_off, o.flags);
		if (ret)
			goto fail;
	} else if (j->try_native && bc_zoned_seq(dst)) {
		char why[256];

		/*
		 * Native pieces and emulated ones would race for the same zone's
		 * write pointer: onto zones, all native or all emulated.
		 */
		j->try_native = !bc_plan_all_native(src, j->spans, j->nr_spans, dst, dst_off,
						    o.flags, why, sizeof(why));
	}

	j->emu_params = (struct bc_emu_params){
		.queue_depth = o.queue_depth,
		.max_inflight = o.max_inflight,
		.chunk_size = o.chunk_size,
		.expected_bytes = total,
		.direct = direct,
		.zone_size = bc_zone_boundary(dst),
		.rate = j->rate,
		.fanout = j->fanout,
		.nr_fanout = j->nr_fanout,
		.dst_off = dst_off,
		.memory = a->memory,
	};
	ret = bc_emu_create(src, dst, &j->emu_params, &j->emu);
	if (ret)
		goto fail;
	/* One descriptor for callers' poll loops: emulation, every native queue, the kick. */
	j->epfd = epoll_create1(EPOLL_CLOEXEC);
	j->queues_fd = epoll_create1(EPOLL_CLOEXEC);
	j->kick = eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
	j->timer = timerfd_create(CLOCK_MONOTONIC, TFD_CLOEXEC | TFD_NONBLOCK);
	if (j->epfd < 0 || j->queues_fd < 0 || j->kick < 0 || j->timer < 0) {
		ret = -errno;
		goto fail;
	}
	ret = epoll_add(j->epfd, bc_emu_fd(j->emu));
	if (!ret)
		ret = epoll_add(j->epfd, j->queues_fd);
	if (!ret)
		ret = epoll_add(j->epfd, j->kick);
	if (!ret)
		ret = epoll_add(j->epfd, j->timer);
	if (ret)
		goto fail;
	j->verified_ms = bc_now_ms();
	ret = bc_plan_start(j);
	if (ret < 0)
		goto fail;
	src->jobs++;
	dst->jobs++;
	for (size_t k = 0; k < j->nr_fanout; k++)
		j->fanout[k].dev->jobs++;
	kick(j);	/* the first I/O goes out at the first wait */
	*legp = j;
	return 0;
fail:
	free_leg(j);
	return ret;
}

/* ------------------------------------------------------------------------ */
/* The event loop                                                           */

/* Re-read the tables under both ends: 0 while they are as the plan mapped them. */
static int verify_tables(struct bc_leg *j)
{
	int ret = bc_layers_verify(j->src);

	if (!ret)
		ret = bc_layers_verify(j->dst);
	j->verified_ms = bc_now_ms();
	if (!ret)
		bc_wm_verified(&j->wm);
	return ret;
}

/* Move the job along without blocking. */
static void step(struct bc_leg *j)
{
	bc_native_reap(j, false);
	bc_plan_more(j);
	if (j->stacked && !j->error && bc_native_work(j) &&
	    bc_now_ms() - j->verified_ms >= VERIFY_MS) {
		int ret = verify_tables(j);

		if (ret) {
			/* A table under either end changed or was suspended: nothing unchecked counts. */
			bc_wm_stale(&j->wm);
			bc_plan_stop(j, ret);
			return;
		}
	}
	bc_native_issue(j);
	bc_native_reap(j, false);
}

/* The rate limit holds work back: how long until more may go (0: it does not). */
static int throttled_ms(const struct bc_leg *j)
{
	return bc_rate_wait_ms(j->rate, bc_now_ns());
}

/*
 * Block until emulation or a native queue has a completion, a signal, or
 * @timeout_ms.  -EINTR for a signal.  The wait is the emulation ring's,
 * polling the queues too: see bc_emu_wait_with().
 */
static int wait_any(struct bc_leg *j, int timeout_ms)
{
	/*
	 * A lane the piece policy holds back waits for emulation, which it
	 * measures; one the rate limit holds back, for the time it says.
	 */
	if (bc_native_queued(j) || bc_native_waiting(j) || throttled_ms(j))
		return bc_emu_wait_with(j->emu, j->queues_fd, timeout_ms);
	bc_native_reap(j, true);
	return 0;
}

/* Destination @k of the leg: its device and offset. */
static struct blkcopy_target leg_dst(const struct bc_leg *j, size_t k)
{
	return k ? j->fanout[k - 1] : (struct blkcopy_target){ .dev = j->dst, .offset = j->dst_off };
}

static size_t nr_dsts(const struct bc_leg *j)
{
	return 1 + j->nr_fanout;
}

/* Destination @k failed at the end (flush, verification): its first such error counts. */
static void end_fail(struct bc_leg *j, size_t k, int err)
{
	if (!j->end_error[k])
		j->end_error[k] = err;
}

/* BLKCOPY_VERIFY: the destinations read back against the source, as emulation reads them. */
static int verify_start(struct bc_leg *j)
{
	struct bc_emu_params ep = j->emu_params;
	int ret;

	/*
	 * Read back what the devices hold, not the page cache: written back
	 * (also without BLKCOPY_SYNC) and the range's cached pages dropped.
	 */
	for (size_t k = 0; k < nr_dsts(j); k++) {
		const struct blkcopy_target t = leg_dst(j, k);

		ret = bc_dev_flush(t.dev);
		if (ret)
			end_fail(j, k, ret);
		else if (t.dev->transport->invalidate)
			t.dev->transport->invalidate(t.dev, t.offset, j->total);
	}
	ep.verify = true;
	ep.zone_size = 0;	/* reads go in any order */
	ep.memory = NULL;	/* the CPU compares: host memory, also after a P2P copy */
	ret = bc_emu_create(j->src, j->dst, &ep, &j->verify);
	if (!ret)
		ret = epoll_add(j->epfd, bc_emu_fd(j->verify));
	if (!ret)
		ret = bc_emu_add(j->verify, j->spans, j->nr_spans, j->dst_off, false);
	return ret;
}

/* Verification is over: a difference is an error, and nothing from it on counts. */
static void verify_end(struct bc_leg *j)
{
	if (!j->error && j->cancelled)
		j->error = -ECANCELED;
	if (!j->error)
		j->error = bc_emu_error(j->verify);
	for (size_t k = 0; k < nr_dsts(j); k++) {
		const uint64_t mismatch = bc_emu_dst_mismatch(j->verify, (uint32_t)k);
		uint64_t done, low;
		int err;

		bc_emu_dst_state(j->verify, (uint32_t)k, &done, &low, &err);
		if (mismatch != UINT64_MAX) {
			j->lost[k] = mismatch;
			end_fail(j, k, -EILSEQ);
		}
		if (err)
			end_fail(j, k, err);
	}
	j->finished = true;
}

/* The copy is done: final checks, then verification when asked (the leg finishes after it). */
static void finish_up(struct bc_leg *j)
{
	if (j->verify) {
		verify_end(j);
		return;
	}
	/* The engine's own error; a destination's write error is that destination's. */
	if (!j->error)
		j->error = bc_emu_error(j->emu);
	if (!j->error && j->cancelled)
		j->error = -ECANCELED;
	/* Native bytes count only once a table check after them has passed. */
	if (j->native_started && j->stacked && !j->wm.stale) {
		int ret = verify_tables(j);

		if (ret) {
			bc_wm_stale(&j->wm);
			if (!j->error)
				j->error = ret;
		}
	}
	bc_native_invalidate(j);
	if (!j->error && (j->flags & BLKCOPY_SYNC)) {
		for (size_t k = 0; k < nr_dsts(j); k++) {
			const int ret = bc_dev_flush(leg_dst(j, k).dev);

			if (ret)
				end_fail(j, k, ret);
		}
	}
	if (!j->error && (j->flags & BLKCOPY_VERIFY)) {
		int ret = verify_start(j);

		if (!ret)
			return;
		j->error = ret;
	}
	j->finished = true;
}

/* The engine at work: the copy's, or once it is done, verification's. */
static struct bc_emu *active_emu(const struct bc_leg *j)
{
	return j->verify ? j->verify : j->emu;
}

/* Work that can go without waiting for a completion: the descriptor must say so. */
static bool ready_now(const struct bc_leg *j)
{
	return bc_native_ready(j) || bc_plan_ready(j) || (j->cancelled && !j->error);
}

/* A poller of the job's descriptor must wake when the rate lets more go. */
static void arm_timer(struct bc_leg *j, int ms)
{
	struct itimerspec its = { .it_value = { .tv_sec = ms / 1000,
						 .tv_nsec = (long)(ms % 1000) * 1000000 + 1 } };
	uint64_t n;

	if (read(j->timer, &n, sizeof(n)) < 0 && errno != EAGAIN)
		return;		/* nothing expired: the setting below still holds */
	timerfd_settime(j->timer, 0, &its, NULL);
}

int bc_leg_wait(struct bc_leg *j, int timeout_ms)
{
	const int64_t deadline = timeout_ms > 0 ? bc_now_ms() + timeout_ms : 0;

	unkick(j);
	while (!j->finished) {
		int wait = timeout_ms;

		if (j->cancelled && !j->error) {
			bc_plan_stop(j, -ECANCELED);
			if (j->verify)
				bc_emu_stop(j->verify, -ECANCELED);
		}
		step(j);
		if (timeout_ms > 0) {
			int64_t left = deadline - bc_now_ms();
			wait = left > 0 ? (int)left : 0;
		}
		/* Held back by the rate limit, nothing may complete: wake when it lets more go. */
		const int held = throttled_ms(j);
		if (held && (wait < 0 || held < wait))
			wait = held;

		const bool busy = bc_native_active(j) || bc_plan_ready(j);
		const int ret = bc_emu_run(active_emu(j), busy ? 0 : wait);
		const bool idle = ret > 0 || (ret < 0 && ret != -EINTR);

		if (ret < 0 && ret != -EINTR)
			bc_plan_stop(j, ret);	/* the ring failed: finish with its error */
		if (idle && !bc_native_active(j) && j->planned_all) {
			finish_up(j);
			if (j->finished)
				break;
			continue;	/* verification starts */
		}
		/* Back to the caller on a signal: it may want to react (cancel). */
		if (ret == -EINTR || timeout_ms == 0 ||
		    (timeout_ms > 0 && bc_now_ms() >= deadline))
			break;
		if (ready_now(j))
			continue;
		if (bc_native_active(j)) {
			const int err = wait_any(j, wait);

			if (err == -EINTR)
				break;
			if (err)
				bc_plan_stop(j, err);	/* the ring failed */
		}
	}
	if (j->finished)
		return 1;
	if (ready_now(j))
		kick(j);
	else if (throttled_ms(j))
		arm_timer(j, throttled_ms(j));
	return 0;
}

int bc_leg_block(struct bc_leg *j, int fd, int timeout_ms)
{
	const int ret = bc_emu_wait_with(active_emu(j), fd, timeout_ms);

	if (ret && ret != -EINTR)
		bc_plan_stop(j, ret);	/* the ring failed */
	return ret == -EINTR ? ret : 0;
}

bool bc_leg_finished(const struct bc_leg *j)
{
	return j->finished;
}

void bc_leg_progress(const struct bc_leg *j, size_t k, struct blkcopy_progress *p)
{
	uint64_t edone, low;
	int err;

	bc_emu_dst_state(j->emu, (uint32_t)k, &edone, &low, &err);
	if (!err)
		err = j->end_error[k];
	if (j->error)
		err = j->error;
	/* Only the first destination can have native bytes: a fan-out is emulated whole. */
	struct bc_watermark fan;
	const struct bc_watermark *w = &j->wm;
	if (k) {
		bc_wm_init(&fan, j->fanout[k - 1].offset, j->total, false);
		w = &fan;
	} else {
		low = bc_min_u64(low, bc_plan_pending_low(j));
	}
	low = bc_min_u64(low, j->lost[k]);
	*p = (struct blkcopy_progress){
		.total = j->total,
		.done = w->native_done + edone,
		.committed = bc_wm_committed(w, low),
		.native_bytes = w->native_done,
		.emulated_bytes = edone,
		.error = err,
		.finished = j->finished,
	};
	memcpy(p->method_bytes, w->method_bytes, sizeof(p->method_bytes));
	p->method_bytes[BLKCOPY_METHOD_EMULATE] = edone;
}

void bc_leg_kick(struct bc_leg *j)
{
	kick(j);
}

void bc_leg_stats(const struct bc_leg *j, size_t k, struct blkcopy_stats *st)
{
	struct bc_emu_rate er;

	*st = (struct blkcopy_stats){ .mismatch_offset = UINT64_MAX };
	memcpy(st->emulated, j->emulated, sizeof(st->emulated));
	bc_emu_rate(j->emu, &er);
	st->emulated_done = er.bytes;
	st->emulated_busy_ns = er.busy_ns;
	if (j->emu_params.memory) {
		st->p2p_bytes = er.bytes;
		snprintf(st->p2p_pci, sizeof(st->p2p_pci), "%s", j->emu_params.memory->name);
	}
	if (j->verify) {
		uint64_t low;
		int err;

		bc_emu_dst_state(j->verify, (uint32_t)k, &st->verified_bytes, &low, &err);
		st->mismatch_offset = bc_emu_dst_mismatch(j->verify, (uint32_t)k);
	}
	for (uint32_t i = 0; i < j->nr_lanes; i++) {
		const struct bc_policy *p = &j->lanes[i]->policy;
		bool learnt;
		const uint64_t thr = bc_policy_threshold(p, &er, &learnt);

		if (thr > st->native_min) {
			st->native_min = thr;
			st->native_min_learnt = learnt;
		}
		st->native_commands += p->commands;
		st->native_ns += p->ns;
		st->native_bytes += p->bytes;
	}
}

void bc_leg_cancel(struct bc_leg *j)
{
	j->cancelled = true;
	kick(j);
}

int bc_leg_fd(const struct bc_leg *j)
{
	return j->epfd;
}

void bc_leg_free(struct bc_leg *j)
{
	j->src->jobs--;
	j->dst->jobs--;
	for (size_t k = 0; k < j->nr_fanout; k++)
		j->fanout[k].dev->jobs--;
	free_leg(j);
}
