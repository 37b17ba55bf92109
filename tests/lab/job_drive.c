/* SPDX-License-Identifier: MIT */
/*
 * job_drive: the job API's promises on real devices.  Run by
 * tests/lab/30-nvme.sh and 40-scsi.sh in the lab guest.  Public API only.
 *
 *   job_drive fd|wait SRC DST LEN [DST_OFF]
 *
 * Copies LEN bytes from offset 0 of SRC to DST_OFF (default 0) of DST,
 * as 4 KiB ranges taken every 8 KiB (many native pieces), and drives the
 * job one way:
 *   fd    poll(2) on blkcopy_job_fd() alone, blkcopy_job_poll() each time it
 *         is readable (a descriptor silent for 10 s with work left fails);
 *   wait  blkcopy_job_wait(job, -1), which must return 1 the first time.
 * Prints "bytes=N native=B wakeups=W early=E" and exits 0 when the copy
 * copied every byte and the promise held; 1 otherwise, 2 on a usage or
 * setup error.  Whether the bytes landed is for the caller to check.
 */
#include <errno.h>
#include <inttypes.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <blkcopy.h>

static int parse_u64(const char *s, uint64_t *v)
{
	char *end;

	errno = 0;
	*v = strtoull(s, &end, 0);
	return errno || end == s || *end ? -1 : 0;
}

int main(int argc, char **argv)
{
	struct blkcopy_dev *src = NULL, *dst = NULL;
	struct blkcopy_range *r = NULL;
	struct blkcopy_progress p = { 0 };
	struct blkcopy_job *job;
	uint64_t len, dst_off = 0;
	int wakeups = 0, early = 0, ret = 2;
	bool use_fd, silent = false;
	size_t nr;

	if ((argc != 5 && argc != 6) || (strcmp(argv[1], "fd") && strcmp(argv[1], "wait")) ||
	    parse_u64(argv[4], &len) || (argc == 6 && parse_u64(argv[5], &dst_off)) ||
	    !len || len % 4096) {
		fprintf(stderr, "usage: job_drive fd|wait SRC DST LEN [DST_OFF]\n");
		return 2;
	}
	use_fd = !strcmp(argv[1], "fd");
	nr = len / 4096;
	r = calloc(nr, sizeof(*r));
	if (!r || blkcopy_open(argv[2], BLKCOPY_OPEN_READ, &src) ||
	    blkcopy_open(argv[3], BLKCOPY_OPEN_READ | BLKCOPY_OPEN_WRITE, &dst)) {
		fprintf(stderr, "job_drive: cannot open the devices\n");
		goto out;
	}
	for (size_t i = 0; i < nr; i++)
		r[i] = (struct blkcopy_range){ .offset = (uint64_t)i * 8192, .len = 4096 };
	/* Every piece native: the descriptor is what is tested, not the piece policy. */
	const struct blkcopy_opts o = { .native_min = 1 };
	int err = blkcopy_job_submit(src, r, nr, dst, dst_off, &o, &job);
	if (err) {
		fprintf(stderr, "job_drive: submit: %s %s\n", blkcopy_strerror(err),
			blkcopy_dev_error(dst));
		goto out;
	}
	if (use_fd) {
		for (;;) {
			struct pollfd pfd = { .fd = blkcopy_job_fd(job), .events = POLLIN };

			if (poll(&pfd, 1, 10000) != 1) {
				silent = true;
				blkcopy_job_cancel(job);
				break;
			}
			wakeups++;
			if (blkcopy_job_poll(job))
				break;
		}
	} else {
		while (!blkcopy_job_wait(job, -1) && early < 100000)
			early++;
	}
	ssize_t n = blkcopy_job_finish(job, &p);
	printf("bytes=%zd native=%" PRIu64 " wakeups=%d early=%d%s\n", n, p.native_bytes, wakeups,
	       early, silent ? " (the job descriptor stayed silent)" : "");
	if (n < 0)
		printf("error: %s %s\n", blkcopy_strerror((int)n), blkcopy_dev_error(dst));
	ret = n == (ssize_t)len && !silent && !early ? 0 : 1;
out:
	blkcopy_close(src);
	blkcopy_close(dst);
	free(r);
	return ret;
}
