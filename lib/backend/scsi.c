/* SPDX-License-Identifier: MIT */
/*
 * Native copy by a SCSI copy manager: EXTENDED COPY (LID1) through SG_IO on
 * the sd node, within one LU or between two LUs of one target.  The data
 * moves inside the target; blkcopy only sends descriptors.  The protocol
 * (discovery, parameter lists, sense) lives in ../scsi.c, shared with the
 * iSCSI transport.
 */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <scsi/sg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/ioctl.h>
#include <sys/sysmacros.h>
#include <unistd.h>

#include "../backend.h"
#include "../util.h"
#include "../scsi.h"
#include "../transport/fd.h"

#define XCOPY_TIMEOUT_S 120	/* default; BLKCOPY_SCSI_TIMEOUT */
#define MAX_TIMEOUT_S 3600
#define SAM_CHECK_CONDITION 0x02
#define SAM_BUSY 0x08
#define SAM_RESERVATION_CONFLICT 0x18
#define SAM_TASK_SET_FULL 0x28
#define DID_TIME_OUT 0x03
#define DRIVER_TIMEOUT 0x06	/* sg_io_hdr.driver_status, low nibble */

struct sg_lu {
	int fd;			/* the whole LU's block node: SG_IO */
	struct bc_scsi_transport t;
	struct bc_scsi_lu lu;
	char nexus[64];		/* "host:channel:target", the LU number cut off */
	uint32_t timeout_ms;	/* of each EXTENDED COPY */
};

/* A finished command's outcome: 0, 1 for a CHECK CONDITION with sense, or -errno. */
static int sg_status(const struct sg_io_hdr *h)
{
	if (h->status == SAM_CHECK_CONDITION && h->sb_len_wr)
		return 1;
	if (h->host_status)
		return h->host_status == DID_TIME_OUT ? -ETIMEDOUT : -EIO;
	if ((h->driver_status & 0xf) == DRIVER_TIMEOUT)	/* older kernels say it here */
		return -ETIMEDOUT;
	switch (h->status) {
	case 0:
		return 0;
	case SAM_BUSY:
	case SAM_TASK_SET_FULL:
	case SAM_RESERVATION_CONFLICT:
		return -EBUSY;
	}
	return -EIO;
}

static int sg_exec(void *ctx, const uint8_t *cdb, uint8_t cdb_len, enum bc_scsi_dir dir, void *buf,
		   uint32_t len, uint32_t timeout_ms, uint8_t *sense, uint32_t *sense_len)
{
	const struct sg_lu *s = ctx;
	struct sg_io_hdr h = {
		.interface_id = 'S',
		.dxfer_direction = dir == BC_SCSI_TO_DEV	  ? SG_DXFER_TO_DEV
				   : dir == BC_SCSI_FROM_DEV ? SG_DXFER_FROM_DEV
							     : SG_DXFER_NONE,
		.cmd_len = cdb_len,
		.mx_sb_len = 252,
		.dxfer_len = dir == BC_SCSI_NONE ? 0 : len,
		.dxferp = dir == BC_SCSI_NONE ? NULL : buf,
		.cmdp = (unsigned char *)cdb,
		.sbp = sense,
		.timeout = timeout_ms,
	};

	if (ioctl(s->fd, SG_IO, &h) < 0)
		return -errno;
	*sense_len = h.sb_len_wr;
	return sg_status(&h);
}

/* "0:0:1:2" from the sysfs device link: the nexus is everything but the LU. */
static void read_nexus(dev_t whole, char *nexus, size_t size)
{
	char link[PATH_MAX], target[PATH_MAX];
	ssize_t n;

	nexus[0] = '\0';
	snprintf(link, sizeof(link), "/sys/dev/block/%u:%u/device", major(whole), minor(whole));
	n = readlink(link, target, sizeof(target) - 1);
	if (n <= 0)
		return;
	target[n] = '\0';
	const char *base = strrchr(target, '/') ? strrchr(target, '/') + 1 : target;
	const char *lun = strrchr(base, ':');
	if (lun)
		snprintf(nexus, size, "%.*s", (int)(lun - base), base);
}

static void lu_free(struct sg_lu *s)
{
	if (s->fd >= 0)
		close(s->fd);
	free(s);
}

