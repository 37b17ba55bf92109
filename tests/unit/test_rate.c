/* SPDX-License-Identifier: MIT */
/*
 * The rate limit: the bucket's arithmetic, then jobs over real files: a
 * limit that holds over emulated and native bytes, one lifted while the job
 * runs, and a job driven only through its descriptor, which must wake when
 * the limit lets more go.
 */
#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "check.h"
#include "fake_native.h"
#include "rate.h"

#define MIB (1024ull * 1024ull)
#define SIZE (8 * MIB)

static void test_bucket(void)
{
	struct bc_rate r;
	const uint64_t s = 1000000000ull;

	bc_rate_set(&r, 0, 0);
	CHECK(bc_rate_ready(&r, 0), "no limit, not ready");
	bc_rate_charge(&r, 1ull << 40);
	CHECK(bc_rate_ready(&r, 0) && bc_rate_wait_ms(&r, 0) == 0, "no limit held back");
	CHECK_EQ(bc_rate_piece_cap(&r), 0);

	/* 20 MB/s: a burst of 1 MB at once, then a piece into debt, then the wait for it. */
	bc_rate_set(&r, 20000000, s);
	CHECK_EQ(bc_rate_piece_cap(&r), 1000000);
	CHECK(bc_rate_ready(&r, s), "the burst is not there");
	bc_rate_charge(&r, 999999);
	CHECK(bc_rate_ready(&r, s), "debt before the burst is spent");
	bc_rate_charge(&r, 3000000);	/* 4 MB spent: 3 MB over the burst, 150 ms */
	CHECK(!bc_rate_ready(&r, s), "ready in debt");
	CHECK_EQ(bc_rate_wait_ms(&r, s), 150);
	CHECK(!bc_rate_ready(&r, s + 149 * 1000000ull), "ready before the debt is paid");
	CHECK(bc_rate_ready(&r, s + 151 * 1000000ull), "not ready after it");
	/* A new limit forgets the debt. */
	bc_rate_set(&r, 1000, s);
	CHECK(!bc_rate_ready(&r, s) || r.spent == 0, "old debt kept");
	CHECK_EQ(bc_rate_piece_cap(&r), 50);
	bc_rate_set(&r, 5, s);
	CHECK_EQ(bc_rate_piece_cap(&r), 1);
	/* Waits are bounded: a new limit may come any time. */
	bc_rate_charge(&r, 1000);
	CHECK_EQ(bc_rate_wait_ms(&r, s), 1000);
}

static char src_path[] = "/tmp/blkcopy-rate-src-XXXXXX";
static char dst_path[] = "/tmp/blkcopy-rate-dst-XXXXXX";
static char *src_data, *dst_data;

/* The destination back to its old bytes. */
static void reset_dst(void)
{
	int fd = open(dst_path, O_WRONLY);

	if (fd < 0 || pwrite(fd, dst_data, SIZE, 0) != (ssize_t)SIZE)
		abort();
	close(fd);
}

