/* SPDX-License-Identifier: MIT */
/*
 * A job's life: validate and plan at submit, then an event loop that moves
 * planning, native execution and emulation along, until everything is done
 * or the copy stopped; the final checks (tables, caches, durability) at the
 * end.  The job has no thread: the caller drives it through
 * blkcopy_job_poll()/_wait(), or polls blkcopy_job_fd().
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

static int resolve_opts(const struct blkcopy_opts *in, struct blkcopy_opts *out)
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

static void free_job(struct blkcopy_job *j)
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
static void kick(struct blkcopy_job *j)
{
	const uint64_t one = 1;

	if (write(j->kick, &one, sizeof(one)) < 0 && errno != EAGAIN)
		return;		/* the counter is full: it is readable anyway */
}

static void unkick(struct blkcopy_job *j)
{
	uint64_t v;

	if (read(j->kick, &v, sizeof(v)) < 0 && errno != EAGAIN)
		return;		/* nothing to drain */
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
	ret = bc_refresh_pair(src, dst);
	if (ret)
		return ret;
	ret = bc_validate(src, ranges, nr, dst, dst_off, o.flags, &total, NULL);
	if (!ret)
		ret = bc_zone_validate(dst, dst_off, total);
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
		.queue_depth = o.queue_depth,
		.native_min = o.native_min,
		.try_native = bc_native_allowed(src, dst, o.flags),
		.stacked = bc_is_stacked(src) || bc_is_stacked(dst),
		.epfd = -1,
		.queues_fd = -1,
		.kick = -1,
		.timer = -1,
	};
	bc_rate_set(&j->rate, o.rate, bc_now_ns());
	bc_wm_init(&j->wm, dst_off, total, j->stacked);
	n = bc_coalesce(ranges, nr, &j->spans);
	if (n < 0) {
		free(j);
		return (int)n;
	}
	j->nr_spans = (size_t)n;
	const bool direct = bc_emulate_direct(src, j->spans, j->nr_spans, dst, dst_off, o.flags);
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
		.rate = &j->rate,
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
	kick(j);	/* the first I/O goes out at the first poll */
	*jobp = j;
	return 0;
fail:
	free_job(j);
	return ret;
}

/* ------------------------------------------------------------------------ */
/* The event loop                                                           */

/* Re-read the tables under both ends: 0 while they are as the plan mapped them. */
static int verify_tables(struct blkcopy_job *j)
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
static void step(struct blkcopy_job *j)
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
static int throttled_ms(const struct blkcopy_job *j)
{
	return bc_rate_wait_ms(&j->rate, bc_now_ns());
}

/*
 * Block until emulation or a native queue has a completion, a signal, or
 * @timeout_ms.  -EINTR for a signal.  The wait is the emulation ring's,
 * polling the queues too: see bc_emu_wait_with().
 */
static int wait_any(struct blkcopy_job *j, int timeout_ms)
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

/* BLKCOPY_VERIFY: the destination read back against the source, as emulation reads them. */
static int verify_start(struct blkcopy_job *j)
{
	struct bc_emu_params ep = j->emu_params;
	int ret;

	/*
	 * Read back what the device holds, not the page cache: written back
	 * (also without BLKCOPY_SYNC) and the range's cached pages dropped.
	 */
	ret = bc_dev_flush(j->dst);
	if (ret)
		return ret;
	if (j->dst->transport->invalidate)
		j->dst->transport->invalidate(j->dst, j->dst_off, j->total);
	ep.verify = true;
	ep.zone_size = 0;	/* reads go in any order */
	ret = bc_emu_create(j->src, j->dst, &ep, &j->verify);
	if (!ret)
		ret = epoll_add(j->epfd, bc_emu_fd(j->verify));
	if (!ret)
		ret = bc_emu_add(j->verify, j->spans, j->nr_spans, j->dst_off, false);
	return ret;
}

/* Verification is over: a difference is an error, and nothing from it on counts. */
static void verify_end(struct blkcopy_job *j)
{
	const uint64_t mismatch = bc_emu_mismatch(j->verify);
	uint64_t done, low;
	int err;

	bc_emu_state(j->verify, &done, &low, &err);
	if (!j->error && j->cancelled)
		j->error = -ECANCELED;
	if (mismatch != UINT64_MAX) {
		bc_wm_lose(&j->wm, mismatch);
		if (!j->error)
			j->error = -EILSEQ;
	}
	if (!j->error && err)
		j->error = err;
	j->finished = true;
}

