/* SPDX-License-Identifier: MIT */
/*
 * iSCSI LUNs by URL, through libiscsi: one session per handle.  The SCSI
 * protocol of ../scsi.c runs over it (discovery, EXTENDED COPY sent to the
 * target, so a copy between LUNs of one target never crosses the network),
 * and emulation reads and writes through it with READ(16)/WRITE(16), many
 * in flight (struct bc_remote).
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

#include "../scsi.h"

#define URL_PREFIX "iscsi://"

bool bc_is_iscsi_url(const char *path)
{
	return !strncmp(path, URL_PREFIX, strlen(URL_PREFIX));
}

#ifndef BLKCOPY_HAVE_LIBISCSI

int bc_iscsi_open(struct blkcopy_dev *d, const char *url, char *why, size_t why_size)
{
	snprintf(why, why_size, "this blkcopy was built without libiscsi: iSCSI URLs are not supported");
	return -EPROTONOSUPPORT;
}

static int none_probe(struct blkcopy_dev *d)
{
	return -ENODEV;
}

const struct bc_backend bc_backend_iscsi = {
	.name = "iscsi",
	.probe = none_probe,
};

#else

#include <iscsi/iscsi.h>
#include <iscsi/scsi-lowlevel.h>
#include <poll.h>
#include <sys/epoll.h>
#include <sys/timerfd.h>
#include <unistd.h>

#include "../iscsi_url.h"

#define DEFAULT_TIMEOUT_S 30
#define MAX_TIMEOUT_S 3600
#define DEFAULT_INITIATOR "iqn.2025-11.org.blkcopy:initiator"
/* The copy manager moves a whole piece (up to 256 MiB) before it answers. */
#define XCOPY_TIMEOUT_FACTOR 4
/* Emulation never sends more in one command; the target's Block Limits may say less. */
#define MAX_IO (1u << 20)
/* A polite logout, but never a long wait for one. */
#define LOGOUT_TIMEOUT_MS 2000

struct iscsi_lu {
	struct iscsi_context *ctx;
	struct blkcopy_dev *dev;
	struct bc_iscsi_url url;	/* the password is wiped once logged in */
	int timeout_s;
	bool logged_in;
	bool lost;		/* the session dropped: nothing more goes out */
	bool cancelling;	/* our own cancel, not a dropped session */
	uint32_t inflight;	/* data commands not yet completed */
	uint32_t copies;	/* EXTENDED COPY commands of a native queue not yet completed */
	struct bc_scsi_transport t;
	struct bc_scsi_lu lu;
	bool copy_manager;	/* discovery found one blkcopy can use */
};

/* A step (connect, login, one command) waited for synchronously. */
struct waiter {
	bool done;
	int status;
};

/* One emulation read or write in flight. */
struct data_io {
	struct iscsi_lu *s;
	struct scsi_task *task;
	struct scsi_iovec iov;
	bc_remote_done done;
	void *arg;
	uint64_t tag;
	uint32_t len;
	bool write;
};

static void wait_cb(struct iscsi_context *ctx, int status, void *data, void *priv)
{
	struct waiter *w = priv;

	w->done = true;
	w->status = status;
}

/* The session is gone: say so once.  May run inside libiscsi's callbacks. */
static void lose(struct iscsi_lu *s, const char *why)
{
	if (s->lost)
		return;
	s->lost = true;
	snprintf(s->dev->error, sizeof(s->dev->error), "iSCSI session to %.80s lost: %.200s",
		 s->url.portal, why && *why ? why : "connection closed");
}

/* -1 when the connection failed (before login: the step waited for will never finish). */
static int service(struct iscsi_lu *s, int revents)
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
static int wait_until(struct iscsi_lu *s, const bool *done, int64_t deadline_ms)
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
		if (service(s, n > 0 ? p.revents : 0) && !*done)
			return -ECONNRESET;
	}
	return 0;
}

/* When a connect or login step, or one command, must have finished. */
static int64_t deadline(const struct iscsi_lu *s)
{
	return bc_now_ms() + (int64_t)s->timeout_s * 1000;
}

/* Complete every command in flight now (our own doing, not a dropped session). */
static void cancel_all(struct iscsi_lu *s)
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
	struct iscsi_lu *s = ctx;
	struct waiter w = { 0 };
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

static int env_timeout(char *why, size_t size)
{
	const char *v = getenv("BLKCOPY_ISCSI_TIMEOUT");
	char *end;
	long t;

	if (!v || !*v)
		return DEFAULT_TIMEOUT_S;
	errno = 0;
	t = strtol(v, &end, 10);
	if (errno || *end || t < 1 || t > MAX_TIMEOUT_S) {
		snprintf(why, size, "BLKCOPY_ISCSI_TIMEOUT must be 1 to %d seconds, not '%.32s'",
			 MAX_TIMEOUT_S, v);
		return -EINVAL;
	}
	return (int)t;
}

