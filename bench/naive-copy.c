// SPDX-License-Identifier: MIT
/*
 * naive-copy - the baseline blkcopy is measured against: a plain loop of
 * pread() + pwrite() per range, one I/O at a time, no queueing.
 *
 *   naive-copy [-v] [--direct] [--buffer SIZE] RANGES_FILE SRC DST
 *
 * RANGES_FILE holds one OFF:LEN per line ('-' = stdin), with the size syntax
 * of the blkcopy CLI: bytes, or a suffix s (512-byte sectors), k, m, g, t
 * (powers of 1024).  Blank lines and '#' comments are ignored.  The ranges
 * land in order, contiguously, at DST offset 0; DST is fsync()ed at the end.
 *
 * It is deliberately simple: it is what a careful programmer writes without
 * thinking about queue depth, and it doubles as the reference result in the
 * benchmark's scattered-copy verification.
 */
#ifndef _GNU_SOURCE
#define _GNU_SOURCE /* O_DIRECT */
#endif

#include <errno.h>
#include <fcntl.h>
#include <getopt.h>
#include <inttypes.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#define DEFAULT_BUFFER (1024 * 1024)
/* Keep offsets representable as off_t. */
#define MAX_OFFSET ((uint64_t)INT64_MAX)

struct range {
	uint64_t off;
	uint64_t len;
};

static const char *prog = "naive-copy";

__attribute__((format(printf, 1, 2)))
static _Noreturn void die(const char *fmt, ...)
{
	va_list ap;

	fprintf(stderr, "%s: ", prog);
	va_start(ap, fmt);
	vfprintf(stderr, fmt, ap);
	va_end(ap);
	fputc('\n', stderr);
	exit(1);
}

static _Noreturn void usage(FILE *out, int status)
{
	fprintf(out,
		"usage: %s [-v] [--direct] [--buffer SIZE] RANGES_FILE SRC DST\n"
		"Copy each OFF:LEN range of SRC (one per line in RANGES_FILE, '-' = stdin)\n"
		"with pread+pwrite, contiguously to DST from offset 0, then fsync DST.\n"
		"  --direct       open SRC and DST with O_DIRECT (page-aligned buffer)\n"
		"  --buffer SIZE  bytes per read/write, default 1m\n"
		"  -v, --verbose  print a summary on stderr\n"
		"Sizes: bytes, or suffix s (512-byte sectors), k, m, g, t (powers of 1024).\n",
		prog);
	exit(status);
}

/*
 * Parse a size: decimal digits and an optional suffix.  Returns false on
 * anything else, including overflow, so "1x" or "-5" are rejected rather
 * than silently misread.
 */
static bool parse_size(const char *s, size_t n, uint64_t *out)
{
	uint64_t v = 0, mult = 1;
	size_t i = 0;

	if (n == 0 || s[0] < '0' || s[0] > '9')
		return false;
	for (; i < n && s[i] >= '0' && s[i] <= '9'; i++) {
		unsigned d = (unsigned)(s[i] - '0');

		if (v > (UINT64_MAX - d) / 10)
			return false;
		v = v * 10 + d;
	}
	if (i < n) {
		if (i + 1 != n)
			return false;
		switch (s[i]) {
		case 's': case 'S': mult = 512; break;
		case 'k': case 'K': mult = 1ull << 10; break;
		case 'm': case 'M': mult = 1ull << 20; break;
		case 'g': case 'G': mult = 1ull << 30; break;
		case 't': case 'T': mult = 1ull << 40; break;
		default: return false;
		}
	}
	if (v > UINT64_MAX / mult)
		return false;
	*out = v * mult;
	return true;
}

static bool is_space(char c)
{
	return c == ' ' || c == '\t' || c == '\r' || c == '\n' || c == '\v' || c == '\f';
}

/*
 * Read every range before copying anything, so a typo on the last line is
 * reported before the destination is touched (as the blkcopy CLI does).
 */
static struct range *read_ranges(const char *path, size_t *nr_out, uint64_t *total_out)
{
	FILE *f = strcmp(path, "-") == 0 ? stdin : fopen(path, "r");
	struct range *ranges = NULL;
	size_t nr = 0, cap = 0, lineno = 0, linecap = 0;
	uint64_t total = 0;
	char *line = NULL;
	ssize_t linelen;

	if (!f)
		die("%s: %s", path, strerror(errno));

	while ((linelen = getline(&line, &linecap, f)) != -1) {
		char *p = line, *end, *colon, *hash;
		struct range r;

		lineno++;
		hash = memchr(line, '#', (size_t)linelen);
		end = hash ? hash : line + linelen;
		while (p < end && is_space(*p))
			p++;
		while (end > p && is_space(end[-1]))
			end--;
		if (p == end)
			continue;

		colon = memchr(p, ':', (size_t)(end - p));
		if (!colon || !parse_size(p, (size_t)(colon - p), &r.off) ||
		    !parse_size(colon + 1, (size_t)(end - colon - 1), &r.len))
			die("%s:%zu: bad range '%.*s' (want OFF:LEN)", path, lineno,
			    (int)(end - p), p);
		if (r.len == 0)
			die("%s:%zu: zero-length range", path, lineno);
		if (r.off > MAX_OFFSET || r.len > MAX_OFFSET - r.off ||
		    r.len > MAX_OFFSET - total)
			die("%s:%zu: range arithmetic overflows", path, lineno);
		total += r.len;

		if (nr == cap) {
			cap = cap ? cap * 2 : 4096;
			ranges = realloc(ranges, cap * sizeof(*ranges));
			if (!ranges)
				die("out of memory for %zu ranges", cap);
		}
		ranges[nr++] = r;
	}
	if (ferror(f))
		die("%s: read error: %s", path, strerror(errno));
	if (nr == 0)
		die("%s: no ranges", path);