static int scsi_probe(struct blkcopy_dev *d)
{
	char why[128];
	struct sg_lu *s;
	int ret;

	if (d->kind != BLKCOPY_KIND_SCSI)
		return -ENODEV;
	/* Untried, so not offered: the lab has no ZBC target (a zoned disk is emulated, in order). */
	if (d->zoned.model == BLKCOPY_ZONED_HOST_MANAGED) {
		snprintf(d->probe_reason, sizeof(d->probe_reason),
			 "scsi: zoned (ZBC) disk: EXTENDED COPY into zones is not supported");
		return -ENODEV;
	}
	const int timeout = bc_env_seconds("BLKCOPY_SCSI_TIMEOUT", XCOPY_TIMEOUT_S, MAX_TIMEOUT_S,
					   d->probe_reason, sizeof(d->probe_reason));

	if (timeout < 0)
		return timeout;
	s = calloc(1, sizeof(*s));
	if (!s)
		return -ENOMEM;
	s->timeout_ms = (uint32_t)timeout * 1000;
	/* SG_IO goes to the whole LU: partitions would need CAP_SYS_RAWIO even to read. */
	s->fd = bc_fd_open_whole(d);
	if (s->fd < 0) {
		snprintf(d->probe_reason, sizeof(d->probe_reason), "scsi: cannot open the whole LU: %s",
			 strerror(-s->fd));
		free(s);
		return -ENODEV;
	}
	s->t = (struct bc_scsi_transport){ .exec = sg_exec, .ctx = s };
	ret = bc_scsi_discover(&s->t, &s->lu, why, sizeof(why));
	if (!ret && s->lu.lbs != d->lbs) {
		snprintf(why, sizeof(why), "READ CAPACITY block length %u differs from the kernel's %u",
			 s->lu.lbs, d->lbs);
		ret = -EIO;
	}
	if (ret) {
		snprintf(d->probe_reason, sizeof(d->probe_reason), "scsi: %s: emulation only", why);
		lu_free(s);
		return -ENODEV;
	}
	read_nexus(d->medium.disk, s->nexus, sizeof(s->nexus));
	bc_scsi_limits(&s->lu, &s->lu, &d->probed);
	snprintf(d->probe_reason, sizeof(d->probe_reason),
		 "scsi: EXTENDED COPY (LID1) by the target: %u segment(s) of up to %u bytes, %u target descriptor(s)%s",
		 s->lu.max_segments, s->lu.max_segment_bytes, s->lu.max_targets,
		 s->lu.has_tpc_vpd ? ", Third-party Copy VPD present" : "");
	d->backend_data = s;
	return 0;
}

static void scsi_close(struct blkcopy_dev *d)
{
	lu_free(d->backend_data);
	d->backend_data = NULL;
}

/* What a timed-out command leaves in the device's account. */
static void timeout_msg(uint32_t timeout_ms, char *msg, size_t size)
{
	snprintf(msg, size, "EXTENDED COPY: no answer within %u s (the command was aborted; "
		 "BLKCOPY_SCSI_TIMEOUT sets the bound)", timeout_ms / 1000);
}

/* One LU, or two LUs behind one target port that the copy manager can address. */
static int scsi_pair(const struct blkcopy_dev *src, const struct blkcopy_dev *dst,
		     struct blkcopy_limits *lim, char *why, size_t why_size)
{
	const struct sg_lu *a = src->backend_data, *b = dst->backend_data;

	if (bc_medium_same(&src->medium, &dst->medium)) {
		bc_scsi_limits(&a->lu, &a->lu, lim);
	} else {
		if (!a->nexus[0] || strcmp(a->nexus, b->nexus)) {
			snprintf(why, why_size, "scsi: LUs behind different targets (%.20s and %.20s)",
				 a->nexus[0] ? a->nexus : "?", b->nexus[0] ? b->nexus : "?");
			return -EOPNOTSUPP;
		}
		if (a->lu.lbs != b->lu.lbs) {
			snprintf(why, why_size, "scsi: different block sizes (%u and %u bytes)",
				 a->lu.lbs, b->lu.lbs);
			return -EOPNOTSUPP;
		}
		/* Two LUs that one designator names cannot be told apart by the copy manager. */
		if (a->lu.designator_len == b->lu.designator_len &&
		    !memcmp(a->lu.designator, b->lu.designator, a->lu.designator_len)) {
			snprintf(why, why_size, "scsi: two LUs report one designator");
			return -EOPNOTSUPP;
		}
		bc_scsi_limits(&a->lu, &b->lu, lim);
	}
	if (!lim->max_copy_sectors) {
		snprintf(why, why_size, "scsi: the copy manager cannot copy between these LUs");
		return -EOPNOTSUPP;
	}
	return 0;
}