static double now_s(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

static bool dst_right(void)
{
	char *got = malloc(SIZE);
	int fd = open(dst_path, O_RDONLY);
	bool ok = got && fd >= 0 && pread(fd, got, SIZE, 0) == (ssize_t)SIZE &&
		  !memcmp(got, src_data, SIZE);

	close(fd);
	free(got);
	return ok;
}

/* The whole source, at @rate (bytes/s) with @flags; seconds it took. */
static double timed_copy(uint64_t rate, unsigned int flags)
{
	const struct blkcopy_opts o = { .flags = flags, .rate = rate };
	const struct blkcopy_range all = { 0, SIZE };
	struct blkcopy_dev *s, *d;
	struct blkcopy_progress p;
	double t;

	reset_dst();
	if (blkcopy_open(src_path, BLKCOPY_OPEN_READ, &s) ||
	    blkcopy_open(dst_path, BLKCOPY_OPEN_READ | BLKCOPY_OPEN_WRITE, &d))
		abort();
	t = now_s();
	CHECK_EQ(blkcopy_copy_ex(s, &all, 1, d, 0, &o, &p), SIZE);
	t = now_s() - t;
	CHECK(dst_right(), "copy at %llu B/s wrong", (unsigned long long)rate);
	blkcopy_close(s);
	blkcopy_close(d);
	return t;
}

static void test_jobs(void)
{
	const struct blkcopy_range all = { 0, SIZE };
	struct blkcopy_dev *s, *d;
	struct blkcopy_job *job;
	struct blkcopy_progress p;
	double t;

	/* 8 MiB at 16 MiB/s: half a second, emulated (chunks) and native (capped pieces). */
	t = timed_copy(16 * MIB, BLKCOPY_NOOFFLOAD);
	CHECK(t > 0.40 && t < 0.75, "emulated at 16 MiB/s took %.3f s", t);
	t = timed_copy(16 * MIB, 0);
	CHECK(t > 0.40 && t < 0.75, "native at 16 MiB/s took %.3f s", t);

	/* 1 MiB/s would take 8 s: lifted after 0.3 s, the job finishes soon after. */
	reset_dst();
	if (blkcopy_open(src_path, BLKCOPY_OPEN_READ, &s) ||
	    blkcopy_open(dst_path, BLKCOPY_OPEN_READ | BLKCOPY_OPEN_WRITE, &d))
		abort();
	const struct blkcopy_opts slow = { .flags = BLKCOPY_NOOFFLOAD, .rate = MIB };
	t = now_s();
	CHECK_EQ(blkcopy_job_submit(s, &all, 1, d, 0, &slow, &job), 0);
	CHECK_EQ(blkcopy_job_wait(job, 300), 0);
	blkcopy_job_progress(job, &p);
	CHECK(p.done < 2 * MIB, "%llu bytes in 0.3 s at 1 MiB/s", (unsigned long long)p.done);
	CHECK_EQ(blkcopy_job_set_rate(job, 0), 0);
	CHECK_EQ(blkcopy_job_finish(job, &p), SIZE);
	t = now_s() - t;
	CHECK(t < 2.0, "lifting the limit: %.3f s", t);
	CHECK(dst_right(), "copy after lifting the limit wrong");
	CHECK_EQ(blkcopy_job_set_rate(NULL, 1), -EINVAL);

	/* Driven through the descriptor only: the limit's timer must wake the poller. */
	reset_dst();
	const struct blkcopy_opts mid = { .flags = BLKCOPY_NOOFFLOAD, .rate = 32 * MIB };
	CHECK_EQ(blkcopy_job_submit(s, &all, 1, d, 0, &mid, &job), 0);
	int silent = 0;
	for (;;) {
		struct pollfd pfd = { .fd = blkcopy_job_fd(job), .events = POLLIN };

		if (poll(&pfd, 1, 2000) != 1) {
			silent = 1;
			break;
		}
		if (blkcopy_job_poll(job))
			break;
	}
	CHECK(!silent, "the job's descriptor stayed silent under a rate limit");
	if (silent)
		blkcopy_job_cancel(job);
	CHECK_EQ(blkcopy_job_finish(job, &p), silent ? -ECANCELED : (ssize_t)SIZE);
	CHECK(dst_right(), "polled copy wrong");
	blkcopy_close(s);
	blkcopy_close(d);
}

int main(void)
{
	test_bucket();
	src_data = malloc(SIZE);
	dst_data = malloc(SIZE);
	for (size_t i = 0; i < SIZE; i++) {
		src_data[i] = (char)(i * 31 + i / 4096);
		dst_data[i] = (char)~src_data[i];
	}
	fake_make_file(src_path, src_data, SIZE);
	fake_make_file(dst_path, dst_data, SIZE);
	test_jobs();
	unlink(src_path);
	unlink(dst_path);
	return check_done("test_rate");
}