	free(line);
	if (f != stdin)
		fclose(f);
	*nr_out = nr;
	*total_out = total;
	return ranges;
}

/* pread until @len bytes are in, retrying short reads and EINTR. */
static void read_full(int fd, const char *path, char *buf, size_t len, uint64_t off)
{
	while (len > 0) {
		ssize_t n = pread(fd, buf, len, (off_t)off);

		if (n < 0 && errno == EINTR)
			continue;
		if (n < 0)
			die("%s: read at offset %" PRIu64 ": %s", path, off, strerror(errno));
		if (n == 0)
			die("%s: range past the end of the source (offset %" PRIu64 ")", path, off);
		buf += n;
		len -= (size_t)n;
		off += (uint64_t)n;
	}
}

/* pwrite until @len bytes are out, retrying short writes and EINTR. */
static void write_full(int fd, const char *path, const char *buf, size_t len, uint64_t off)
{
	while (len > 0) {
		ssize_t n = pwrite(fd, buf, len, (off_t)off);

		if (n < 0 && errno == EINTR)
			continue;
		if (n < 0)
			die("%s: write at offset %" PRIu64 ": %s", path, off, strerror(errno));
		if (n == 0)
			die("%s: no space at offset %" PRIu64, path, off);
		buf += n;
		len -= (size_t)n;
		off += (uint64_t)n;
	}
}

static double now(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

int main(int argc, char **argv)
{
	static const struct option longopts[] = {
		{ "direct", no_argument, NULL, 'd' },
		{ "buffer", required_argument, NULL, 'b' },
		{ "verbose", no_argument, NULL, 'v' },
		{ "help", no_argument, NULL, 'h' },
		{ NULL, 0, NULL, 0 },
	};
	const char *ranges_path, *src_path, *dst_path;
	uint64_t bufsize = DEFAULT_BUFFER, total, dst_off = 0;
	bool direct = false, verbose = false;
	long page = sysconf(_SC_PAGESIZE);
	struct range *ranges;
	size_t nr;
	void *buf;
	int opt, src, dst, err;
	double t0;

	while ((opt = getopt_long(argc, argv, "vh", longopts, NULL)) != -1) {
		switch (opt) {
		case 'd':
			direct = true;
			break;
		case 'b':
			if (!parse_size(optarg, strlen(optarg), &bufsize) || bufsize == 0 ||
			    bufsize > (1ull << 30))
				die("--buffer: bad size '%s' (1 byte .. 1g)", optarg);
			break;
		case 'v':
			verbose = true;
			break;
		case 'h':
			usage(stdout, 0);
		default:
			usage(stderr, 2);
		}
	}
	if (argc - optind != 3)
		usage(stderr, 2);
	ranges_path = argv[optind];
	src_path = argv[optind + 1];
	dst_path = argv[optind + 2];

	if (page <= 0)
		page = 4096;
	/*
	 * O_DIRECT wants lengths in whole logical blocks; a page multiple is
	 * one for every device, so a buffer piece never splits a block.
	 */
	if (direct && bufsize % (uint64_t)page)
		die("--buffer must be a multiple of %ld with --direct", page);

	ranges = read_ranges(ranges_path, &nr, &total);

	src = open(src_path, O_RDONLY | O_CLOEXEC | (direct ? O_DIRECT : 0));
	if (src < 0)
		die("%s: %s", src_path, strerror(errno));
	/* No O_TRUNC: DST is usually a device; a file is written in place. */
	dst = open(dst_path, O_WRONLY | O_CREAT | O_CLOEXEC | (direct ? O_DIRECT : 0), 0644);
	if (dst < 0)
		die("%s: %s", dst_path, strerror(errno));

	/* A page-aligned buffer satisfies O_DIRECT's memory alignment. */
	err = posix_memalign(&buf, (size_t)page, (size_t)bufsize);
	if (err)
		die("cannot allocate a %" PRIu64 "-byte buffer: %s", bufsize, strerror(err));

	t0 = now();
	for (size_t i = 0; i < nr; i++) {
		uint64_t off = ranges[i].off, left = ranges[i].len;

		while (left > 0) {
			size_t n = (size_t)(left < bufsize ? left : bufsize);

			read_full(src, src_path, buf, n, off);
			write_full(dst, dst_path, buf, n, dst_off);
			off += n;
			dst_off += n;
			left -= n;
		}
	}
	if (fsync(dst) < 0)
		die("%s: fsync: %s", dst_path, strerror(errno));
	if (close(dst) < 0)
		die("%s: close: %s", dst_path, strerror(errno));

	if (verbose) {
		double secs = now() - t0;

		fprintf(stderr, "%s: %zu ranges, %" PRIu64 " bytes in %.3f s (%.1f MB/s)%s\n",
			prog, nr, total, secs, secs > 0 ? (double)total / secs / 1e6 : 0.0,
			direct ? ", O_DIRECT" : "");
	}
	close(src);
	free(buf);
	free(ranges);
	return 0;
}