static int xcopy_failed(struct blkcopy_dev *src, struct blkcopy_dev *dst, const char *via, int ret,
			char *msg);

static int scsi_copy(struct blkcopy_dev *src, struct blkcopy_dev *dst, const struct bc_span *segs,
		     const struct bc_piece *piece, struct bc_copy_stats *stats)
{
	const struct sg_lu *a = src->backend_data, *b = dst->backend_data;
	const bool same = bc_medium_same(&src->medium, &dst->medium);
	char msg[sizeof(dst->error)] = "";
	int ret;

	/* The destination LU receives the command: the copy manager that writes. */
	ret = bc_scsi_xcopy(&b->t, &a->lu, src->medium.base, same ? &a->lu : &b->lu, dst->medium.base,
			    same, segs, piece, b->timeout_ms, msg, sizeof(msg));
	if (!ret) {
		stats->bytes[BLKCOPY_METHOD_SCSI_XCOPY] += piece->len;
		return 0;
	}
	if (ret == -ETIMEDOUT)
		timeout_msg(b->timeout_ms, msg, sizeof(msg));
	return xcopy_failed(src, dst, "SG_IO", ret, msg);
}

/*
 * A command that did not copy: its account on both handles (@msg, or the
 * errno in words), and the result for the core.  Not being allowed to ask
 * (no CAP_SYS_RAWIO) is a refusal before any write: the piece is emulated.
 */
static int xcopy_failed(struct blkcopy_dev *src, struct blkcopy_dev *dst, const char *via, int ret,
			char *msg)
{
	if (!msg[0])
		snprintf(msg, sizeof(dst->error), "EXTENDED COPY: %s: %s%s", via, strerror(-ret),
			 ret == -EPERM ? " (needs CAP_SYS_RAWIO)" : "");
	snprintf(dst->error, sizeof(dst->error), "%s", msg);
	snprintf(src->error, sizeof(src->error), "%s", msg);
	return ret == -EPERM ? -EOPNOTSUPP : ret;
}

/* ------------------------------------------------------------------------ */
/*
 * The queue: EXTENDED COPY commands in flight together through the sg
 * driver's asynchronous interface.  A command is written to the LU's
 * /dev/sgN (write() of an sg_io_hdr; the parameter list is copied in at
 * once) and its outcome read back when the descriptor polls readable.  The
 * driver keeps at most SG_PER_FD commands per descriptor, so the queue
 * opens one descriptor per SG_PER_FD slots.  Without an sg node (no sg
 * module, no permission to open it) the queue is refused and pieces run
 * one at a time through SG_IO.
 */
#define SG_PER_FD 16u	/* the sg driver's SG_MAX_QUEUE */

struct sg_cmd {
	uint8_t cdb[16];
	uint8_t sense[252];	/* the driver writes it at completion */
	uint8_t *list;
	uint32_t list_len;
	struct bc_scsi_retry retry;
	bool busy;
};

struct sg_queue {
	struct bc_native_queue base;	/* first: the core's handle */
	struct blkcopy_dev *src, *dst;
	int *fds;
	uint32_t nr_fds, depth;
	int epfd;
	struct sg_cmd *cmds;
};

static struct sg_queue *sg_queue_of(const struct bc_native_queue *nq)
{
	return (struct sg_queue *)nq;
}

/* /dev/sgN of the LU under @d, opened non-blocking; -errno when there is none. */
static int open_sg(const struct blkcopy_dev *d)
{
	char dir[PATH_MAX], path[PATH_MAX + 16];
	struct dirent *de;
	DIR *dp;
	int fd = -ENODEV;

	snprintf(dir, sizeof(dir), "/sys/dev/block/%u:%u/device/scsi_generic",
		 major(d->medium.disk), minor(d->medium.disk));
	dp = opendir(dir);
	if (!dp)
		return -errno;
	while ((de = readdir(dp))) {
		if (strncmp(de->d_name, "sg", 2))
			continue;
		snprintf(path, sizeof(path), "/dev/%s", de->d_name);
		fd = open(path, O_RDWR | O_NONBLOCK | O_CLOEXEC);
		if (fd < 0)
			fd = -errno;
		break;
	}
	closedir(dp);
	return fd;
}

