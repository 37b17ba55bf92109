/* SPDX-License-Identifier: MIT */
/*
 * A job: the caller's handle on a request in flight, to one destination or
 * to several.  Legs (leg.c) carry it: one per destination that may go
 * native, each planned on its own, and one for all the destinations that
 * are emulated whole, which then share each read of the source.  The job
 * validates every destination before any leg exists, drives the legs, and
 * adds them up.
 */
#include <errno.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <unistd.h>

#include "leg.h"
#include "memory.h"
#include "p2p.h"
#include "plan.h"
#include "request.h"
#include "util.h"
#include "zone.h"

struct blkcopy_job {
	struct bc_leg *legs[BLKCOPY_MAX_TARGETS];
	size_t nr_legs;
	/* Target i is destination where[i].k of legs[where[i].leg]. */
	struct target_place {
		uint8_t leg, k;
	} where[BLKCOPY_MAX_TARGETS];
	size_t nr_targets;
	bool listening[BLKCOPY_MAX_TARGETS];	/* leg i's descriptor is in epfd */
	struct bc_rate rate;	/* every leg's */
	int epfd;		/* several legs: their descriptors (-1: one leg, its own) */
	struct bc_p2p *p2p;	/* BLKCOPY_P2P: the memory */
	struct bc_memory p2p_share;	/* each leg's part of it */
};

static void free_job(struct blkcopy_job *job)
{
	for (size_t i = 0; i < job->nr_legs; i++)
		bc_leg_free(job->legs[i]);
	if (job->epfd >= 0)
		close(job->epfd);
	bc_p2p_close(job->p2p);
	free(job);
}

/* Every target is valid on its own, and no two share a byte: before any leg exists. */
static int validate_targets(struct blkcopy_dev *src, const struct blkcopy_range *ranges, size_t nr,
			    const struct blkcopy_target *t, size_t nr_targets, unsigned int flags,
			    uint64_t *totalp)
{
	uint64_t total = 0;
	int ret;

	for (size_t i = 0; i < nr_targets; i++) {
		ret = bc_refresh_pair(src, t[i].dev);
		if (!ret)
			ret = bc_validate(src, ranges, nr, t[i].dev, t[i].offset, flags, &total, NULL);
		if (!ret)
			ret = bc_zone_validate(t[i].dev, t[i].offset, total);
		if (ret)
			return ret;
	}
	for (size_t i = 0; i < nr_targets; i++) {
		for (size_t k = i + 1; k < nr_targets; k++) {
			ret = bc_validate_disjoint(t[i].dev, t[i].offset, t[k].dev, t[k].offset, total);
			if (ret) {
				snprintf(t[k].dev->error, sizeof(t[k].dev->error),
					 "destination %zu overlaps destination %zu", k + 1, i + 1);
				return ret;
			}
		}
	}
	*totalp = total;
	return 0;
}

/*
 * Which targets share one leg (@fan): those emulated whole (no native copy
 * between the devices, or none allowed), not zoned (a zone takes one
 * writer in order), and emulated the same way (O_DIRECT or not) as the
 * first of them.
 */
static void fan_out(struct blkcopy_dev *src, const struct bc_span *spans, size_t nr_spans,
		      const struct blkcopy_target *t, size_t nr_targets, unsigned int flags,
		      bool fan[])
{
	size_t n = 0;
	bool direct = false;

	/* BLKCOPY_NOEMULATION: each target refuses with its own reason. */
	for (size_t i = 0; i < nr_targets && !(flags & BLKCOPY_NOEMULATION) && nr_targets > 1; i++) {
		const bool d = bc_emulate_direct(src, spans, nr_spans, t[i].dev, t[i].offset, flags);

		fan[i] = !bc_zoned_seq(t[i].dev) && (!n || d == direct) &&
			 bc_plan_none_native(src, spans, nr_spans, t[i].dev, t[i].offset, flags);
		if (fan[i] && !n++)
			direct = d;
	}
}

/*
 * BLKCOPY_P2P: the memory, checked against every end, shared evenly by
 * the @nr_legs legs (the engines map their buffers when they start).
 */
