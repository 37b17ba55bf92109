/* SPDX-License-Identifier: MIT */
/*
 * The API's promises, on real files and real io_uring with fake native
 * backends (the real ones are tested against real devices in the lab):
 *  - blkcopy_job_wait(job, -1) returns only when the job has finished, even
 *    while native commands take their time;
 *  - a caller that polls only blkcopy_job_fd() and calls blkcopy_job_poll()
 *    when it is readable finishes every job: emulated, queued native and
 *    synchronous native;
 *  - a refusal under BLKCOPY_NOEMULATION names its reason;
 *  - a backend table whose capabilities do not match its operations is
 *    never used;
 *  - blkcopy_check() says SIZE_MAX for *bad_range when no range is at fault,
 *    and blkcopy_strerror(-EBUSY) blames no particular kind of device.
 */
#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <stdlib.h>
#include <string.h>
#include <sys/timerfd.h>
#include <unistd.h>

#include "check.h"
#include "fake_native.h"

#define SIZE (4u << 20)
#define SLOW_MS 5

static const struct blkcopy_limits fake_limits = {
	.copy_offload = 1,
	.max_copy_sectors = 256,	/* 128 KiB pieces */
	.max_copy_nr_ranges = 4,
	.max_copy_range_sectors = 256,
};

static int pieces;

static int fake_pair(const struct blkcopy_dev *s, const struct blkcopy_dev *d,
		     struct blkcopy_limits *lim, char *why, size_t why_size)
{
	*lim = fake_limits;
	return 0;
}

static int refusing_pair(const struct blkcopy_dev *s, const struct blkcopy_dev *d,
			 struct blkcopy_limits *lim, char *why, size_t why_size)
{
	snprintf(why, why_size, "fake: these two never copy natively");
	return -EOPNOTSUPP;
}

static int fake_copy(struct blkcopy_dev *s, struct blkcopy_dev *d, const struct bc_span *segs,
		     const struct bc_piece *p, struct bc_copy_stats *st)
{
	static char buf[128 << 10];	/* max_copy_range_sectors */

	pieces++;
	if (fake_move(s, d, segs, p, buf))
		return -EIO;
	st->bytes[BLKCOPY_METHOD_COPY_FILE_RANGE] += p->len;
	return 0;
}

static const struct bc_backend sync_backend = {
	.name = "fake-sync",
	.caps = BC_BACKEND_SYNC,
	.probe = fake_probe,
	.pair = fake_pair,
	.copy = fake_copy,
};

/*
 * A queue whose commands each take SLOW_MS: a timer fires when the oldest
 * is due; reap completes what is due (waiting for it when asked to).
 */
struct slow_queue {
	struct bc_native_queue base;
	struct blkcopy_dev *src, *dst;
	int tfd;
	uint32_t n;
	struct {
		uint32_t tag;
		struct bc_piece piece;
		struct bc_span segs[4];
	} pending[64];
};

static void arm(struct slow_queue *q)
{
	struct itimerspec its = { .it_value = { .tv_nsec = SLOW_MS * 1000000L } };

	if (timerfd_settime(q->tfd, 0, &its, NULL))
		abort();
}

static int slow_create(struct blkcopy_dev *s, struct blkcopy_dev *d, uint32_t depth,
		       struct bc_native_queue **qp)
{
	struct slow_queue *q = calloc(1, sizeof(*q));

	if (!q || depth > 64)
		abort();
	q->src = s;
	q->dst = d;
	q->tfd = timerfd_create(CLOCK_MONOTONIC, TFD_CLOEXEC | TFD_NONBLOCK);
	*qp = &q->base;
	return 0;
}

static int slow_submit(struct bc_native_queue *nq, const struct bc_span *segs,
		       const struct bc_piece *piece, uint32_t tag)
{
	struct slow_queue *q = (struct slow_queue *)nq;
	q->pending[q->n].tag = tag;
	q->pending[q->n].piece = *piece;
	memcpy(q->pending[q->n].segs, segs, piece->nr_segs * sizeof(*segs));
	if (!q->n)
		arm(q);
	q->n++;
	return 0;
}

static int slow_reap(struct bc_native_queue *nq, struct bc_native_cqe *cqes, uint32_t max, bool wait)
{
	struct slow_queue *q = (struct slow_queue *)nq;
	struct pollfd p = { .fd = q->tfd, .events = POLLIN };
	uint64_t v;
	uint32_t n = 0;

	if (wait && q->n && poll(&p, 1, -1) < 0)
		return -errno;
	if (read(q->tfd, &v, sizeof(v)) < 0)
		return 0;	/* not due yet */
	/* Everything queued so far is due together. */
	while (q->n && n < max) {
		struct bc_copy_stats st = { 0 };

		q->n--;
		cqes[n].tag = q->pending[q->n].tag;
		cqes[n].method = BLKCOPY_METHOD_COPY_FILE_RANGE;
		cqes[n].result = fake_copy(q->src, q->dst, q->pending[q->n].segs,
					   &q->pending[q->n].piece, &st);
		n++;
	}
	if (q->n)
		arm(q);
	return (int)n;
}