static void sg_queue_destroy(struct bc_native_queue *nq)
{
	struct sg_queue *q = sg_queue_of(nq);

	/* The core reaps every command first; the driver drops what a closed descriptor had. */
	for (uint32_t i = 0; q->fds && i < q->nr_fds; i++)
		if (q->fds[i] >= 0)
			close(q->fds[i]);
	if (q->epfd >= 0)
		close(q->epfd);
	for (uint32_t i = 0; q->cmds && i < q->depth; i++)
		free(q->cmds[i].list);
	free(q->cmds);
	free(q->fds);
	free(q);
}

static int sg_queue_create(struct blkcopy_dev *src, struct blkcopy_dev *dst, uint32_t depth,
			   struct bc_native_queue **qp)
{
	const char *env = getenv("BLKCOPY_SCSI_SYNC");
	struct sg_queue *q;

	/* BLKCOPY_SCSI_SYNC=1 keeps the one-at-a-time SG_IO path, to test and measure it. */
	if (env && !strcmp(env, "1"))
		return -EOPNOTSUPP;
	q = calloc(1, sizeof(*q));
	if (!q)
		return -ENOMEM;
	*q = (struct sg_queue){ .base = { .backend = &bc_backend_scsi }, .src = src, .dst = dst,
				.depth = depth, .nr_fds = (depth + SG_PER_FD - 1) / SG_PER_FD,
				.epfd = epoll_create1(EPOLL_CLOEXEC) };
	q->fds = malloc(q->nr_fds * sizeof(*q->fds));
	q->cmds = calloc(depth, sizeof(*q->cmds));
	if (q->epfd < 0 || !q->fds || !q->cmds) {
		q->nr_fds = 0;	/* none opened */
		sg_queue_destroy(&q->base);
		return -ENOMEM;
	}
	for (uint32_t i = 0; i < q->nr_fds; i++)
		q->fds[i] = -1;
	for (uint32_t i = 0; i < q->nr_fds; i++) {
		struct epoll_event ev = { .events = EPOLLIN };

		/* The receiving LU: the one that gets the command (the destination). */
		q->fds[i] = open_sg(dst);
		if (q->fds[i] < 0 || epoll_ctl(q->epfd, EPOLL_CTL_ADD, q->fds[i], &ev)) {
			sg_queue_destroy(&q->base);
			return -EOPNOTSUPP;	/* no sg node to queue on: one at a time through SG_IO */
		}
	}
	*qp = &q->base;
	return 0;
}

static int sg_send(struct sg_queue *q, uint32_t tag)
{
	struct sg_cmd *c = &q->cmds[tag];
	struct sg_io_hdr h = {
		.interface_id = 'S',
		.dxfer_direction = SG_DXFER_TO_DEV,
		.cmd_len = sizeof(c->cdb),
		.mx_sb_len = sizeof(c->sense),
		.dxfer_len = c->list_len,
		.dxferp = c->list,
		.cmdp = c->cdb,
		.sbp = c->sense,
		.timeout = ((const struct sg_lu *)q->dst->backend_data)->timeout_ms,
		.pack_id = (int)tag,
	};

	if (write(q->fds[tag / SG_PER_FD], &h, sizeof(h)) < 0)
		return -errno;
	return 0;
}

static int sg_queue_submit(struct bc_native_queue *nq, const struct bc_span *segs,
			   const struct bc_piece *piece, uint32_t tag)
{
	struct sg_queue *q = sg_queue_of(nq);
	const struct sg_lu *a = q->src->backend_data, *b = q->dst->backend_data;
	const bool same = bc_medium_same(&q->src->medium, &q->dst->medium);
	const size_t size = bc_scsi_xcopy_list_max(piece->nr_segs);
	struct sg_cmd *c;
	ssize_t len;
	int ret;

	if (tag >= q->depth || q->cmds[tag].busy)
		return -EINVAL;
	c = &q->cmds[tag];
	free(c->list);
	c->list = malloc(size);
	if (!c->list)
		return -ENOMEM;
	len = bc_scsi_xcopy_list(&a->lu, q->src->medium.base, same ? &a->lu : &b->lu,
				 q->dst->medium.base, same, segs, piece, c->list, size);
	if (len < 0)
		return (int)len;
	c->list_len = (uint32_t)len;
	c->retry = (struct bc_scsi_retry){ 0 };
	bc_scsi_xcopy_cdb(c->cdb, c->list_len);
	ret = sg_send(q, tag);
	if (ret) {
		char msg[sizeof(q->dst->error)] = "";

		return xcopy_failed(q->src, q->dst, "sg write", ret, msg);
	}
	c->busy = true;
	return 0;
}