static int setup_p2p(struct blkcopy_job *job, struct blkcopy_dev *src, const struct bc_span *spans,
		     size_t nr_spans, const struct blkcopy_target *t, size_t nr_targets,
		     const struct blkcopy_opts *o, size_t nr_legs)
{
	for (size_t i = 0; i < nr_targets; i++) {
		if (!bc_emulate_direct(src, spans, nr_spans, t[i].dev, t[i].offset, o->flags)) {
			snprintf(t[i].dev->error, sizeof(t[i].dev->error), "P2P memory is reached by "
				 "O_DIRECT only: every offset and length aligned to %u bytes",
				 src->dio_align > t[i].dev->dio_align ? src->dio_align
								      : t[i].dev->dio_align);
			return -EINVAL;
		}
	}
	int ret = bc_p2p_open(src, spans, nr_spans, t, nr_targets, o->p2p_memory, &job->p2p);
	if (ret)
		return ret;
	job->p2p_share = job->p2p->memory;
	job->p2p_share.limit /= nr_legs;
	if (job->p2p_share.limit < o->chunk_size) {
		snprintf(t[0].dev->error, sizeof(t[0].dev->error), "%" PRIu64 " bytes of P2P memory "
			 "are free on %s: each of %zu parts of the job needs a chunk (%" PRIu64
			 " bytes)", job->p2p->memory.limit, job->p2p->memory.name, nr_legs,
			 o->chunk_size);
		return -ENOMEM;
	}
	return 0;
}

static int add_leg(struct blkcopy_job *job, const struct bc_leg_args *a, const size_t *targets)
{
	struct bc_leg *leg;
	const int ret = bc_leg_submit(a, &leg);

	if (ret)
		return ret;
	for (size_t k = 0; k < a->nr_dsts; k++)
		job->where[targets[k]] = (struct target_place){ (uint8_t)job->nr_legs, (uint8_t)k };
	job->legs[job->nr_legs++] = leg;
	return 0;
}

/* Several legs: one descriptor for the caller, readable when any leg's is. */
static int listen_legs(struct blkcopy_job *job)
{
	if (job->nr_legs == 1)
		return 0;
	job->epfd = epoll_create1(EPOLL_CLOEXEC);
	if (job->epfd < 0)
		return -errno;
	for (size_t i = 0; i < job->nr_legs; i++) {
		struct epoll_event ev = { .events = EPOLLIN, .data.u64 = i };

		if (epoll_ctl(job->epfd, EPOLL_CTL_ADD, bc_leg_fd(job->legs[i]), &ev))
			return -errno;
		job->listening[i] = true;
	}
	return 0;
}

int blkcopy_job_submit_multi(struct blkcopy_dev *src, const struct blkcopy_range *ranges, size_t nr,
			     const struct blkcopy_target *targets, size_t nr_targets,
			     const struct blkcopy_opts *opts, struct blkcopy_job **jobp)
{
	struct blkcopy_target fan_dsts[BLKCOPY_MAX_TARGETS];
	size_t fan_targets[BLKCOPY_MAX_TARGETS], nr_fan = 0;
	bool fan[BLKCOPY_MAX_TARGETS] = { false };
	struct bc_span *spans = NULL;
	struct blkcopy_job *job;
	struct blkcopy_opts o;
	uint64_t total;
	int ret;

	if (!jobp || !src || !targets || !nr_targets || bc_resolve_opts(opts, &o))
		return -EINVAL;
	if (nr_targets > BLKCOPY_MAX_TARGETS)
		return -E2BIG;
	for (size_t i = 0; i < nr_targets; i++)
		if (!targets[i].dev)
			return -EINVAL;
	ret = validate_targets(src, ranges, nr, targets, nr_targets, o.flags, &total);
	if (ret)
		return ret;
	const ssize_t nr_spans = bc_coalesce(ranges, nr, &spans);
	if (nr_spans < 0)
		return (int)nr_spans;
	fan_out(src, spans, (size_t)nr_spans, targets, nr_targets, o.flags, fan);

	job = calloc(1, sizeof(*job));
	if (!job) {
		free(spans);
		return -ENOMEM;
	}
	job->nr_targets = nr_targets;
	job->epfd = -1;
	bc_rate_set(&job->rate, o.rate, bc_now_ns());
	if (o.flags & BLKCOPY_P2P) {
		size_t nr_legs = 0;
		bool any_fan = false;

		for (size_t i = 0; i < nr_targets; i++) {
			nr_legs += !fan[i];
			any_fan = any_fan || fan[i];
		}
		ret = setup_p2p(job, src, spans, (size_t)nr_spans, targets, nr_targets, &o,
				nr_legs + any_fan);
	}
	free(spans);
	if (ret) {
		free_job(job);
		return ret;
	}

	struct bc_leg_args a = { .src = src, .ranges = ranges, .nr = nr, .total = total,
				 .opts = &o, .rate = &job->rate,
				 .memory = job->p2p ? &job->p2p_share : NULL };
	for (size_t i = 0; i < nr_targets && !ret; i++) {
		if (fan[i]) {
			fan_targets[nr_fan] = i;
			fan_dsts[nr_fan++] = targets[i];
			continue;
		}
		a.dsts = &targets[i];
		a.nr_dsts = 1;
		ret = add_leg(job, &a, &i);
	}
	if (!ret && nr_fan) {
		a.dsts = fan_dsts;
		a.nr_dsts = nr_fan;
		ret = add_leg(job, &a, fan_targets);
	}
	if (!ret)
		ret = listen_legs(job);
	if (ret) {
		free_job(job);	/* no leg ran: nothing was written */
		return ret;
	}
	*jobp = job;
	return 0;
}

