/* SPDX-License-Identifier: MIT */
/*
 * The iSCSI transport: LUNs by URL, through libiscsi, one session per
 * handle.  The SCSI protocol of ../scsi.c runs over it (discovery here,
 * EXTENDED COPY in ../backend/iscsi.c), and emulation reads and writes
 * through it with READ(16)/WRITE(16), many in flight: the session's socket
 * is polled in the emulation engine's ring.
 *
 * Every wait is bounded: the TCP connect, the login and each command time
 * out (BLKCOPY_ISCSI_TIMEOUT seconds).  A session that drops is not
 * re-established behind the caller's back: its commands fail at once, so a
 * copy reports exactly what was acknowledged before the drop.
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <ctype.h>

#include "../transport.h"

#define URL_PREFIX "iscsi://"

static bool iscsi_claims(const char *path)
{
	return !strncmp(path, URL_PREFIX, strlen(URL_PREFIX));
}

#ifndef BLKCOPY_HAVE_LIBISCSI

static int iscsi_open(struct blkcopy_dev *d, const char *url, char *why, size_t why_size)
{
	snprintf(why, why_size, "this blkcopy was built without libiscsi: iSCSI URLs are not supported");
	return -EPROTONOSUPPORT;
}

static void iscsi_close(struct blkcopy_dev *d)
{
}

const struct bc_transport bc_transport_iscsi = {
	.name = "iscsi",
	.claims = iscsi_claims,
	.open = iscsi_open,
	.close = iscsi_close,
};

#else

#include <liburing.h>
#include <poll.h>
#include <unistd.h>

#include "../iscsi_url.h"
#include "../util.h"
#include "iscsi.h"

#define DEFAULT_TIMEOUT_S 30
#define MAX_TIMEOUT_S 3600
#define DEFAULT_INITIATOR "iqn.2025-11.org.blkcopy:initiator"
/* Emulation never sends more in one command; the target's Block Limits may say less. */
#define MAX_IO (1u << 20)
/* A polite logout, but never a long wait for one. */
#define LOGOUT_TIMEOUT_MS 2000
/* While commands are out, the session is looked at this often (their timeouts). */
#define TICK_MS 1000

/* One emulation read or write in flight. */
struct data_io {
	struct bc_iscsi_lu *s;
	struct scsi_task *task;
	struct scsi_iovec iov;
	struct bc_io_end *end;
	uint64_t tag;
	uint32_t len;
	bool write;
};

static void wait_cb(struct iscsi_context *ctx, int status, void *data, void *priv)
{
	struct bc_iscsi_wait *w = priv;

	w->done = true;
	w->status = status;
}

/* The session is gone: say so once.  May run inside libiscsi's callbacks. */
static void lose(struct bc_iscsi_lu *s, const char *why)
{
	if (s->lost)
		return;
	s->lost = true;
	snprintf(s->dev->error, sizeof(s->dev->error), "iSCSI session to %.80s lost: %.200s",
		 s->url.portal, why && *why ? why : "connection closed");
}

int bc_iscsi_service(struct bc_iscsi_lu *s, int revents)
{
	int ret = s->lost ? -1 : iscsi_service(s->ctx, revents);

	if (ret < 0 && s->logged_in)
		lose(s, iscsi_get_error(s->ctx));
	/* Outside every callback: fail what still waits on a dead session. */
	if (s->lost && (s->inflight || s->copies))
		iscsi_scsi_cancel_all_tasks(s->ctx);
	return ret < 0 ? -1 : 0;
}