static int slow_fd(const struct bc_native_queue *nq)
{
	const struct slow_queue *q = (const struct slow_queue *)nq;
	return q->tfd;
}

static void slow_destroy(struct bc_native_queue *nq)
{
	struct slow_queue *q = (struct slow_queue *)nq;
	if (q->n)
		abort();
	close(q->tfd);
	free(q);
}

static const struct bc_backend slow_backend = {
	.name = "fake-slow-queue",
	.caps = BC_BACKEND_QUEUED,
	.probe = fake_probe,
	.pair = fake_pair,
	.queue_create = slow_create,
	.queue_submit = slow_submit,
	.queue_reap = slow_reap,
	.queue_fd = slow_fd,
	.queue_destroy = slow_destroy,
};

static const struct bc_backend refusing_backend = {
	.name = "fake-refusing",
	.caps = BC_BACKEND_SYNC,
	.probe = fake_probe,
	.pair = refusing_pair,
	.copy = fake_copy,
};

static char src_path[] = "/tmp/blkcopy-promises-src-XXXXXX";
static char dst_path[] = "/tmp/blkcopy-promises-dst-XXXXXX";
static char *src_data;

static void open_pair(const struct bc_backend *b, struct blkcopy_dev **s, struct blkcopy_dev **d)
{
	if (truncate(dst_path, 0) || truncate(dst_path, SIZE) ||
	    blkcopy_open(src_path, BLKCOPY_OPEN_READ, s) ||
	    blkcopy_open(dst_path, BLKCOPY_OPEN_READ | BLKCOPY_OPEN_WRITE, d))
		abort();
	if (b) {
		(*s)->backend = (*d)->backend = b;
		(*s)->limits = (*d)->limits = fake_limits;
	}
	pieces = 0;
}

static bool dst_holds(uint64_t len)
{
	char *got = malloc(len);
	int fd = open(dst_path, O_RDONLY);
	bool same = fd >= 0 && pread(fd, got, len, 0) == (ssize_t)len && !memcmp(got, src_data, len);

	if (fd >= 0)
		close(fd);
	free(got);
	return same;
}

/* The destination holds @r's source bytes, in order, from offset 0. */
static bool dst_holds_at(const struct blkcopy_range *r, size_t nr)
{
	char *got = malloc(SIZE);
	int fd = open(dst_path, O_RDONLY);
	bool same = fd >= 0 && pread(fd, got, SIZE, 0) == SIZE;
	uint64_t at = 0;

	for (size_t i = 0; same && i < nr; i++) {
		same = !memcmp(got + at, src_data + r[i].offset, r[i].len);
		at += r[i].len;
	}
	if (fd >= 0)
		close(fd);
	free(got);
	return same;
}

/* blkcopy_job_wait(-1) returns only when finished: count the times it returned early. */
static void wait_forever(void)
{
	const struct blkcopy_range r = { 0, 1 << 20 };
	struct blkcopy_dev *s, *d;
	struct blkcopy_job *job;
	int early = 0;

	open_pair(&slow_backend, &s, &d);
	CHECK_EQ(blkcopy_job_submit(s, &r, 1, d, 0, NULL, &job), 0);
	while (!blkcopy_job_wait(job, -1) && early < 1000)
		early++;
	CHECK_EQ(early, 0);
	CHECK_EQ(blkcopy_job_finish(job, NULL), r.len);
	CHECK(pieces >= 8, "only %d native pieces", pieces);
	CHECK(dst_holds(r.len), "slow queued copy wrong");
	blkcopy_close(s);
	blkcopy_close(d);
}

/*
 * Poll only the job's descriptor; poll the job each time it is readable.
 * @b: a fake backend, or NULL for the real one the files get (the file
 * backend: copy_file_range, synchronous); @native: every byte must go native.
 */
