/* SPDX-License-Identifier: MIT */
/*
 * dm_table_change: a device-mapper table swapped while a copy is running
 * must stop the copy with -ESTALE: native commands bypass dm, so after the
 * swap they would land where the old table pointed.  Run by
 * tests/lab/50-dm.sh in the lab guest, with BLKCOPY_NVME_SYNC=1 so that
 * each blkcopy_job_poll() issues at most one native piece.  Public API only.
 *
 *   dm_table_change SRC DST SRC_OFF LEN DST_OFF COMMAND
 *
 * Submits one copy of LEN bytes (SRC_OFF -> DST_OFF; SRC and DST may be the
 * same node), polls until some bytes went native and the job is not
 * finished, runs COMMAND with system() (e.g. "dmsetup reload ... && dmsetup
 * resume ..."), then finishes the job.  Prints one line "result=N error=E
 * committed=C total=T native=B emulated=B native_at_change=B" and exits 0
 * only when the job ended with -ESTALE, committed < total and the
 * progress's error is -ESTALE; 1 otherwise, 2 on a usage or setup error.
 */
#include <errno.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include <blkcopy.h>

static int parse_u64(const char *s, uint64_t *v)
{
	char *end;

	errno = 0;
	*v = strtoull(s, &end, 0);
	return errno || end == s || *end ? -1 : 0;
}

static double now_s(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

static void print_result(ssize_t n, const struct blkcopy_progress *p, uint64_t at_change)
{
	printf("result=%zd error=%d (%s) committed=%" PRIu64 " total=%" PRIu64 " native=%" PRIu64
	       " emulated=%" PRIu64 " native_at_change=%" PRIu64 "\n",
	       n, p->error, p->error ? blkcopy_strerror(p->error) : "none", p->committed, p->total,
	       p->native_bytes, p->emulated_bytes, at_change);
}

int main(int argc, char **argv)
{
	struct blkcopy_dev *src = NULL, *dst = NULL;
	struct blkcopy_progress p = { 0 };
	struct blkcopy_range r;
	struct blkcopy_job *job;
	uint64_t dst_off, at_change = 0;
	int ret;

	if (argc != 7 || parse_u64(argv[3], &r.offset) || parse_u64(argv[4], &r.len) ||
	    parse_u64(argv[5], &dst_off)) {
		fprintf(stderr, "usage: %s SRC DST SRC_OFF LEN DST_OFF COMMAND\n", argv[0]);
		return 2;
	}
	ret = blkcopy_open(argv[2], BLKCOPY_OPEN_READ | BLKCOPY_OPEN_WRITE, &dst);
	if (ret) {
		fprintf(stderr, "%s: %s\n", argv[2], blkcopy_strerror(ret));
		return 2;
	}
	if (!strcmp(argv[1], argv[2])) {
		src = dst;
	} else {
		ret = blkcopy_open(argv[1], BLKCOPY_OPEN_READ, &src);
		if (ret) {
			fprintf(stderr, "%s: %s\n", argv[1], blkcopy_strerror(ret));
			blkcopy_close(dst);
			return 2;
		}
	}
	ret = blkcopy_job_submit(src, &r, 1, dst, dst_off, NULL, &job);
	if (ret) {
		fprintf(stderr, "submit: %s\n", blkcopy_strerror(ret));
		goto out_close;
	}

	/* Drive the job one poll at a time until native bytes are in and more is to come. */
	const double deadline = now_s() + 60;
	const char *why = NULL;
	for (;;) {
		int fin = blkcopy_job_poll(job);
		blkcopy_job_progress(job, &p);
		if (fin || p.finished) {
			why = p.native_bytes ? "the job finished before the table could be changed"
					     : "the job finished without any native byte";
			break;
		}
		if (p.native_bytes > 0)
			break;
		if (now_s() > deadline) {
			why = "no native byte within 60 s";
			break;
		}
		usleep(1000);
	}
	if (!why) {
		at_change = p.native_bytes;
		fflush(stdout);
		int st = system(argv[6]);
		if (st != 0) {
			fprintf(stderr, "'%s' failed (status %d)\n", argv[6], st);
			ret = 2;
		}
	} else {
		fprintf(stderr, "%s\n", why);
	}

	ssize_t n = blkcopy_job_finish(job, &p);
	print_result(n, &p, at_change);
	if (ret != 2) {
		if (!why && n == -ESTALE && p.committed < p.total && p.error == -ESTALE) {
			ret = 0;
		} else {
			if (!why)
				fprintf(stderr, "expected the job to end with -ESTALE (%s) and committed < total\n",
					blkcopy_strerror(-ESTALE));
			ret = 1;
		}
	}
out_close:
	if (src != dst)
		blkcopy_close(src);
	blkcopy_close(dst);
	return ret < 0 ? 2 : ret;
}