/* Run the event loop until *@done or @deadline_ms; a second at most between timeout checks. */
static int wait_until(struct bc_iscsi_lu *s, const bool *done, int64_t deadline_ms)
{
	while (!*done) {
		int64_t left = deadline_ms - bc_now_ms();
		struct pollfd p = { .fd = iscsi_get_fd(s->ctx) };
		int n;

		if (s->lost)
			return -ECONNRESET;
		if (left <= 0)
			return -ETIMEDOUT;
		p.events = (short)iscsi_which_events(s->ctx);
		n = poll(&p, 1, left > 1000 ? 1000 : (int)left);
		if (n < 0 && errno != EINTR)
			return -errno;
		if (bc_iscsi_service(s, n > 0 ? p.revents : 0) && !*done)
			return -ECONNRESET;
	}
	return 0;
}

/* When a connect or login step, or one command, must have finished. */
static int64_t deadline(const struct bc_iscsi_lu *s)
{
	return bc_now_ms() + (int64_t)s->timeout_s * 1000;
}

void bc_iscsi_cancel_all(struct bc_iscsi_lu *s)
{
	s->cancelling = true;
	iscsi_scsi_cancel_all_tasks(s->ctx);
	s->cancelling = false;
}

/* Fixed-format sense from libiscsi's decoded fields: what bc_scsi_run() parses. */
static uint32_t make_sense(const struct scsi_task *task, uint8_t *sense)
{
	memset(sense, 0, 18);
	sense[0] = 0x70;
	sense[2] = (uint8_t)task->sense.key;
	sense[7] = 10;
	sense[12] = (uint8_t)(task->sense.ascq >> 8);
	sense[13] = (uint8_t)task->sense.ascq;
	return 18;
}

/* The bc_scsi_transport: one command, synchronously, within the session timeout. */
static int iscsi_exec(void *ctx, const uint8_t *cdb, uint8_t cdb_len, enum bc_scsi_dir dir,
		      void *buf, uint32_t len, uint32_t timeout_ms, uint8_t *sense,
		      uint32_t *sense_len)
{
	struct bc_iscsi_lu *s = ctx;
	struct bc_iscsi_wait w = { 0 };
	struct iscsi_data out = { .size = len, .data = buf };
	struct scsi_task *task;
	int ret;

	if (s->lost)
		return -ECONNRESET;
	task = scsi_create_task(cdb_len, (unsigned char *)cdb,
				dir == BC_SCSI_FROM_DEV ? SCSI_XFER_READ
				: dir == BC_SCSI_TO_DEV ? SCSI_XFER_WRITE
							: SCSI_XFER_NONE,
				dir == BC_SCSI_NONE ? 0 : (int)len);
	if (!task)
		return -ENOMEM;
	if (dir == BC_SCSI_FROM_DEV && scsi_task_add_data_in_buffer(task, (int)len, buf)) {
		scsi_free_scsi_task(task);
		return -ENOMEM;
	}
	if (iscsi_scsi_command_async(s->ctx, s->url.lun, task, wait_cb,
				     dir == BC_SCSI_TO_DEV ? &out : NULL, &w)) {
		scsi_free_scsi_task(task);
		return -ENOMEM;
	}
	/* The session's own bound (BLKCOPY_ISCSI_TIMEOUT), not the local SCSI default. */
	ret = wait_until(s, &w.done, deadline(s));
	if (!w.done) {
		/* Our frame is about to go: the callback must run now, not later. */
		s->cancelling = true;
		iscsi_scsi_cancel_task(s->ctx, task);
		s->cancelling = false;
	}
	if (!ret) {
		switch (w.status) {
		case SCSI_STATUS_GOOD:
			break;
		case SCSI_STATUS_CHECK_CONDITION:
			*sense_len = make_sense(task, sense);
			ret = 1;
			break;
		case SCSI_STATUS_BUSY:
		case SCSI_STATUS_TASK_SET_FULL:
		case SCSI_STATUS_RESERVATION_CONFLICT:
			ret = -EBUSY;
			break;
		case SCSI_STATUS_TIMEOUT:
			ret = -ETIMEDOUT;
			break;
		case SCSI_STATUS_CANCELLED:
			ret = -ECONNRESET;
			break;
		default:
			ret = -EIO;
		}
	}
	scsi_free_scsi_task(task);
	return ret;
}