int blkcopy_job_submit(struct blkcopy_dev *src, const struct blkcopy_range *ranges, size_t nr,
		       struct blkcopy_dev *dst, uint64_t dst_off,
		       const struct blkcopy_opts *opts, struct blkcopy_job **jobp)
{
	const struct blkcopy_target t = { .dev = dst, .offset = dst_off };

	return blkcopy_job_submit_multi(src, ranges, nr, &t, 1, opts, jobp);
}

/*
 * Move every leg along without blocking; the first still running, or NULL.
 * A finished leg leaves the job's descriptor: what its ring still holds
 * (a poll it armed for the job) must not keep the descriptor readable.
 */
static struct bc_leg *step_legs(struct blkcopy_job *job)
{
	struct bc_leg *running = NULL;

	for (size_t i = 0; i < job->nr_legs; i++) {
		struct bc_leg *leg = job->legs[i];

		if (!bc_leg_finished(leg))
			bc_leg_wait(leg, 0);
		if (!bc_leg_finished(leg)) {
			if (!running)
				running = leg;
		} else if (job->listening[i]) {
			epoll_ctl(job->epfd, EPOLL_CTL_DEL, bc_leg_fd(leg), NULL);
			job->listening[i] = false;
		}
	}
	return running;
}

int blkcopy_job_wait(struct blkcopy_job *job, int timeout_ms)
{
	const int64_t deadline = timeout_ms > 0 ? bc_now_ms() + timeout_ms : 0;

	if (job->nr_legs == 1)
		return bc_leg_wait(job->legs[0], timeout_ms);
	for (;;) {
		struct bc_leg *running = step_legs(job);
		int wait = timeout_ms;

		if (!running)
			return 1;
		if (timeout_ms == 0)
			return 0;
		if (timeout_ms > 0) {
			const int64_t left = deadline - bc_now_ms();

			if (left <= 0)
				return 0;
			wait = (int)left;
		}
		/*
		 * In a ring's own wait, so that a signal, and not the task work
		 * of another ring's completion, is what returns early.
		 */
		if (bc_leg_block(running, job->epfd, wait) == -EINTR)
			return 0;
	}
}

int blkcopy_job_poll(struct blkcopy_job *job)
{
	return blkcopy_job_wait(job, 0);
}

int blkcopy_job_target_progress(const struct blkcopy_job *job, size_t i, struct blkcopy_progress *p)
{
	if (!job || !p || i >= job->nr_targets)
		return -EINVAL;
	bc_leg_progress(job->legs[job->where[i].leg], job->where[i].k, p);
	return 0;
}

