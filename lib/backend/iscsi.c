/* SPDX-License-Identifier: MIT */
/*
 * Native copy by an iSCSI target's copy manager: EXTENDED COPY (LID1) sent
 * through the iSCSI transport's session, within one LU or between LUs of
 * one target, so the data never crosses the network.  Many commands are in
 * flight: a copy manager that takes one segment per command (LIO) would
 * otherwise cost a round trip per source range.  Only with libiscsi.
 */
#include <errno.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/epoll.h>
#include <sys/timerfd.h>
#include <unistd.h>

#include "../backend.h"
#include "../transport/iscsi.h"
#include "../util.h"

/* The copy manager moves a whole piece (up to 256 MiB) before it answers. */
#define XCOPY_TIMEOUT_FACTOR 4

/* A LU reached through the iSCSI transport whose discovery found a copy manager. */
static int iscsi_probe(struct blkcopy_dev *d)
{
	const struct bc_iscsi_lu *s = bc_iscsi_of(d);

	if (!s)
		return -ENODEV;
	snprintf(d->probe_reason, sizeof(d->probe_reason), "%s", s->copy_reason);
	if (!s->copy_manager)
		return -ENODEV;
	bc_scsi_limits(&s->lu, &s->lu, &d->probed);
	return 0;
}

/*
 * The same LU, or two LUs of one target (the IQN names the target wherever
 * it is reached): its copy manager finds both by their designators.
 */
static int iscsi_pair(const struct blkcopy_dev *src, const struct blkcopy_dev *dst,
		      struct blkcopy_limits *lim, char *why, size_t why_size)
{
	const struct bc_iscsi_lu *a = bc_iscsi_of(src), *b = bc_iscsi_of(dst);

	if (!b || dst->backend != &bc_backend_iscsi) {
		snprintf(why, why_size, "iscsi: the other end is not an iSCSI LU with a copy manager");
		return -EOPNOTSUPP;
	}
	if (strcasecmp(a->url.target, b->url.target)) {
		snprintf(why, why_size, "iscsi: LUs of different targets (%.100s and %.100s)",
			 a->url.target, b->url.target);
		return -EOPNOTSUPP;
	}
	if (bc_medium_same(&src->medium, &dst->medium)) {
		/* One designator for two LUN numbers: the copy manager could not tell them apart. */
		if (a->url.lun != b->url.lun) {
			snprintf(why, why_size, "iscsi: LUNs %d and %d report one designator",
				 a->url.lun, b->url.lun);
			return -EOPNOTSUPP;
		}
		bc_scsi_limits(&a->lu, &a->lu, lim);
	} else {
		bc_scsi_limits(&a->lu, &b->lu, lim);
	}
	if (!lim->max_copy_sectors) {
		snprintf(why, why_size, "iscsi: the copy manager cannot address both LUs");
		return -EOPNOTSUPP;
	}
	return 0;
}

/*
 * Many EXTENDED COPY commands in flight: a copy manager that takes one
 * segment per command (LIO) would otherwise cost a network round trip per
 * source range.  The job polls queue_fd: an epoll set of the session's
 * socket and a one-second timer, so that command timeouts are checked even
 * while the target stays silent.
 */
struct xcopy_cmd {
	struct xcopy_queue *q;
	struct scsi_task *task;
	struct iscsi_data list;
	uint32_t tag;
	struct bc_scsi_retry retry;
	uint64_t len;		/* bytes the piece copies */
	bool busy;
};

struct xcopy_queue {
	struct bc_native_queue base;	/* what the core holds */
	struct blkcopy_dev *src, *dst;
	struct bc_iscsi_lu *a, *b;
	bool same;
	int epfd, timerfd;
	uint32_t depth;
	struct xcopy_cmd *cmds;
	struct bc_native_cqe *done;
	uint32_t nr_done;
};

/* The backend's queue around the part the core holds. */
static struct xcopy_queue *xcopy_queue_of(const struct bc_native_queue *nq)
{
	return (struct xcopy_queue *)nq;
}

static int xcopy_send(struct xcopy_cmd *c);

