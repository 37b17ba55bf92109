/* SPDX-License-Identifier: MIT */
/*
 * The asynchronous job API against real files and real io_uring: progress
 * through blkcopy_job_fd() and poll(2), cancel, a source that shrinks under
 * the copy (reads come back short, then empty), and a destination whose file
 * system fills up (writes fail with ENOSPC).  After every failure the
 * committed prefix must hold exactly the source's bytes and nothing outside
 * the destination span may change.
 */
#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mount.h>
#include <sys/stat.h>
#include <unistd.h>

#include "check.h"
#include "blkcopy.h"

#define SIZE (64u << 20)
#define DST_OFF (1u << 20)
#define SPAN (SIZE - 2 * DST_OFF)

static char *src_data, *dst_data;

static void write_file(const char *path, const char *data, size_t len)
{
	int fd = open(path, O_WRONLY | O_CREAT | O_TRUNC, 0600);

	if (fd < 0 || (len && write(fd, data, len) != (ssize_t)len))
		abort();
	close(fd);
}

/* The copy was src[0, SPAN) -> dst[DST_OFF, ...): check the prefix and everything outside the span. */
static void check_dst(const char *path, uint64_t committed, const char *what)
{
	char *got = calloc(1, SIZE);
	int fd = open(path, O_RDONLY);
	ssize_t n = fd < 0 ? -1 : pread(fd, got, SIZE, 0);

	if (fd >= 0)
		close(fd);
	CHECK(n > 0, "%s: cannot read back", what);
	CHECK(!memcmp(got + DST_OFF, src_data, committed), "%s: committed prefix differs", what);
	CHECK(!memcmp(got, dst_data, DST_OFF), "%s: bytes before the span changed", what);
	if (n == SIZE)
		CHECK(!memcmp(got + DST_OFF + SPAN, dst_data + DST_OFF + SPAN, SIZE - DST_OFF - SPAN),
		      "%s: bytes after the span changed", what);
	free(got);
}

static struct blkcopy_job *start(const char *src, const char *dst, struct blkcopy_dev **s,
				 struct blkcopy_dev **d)
{
	/* Small buffers and shallow queues: many steps to observe. */
	const struct blkcopy_opts o = { .queue_depth = 4, .max_inflight = 256 << 10,
					.chunk_size = 64 << 10, .flags = BLKCOPY_BUFFERED | BLKCOPY_NOOFFLOAD };
	const struct blkcopy_range r = { 0, SPAN };
	struct blkcopy_job *j = NULL;

	CHECK_EQ(blkcopy_open(src, BLKCOPY_OPEN_READ, s), 0);
	CHECK_EQ(blkcopy_open(dst, BLKCOPY_OPEN_READ | BLKCOPY_OPEN_WRITE, d), 0);
	CHECK_EQ(blkcopy_job_submit(*s, &r, 1, *d, DST_OFF, &o, &j), 0);
	return j;
}

static void progress_and_fd(const char *src, const char *dst)
{
	struct blkcopy_dev *s, *d;
	struct blkcopy_job *j = start(src, dst, &s, &d);
	struct blkcopy_progress p, last = { 0 };
	int steps = 0;

	while (!blkcopy_job_poll(j)) {
		struct pollfd pfd = { .fd = blkcopy_job_fd(j), .events = POLLIN };

		blkcopy_job_progress(j, &p);
		CHECK(p.done >= last.done && p.committed >= last.committed, "progress went back");
		CHECK(p.committed <= p.done && p.done <= p.total, "committed %llu done %llu",
		      (unsigned long long)p.committed, (unsigned long long)p.done);
		CHECK_EQ(p.total, SPAN);
		last = p;
		steps++;
		CHECK(poll(&pfd, 1, 5000) == 1, "job fd never became readable");
	}
	CHECK(steps > 10, "only %d steps", steps);
	CHECK_EQ(blkcopy_job_finish(j, &p), SPAN);
	CHECK(p.finished && !p.error && p.committed == SPAN && p.emulated_bytes == SPAN, "final state");
	check_dst(dst, SPAN, "full copy");
	blkcopy_close(s);
	blkcopy_close(d);
}

/* A fresh destination, and a job an eighth of the way through. */
static struct blkcopy_job *start_midway(const char *src, const char *dst, struct blkcopy_dev **s,
					struct blkcopy_dev **d)
{
	struct blkcopy_progress p;

	write_file(dst, dst_data, SIZE);
	struct blkcopy_job *j = start(src, dst, s, d);
	do {
		blkcopy_job_wait(j, 1);
		blkcopy_job_progress(j, &p);
	} while (p.done < SPAN / 8);
	return j;
}

static void cancel(const char *src, const char *dst)
{
	struct blkcopy_dev *s, *d;
	struct blkcopy_progress p;
	struct blkcopy_job *j = start_midway(src, dst, &s, &d);

	blkcopy_job_cancel(j);
	blkcopy_job_cancel(j);
	CHECK_EQ(blkcopy_job_finish(j, &p), -ECANCELED);
	CHECK(p.committed >= SPAN / 8 && p.committed < SPAN, "committed %llu",
	      (unsigned long long)p.committed);
	check_dst(dst, p.committed, "cancel");
	blkcopy_close(s);
	blkcopy_close(d);
}

