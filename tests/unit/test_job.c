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

	unlink(src);
	unlink(dst);
	rmdir(dir);
	free(src_data);
	free(dst_data);
	return check_done("job");
}