/* ------------------------------------------------------------------------ */
/* Session setup                                                            */

static int login_errno(int status)
{
	switch (status) {
	case 0x0201:		/* authentication failure */
	case 0x0202:		/* authorization failure */
		return -EACCES;
	case 0x0203:		/* not found */
	case 0x0204:		/* target removed */
		return -ENOENT;
	case 0x0300:		/* target error */
	case 0x0301:		/* service unavailable */
	case 0x0302:		/* out of resources */
		return -EAGAIN;
	}
	return -EPROTO;
}

static const char *login_text(int status)
{
	switch (status) {
	case 0x0201: return "authentication failed";
	case 0x0202: return "this initiator is not allowed";
	case 0x0203: return "no such target at this portal";
	case 0x0204: return "the target was removed";
	case 0x0300: return "target error";
	case 0x0301: return "target not available at this portal (no such target name, or it is disabled)";
	case 0x0302: return "the target is out of resources";
	}
	return "login failed";
}

/* "socket error Connection refused(111)": the errno libiscsi saw, else @fallback. */
static int socket_errno(const char *err, int fallback)
{
	int e = bc_iscsi_error_number(err);

	return e > 0 && e < 4096 ? -e : fallback;
}

static int connect_and_login(struct bc_iscsi_lu *s, char *why, size_t size)
{
	const char *initiator = getenv("BLKCOPY_ISCSI_INITIATOR");
	/* In the session, not on this stack: a step that timed out may still complete later. */
	struct bc_iscsi_wait *w = &s->step;
	int ret;

	s->ctx = iscsi_create_context(initiator && *initiator ? initiator : DEFAULT_INITIATOR);
	if (!s->ctx)
		return -ENOMEM;
	if (iscsi_set_targetname(s->ctx, s->url.target) ||
	    iscsi_set_session_type(s->ctx, ISCSI_SESSION_NORMAL) ||
	    iscsi_set_header_digest(s->ctx, ISCSI_HEADER_DIGEST_NONE_CRC32C)) {
		snprintf(why, size, "cannot set up a session: %s", iscsi_get_error(s->ctx));
		return -EINVAL;
	}
	if (s->url.user[0] &&
	    iscsi_set_initiator_username_pwd(s->ctx, s->url.user, s->url.password)) {
		snprintf(why, size, "cannot use these CHAP credentials");
		return -EINVAL;
	}
	/* Commands fail on a dropped session; blkcopy reports, it does not replay. */
	iscsi_set_noautoreconnect(s->ctx, 1);
	iscsi_set_timeout(s->ctx, s->timeout_s);
	/* A peer that vanishes without a reset is noticed within the timeout. */
	iscsi_set_tcp_user_timeout(s->ctx, s->timeout_s * 1000);

	if (iscsi_connect_async(s->ctx, s->url.portal, wait_cb, w)) {
		snprintf(why, size, "cannot connect to %s: %s", s->url.portal,
			 iscsi_get_error(s->ctx));
		return -EHOSTUNREACH;
	}
	ret = wait_until(s, &w->done, deadline(s));
	if (ret == -ETIMEDOUT) {
		snprintf(why, size, "no connection to %s within %d s", s->url.portal, s->timeout_s);
		return ret;
	}
	if (!ret && w->status != SCSI_STATUS_GOOD)
		ret = socket_errno(iscsi_get_error(s->ctx), -ECONNREFUSED);
	if (ret) {
		snprintf(why, size, "cannot connect to %s: %s", s->url.portal, strerror(-ret));
		return ret;
	}

	*w = (struct bc_iscsi_wait){ 0 };
	if (iscsi_login_async(s->ctx, wait_cb, w)) {
		snprintf(why, size, "cannot log in to %s: %s", s->url.portal,
			 iscsi_get_error(s->ctx));
		return -EIO;
	}
	ret = wait_until(s, &w->done, deadline(s));
	if (!ret && w->status == SCSI_STATUS_TIMEOUT)
		ret = -ETIMEDOUT;
	if (ret == -ETIMEDOUT) {
		snprintf(why, size, "login to %s at %s: no answer within %d s", s->url.target,
			 s->url.portal, s->timeout_s);
		return ret;
	}
	if (ret) {
		snprintf(why, size, "login to %s at %s: %s", s->url.target, s->url.portal,
			 ret == -ECONNRESET ? "the portal closed the connection" : strerror(-ret));
		return ret;
	}
	if (w->status != SCSI_STATUS_GOOD) {
		const char *err = iscsi_get_error(s->ctx);
		int status = strstr(err, "Status:") ? bc_iscsi_error_number(err) : -1;

		if (status < 0) {
			snprintf(why, size, "login to %s at %s failed: %.160s", s->url.target,
				 s->url.portal, err);
			return -EPROTO;
		}
		snprintf(why, size, "login to %s at %s refused: %s (status 0x%04x)", s->url.target,
			 s->url.portal, login_text(status), status);
		return login_errno(status);
	}
	s->logged_in = true;
	return 0;
}