/* The copy is done: final checks, then verification when asked (the job finishes after it). */
static void finish_up(struct blkcopy_job *j)
{
	uint64_t done, low;
	int err;

	if (j->verify) {
		verify_end(j);
		return;
	}
	bc_emu_state(j->emu, &done, &low, &err);
	if (!j->error && err)
		j->error = err;
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
		int ret = bc_dev_flush(j->dst);

		if (ret)
			j->error = ret;
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
static struct bc_emu *active_emu(const struct blkcopy_job *j)
{
	return j->verify ? j->verify : j->emu;
}

/* Work that can go without waiting for a completion: the descriptor must say so. */
static bool ready_now(const struct blkcopy_job *j)
{
	return bc_native_ready(j) || bc_plan_ready(j) || (j->cancelled && !j->error);
}

/* A poller of the job's descriptor must wake when the rate lets more go. */
static void arm_timer(struct blkcopy_job *j, int ms)
{
	struct itimerspec its = { .it_value = { .tv_sec = ms / 1000,
						 .tv_nsec = (long)(ms % 1000) * 1000000 + 1 } };
	uint64_t n;

	if (read(j->timer, &n, sizeof(n)) < 0 && errno != EAGAIN)
		return;		/* nothing expired: the setting below still holds */
	timerfd_settime(j->timer, 0, &its, NULL);
}

int blkcopy_job_wait(struct blkcopy_job *j, int timeout_ms)
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

int blkcopy_job_poll(struct blkcopy_job *j)
{
	return blkcopy_job_wait(j, 0);
}

void blkcopy_job_progress(const struct blkcopy_job *j, struct blkcopy_progress *p)
{
	uint64_t edone, low;
	int err;

	bc_emu_state(j->emu, &edone, &low, &err);
	low = bc_min_u64(low, bc_plan_pending_low(j));
	*p = (struct blkcopy_progress){
		.total = j->total,
		.done = j->wm.native_done + edone,
		.committed = bc_wm_committed(&j->wm, low),
		.native_bytes = j->wm.native_done,
		.emulated_bytes = edone,
		.error = j->error ? j->error : err,
		.finished = j->finished,
	};
	memcpy(p->method_bytes, j->wm.method_bytes, sizeof(p->method_bytes));
	p->method_bytes[BLKCOPY_METHOD_EMULATE] = edone;
}

int blkcopy_job_set_rate(struct blkcopy_job *j, uint64_t bytes_per_s)
{
	if (!j)
		return -EINVAL;
	bc_rate_set(&j->rate, bytes_per_s, bc_now_ns());
	kick(j);	/* what the old limit held back may go now */
	return 0;
}

int blkcopy_job_stats(const struct blkcopy_job *j, struct blkcopy_stats *out, size_t size)
{
	struct blkcopy_stats st = { 0 };
	struct bc_emu_rate er;

	if (!j || !out || !size)
		return -EINVAL;
	memcpy(st.emulated, j->emulated, sizeof(st.emulated));
	bc_emu_rate(j->emu, &er);
	st.emulated_done = er.bytes;
	st.emulated_busy_ns = er.busy_ns;
	st.mismatch_offset = UINT64_MAX;
	if (j->verify) {
		uint64_t low;
		int err;

		bc_emu_state(j->verify, &st.verified_bytes, &low, &err);
		st.mismatch_offset = bc_emu_mismatch(j->verify);
	}
	for (uint32_t i = 0; i < j->nr_lanes; i++) {
		const struct bc_policy *p = &j->lanes[i]->policy;
		bool learnt;
		const uint64_t thr = bc_policy_threshold(p, &er, &learnt);

		if (thr > st.native_min) {
			st.native_min = thr;
			st.native_min_learnt = learnt;
		}
		st.native_commands += p->commands;
		st.native_ns += p->ns;
		st.native_bytes += p->bytes;
	}
	/* A caller built against an older header knows less; a newer one gets zeros past ours. */
	if (size > sizeof(st)) {
		memset((char *)out + sizeof(st), 0, size - sizeof(st));
		size = sizeof(st);
	}
	memcpy(out, &st, size);
	return 0;
}

void blkcopy_job_cancel(struct blkcopy_job *j)
{
	j->cancelled = true;
	kick(j);
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