void blkcopy_job_progress(const struct blkcopy_job *job, struct blkcopy_progress *p)
{
	blkcopy_job_target_progress(job, 0, p);
	for (size_t i = 1; i < job->nr_targets; i++) {
		struct blkcopy_progress t;

		blkcopy_job_target_progress(job, i, &t);
		p->total += t.total;
		p->done += t.done;
		p->committed = bc_min_u64(p->committed, t.committed);
		p->native_bytes += t.native_bytes;
		p->emulated_bytes += t.emulated_bytes;
		if (!p->error)
			p->error = t.error;
		p->finished = p->finished && t.finished;
		for (int m = 0; m < BLKCOPY_METHOD_MAX; m++)
			p->method_bytes[m] += t.method_bytes[m];
	}
}

int blkcopy_job_set_rate(struct blkcopy_job *job, uint64_t bytes_per_s)
{
	if (!job)
		return -EINVAL;
	bc_rate_set(&job->rate, bytes_per_s, bc_now_ns());
	for (size_t i = 0; i < job->nr_legs; i++)
		bc_leg_kick(job->legs[i]);	/* what the old limit held back may go now */
	return 0;
}

/* A caller built against an older header knows less; a newer one gets zeros past ours. */
static void copy_stats(const struct blkcopy_stats *st, struct blkcopy_stats *out, size_t size)
{
	if (size > sizeof(*st)) {
		memset((char *)out + sizeof(*st), 0, size - sizeof(*st));
		size = sizeof(*st);
	}
	memcpy(out, st, size);
}

int blkcopy_job_target_stats(const struct blkcopy_job *job, size_t i, struct blkcopy_stats *out,
			     size_t size)
{
	struct blkcopy_stats st;

	if (!job || !out || !size || i >= job->nr_targets)
		return -EINVAL;
	bc_leg_stats(job->legs[job->where[i].leg], job->where[i].k, &st);
	copy_stats(&st, out, size);
	return 0;
}

int blkcopy_job_stats(const struct blkcopy_job *job, struct blkcopy_stats *out, size_t size)
{
	struct blkcopy_stats sum = { .mismatch_offset = UINT64_MAX };

	if (!job || !out || !size)
		return -EINVAL;
	/* Each leg's figures once; verification per target. */
	for (size_t i = 0; i < job->nr_targets; i++) {
		struct blkcopy_stats st;

		bc_leg_stats(job->legs[job->where[i].leg], job->where[i].k, &st);
		sum.verified_bytes += st.verified_bytes;
		sum.mismatch_offset = bc_min_u64(sum.mismatch_offset, st.mismatch_offset);
		if (job->where[i].k)
			continue;
		for (int r = 0; r < BLKCOPY_EMULATED_MAX; r++)
			sum.emulated[r] += st.emulated[r];
		if (st.native_min > sum.native_min) {
			sum.native_min = st.native_min;
			sum.native_min_learnt = st.native_min_learnt;
		}
		sum.native_commands += st.native_commands;
		sum.native_ns += st.native_ns;
		sum.native_bytes += st.native_bytes;
		sum.emulated_done += st.emulated_done;
		sum.emulated_busy_ns += st.emulated_busy_ns;
		sum.p2p_bytes += st.p2p_bytes;
		memcpy(sum.p2p_pci, st.p2p_pci, sizeof(sum.p2p_pci));
	}
	copy_stats(&sum, out, size);
	return 0;
}

void blkcopy_job_cancel(struct blkcopy_job *job)
{
	for (size_t i = 0; i < job->nr_legs; i++)
		bc_leg_cancel(job->legs[i]);
}

int blkcopy_job_fd(const struct blkcopy_job *job)
{
	return job->nr_legs == 1 ? bc_leg_fd(job->legs[0]) : job->epfd;
}

ssize_t blkcopy_job_finish(struct blkcopy_job *job, struct blkcopy_progress *res)
{
	struct blkcopy_progress p;
	ssize_t ret;

	if (!job)
		return -EINVAL;
	while (!blkcopy_job_wait(job, -1))
		;
	/* The request's length when every target has it, else the first failure. */
	ret = -EIO;
	for (size_t i = 0; i < job->nr_targets; i++) {
		blkcopy_job_target_progress(job, i, &p);
		if (p.error) {
			ret = p.error;
			break;
		}
		ret = (ssize_t)p.total;
	}
	if (res)
		blkcopy_job_progress(job, res);
	free_job(job);
	return ret;
}