static void session_end(struct bc_iscsi_lu *s)
{
	/* A logout the target never answers completes (cancelled) in iscsi_destroy_context(). */
	struct bc_iscsi_wait *w = &s->step;

	if (!s->ctx)
		return;
	*w = (struct bc_iscsi_wait){ 0 };
	if (s->logged_in && !s->lost && !iscsi_logout_async(s->ctx, wait_cb, w))
		wait_until(s, &w->done, bc_now_ms() + LOGOUT_TIMEOUT_MS);
	/* Whatever is still in flight completes here, cancelled. */
	s->cancelling = true;
	iscsi_destroy_context(s->ctx);
	s->ctx = NULL;
}

static void lu_free(struct bc_iscsi_lu *s)
{
	if (!s)
		return;
	session_end(s);
	explicit_bzero(&s->url, sizeof(s->url));
	free(s);
}

/* Geometry, write protection, transfer limit, copy manager: what a probe of a local LU learns. */
static int discover(struct blkcopy_dev *d, struct bc_iscsi_lu *s, char *why, size_t size)
{
	char copy_why[128];
	uint64_t max_xfer;
	int ret;

	ret = bc_scsi_ready(&s->t, &s->lu, why, size);
	if (ret == -ENXIO) {
		snprintf(why, size, "%s has no LUN %d", s->url.target, s->url.lun);
		return ret;
	}
	if (!ret)
		ret = bc_scsi_capacity(&s->t, &s->lu.lbs, &s->lu.capacity, why, size);
	if (ret)
		return ret;
	d->lbs = d->dio_align = s->lu.lbs;
	d->capacity = s->lu.capacity;
	d->read_only = bc_scsi_write_protected(&s->t);
	max_xfer = bc_scsi_max_transfer(&s->t, d->lbs);
	s->max_io = max_xfer && max_xfer < MAX_IO ? (uint32_t)max_xfer : MAX_IO;
	if (s->max_io < d->lbs)
		s->max_io = d->lbs;

	ret = bc_scsi_copy_manager(&s->t, &s->lu, copy_why, sizeof(copy_why));
	if (ret == -ECONNRESET || ret == -ETIMEDOUT || ret == -ENOMEM) {
		snprintf(why, size, "%s", copy_why);
		return ret;
	}
	s->copy_manager = !ret;
	if (s->copy_manager)
		snprintf(s->copy_reason, sizeof(s->copy_reason),
			 "iscsi: EXTENDED COPY (LID1) by target %.223s: %u segment(s) of up to %u bytes, "
			 "%u target descriptor(s)", s->url.target, s->lu.max_segments,
			 s->lu.max_segment_bytes, s->lu.max_targets);
	else
		snprintf(s->copy_reason, sizeof(s->copy_reason), "iscsi: %.200s: emulation only",
			 copy_why);
	return 0;
}