/* A completion read back: its result, or -EAGAIN when the command went out again (bc_scsi_retry()). */
static int sg_result(struct sg_queue *q, uint32_t tag, const struct sg_io_hdr *h)
{
	struct sg_cmd *c = &q->cmds[tag];
	char msg[sizeof(q->dst->error)] = "";
	struct bc_scsi_sense s;
	int ret = sg_status(h);

	if (ret == 1) {
		bc_scsi_parse_sense(c->sense, h->sb_len_wr, &s);
		const long pause = bc_scsi_retry(&c->retry, &s);

		/* A passing state is rare and short: the pause holds the job's loop that long. */
		if (pause > 0)
			usleep((useconds_t)pause);
		if (pause >= 0 && !sg_send(q, tag))
			return -EAGAIN;
		ret = bc_scsi_sense_errno(&s, "EXTENDED COPY", msg, sizeof(msg));
	} else if (ret == -ETIMEDOUT) {
		timeout_msg(((const struct sg_lu *)q->dst->backend_data)->timeout_ms, msg, sizeof(msg));
	} else if (ret < 0) {
		snprintf(msg, sizeof(msg), "EXTENDED COPY: status 0x%02x, host status 0x%x, driver status 0x%x",
			 h->status, h->host_status, h->driver_status);
	}
	return ret ? xcopy_failed(q->src, q->dst, "sg", ret, msg) : 0;
}

static int sg_queue_reap(struct bc_native_queue *nq, struct bc_native_cqe *cqes, uint32_t max,
			 bool wait)
{
	struct sg_queue *q = sg_queue_of(nq);
	uint32_t n = 0;

	for (;;) {
		for (uint32_t f = 0; f < q->nr_fds && n < max; f++) {
			struct sg_io_hdr h;

			while (n < max) {
				memset(&h, 0, sizeof(h));
				h.interface_id = 'S';
				h.pack_id = -1;		/* any command of this descriptor */
				if (read(q->fds[f], &h, sizeof(h)) < 0) {
					if (errno == EAGAIN || errno == EINTR)
						break;
					return -errno;
				}
				const uint32_t tag = (uint32_t)h.pack_id;
				if (tag >= q->depth || !q->cmds[tag].busy)
					continue;	/* not ours: never trust a tag blindly */
				int res = sg_result(q, tag, &h);
				if (res == -EAGAIN)
					continue;
				q->cmds[tag].busy = false;
				cqes[n++] = (struct bc_native_cqe){ .tag = tag, .result = res,
								    .method = BLKCOPY_METHOD_SCSI_XCOPY };
			}
		}
		if (n || !wait)
			return (int)n;
		/* The driver times each command out (and aborts it): the wait needs no bound of its own. */
		struct epoll_event ev;
		if (epoll_wait(q->epfd, &ev, 1, -1) < 0 && errno != EINTR)
			return -errno;
	}
}

static int sg_queue_fd(const struct bc_native_queue *nq)
{
	return sg_queue_of(nq)->epfd;
}

const struct bc_backend bc_backend_scsi = {
	.name = "scsi",
	/* Queued on the LU's sg node; one at a time through SG_IO where there is none. */
	/* A copy manager such as LIO's takes one segment per command. */
	.caps = BC_BACKEND_SYNC | BC_BACKEND_QUEUED | BC_BACKEND_QUEUE_MAY_REFUSE |
		BC_BACKEND_COSTLY_COMMANDS,
	.probe = scsi_probe,
	.pair = scsi_pair,
	.copy = scsi_copy,
	.close = scsi_close,
	.queue_create = sg_queue_create,
	.queue_submit = sg_queue_submit,
	.queue_reap = sg_queue_reap,
	.queue_fd = sg_queue_fd,
	.queue_destroy = sg_queue_destroy,
};