/* "Failed to log in to target. Status: Authentication failure(513)" -> the status number. */
static int login_status(const char *err)
{
	const char *p = err ? strrchr(err, '(') : NULL;

	return p ? atoi(p + 1) : -1;
}

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
	int e = login_status(err);

	return e > 0 && e < 4096 ? -e : fallback;
}

static int connect_and_login(struct iscsi_lu *s, char *why, size_t size)
{
	const char *initiator = getenv("BLKCOPY_ISCSI_INITIATOR");
	struct waiter w = { 0 };
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

	if (iscsi_connect_async(s->ctx, s->url.portal, wait_cb, &w)) {
		snprintf(why, size, "cannot connect to %s: %s", s->url.portal,
			 iscsi_get_error(s->ctx));
		return -EHOSTUNREACH;
	}
	ret = wait_until(s, &w.done, deadline(s));
	if (ret == -ETIMEDOUT) {
		snprintf(why, size, "no connection to %s within %d s", s->url.portal, s->timeout_s);
		return ret;
	}
	if (!ret && w.status != SCSI_STATUS_GOOD)
		ret = socket_errno(iscsi_get_error(s->ctx), -ECONNREFUSED);
	if (ret) {
		snprintf(why, size, "cannot connect to %s: %s", s->url.portal, strerror(-ret));
		return ret;
	}

	w = (struct waiter){ 0 };
	if (iscsi_login_async(s->ctx, wait_cb, &w)) {
		snprintf(why, size, "cannot log in to %s: %s", s->url.portal,
			 iscsi_get_error(s->ctx));
		return -EIO;
	}
	ret = wait_until(s, &w.done, deadline(s));
	if (!ret && w.status == SCSI_STATUS_TIMEOUT)
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
	if (w.status != SCSI_STATUS_GOOD) {
		const char *err = iscsi_get_error(s->ctx);
		int status = strstr(err, "Status:") ? login_status(err) : -1;

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

static void session_end(struct iscsi_lu *s)
{
	if (!s->ctx)
		return;
	if (s->logged_in && !s->lost) {
		struct waiter w = { 0 };

		if (!iscsi_logout_async(s->ctx, wait_cb, &w))
			wait_until(s, &w.done, bc_now_ms() + LOGOUT_TIMEOUT_MS);
	}
	/* Whatever is still in flight completes here, cancelled. */
	s->cancelling = true;
	iscsi_destroy_context(s->ctx);
	s->ctx = NULL;
}

static void lu_free(struct iscsi_lu *s)
{
	if (!s)
		return;
	session_end(s);
	explicit_bzero(&s->url, sizeof(s->url));
	free(s);
}

/* Geometry, write protection, transfer limit, copy manager: what a probe of a local LU learns. */
static int discover(struct blkcopy_dev *d, struct iscsi_lu *s, char *why, size_t size)
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
	d->max_io = max_xfer && max_xfer < MAX_IO ? (uint32_t)max_xfer : MAX_IO;
	if (d->max_io < d->lbs)
		d->max_io = d->lbs;

	ret = bc_scsi_copy_manager(&s->t, &s->lu, copy_why, sizeof(copy_why));
	if (ret == -ECONNRESET || ret == -ETIMEDOUT || ret == -ENOMEM) {
		snprintf(why, size, "%s", copy_why);
		return ret;
	}
	s->copy_manager = !ret;
	if (s->copy_manager)
		snprintf(d->reason, sizeof(d->reason),
			 "iscsi: EXTENDED COPY (LID1) by target %.223s: %u segment(s) of up to %u bytes, "
			 "%u target descriptor(s)", s->url.target, s->lu.max_segments,
			 s->lu.max_segment_bytes, s->lu.max_targets);
	else
		snprintf(d->reason, sizeof(d->reason), "iscsi: %.200s: emulation only", copy_why);
	return 0;
}

int bc_iscsi_open(struct blkcopy_dev *d, const char *url, char *why, size_t size)
{
	extern const struct bc_remote bc_remote_iscsi;
	struct iscsi_lu *s = calloc(1, sizeof(*s));
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
	ret = env_timeout(why, size);
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
	d->kind = BLKCOPY_KIND_ISCSI;
	d->remote = &bc_remote_iscsi;
	d->remote_data = s;
	return 0;
fail:
	lu_free(s);
	return ret;
}

/* ------------------------------------------------------------------------ */
/* Emulation's data path                                                    */

/*
 * A command's end -> -errno, with the story in the device's error.  @cmd
 * names it; @copy: EXTENDED COPY, whose refusals before writing keep their
 * meaning (emulate that piece).
 */
static int status_errno(struct iscsi_lu *s, int status, struct scsi_task *task, const char *cmd,
			bool copy)
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

static void data_cb(struct iscsi_context *ctx, int status, void *data, void *priv)
{
	struct data_io *io = priv;
	struct scsi_task *task = data ? data : io->task;
	struct iscsi_lu *s = io->s;
	int res = status_errno(s, status, task, io->write ? "WRITE(16)" : "READ(16)", false);

	if (!res) {
		uint64_t short_by = task->residual_status == SCSI_RESIDUAL_UNDERFLOW ? task->residual : 0;
		res = short_by < io->len ? (int)(io->len - short_by) : -EIO;
	}
	s->inflight--;
	if (task)
		scsi_free_scsi_task(task);
	io->done(io->arg, io->tag, res);
	free(io);
}

static int remote_submit(struct blkcopy_dev *d, bool write, void *buf, uint32_t len, uint64_t off,
			 bc_remote_done done, void *arg, uint64_t tag)
{
	struct iscsi_lu *s = d->remote_data;
	struct data_io *io;
	uint64_t lba = off / d->lbs;

	if (s->lost)
		return -ECONNRESET;
	if (off % d->lbs || len % d->lbs || len > d->max_io)
		return -EINVAL;
	io = calloc(1, sizeof(*io));
	if (!io)
		return -ENOMEM;
	*io = (struct data_io){ .s = s, .iov = { buf, len }, .done = done, .arg = arg, .tag = tag,
				.len = len, .write = write };
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

static int remote_fd(const struct blkcopy_dev *d)
{
	const struct iscsi_lu *s = d->remote_data;

	return s->lost ? -1 : iscsi_get_fd(s->ctx);
}

static bool remote_want_write(const struct blkcopy_dev *d)
{
	const struct iscsi_lu *s = d->remote_data;

	return !s->lost && (iscsi_which_events(s->ctx) & POLLOUT);
}

static void remote_service(struct blkcopy_dev *d, int revents)
{
	service(d->remote_data, revents);
}

static uint32_t remote_inflight(const struct blkcopy_dev *d)
{
	const struct iscsi_lu *s = d->remote_data;

	return s->inflight;
}

static int remote_flush(struct blkcopy_dev *d)
{
	struct iscsi_lu *s = d->remote_data;
	const uint8_t cdb[16] = { 0x91 };	/* SYNCHRONIZE CACHE(16), the whole LU */
	struct bc_scsi_sense sense;
	int ret;

	ret = bc_scsi_run(&s->t, cdb, sizeof(cdb), BC_SCSI_NONE, NULL, 0,
			  (uint32_t)s->timeout_s * 1000, &sense);
	if (ret == -EIO)
		bc_scsi_sense_errno(&sense, "SYNCHRONIZE CACHE", d->error, sizeof(d->error));
	return ret;
}

static bool remote_same_lu(const struct blkcopy_dev *a, const struct blkcopy_dev *b)
{
	const struct iscsi_lu *x = a->remote_data, *y = b->remote_data;

	if (x->lu.designator_len && x->lu.designator_len == y->lu.designator_len)
		return !memcmp(x->lu.designator, y->lu.designator, x->lu.designator_len);
	return !strcasecmp(x->url.target, y->url.target) && x->url.lun == y->url.lun;
}

static void remote_abandon(struct blkcopy_dev *d)
{
	cancel_all(d->remote_data);
}

static void remote_close(struct blkcopy_dev *d)
{
	lu_free(d->remote_data);
	d->remote_data = NULL;
}

const struct bc_remote bc_remote_iscsi = {
	.submit = remote_submit,
	.fd = remote_fd,
	.want_write = remote_want_write,
	.service = remote_service,
	.inflight = remote_inflight,
	.flush = remote_flush,
	.same_lu = remote_same_lu,
	.abandon = remote_abandon,
	.close = remote_close,
};

/* ------------------------------------------------------------------------ */
/* Native copy: EXTENDED COPY sent to the target                            */

static int iscsi_probe(struct blkcopy_dev *d)
{
	const struct iscsi_lu *s = d->remote_data;

	if (d->kind != BLKCOPY_KIND_ISCSI || !s->copy_manager)
		return -ENODEV;
	bc_scsi_limits(&s->lu, &s->lu, &d->limits);
	return 0;
}

/*
 * The same LU, or two LUs of one target (the IQN names the target wherever
 * it is reached): its copy manager finds both by their designators.
 */
static int iscsi_pair(const struct blkcopy_dev *src, const struct blkcopy_dev *dst,
		      struct blkcopy_limits *lim)
{
	const struct iscsi_lu *a = src->remote_data, *b = dst->remote_data;

	if (dst->kind != BLKCOPY_KIND_ISCSI || dst->backend != &bc_backend_iscsi ||
	    strcasecmp(a->url.target, b->url.target))
		return -EOPNOTSUPP;
	if (remote_same_lu(src, dst)) {
		/* One designator for two LUN numbers: the copy manager could not tell them apart. */
		if (a->url.lun != b->url.lun)
			return -EOPNOTSUPP;
		bc_scsi_limits(&a->lu, &a->lu, lim);
	} else {
		bc_scsi_limits(&a->lu, &b->lu, lim);
	}
	return lim->max_copy_sectors ? 0 : -EOPNOTSUPP;
}

/*
 * Many EXTENDED COPY commands in flight: a copy manager that takes one
 * segment per command (LIO) would otherwise cost a network round trip per
 * source range.  The job polls queue_fd: an epoll set of the session's
 * socket and a one-second timer, so that command timeouts are checked even
 * while the target stays silent.
 */
struct xcopy_cmd {
	struct bc_native_queue *q;
	struct scsi_task *task;
	struct iscsi_data list;
	uint32_t tag;
	uint32_t unit_attentions;
	uint64_t len;		/* bytes the piece copies */
	bool busy;
};

struct bc_native_queue {
	struct blkcopy_dev *src, *dst;
	struct iscsi_lu *a, *b;
	bool same;
	int epfd, timerfd;
	uint32_t depth;
	struct xcopy_cmd *cmds;
	struct bc_native_cqe *done;
	uint32_t nr_done;
};

#define UA_RETRIES 3

static int xcopy_send(struct xcopy_cmd *c);

static void xcopy_cb(struct iscsi_context *ctx, int status, void *data, void *priv)
{
	struct xcopy_cmd *c = priv;
	struct bc_native_queue *q = c->q;
	struct scsi_task *task = data ? data : c->task;
	int res;

	q->b->copies--;
	/* The first contact after a LU change reports a Unit Attention: ask again. */
	if (status == SCSI_STATUS_CHECK_CONDITION && task->sense.key == SCSI_SENSE_UNIT_ATTENTION &&
	    c->unit_attentions++ < UA_RETRIES) {
		scsi_free_scsi_task(task);
		if (!xcopy_send(c))
			return;
		res = -ENOMEM;
	} else {
		res = status_errno(q->b, status, task, "EXTENDED COPY", true);
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
	struct iscsi_lu *b = c->q->b;

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

static void queue_free(struct bc_native_queue *q)
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
	struct bc_native_queue *q = calloc(1, sizeof(*q));
	const struct itimerspec tick = { .it_interval = { 1, 0 }, .it_value = { 1, 0 } };
	struct epoll_event ev = { .events = EPOLLIN };

	if (!q)
		return -ENOMEM;
	*q = (struct bc_native_queue){ .src = src, .dst = dst, .a = src->remote_data,
				       .b = dst->remote_data, .same = remote_same_lu(src, dst),
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
	*qp = q;
	return 0;
}

static int iscsi_queue_submit(struct bc_native_queue *q, const struct bc_span *segs,
			      const struct bc_piece *piece, uint32_t tag)
{
	const size_t size = 16 + 2 * 32 + (size_t)28 * piece->nr_segs;
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
	c->unit_attentions = 0;
	ret = xcopy_send(c);
	if (ret) {
		free(c->list.data);
		c->list.data = NULL;
		return ret;
	}
	c->busy = true;
	/* Out now, not at the next poll: the command is a few hundred bytes. */
	if (remote_want_write(q->dst))
		service(q->b, POLLOUT);
	return 0;
}

static int iscsi_queue_reap(struct bc_native_queue *q, struct bc_native_cqe *cqes, uint32_t max,
			    bool wait)
{
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
		service(q->b, r > 0 ? p.revents : 0);
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

static int iscsi_queue_fd(const struct bc_native_queue *q)
{
	return q->epfd;
}

static void iscsi_queue_destroy(struct bc_native_queue *q)
{
	/* The core reaps everything first; anything left must not call back into freed memory. */
	if (q->b->copies)
		cancel_all(q->b);
	for (uint32_t i = 0; i < q->depth; i++)
		free(q->cmds[i].list.data);
	queue_free(q);
}

const struct bc_backend bc_backend_iscsi = {
	.name = "iscsi",
	.probe = iscsi_probe,
	.pair = iscsi_pair,
	.queue_create = iscsi_queue_create,
	.queue_submit = iscsi_queue_submit,
	.queue_reap = iscsi_queue_reap,
	.queue_fd = iscsi_queue_fd,
	.queue_destroy = iscsi_queue_destroy,
};

#endif