static void source_shrinks(const char *src, const char *dst)
{
	struct blkcopy_dev *s, *d;
	struct blkcopy_progress p;
	struct blkcopy_job *j = start_midway(src, dst, &s, &d);

	/* Validated at submit, gone now: reads past the new end return nothing. */
	CHECK_EQ(truncate(src, SPAN / 2 + 1000), 0);
	CHECK_EQ(blkcopy_job_finish(j, &p), -EIO);
	CHECK(p.committed <= SPAN / 2 + 1000, "committed %llu past the data that existed",
	      (unsigned long long)p.committed);
	check_dst(dst, p.committed, "shrunk source");
	blkcopy_close(s);
	blkcopy_close(d);
	write_file(src, src_data, SIZE);
}

/* A destination on a 4 MiB tmpfs: a sparse file whose writes run out of space. */
static void destination_full(const char *src, const char *dir)
{
	char mnt[256], dst[300];
	struct blkcopy_dev *s, *d;
	struct blkcopy_progress p;

	snprintf(mnt, sizeof(mnt), "%s/small", dir);
	snprintf(dst, sizeof(dst), "%s/dst", mnt);
	if (mkdir(mnt, 0700) || mount("tmpfs", mnt, "tmpfs", 0, "size=4m")) {
		printf("destination_full: skipped (needs root to mount tmpfs)\n");
		return;
	}
	int fd = open(dst, O_WRONLY | O_CREAT, 0600);
	CHECK(fd >= 0 && ftruncate(fd, SIZE) == 0, "sparse destination");
	close(fd);
	struct blkcopy_job *j = start(src, dst, &s, &d);
	CHECK_EQ(blkcopy_job_finish(j, &p), -ENOSPC);
	CHECK(p.committed > 0 && p.committed <= (4u << 20), "committed %llu",
	      (unsigned long long)p.committed);
	/* The sparse file reads as zeros where nothing was written. */
	char *got = malloc(p.committed), *zero = calloc(1, DST_OFF);
	fd = open(dst, O_RDONLY);
	CHECK(pread(fd, got, p.committed, DST_OFF) == (ssize_t)p.committed, "read back");
	CHECK(!memcmp(got, src_data, p.committed), "committed prefix differs");
	CHECK(pread(fd, zero, DST_OFF, 0) == DST_OFF && !memchr(zero, 1, DST_OFF) &&
	      !memchr(zero, 0xff, DST_OFF), "bytes before the span changed");
	close(fd);
	free(got);
	free(zero);
	blkcopy_close(s);
	blkcopy_close(d);
	umount(mnt);
	rmdir(mnt);
}

/*
 * Three destinations: one on the source's file system (a native leg,
 * copy_file_range), two on tmpfs (emulated whole, one fan-out leg).  The
 * job's descriptor, polled alone, drives both legs to the end; each target
 * reports its own method and holds the copy.  Then the refusals, with
 * nothing written, and a cancel that leaves every committed prefix exact.
 */