static void xcopy_cb(struct iscsi_context *ctx, int status, void *data, void *priv)
{
	struct xcopy_cmd *c = priv;
	struct xcopy_queue *q = c->q;
	struct scsi_task *task = data ? data : c->task;
	int res;

	q->b->copies--;
	/* A Unit Attention, or a LU in a passing state: ask again (bc_scsi_retry()). */
	long pause = -1;

	if (status == SCSI_STATUS_CHECK_CONDITION && task) {
		const struct bc_scsi_sense s = { .key = (uint8_t)task->sense.key,
						 .asc = (uint8_t)(task->sense.ascq >> 8),
						 .ascq = (uint8_t)task->sense.ascq };

		pause = bc_scsi_retry(&c->retry, &s);
	}
	if (pause >= 0) {
		if (pause)
			usleep((useconds_t)pause);
		scsi_free_scsi_task(task);
		if (!xcopy_send(c))
			return;
		res = -ENOMEM;
	} else {
		res = bc_iscsi_status_errno(q->b, status, task, "EXTENDED COPY", true);
		if (task)
			scsi_free_scsi_task(task);
	}
	if (res)
		memcpy(q->src->error, q->dst->error, sizeof(q->src->error));
	c->task = NULL;
	c->busy = false;
	free(c->list.data);
	c->list.data = NULL;
	q->done[q->nr_done++] = (struct bc_native_cqe){
		.tag = c->tag,
		.result = res,
		.method = BLKCOPY_METHOD_SCSI_XCOPY,
	};
}

static int xcopy_send(struct xcopy_cmd *c)
{
	struct bc_iscsi_lu *b = c->q->b;

	if (b->lost)
		return -ECONNRESET;
	/* The copy manager answers when the whole piece is copied. */
	iscsi_set_timeout(b->ctx, b->timeout_s * XCOPY_TIMEOUT_FACTOR);
	c->task = iscsi_extended_copy_task(b->ctx, b->url.lun, &c->list, xcopy_cb, c);
	iscsi_set_timeout(b->ctx, b->timeout_s);
	if (!c->task)
		return -ENOMEM;
	b->copies++;
	return 0;
}

static void queue_free(struct xcopy_queue *q)
{
	if (!q)
		return;
	if (q->epfd >= 0)
		close(q->epfd);
	if (q->timerfd >= 0)
		close(q->timerfd);
	free(q->cmds);
	free(q->done);
	free(q);
}

static int iscsi_queue_create(struct blkcopy_dev *src, struct blkcopy_dev *dst, uint32_t depth,
			      struct bc_native_queue **qp)
{
	struct xcopy_queue *q = calloc(1, sizeof(*q));
	const struct itimerspec tick = { .it_interval = { 1, 0 }, .it_value = { 1, 0 } };
	struct epoll_event ev = { .events = EPOLLIN };

	if (!q)
		return -ENOMEM;
	*q = (struct xcopy_queue){ .base = { .backend = &bc_backend_iscsi }, .src = src, .dst = dst, .a = bc_iscsi_of(src),
				       .b = bc_iscsi_of(dst),
				       .same = bc_medium_same(&src->medium, &dst->medium),
				       .epfd = -1, .timerfd = -1, .depth = depth };
	q->cmds = calloc(depth, sizeof(*q->cmds));
	q->done = calloc(depth, sizeof(*q->done));
	q->epfd = epoll_create1(EPOLL_CLOEXEC);
	q->timerfd = timerfd_create(CLOCK_MONOTONIC, TFD_NONBLOCK | TFD_CLOEXEC);
	if (!q->cmds || !q->done || q->epfd < 0 || q->timerfd < 0 ||
	    timerfd_settime(q->timerfd, 0, &tick, NULL) ||
	    epoll_ctl(q->epfd, EPOLL_CTL_ADD, q->timerfd, &ev) ||
	    epoll_ctl(q->epfd, EPOLL_CTL_ADD, iscsi_get_fd(q->b->ctx), &ev)) {
		int ret = errno ? -errno : -ENOMEM;

		queue_free(q);
		return ret;
	}
	for (uint32_t i = 0; i < depth; i++)
		q->cmds[i] = (struct xcopy_cmd){ .q = q, .tag = i };
	*qp = &q->base;
	return 0;
}

