/* SPDX-License-Identifier: MIT */
/*
 * dm_handle_reuse: tables are re-read for every request, at every level.
 * Run by tests/lab/50-dm.sh in the lab guest.  Public API only.
 *
 *   dm_handle_reuse DEV SRC_OFF LEN DST_OFF COMMAND
 *
 * Opens DEV once, copies LEN bytes SRC_OFF -> DST_OFF on it, runs COMMAND
 * with system() (a table change somewhere under DEV), and copies again on
 * the same handle.  Prints "first=N native=B second=N native=B" and exits 0
 * only when both copies copied every byte natively; 1 otherwise, 2 on a
 * usage or setup error.  Where the bytes landed is for the caller to check.
 */
#include <errno.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>

#include <blkcopy.h>

static int parse_u64(const char *s, uint64_t *v)
{
	char *end;

	errno = 0;
	*v = strtoull(s, &end, 0);
	return errno || end == s || *end ? -1 : 0;
}

/* One copy; true when every byte went native. */
static bool copy_native(struct blkcopy_dev *d, const struct blkcopy_range *r, uint64_t dst_off,
			const char *label)
{
	struct blkcopy_progress p = { 0 };
	ssize_t n = blkcopy_copy_ex(d, r, 1, d, dst_off, NULL, &p);

	printf("%s=%zd native=%" PRIu64 " ", label, n, p.native_bytes);
	if (n < 0)
		printf("(%s: %s) ", blkcopy_strerror((int)n), blkcopy_dev_error(d));
	return n == (ssize_t)r->len && p.native_bytes == r->len;
}

int main(int argc, char **argv)
{
	struct blkcopy_range r;
	struct blkcopy_dev *d;
	uint64_t dst_off;
	int ret;

	if (argc != 6 || parse_u64(argv[2], &r.offset) || parse_u64(argv[3], &r.len) ||
	    parse_u64(argv[4], &dst_off)) {
		fprintf(stderr, "usage: %s DEV SRC_OFF LEN DST_OFF COMMAND\n", argv[0]);
		return 2;
	}
	ret = blkcopy_open(argv[1], BLKCOPY_OPEN_READ | BLKCOPY_OPEN_WRITE, &d);
	if (ret) {
		fprintf(stderr, "%s: %s\n", argv[1], blkcopy_strerror(ret));
		return 2;
	}
	bool first = copy_native(d, &r, dst_off, "first");
	fflush(stdout);
	int st = system(argv[5]);
	bool second = copy_native(d, &r, dst_off, "second");
	putchar('\n');
	blkcopy_close(d);
	if (st != 0) {
		fprintf(stderr, "'%s' failed (status %d)\n", argv[5], st);
		return 2;
	}
	return first && second ? 0 : 1;
}