/* The LU's designator names it wherever it is reached; else the target's name and the LUN. */
static void set_medium(struct blkcopy_dev *d, const struct bc_iscsi_lu *s)
{
	char name[sizeof(s->url.target) + 16];
	size_t n;

	if (s->lu.designator_len) {
		bc_medium_set(&d->medium, 'i', s->lu.designator, s->lu.designator_len);
		return;
	}
	n = (size_t)snprintf(name, sizeof(name), "%s/%d", s->url.target, s->url.lun);
	for (size_t i = 0; i < n && i < sizeof(name); i++)
		name[i] = (char)tolower((unsigned char)name[i]);
	bc_medium_set(&d->medium, 't', name, n < sizeof(name) ? n : sizeof(name) - 1);
}

static int iscsi_open(struct blkcopy_dev *d, const char *url, char *why, size_t size)
{
	struct bc_iscsi_lu *s = calloc(1, sizeof(*s));
	int ret;

	if (!s)
		return -ENOMEM;
	s->dev = d;
	s->t = (struct bc_scsi_transport){ .exec = iscsi_exec, .ctx = s };
	ret = bc_iscsi_parse_url(url, &s->url, why, size);
	if (!ret)
		ret = bc_iscsi_url_credentials(&s->url, getenv("LIBISCSI_CHAP_USERNAME"),
					       getenv("LIBISCSI_CHAP_PASSWORD"), why, size);
	if (ret)
		goto fail;
	/* The handle's path never holds the password. */
	free(d->path);
	d->path = strdup(s->url.shown);
	if (!d->path) {
		ret = -ENOMEM;
		goto fail;
	}
	ret = bc_env_seconds("BLKCOPY_ISCSI_TIMEOUT", DEFAULT_TIMEOUT_S, MAX_TIMEOUT_S, why, size);
	if (ret < 0)
		goto fail;
	s->timeout_s = ret;

	ret = connect_and_login(s, why, size);
	explicit_bzero(s->url.password, sizeof(s->url.password));
	if (ret)
		goto fail;
	ret = discover(d, s, why, size);
	if (ret)
		goto fail;
	if ((d->open_flags & BLKCOPY_OPEN_WRITE) && d->read_only) {
		snprintf(why, size, "read-only: the logical unit is write protected (MODE SENSE WP bit)");
		ret = -EROFS;
		goto fail;
	}
	set_medium(d, s);
	d->transport_data = s;
	return 0;
fail:
	lu_free(s);
	return ret;
}

/* ------------------------------------------------------------------------ */
/* Emulation's data path                                                    */

int bc_iscsi_status_errno(struct bc_iscsi_lu *s, int status, struct scsi_task *task,
			  const char *cmd, bool copy)
{
	struct bc_scsi_sense sense = { 0 };
	int err;

	switch (status) {
	case SCSI_STATUS_GOOD:
		return 0;
	case SCSI_STATUS_CHECK_CONDITION:
		sense.key = (uint8_t)task->sense.key;
		sense.asc = (uint8_t)(task->sense.ascq >> 8);
		sense.ascq = (uint8_t)task->sense.ascq;
		err = bc_scsi_sense_errno(&sense, cmd, s->dev->error, sizeof(s->dev->error));
		if (copy)
			return err;
		/* A data command refused is an I/O error here, not a reason to emulate. */
		return err == -EROFS ? -EROFS : -EIO;
	case SCSI_STATUS_BUSY:
	case SCSI_STATUS_TASK_SET_FULL:
	case SCSI_STATUS_RESERVATION_CONFLICT:
		snprintf(s->dev->error, sizeof(s->dev->error), "%s: target busy (status 0x%02x)",
			 cmd, status);
		return -EBUSY;
	case SCSI_STATUS_TIMEOUT:
		snprintf(s->dev->error, sizeof(s->dev->error), "%s: no answer from %.80s within %d s",
			 cmd, s->url.portal, s->timeout_s);
		return -ETIMEDOUT;
	case SCSI_STATUS_CANCELLED:
		if (s->cancelling)
			return -ECANCELED;
		lose(s, iscsi_get_error(s->ctx));
		return -ECONNRESET;
	}
	snprintf(s->dev->error, sizeof(s->dev->error), "%s: %.200s", cmd, iscsi_get_error(s->ctx));
	return -EIO;
}