static int iscsi_queue_submit(struct bc_native_queue *nq, const struct bc_span *segs,
			      const struct bc_piece *piece, uint32_t tag)
{
	struct xcopy_queue *q = xcopy_queue_of(nq);
	const size_t size = bc_scsi_xcopy_list_max(piece->nr_segs);
	struct xcopy_cmd *c = &q->cmds[tag];
	ssize_t len;
	int ret;

	if (tag >= q->depth || c->busy)
		return -EINVAL;
	c->list.data = malloc(size);
	if (!c->list.data)
		return -ENOMEM;
	len = bc_scsi_xcopy_list(&q->a->lu, 0, q->same ? &q->a->lu : &q->b->lu, 0, q->same, segs,
				 piece, c->list.data, size);
	if (len < 0) {
		free(c->list.data);
		c->list.data = NULL;
		return (int)len;
	}
	c->list.size = (size_t)len;
	c->len = piece->len;
	c->retry = (struct bc_scsi_retry){ 0 };
	ret = xcopy_send(c);
	if (ret) {
		free(c->list.data);
		c->list.data = NULL;
		return ret;
	}
	c->busy = true;
	/* Out now, not at the next poll: the command is a few hundred bytes. */
	if (bc_iscsi_want_write(q->b))
		bc_iscsi_service(q->b, POLLOUT);
	return 0;
}

static int iscsi_queue_reap(struct bc_native_queue *nq, struct bc_native_cqe *cqes, uint32_t max,
			    bool wait)
{
	struct xcopy_queue *q = xcopy_queue_of(nq);
	const int64_t deadline = bc_now_ms() + (int64_t)q->b->timeout_s * 1000 * (XCOPY_TIMEOUT_FACTOR + 1);
	uint64_t ticks;
	uint32_t n = 0;

	if (read(q->timerfd, &ticks, sizeof(ticks)) < 0 && errno != EAGAIN)
		return -errno;
	for (;;) {
		struct pollfd p = { .fd = iscsi_get_fd(q->b->ctx) };
		int r;

		p.events = (short)(q->b->lost ? 0 : iscsi_which_events(q->b->ctx));
		r = poll(&p, 1, wait && !q->nr_done && q->b->copies ? 1000 : 0);
		if (r < 0 && errno != EINTR)
			return -errno;
		bc_iscsi_service(q->b, r > 0 ? p.revents : 0);
		if (q->nr_done || !wait || !q->b->copies)
			break;
		/* libiscsi times the command out; this only bounds a lost timer. */
		if (bc_now_ms() > deadline)
			return -ETIMEDOUT;
	}
	while (q->nr_done && n < max)
		cqes[n++] = q->done[--q->nr_done];
	return (int)n;
}

static int iscsi_queue_fd(const struct bc_native_queue *nq)
{
	const struct xcopy_queue *q = xcopy_queue_of(nq);
	return q->epfd;
}

static void iscsi_queue_destroy(struct bc_native_queue *nq)
{
	struct xcopy_queue *q = xcopy_queue_of(nq);
	/* The core reaps everything first; anything left must not call back into freed memory. */
	if (q->b->copies)
		bc_iscsi_cancel_all(q->b);
	for (uint32_t i = 0; i < q->depth; i++)
		free(q->cmds[i].list.data);
	queue_free(q);
}

const struct bc_backend bc_backend_iscsi = {
	.name = "iscsi",
	.caps = BC_BACKEND_QUEUED | BC_BACKEND_COSTLY_COMMANDS,
	.probe = iscsi_probe,
	.pair = iscsi_pair,
	.queue_create = iscsi_queue_create,
	.queue_submit = iscsi_queue_submit,
	.queue_reap = iscsi_queue_reap,
	.queue_fd = iscsi_queue_fd,
	.queue_destroy = iscsi_queue_destroy,
};