static void several_destinations(const char *src, const char *dir)
{
	char paths[3][96];
	struct blkcopy_dev *s, *d[3];
	struct blkcopy_target t[BLKCOPY_MAX_TARGETS + 1];
	const struct blkcopy_range r = { 0, SPAN };
	const struct blkcopy_opts o = { .queue_depth = 4, .max_inflight = 256 << 10,
					.chunk_size = 64 << 10 };
	struct blkcopy_progress p;
	struct blkcopy_job *j;

	snprintf(paths[0], sizeof(paths[0]), "%s/multi0", dir);
	for (int k = 1; k < 3; k++)
		snprintf(paths[k], sizeof(paths[k]), "/dev/shm/blkcopy-job-multi%d-%d", k, (int)getpid());
	CHECK_EQ(blkcopy_open(src, BLKCOPY_OPEN_READ, &s), 0);
	for (int k = 0; k < 3; k++) {
		write_file(paths[k], dst_data, SIZE);
		CHECK_EQ(blkcopy_open(paths[k], BLKCOPY_OPEN_READ | BLKCOPY_OPEN_WRITE, &d[k]), 0);
		t[k] = (struct blkcopy_target){ .dev = d[k], .offset = DST_OFF };
	}

	CHECK_EQ(blkcopy_job_submit_multi(s, &r, 1, t, 3, &o, &j), 0);
	int polls = 0;
	while (!blkcopy_job_poll(j)) {
		struct pollfd pfd = { .fd = blkcopy_job_fd(j), .events = POLLIN };

		CHECK(poll(&pfd, 1, 5000) == 1, "the job's descriptor never became readable");
		polls++;
	}
	CHECK(polls > 0, "finished at once");
	for (size_t k = 0; k < 3; k++) {
		CHECK_EQ(blkcopy_job_target_progress(j, k, &p), 0);
		CHECK(p.finished && !p.error && p.committed == SPAN && p.total == SPAN,
		      "target %zu: committed %llu error %d", k, (unsigned long long)p.committed, p.error);
		CHECK(k ? p.emulated_bytes == SPAN : p.native_bytes == SPAN,
		      "target %zu: native %llu emulated %llu", k, (unsigned long long)p.native_bytes,
		      (unsigned long long)p.emulated_bytes);
	}
	CHECK_EQ(blkcopy_job_target_progress(j, 3, &p), -EINVAL);
	CHECK_EQ(blkcopy_job_finish(j, &p), SPAN);
	CHECK(p.total == 3ull * SPAN && p.done == 3ull * SPAN && p.committed == SPAN && !p.error,
	      "summed: total %llu done %llu", (unsigned long long)p.total, (unsigned long long)p.done);
	for (int k = 0; k < 3; k++)
		check_dst(paths[k], SPAN, paths[k]);

	/* Refused, nothing written: none, too many, a NULL device, overlapping targets. */
	for (int k = 0; k < 3; k++)
		write_file(paths[k], dst_data, SIZE);
	CHECK_EQ(blkcopy_job_submit_multi(s, &r, 1, t, 0, &o, &j), -EINVAL);
	for (size_t k = 3; k <= BLKCOPY_MAX_TARGETS; k++)
		t[k] = t[0];
	CHECK_EQ(blkcopy_job_submit_multi(s, &r, 1, t, BLKCOPY_MAX_TARGETS + 1, &o, &j), -E2BIG);
	t[3] = (struct blkcopy_target){ .dev = NULL };
	CHECK_EQ(blkcopy_job_submit_multi(s, &r, 1, t, 4, &o, &j), -EINVAL);
	/* The same device twice, side by side, is two targets. */
	t[3] = (struct blkcopy_target){ .dev = d[1], .offset = DST_OFF + SPAN - 4096 };
	CHECK_EQ(blkcopy_job_submit_multi(s, &(struct blkcopy_range){ 0, 4096 }, 1, t, 4, &o, &j), 0);
	CHECK_EQ(blkcopy_job_finish(j, NULL), 4096);
	for (int k = 0; k < 3; k++)
		write_file(paths[k], dst_data, SIZE);
	t[3].offset = 4096;
	CHECK_EQ(blkcopy_job_submit_multi(s, &r, 1, t, 4, &o, &j), -EADDRINUSE);
	CHECK(strstr(blkcopy_dev_error(d[1]), "destination 4 overlaps destination 2") != NULL,
	      "said: %s", blkcopy_dev_error(d[1]));
	for (int k = 0; k < 3; k++)
		check_dst(paths[k], 0, "refused");

	/* Cancelled midway: every target's committed prefix holds exactly the source's bytes. */
	const struct blkcopy_opts slow = { .queue_depth = 4, .max_inflight = 256 << 10,
					   .chunk_size = 64 << 10, .rate = 64 << 20 };
	CHECK_EQ(blkcopy_job_submit_multi(s, &r, 1, t, 3, &slow, &j), 0);
	do {
		blkcopy_job_wait(j, 1);
		blkcopy_job_progress(j, &p);
	} while (p.done < SPAN / 4);
	blkcopy_job_cancel(j);
	while (!blkcopy_job_wait(j, -1))
		;
	for (size_t k = 0; k < 3; k++) {
		blkcopy_job_target_progress(j, k, &p);
		CHECK(p.error == -ECANCELED, "target %zu: error %d", k, p.error);
		check_dst(paths[k], p.committed, "cancelled");
	}
	CHECK_EQ(blkcopy_job_finish(j, NULL), -ECANCELED);

	for (int k = 0; k < 3; k++) {
		blkcopy_close(d[k]);
		unlink(paths[k]);
	}
	blkcopy_close(s);
}

int main(void)
{
	char dir[] = "/tmp/blkcopy-job-XXXXXX", src[64], dst[64];

	if (!mkdtemp(dir))
		return 1;
	snprintf(src, sizeof(src), "%s/src", dir);
	snprintf(dst, sizeof(dst), "%s/dst", dir);
	src_data = malloc(SIZE);
	dst_data = malloc(SIZE);
	for (size_t i = 0; i < SIZE; i += 8) {
		uint64_t a = i * 0x9E3779B97F4A7C15ull, b = ~a;
		memcpy(src_data + i, &a, 8);
		memcpy(dst_data + i, &b, 8);
	}
	write_file(src, src_data, SIZE);
	write_file(dst, dst_data, SIZE);

	progress_and_fd(src, dst);
	cancel(src, dst);
	source_shrinks(src, dst);
	destination_full(src, dir);
	several_destinations(src, dir);

	unlink(src);
	unlink(dst);
	rmdir(dir);
	free(src_data);
	free(dst_data);
	return check_done("job");
}