struct bc_iscsi_lu *bc_iscsi_of(const struct blkcopy_dev *d)
{
	return d->transport == &bc_transport_iscsi ? d->transport_data : NULL;
}

bool bc_iscsi_want_write(const struct bc_iscsi_lu *s)
{
	return !s->lost && (iscsi_which_events(s->ctx) & POLLOUT);
}

static enum blkcopy_kind iscsi_kind(const struct blkcopy_dev *d)
{
	return BLKCOPY_KIND_ISCSI;
}

static void iscsi_close(struct blkcopy_dev *d)
{
	lu_free(d->transport_data);
	d->transport_data = NULL;
}

static int iscsi_flush(struct blkcopy_dev *d)
{
	struct bc_iscsi_lu *s = d->transport_data;
	const uint8_t cdb[16] = { 0x91 };	/* SYNCHRONIZE CACHE(16), the whole LU */
	struct bc_scsi_sense sense;
	int ret;

	ret = bc_scsi_run(&s->t, cdb, sizeof(cdb), BC_SCSI_NONE, NULL, 0,
			  (uint32_t)s->timeout_s * 1000, &sense);
	if (ret == -EIO)
		bc_scsi_sense_errno(&sense, "SYNCHRONIZE CACHE", d->error, sizeof(d->error));
	return ret;
}

/* ------------------------------------------------------------------------ */
/* Emulation's data path                                                    */

/* What this end has armed in the engine's ring. */
struct iscsi_end {
	bool in_armed, out_armed, tick_armed;
};

enum { EVENT_IN, EVENT_OUT, EVENT_TICK };

/* A remote LU has no page cache here: always direct, at its block size. */
static bool iscsi_direct_ok(const struct blkcopy_dev *d)
{
	return true;
}

static uint32_t iscsi_io_max(const struct blkcopy_dev *d)
{
	const struct bc_iscsi_lu *s = d->transport_data;

	return s->max_io;
}

static int iscsi_io_open(struct bc_io_end *e)
{
	e->priv = calloc(1, sizeof(struct iscsi_end));
	e->fd = -1;
	return e->priv ? 0 : -ENOMEM;
}

static void iscsi_io_close(struct bc_io_end *e)
{
	free(e->priv);
	e->priv = NULL;
}

static void data_cb(struct iscsi_context *ctx, int status, void *data, void *priv)
{
	struct data_io *io = priv;
	struct scsi_task *task = data ? data : io->task;
	struct bc_iscsi_lu *s = io->s;
	int res = bc_iscsi_status_errno(s, status, task, io->write ? "WRITE(16)" : "READ(16)", false);

	if (!res) {
		uint64_t short_by = task->residual_status == SCSI_RESIDUAL_UNDERFLOW ? task->residual : 0;
		res = short_by < io->len ? (int)(io->len - short_by) : -EIO;
	}
	s->inflight--;
	if (task)
		scsi_free_scsi_task(task);
	io->end->done(io->end->engine, io->tag, res);
	free(io);
}