static void fd_only(const struct bc_backend *b, unsigned int flags, bool native, const char *what)
{
	const struct blkcopy_opts o = { .flags = flags };
	const struct blkcopy_range r[] = { { 1 << 20, 1 << 20 }, { 0, 512 << 10 } };
	struct blkcopy_dev *s, *d;
	struct blkcopy_progress p;
	struct blkcopy_job *job;
	int wakeups = 0, stuck = 0;

	open_pair(b, &s, &d);
	CHECK_EQ(blkcopy_job_submit(s, r, 2, d, 0, &o, &job), 0);
	for (;;) {
		struct pollfd pfd = { .fd = blkcopy_job_fd(job), .events = POLLIN };

		if (poll(&pfd, 1, 5000) != 1) {
			stuck = 1;
			break;
		}
		wakeups++;
		if (blkcopy_job_poll(job))
			break;
	}
	CHECK(!stuck, "%s: the job descriptor stayed silent with work left (after %d wakeups)",
	      what, wakeups);
	if (stuck)
		blkcopy_job_cancel(job);
	CHECK_EQ(blkcopy_job_finish(job, &p), stuck ? -ECANCELED : (1 << 20) + (512 << 10));
	CHECK(p.native_bytes == (native ? p.total : 0), "%s: native %llu of %llu", what,
	      (unsigned long long)p.native_bytes, (unsigned long long)p.total);
	CHECK(stuck || dst_holds_at(r, 2), "%s: copy wrong", what);
	blkcopy_close(s);
	blkcopy_close(d);
}

static void refusal_reason(void)
{
	const struct blkcopy_range r = { 0, 4096 };
	struct blkcopy_dev *s, *d;
	size_t bad = 7;

	open_pair(&refusing_backend, &s, &d);
	CHECK_EQ(blkcopy_check(s, &r, 1, d, 8192, BLKCOPY_NOEMULATION, &bad), -EOPNOTSUPP);
	CHECK_EQ(bad, SIZE_MAX);
	CHECK(strstr(blkcopy_dev_error(d), "these two never copy natively"),
	      "no reason given: '%s'", blkcopy_dev_error(d));
	CHECK_EQ(blkcopy_copy(s, &r, 1, d, 8192, BLKCOPY_NOEMULATION), -EOPNOTSUPP);
	CHECK_EQ(pieces, 0);
	/* Native copy switched off on one end is a reason too. */
	d->error[0] = '\0';
	d->backend = s->backend = &sync_backend;
	CHECK_EQ(blkcopy_set_copy_offload(s, false), 0);
	CHECK_EQ(blkcopy_check(s, &r, 1, d, 8192, BLKCOPY_NOEMULATION, NULL), -EOPNOTSUPP);
	CHECK(strstr(blkcopy_dev_error(d), "switched off"), "no reason given: '%s'",
	      blkcopy_dev_error(d));
	blkcopy_close(s);
	blkcopy_close(d);

	bad = 7;
	CHECK_EQ(blkcopy_check(NULL, &r, 1, NULL, 0, 0, &bad), -EINVAL);
	CHECK_EQ(bad, SIZE_MAX);
	CHECK(!strstr(blkcopy_strerror(-EBUSY), "device-mapper"), "EBUSY blames dm: %s",
	      blkcopy_strerror(-EBUSY));
}

static void registration(void)
{
	const char *why;
	struct bc_backend b;

	for (const struct bc_backend *const *r = bc_backends; *r; r++)
		CHECK(bc_backend_valid(*r, &why), "registered backend %s: %s", (*r)->name, why);
	CHECK(bc_backend_valid(&sync_backend, &why), "%s", why);
	CHECK(bc_backend_valid(&slow_backend, &why), "%s", why);

	/* A queue that may refuse, with nothing to fall back on. */
	b = slow_backend;
	b.caps |= BC_BACKEND_QUEUE_MAY_REFUSE;
	CHECK(!bc_backend_valid(&b, &why), "may-refuse queue without copy() accepted");
	/* Declared synchronous without copy(). */
	b = slow_backend;
	b.caps |= BC_BACKEND_SYNC;
	CHECK(!bc_backend_valid(&b, &why), "SYNC without copy() accepted");
	/* Half a queue. */
	b = slow_backend;
	b.queue_fd = NULL;
	CHECK(!bc_backend_valid(&b, &why), "a queue without queue_fd accepted");
	/* Operations it does not declare. */
	b = sync_backend;
	b.queue_reap = slow_reap;
	CHECK(!bc_backend_valid(&b, &why), "undeclared queue operations accepted");
	b = sync_backend;
	b.caps = 0;
	CHECK(!bc_backend_valid(&b, &why), "no capabilities accepted");
	b = sync_backend;
	b.pair = NULL;
	CHECK(!bc_backend_valid(&b, &why), "no pair() accepted");
}

int main(void)
{
	src_data = malloc(SIZE);
	for (size_t i = 0; i < SIZE; i++)
		src_data[i] = (char)(i * 13 + i / 4096);
	fake_make_file(src_path, src_data, SIZE);
	fake_make_file(dst_path, NULL, 0);

	wait_forever();
	fd_only(NULL, BLKCOPY_NOOFFLOAD, false, "emulated");
	fd_only(NULL, 0, true, "the file backend (copy_file_range, synchronous)");
	fd_only(&sync_backend, 0, true, "synchronous native");
	fd_only(&slow_backend, 0, true, "queued native");
	refusal_reason();
	registration();

	unlink(src_path);
	unlink(dst_path);
	free(src_data);
	return check_done("promises");
}