static int iscsi_io_submit(struct bc_io_end *e, bool write, void *buf, uint32_t len, uint64_t off,
			   int buf_index, uint64_t tag)
{
	const struct blkcopy_dev *d = e->dev;
	struct bc_iscsi_lu *s = d->transport_data;
	struct data_io *io;
	uint64_t lba = off / d->lbs;

	if (s->lost)
		return -ECONNRESET;
	if (off % d->lbs || len % d->lbs || len > s->max_io)
		return -EINVAL;
	io = calloc(1, sizeof(*io));
	if (!io)
		return -ENOMEM;
	*io = (struct data_io){ .s = s, .iov = { buf, len }, .end = e, .tag = tag, .len = len,
				.write = write };
	if (write)
		io->task = iscsi_write16_iov_task(s->ctx, s->url.lun, lba, NULL, len, (int)d->lbs, 0,
						  0, 0, 0, 0, data_cb, io, &io->iov, 1);
	else
		io->task = iscsi_read16_iov_task(s->ctx, s->url.lun, lba, len, (int)d->lbs, 0, 0, 0,
						 0, 0, data_cb, io, &io->iov, 1);
	if (!io->task) {
		free(io);
		return -ENOMEM;
	}
	s->inflight++;
	return 0;
}

/*
 * Before every wait: push out what the session has queued, and make sure
 * the ring wakes for its answers, for room to send more, and once a
 * second while commands are out (their timeouts are checked then).  The
 * polls are one-shot, so the job still waits on one descriptor.
 */
static void iscsi_io_arm(struct bc_io_end *e)
{
	static struct __kernel_timespec tick = { .tv_sec = TICK_MS / 1000 };
	struct bc_iscsi_lu *s = e->dev->transport_data;
	struct iscsi_end *a = e->priv;
	struct io_uring_sqe *sqe;
	int fd;

	if (bc_iscsi_want_write(s))
		bc_iscsi_service(s, POLLOUT);
	fd = s->lost ? -1 : iscsi_get_fd(s->ctx);
	if (fd >= 0 && !a->in_armed && (sqe = bc_io_sqe(e))) {
		io_uring_prep_poll_add(sqe, fd, POLLIN);
		io_uring_sqe_set_data64(sqe, bc_io_event_tag(e, EVENT_IN));
		a->in_armed = true;
	}
	if (fd >= 0 && !a->out_armed && bc_iscsi_want_write(s) && (sqe = bc_io_sqe(e))) {
		io_uring_prep_poll_add(sqe, fd, POLLOUT);
		io_uring_sqe_set_data64(sqe, bc_io_event_tag(e, EVENT_OUT));
		a->out_armed = true;
	}
	if (!a->tick_armed && s->inflight && (sqe = bc_io_sqe(e))) {
		io_uring_prep_timeout(sqe, &tick, 0, 0);
		io_uring_sqe_set_data64(sqe, bc_io_event_tag(e, EVENT_TICK));
		a->tick_armed = true;
	}
}

static void iscsi_io_event(struct bc_io_end *e, uint32_t what, int res)
{
	struct iscsi_end *a = e->priv;

	if (what == EVENT_TICK)
		a->tick_armed = false;
	else if (what == EVENT_OUT)
		a->out_armed = false;
	else
		a->in_armed = false;
	bc_iscsi_service(e->dev->transport_data, what != EVENT_TICK && res > 0 ? res : 0);
}

static uint32_t iscsi_io_inflight(const struct bc_io_end *e)
{
	const struct bc_iscsi_lu *s = e->dev->transport_data;

	return s->inflight;
}

static void iscsi_io_abandon(struct bc_io_end *e)
{
	bc_iscsi_cancel_all(e->dev->transport_data);
}

const struct bc_transport bc_transport_iscsi = {
	.name = "iscsi",
	.claims = iscsi_claims,
	.open = iscsi_open,
	.kind = iscsi_kind,
	.close = iscsi_close,
	.flush = iscsi_flush,
	.direct_ok = iscsi_direct_ok,
	.io_max = iscsi_io_max,
	.io_open = iscsi_io_open,
	.io_submit = iscsi_io_submit,
	.io_arm = iscsi_io_arm,
	.io_event = iscsi_io_event,
	.io_inflight = iscsi_io_inflight,
	.io_abandon = iscsi_io_abandon,
	.io_close = iscsi_io_close,
};

#endif
