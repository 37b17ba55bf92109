/* SPDX-License-Identifier: MIT */
/* blkcopy(1): copy source ranges to a destination, natively when the storage can. */
#include <errno.h>
#include <getopt.h>
#include <inttypes.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "blkcopy.h"
#include "journal.h"
#include "parse.h"

#define EXIT_USAGE 2

static const char *prog = "blkcopy";

static void msg(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
static void msg(const char *fmt, ...)
{
	va_list ap;

	fprintf(stderr, "%s: ", prog);
	va_start(ap, fmt);
	vfprintf(stderr, fmt, ap);
	va_end(ap);
	fputc('\n', stderr);
}

/*
 * A device argument may be an iSCSI URL with a CHAP password in it
 * (iscsi://user%password@host/...).  blkcopy keeps its own copy of the
 * argument, hides the password in argv (what ps shows), and never prints it.
 */
static const char *url_secret(const char *arg, size_t *len)
{
	const char *auth, *end, *at = NULL, *pct;

	if (strncmp(arg, "iscsi://", 8))
		return NULL;
	auth = arg + 8;
	end = auth + strcspn(auth, "/");
	for (const char *p = auth; p < end; p++)
		if (*p == '@')
			at = p;
	pct = at ? memchr(auth, '%', (size_t)(at - auth)) : NULL;
	if (!pct)
		return NULL;
	*len = (size_t)(at - pct);	/* '%' and the password */
	return pct;
}

static char *take_device_arg(char *arg)
{
	char *copy = strdup(arg);
	size_t len;
	const char *secret = url_secret(arg, &len);

	if (secret)
		memset(arg + (secret - arg) + 1, 'x', len - 1);
	return copy;
}

/* @path as it may be shown: without a URL's password. */
static const char *shown_name(const char *path, char *buf, size_t size)
{
	size_t len;
	const char *secret = url_secret(path, &len);

	if (!secret)
		return path;
	snprintf(buf, size, "%.*s%s", (int)(secret - path), path, secret + len);
	return buf;
}

/* blkcopy_open(), saying why not in the library's words when it has them. */
static int open_dev(const char *path, unsigned int flags, struct blkcopy_dev **d)
{
	int ret = blkcopy_open(path, flags, d);

	if (ret) {
		char buf[512];
		const char *why = blkcopy_open_error();

		msg("%s: %s%s", shown_name(path, buf, sizeof(buf)), *why ? why : blkcopy_strerror(ret),
		    ret == -EBUSY ? " (mounted or in use?)" : "");
	}
	return ret;
}

static double now_s(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

/* "1.50 GiB" */
static const char *human(uint64_t v, char *buf, size_t size)
{
	static const char *const unit[] = { "B", "KiB", "MiB", "GiB", "TiB", "PiB", "EiB" };
	double d = (double)v;
	int u = 0;

	while (d >= 1024 && u < 6) {
		d /= 1024;
		u++;
	}
	snprintf(buf, size, u ? "%.2f %s" : "%.0f %s", d, unit[u]);
	return buf;
}

static void json_string(FILE *f, const char *s)
{
	fputc('"', f);
	for (; *s; s++) {
		unsigned char c = (unsigned char)*s;

		if (c == '"' || c == '\\')
			fprintf(f, "\\%c", c);
		else if (c < 0x20)
			fprintf(f, "\\u%04x", c);
		else
			fputc(c, f);
	}
	fputc('"', f);
}

/* ------------------------------------------------------------------------ */
/* copy                                                                     */
/* ------------------------------------------------------------------------ */

static volatile sig_atomic_t interrupted;

static void on_signal(int sig)
{
	(void)sig;
	interrupted = 1;
}

static void usage_copy(FILE *f)
{
	fprintf(f,
		"Usage: %s copy [OPTIONS] SRC DST [DST...]\n"
		"Copy ranges of SRC, in order, to each DST (up to %u) starting at --dst-offset.\n"
		"\n"
		"  -r, --range OFF:LEN      a source range (repeatable); default: all of SRC\n"
		"  -f, --ranges-from FILE   read OFF:LEN lines from FILE ('-' = stdin)\n"
		"  -d, --dst-offset OFF     where the first range lands in DST (default 0); once for\n"
		"                           every DST, or once per DST in their order\n"
		"      --no-offload         never use native copy: emulate\n"
		"      --no-emulation       fail rather than emulate\n"
		"      --json               print the result as one JSON object\n"
		"      --progress           show a progress bar (default when stderr is a terminal)\n"
		"      --no-progress        never show a progress bar\n"
		"      --no-sync            do not flush DST before reporting success\n"
		"      --verify             read DST back after the copy and compare it with SRC\n"
		"      --rate SIZE          copy at most SIZE bytes per second (native and emulated)\n"
		"      --journal FILE       record the request and its committed prefix in FILE (new)\n"
		"      --resume             continue the copy that --journal FILE records\n"
		"      --buffered           emulate through the page cache, not O_DIRECT\n"
		"      --p2p[=src|dst]      stage emulated bytes in PCI peer-to-peer memory (an NVMe\n"
		"                           controller memory buffer), never in host RAM: the source's\n"
		"                           or the first DST's; default: the source's if it has some\n"
		"      --queue-depth N      emulation I/Os in flight (default 128)\n"
		"      --max-inflight SIZE  emulation buffer memory (default 16m)\n"
		"      --chunk-size SIZE    bytes per emulated write (default 1m)\n"
		"      --native-min SIZE    emulate native pieces shorter than SIZE; 0: every piece\n"
		"                           native; auto (default): learnt where small commands cost\n"
		"                           more than they copy (SCSI EXTENDED COPY)\n"
		"\n"
		"Sizes: bytes, or with a suffix s (512-byte sectors), k, m, g, t; or hex (0x1000).\n",
		prog, BLKCOPY_MAX_TARGETS);
}

struct copy_args {
	struct range_list ranges;
	uint64_t dst_off[BLKCOPY_MAX_TARGETS];	/* one per destination, once parsed */
	size_t nr_dst_off;			/* --dst-offset given this often */
	struct blkcopy_opts opts;
	bool json, progress, progress_set;
	bool ranges_given;	/* an empty --ranges-from list must not mean "everything" */
	const char *journal;	/* --journal */
	bool resume;
	char *src;		/* our copies: argv's passwords are hidden */
	char *dst[BLKCOPY_MAX_TARGETS];
	size_t nr_dst;
};

enum {
	OPT_NO_OFFLOAD = 256, OPT_NO_EMULATION, OPT_JSON, OPT_PROGRESS, OPT_NO_PROGRESS,
	OPT_NO_SYNC, OPT_BUFFERED, OPT_QD, OPT_INFLIGHT, OPT_CHUNK, OPT_NATIVE_MIN, OPT_VERIFY, OPT_RATE, OPT_JOURNAL, OPT_RESUME, OPT_P2P,
};

static int size_opt(const char *name, const char *arg, uint64_t *v)
{
	int ret = parse_size(arg, v);

	if (ret)
		msg("%s: %s size '%s'", name, ret == -EOVERFLOW ? "too large a" : "bad", arg);
	return ret;
}

static int read_ranges_from(const char *path, struct range_list *l)
{
	FILE *f = strcmp(path, "-") ? fopen(path, "re") : stdin;
	size_t line = 0;
	int ret;

	if (!f) {
		msg("%s: %s", path, strerror(errno));
		return -errno;
	}
	ret = parse_ranges_file(f, l, &line);
	if (f != stdin)
		fclose(f);
	if (ret == -E2BIG)
		msg("%s: too many ranges (more than %u)", path, BLKCOPY_MAX_RANGES);
	else if (ret == -EIO)
		msg("%s: read error", path);
	else if (ret)
		msg("%s:%zu: bad range (want OFF:LEN)", path, line);
	return ret;
}

static int parse_copy_args(int argc, char **argv, struct copy_args *a)
{
	static const struct option longopts[] = {
		{ "range", required_argument, NULL, 'r' },
		{ "ranges-from", required_argument, NULL, 'f' },
		{ "dst-offset", required_argument, NULL, 'd' },
		{ "no-offload", no_argument, NULL, OPT_NO_OFFLOAD },
		{ "no-emulation", no_argument, NULL, OPT_NO_EMULATION },
		{ "json", no_argument, NULL, OPT_JSON },
		{ "progress", no_argument, NULL, OPT_PROGRESS },
		{ "no-progress", no_argument, NULL, OPT_NO_PROGRESS },
		{ "no-sync", no_argument, NULL, OPT_NO_SYNC },
		{ "buffered", no_argument, NULL, OPT_BUFFERED },
		{ "queue-depth", required_argument, NULL, OPT_QD },
		{ "max-inflight", required_argument, NULL, OPT_INFLIGHT },
		{ "chunk-size", required_argument, NULL, OPT_CHUNK },
		{ "native-min", required_argument, NULL, OPT_NATIVE_MIN },
		{ "verify", no_argument, NULL, OPT_VERIFY },
		{ "rate", required_argument, NULL, OPT_RATE },
		{ "journal", required_argument, NULL, OPT_JOURNAL },
		{ "resume", no_argument, NULL, OPT_RESUME },
		{ "p2p", optional_argument, NULL, OPT_P2P },
		{ "help", no_argument, NULL, 'h' },
		{ 0 },
	};
	struct blkcopy_range r;
	uint64_t v;
	int c, ret;

	a->opts.flags = BLKCOPY_SYNC;
	while ((c = getopt_long(argc, argv, "r:f:d:h", longopts, NULL)) != -1) {
		switch (c) {
		case 'r':
			ret = parse_range(optarg, &r);
			if (ret) {
				msg("--range: bad range '%s' (want OFF:LEN)", optarg);
				return ret;
			}
			ret = range_list_add(&a->ranges, &r);
			if (ret) {
				msg("--range: too many ranges (more than %u)", BLKCOPY_MAX_RANGES);
				return ret;
			}
			a->ranges_given = true;
			break;
		case 'f':
			ret = read_ranges_from(optarg, &a->ranges);
			if (ret)
				return ret == -E2BIG ? ret : -EINVAL;
			a->ranges_given = true;
			break;
		case 'd':
			if (a->nr_dst_off == BLKCOPY_MAX_TARGETS) {
				msg("--dst-offset: at most %u (one per DST)", BLKCOPY_MAX_TARGETS);
				return -EINVAL;
			}
			if (size_opt("--dst-offset", optarg, &a->dst_off[a->nr_dst_off++]))
				return -EINVAL;
			break;
		case OPT_NO_OFFLOAD: a->opts.flags |= BLKCOPY_NOOFFLOAD; break;
		case OPT_NO_EMULATION: a->opts.flags |= BLKCOPY_NOEMULATION; break;
		case OPT_JSON: a->json = true; break;
		case OPT_PROGRESS: a->progress = a->progress_set = true; break;
		case OPT_NO_PROGRESS: a->progress = false; a->progress_set = true; break;
		case OPT_NO_SYNC: a->opts.flags &= ~BLKCOPY_SYNC; break;
		case OPT_BUFFERED: a->opts.flags |= BLKCOPY_BUFFERED; break;
		case OPT_VERIFY: a->opts.flags |= BLKCOPY_VERIFY; break;
		case OPT_JOURNAL: a->journal = optarg; break;
		case OPT_RESUME: a->resume = true; break;
		case OPT_P2P:
			a->opts.flags |= BLKCOPY_P2P;
			if (!optarg || !strcmp(optarg, "auto")) {
				a->opts.p2p_memory = BLKCOPY_P2P_AUTO;
			} else if (!strcmp(optarg, "src")) {
				a->opts.p2p_memory = BLKCOPY_P2P_SRC;
			} else if (!strcmp(optarg, "dst")) {
				a->opts.p2p_memory = BLKCOPY_P2P_DST;
			} else {
				msg("--p2p: want src, dst or auto, not '%s'", optarg);
				return -EINVAL;
			}
			break;
		case OPT_RATE:
			if (size_opt("--rate", optarg, &a->opts.rate) || !a->opts.rate) {
				msg("--rate: want a size per second, more than 0");
				return -EINVAL;
			}
			break;
		case OPT_QD:
			if (size_opt("--queue-depth", optarg, &v) || !v || v > 4096) {
				msg("--queue-depth: want 1 to 4096");
				return -EINVAL;
			}
			a->opts.queue_depth = (uint32_t)v;
			break;
		case OPT_INFLIGHT:
			if (size_opt("--max-inflight", optarg, &a->opts.max_inflight))
				return -EINVAL;
			break;
		case OPT_CHUNK:
			if (size_opt("--chunk-size", optarg, &a->opts.chunk_size))
				return -EINVAL;
			break;
		case OPT_NATIVE_MIN:
			if (!strcmp(optarg, "auto")) {
				a->opts.native_min = 0;
				break;
			}
			if (size_opt("--native-min", optarg, &v))
				return -EINVAL;
			a->opts.native_min = v ? v : 1;	/* 1: no piece is shorter */
			break;
		case 'h':
			usage_copy(stdout);
			exit(0);
		default:
			usage_copy(stderr);
			return -EINVAL;
		}
	}
	if ((a->opts.flags & BLKCOPY_NOOFFLOAD) && (a->opts.flags & BLKCOPY_NOEMULATION)) {
		msg("copy: --no-offload and --no-emulation leave no way to copy");
		return -EINVAL;
	}
	if ((a->opts.flags & BLKCOPY_P2P) && (a->opts.flags & BLKCOPY_BUFFERED)) {
		msg("copy: --p2p moves data by O_DIRECT only: not with --buffered");
		return -EINVAL;
	}
	if (a->resume && !a->journal) {
		msg("copy: --resume needs --journal FILE");
		return -EINVAL;
	}
	if ((a->opts.max_inflight && a->opts.max_inflight < 4096) ||
	    (a->opts.chunk_size && a->opts.chunk_size < 4096)) {
		msg("copy: --max-inflight and --chunk-size must be at least 4k");
		return -EINVAL;
	}
	if (argc - optind < 2) {
		msg("copy: need SRC and DST");
		usage_copy(stderr);
		return -EINVAL;
	}
	if (argc - optind - 1 > (int)BLKCOPY_MAX_TARGETS) {
		msg("copy: at most %u destinations", BLKCOPY_MAX_TARGETS);
		return -EINVAL;
	}
	a->nr_dst = (size_t)(argc - optind - 1);
	if (a->nr_dst_off > 1 && a->nr_dst_off != a->nr_dst) {
		msg("copy: --dst-offset given %zu times for %zu destinations (once for all, or once "
		    "per DST)", a->nr_dst_off, a->nr_dst);
		return -EINVAL;
	}
	for (size_t k = a->nr_dst_off; k < a->nr_dst; k++)
		a->dst_off[k] = a->nr_dst_off ? a->dst_off[0] : 0;
	a->src = take_device_arg(argv[optind]);
	if (!a->src)
		return -ENOMEM;
	for (size_t k = 0; k < a->nr_dst; k++)
		if (!(a->dst[k] = take_device_arg(argv[optind + 1 + (int)k])))
			return -ENOMEM;
	if (!a->progress_set)
		a->progress = isatty(STDERR_FILENO) && !a->json;
	return 0;
}

/* The same node or file under two names must be one handle: O_EXCL would fail otherwise. */
static bool same_node(const char *a, const char *b)
{
	struct stat sa, sb;

	if (stat(a, &sa) || stat(b, &sb))
		return false;
	if (S_ISBLK(sa.st_mode) && S_ISBLK(sb.st_mode))
		return sa.st_rdev == sb.st_rdev;
	return sa.st_dev == sb.st_dev && sa.st_ino == sb.st_ino;
}

static void draw_progress(const struct blkcopy_progress *p, double t0, bool final)
{
	char a[32], b[32], r[32];
	double el = now_s() - t0;
	double rate = el > 0 ? (double)p->done / el : 0;
	int pct = p->total ? (int)(p->done * 100 / p->total) : 100;
	int fill = pct * 30 / 100;

	fprintf(stderr, "\r[%.*s%*s] %3d%%  %s / %s  %s/s ", fill,
		"##############################", 30 - fill, "", pct,
		human(p->done, a, sizeof(a)), human(p->total, b, sizeof(b)),
		human((uint64_t)rate, r, sizeof(r)));
	if (rate > 0 && !final) {
		uint64_t eta = (uint64_t)((double)(p->total - p->done) / rate);
		fprintf(stderr, " ETA %" PRIu64 ":%02" PRIu64 "  ", eta / 60, eta % 60);
	}
	if (final)
		fputs("\r\033[K", stderr);
}

/* The one method that did everything, "mixed", or "none". */
static const char *method_of(const struct blkcopy_progress *p)
{
	const char *name = "none";

	for (int m = 0; m < BLKCOPY_METHOD_MAX; m++) {
		if (!p->method_bytes[m])
			continue;
		if (strcmp(name, "none"))
			return "mixed";
		name = blkcopy_method_name((enum blkcopy_method)m);
	}
	return name;
}

/*
 * A zoned destination's write pointer after a copy: of the zone holding the
 * last byte written (or the first byte, when none was).  -1: not zoned, or
 * a conventional zone (which has none).
 */
static int64_t dst_write_pointer(struct blkcopy_dev *dst, uint64_t dst_off,
				 const struct blkcopy_progress *p)
{
	struct blkcopy_zone z;

	/* A device that is not zoned reports no zone (-EOPNOTSUPP). */
	if (blkcopy_report_zones(dst, dst_off + (p->committed ? p->committed - 1 : 0), &z, 1) != 1 ||
	    z.type == BLKCOPY_ZONE_CONVENTIONAL)
		return -1;
	return (int64_t)z.write_pointer;
}

/* Why bytes were emulated, the piece policy's figures, and verification (null: not asked). */
static void stats_json(const struct blkcopy_stats *st, bool verify, int err)
{
	fputs(",\"emulated\":{", stdout);
	for (int w = 0, first = 1; w < BLKCOPY_EMULATED_MAX; w++) {
		if (!st->emulated[w])
			continue;
		printf("%s\"%s\":%" PRIu64, first ? "" : ",",
		       blkcopy_emulated_name((enum blkcopy_emulated)w), st->emulated[w]);
		first = 0;
	}
	printf("},\"native_min\":%" PRIu64 ",\"native_min_learnt\":%s"
	       ",\"native_commands\":%" PRIu64 ",\"native_seconds\":%.6f"
	       ",\"emulated_seconds\":%.6f",
	       st->native_min, st->native_min_learnt ? "true" : "false", st->native_commands,
	       (double)st->native_ns / 1e9, (double)st->emulated_busy_ns / 1e9);
	printf(",\"p2p_bytes\":%" PRIu64 ",\"p2p_memory\":", st->p2p_bytes);
	if (st->p2p_pci[0])
		json_string(stdout, st->p2p_pci);
	else
		fputs("null", stdout);
	if (!verify) {
		fputs(",\"verified\":null,\"verified_bytes\":0,\"mismatch_offset\":null", stdout);
		return;
	}
	printf(",\"verified\":%s,\"verified_bytes\":%" PRIu64 ",\"mismatch_offset\":",
	       !err ? "true" : "false", st->verified_bytes);
	if (st->mismatch_offset != UINT64_MAX)
		printf("%" PRIu64, st->mismatch_offset);
	else
		fputs("null", stdout);
}

/* What one destination got (or the whole job, summed). */
struct copy_result {
	struct blkcopy_progress p;
	struct blkcopy_stats st;
	int err;
	const char *dev_err;	/* NULL: none */
	int64_t wp;		/* zoned: the write pointer after the copy; -1: none */
};

/* Bytes that reached the destination(s) as a whole: all of them, or the committed prefix. */
static uint64_t result_bytes(const struct copy_result *r)
{
	return r->err ? r->p.committed : r->p.total;
}

static void result_json(const struct copy_result *r, uint64_t bytes)
{
	const struct blkcopy_progress *p = &r->p;

	printf("\"bytes\":%" PRIu64 ",\"native_bytes\":%" PRIu64 ",\"emulated_bytes\":%" PRIu64,
	       bytes, p->native_bytes, p->emulated_bytes);
}

static void methods_json(const struct copy_result *r, bool verify)
{
	const struct blkcopy_progress *p = &r->p;

	fputs("\"method\":", stdout);
	json_string(stdout, method_of(p));
	fputs(",\"methods\":{", stdout);
	for (int m = 0, first = 1; m < BLKCOPY_METHOD_MAX; m++) {
		if (!p->method_bytes[m])
			continue;
		printf("%s\"%s\":%" PRIu64, first ? "" : ",",
		       blkcopy_method_name((enum blkcopy_method)m), p->method_bytes[m]);
		first = 0;
	}
	fputs("},\"error\":", stdout);
	if (r->err)
		json_string(stdout, blkcopy_strerror(r->err));
	else
		fputs("null", stdout);
	fputs(",\"device_error\":", stdout);
	if (r->dev_err && *r->dev_err)
		json_string(stdout, r->dev_err);
	else
		fputs("null", stdout);
	if (r->wp >= 0)
		printf(",\"dst_write_pointer\":%" PRId64, r->wp);
	else
		fputs(",\"dst_write_pointer\":null", stdout);
	stats_json(&r->st, verify, r->err);
}

/*
 * The result as one object: the whole job (with one destination, its
 * figures; with several, summed, committed the smallest), then each
 * destination's in "destinations".
 */
static void print_json(const struct copy_result *all, const struct copy_result *dst, size_t nr_dst,
		       char *const *paths, const uint64_t *offsets, bool verify, double secs,
		       size_t nr_ranges)
{
	uint64_t bytes = 0;

	for (size_t k = 0; k < nr_dst; k++)
		bytes += result_bytes(&dst[k]);
	putchar('{');
	result_json(all, bytes);
	printf(",\"seconds\":%.6f,\"committed\":%" PRIu64 ",\"total\":%" PRIu64 ",\"ranges\":%zu,",
	       secs, all->p.committed, all->p.total, nr_ranges);
	methods_json(all, verify);
	fputs(",\"destinations\":[", stdout);
	for (size_t k = 0; k < nr_dst; k++) {
		char buf[512];

		fputs(k ? ",{\"path\":" : "{\"path\":", stdout);
		json_string(stdout, shown_name(paths[k], buf, sizeof(buf)));
		printf(",\"dst_offset\":%" PRIu64 ",", offsets[k]);
		result_json(&dst[k], result_bytes(&dst[k]));
		printf(",\"committed\":%" PRIu64 ",\"total\":%" PRIu64 ",", dst[k].p.committed,
		       dst[k].p.total);
		methods_json(&dst[k], verify);
		putchar('}');
	}
	puts("]}");
}

/* Emulated bytes that could have gone native, and why they did not: one line, when there are any. */
static void print_policy(const struct blkcopy_stats *st)
{
	const uint64_t slower = st->emulated[BLKCOPY_EMULATED_SLOWER];
	const uint64_t probe = st->emulated[BLKCOPY_EMULATED_PROBE];
	const uint64_t set = st->emulated[BLKCOPY_EMULATED_NATIVE_MIN];
	const uint64_t refused = st->emulated[BLKCOPY_EMULATED_REFUSED];
	char a[32], b[32];

	if (set)
		printf("emulated %s of pieces shorter than --native-min %s\n",
		       human(set, a, sizeof(a)), human(st->native_min, b, sizeof(b)));
	if (slower)
		printf("emulated %s of pieces shorter than %s: native copied them slower than "
		       "emulation (learnt; --native-min sets it)\n",
		       human(slower, a, sizeof(a)), human(st->native_min, b, sizeof(b)));
	if (probe)
		printf("emulated %s of small pieces to measure emulation against native copy\n",
		       human(probe, a, sizeof(a)));
	if (refused)
		printf("emulated %s the device refused to copy\n", human(refused, a, sizeof(a)));
}

/*
 * One line: what was wrong (with which destination, when there are
 * several), and the library's reason when it has one ("nvme: different
 * namespaces").
 */
static void report_invalid(int err, const struct copy_args *a, size_t dst, size_t bad,
			   const char *why)
{
	const char *sep = *why ? ": " : "";
	char who[600] = "", buf[512];

	if (a->nr_dst > 1 && dst != SIZE_MAX)
		snprintf(who, sizeof(who), "destination %zu (%s): ", dst + 1,
			 shown_name(a->dst[dst], buf, sizeof(buf)));
	/* A --p2p refusal is not about native copy: say what it is. */
	if (err == -EOPNOTSUPP && (a->opts.flags & BLKCOPY_P2P) && strstr(why, "P2P")) {
		msg("copy: %s--p2p: the copy cannot be staged in P2P memory: %s", who, why);
		return;
	}
	if (bad == SIZE_MAX) {
		msg("copy: %s%s%s%s", who, blkcopy_strerror(err), sep, why);
		return;
	}
	const struct blkcopy_range *r = &a->ranges.v[bad];
	msg("copy: %srange %zu (%" PRIu64 ":%" PRIu64 "): %s%s%s", who, bad + 1, r->offset, r->len,
	    blkcopy_strerror(err), sep, why);
}

/* The devices of a copy: each path opened once, however often it is named. */
struct copy_devs {
	struct blkcopy_dev *src;
	struct blkcopy_dev *dst[BLKCOPY_MAX_TARGETS];
	struct blkcopy_target t[BLKCOPY_MAX_TARGETS];	/* where this run writes */
	size_t nr_dst;
};

static int open_devs(const struct copy_args *a, struct copy_devs *d)
{
	for (size_t k = 0; k < a->nr_dst; k++) {
		for (size_t j = 0; j < k && !d->dst[k]; j++)
			if (same_node(a->dst[j], a->dst[k]))
				d->dst[k] = d->dst[j];
		if (!d->dst[k] &&
		    open_dev(a->dst[k], BLKCOPY_OPEN_READ | BLKCOPY_OPEN_WRITE | BLKCOPY_OPEN_EXCL,
			     &d->dst[k]))
			return -1;
		d->nr_dst = k + 1;
		d->t[k] = (struct blkcopy_target){ .dev = d->dst[k], .offset = a->dst_off[k] };
	}
	/* O_EXCL would refuse a second handle on a destination: the source shares it. */
	for (size_t k = 0; k < a->nr_dst && !d->src; k++)
		if (same_node(a->src, a->dst[k]))
			d->src = d->dst[k];
	if (!d->src && open_dev(a->src, BLKCOPY_OPEN_READ, &d->src))
		return -1;
	return 0;
}

/* Is @dev the first of the destinations to be @dev (shared handles flush and close once)? */
static bool first_handle(const struct copy_devs *d, size_t k)
{
	for (size_t j = 0; j < k; j++)
		if (d->dst[j] == d->dst[k])
			return false;
	return true;
}

static void close_devs(struct copy_devs *d)
{
	bool src_shared = false;

	for (size_t k = 0; k < d->nr_dst; k++) {
		src_shared = src_shared || d->dst[k] == d->src;
		if (first_handle(d, k))
			blkcopy_close(d->dst[k]);
	}
	if (d->src && !src_shared)
		blkcopy_close(d->src);
}

/* A copy's journal, as the copy loop keeps it. */
struct copy_journal {
	int fd;			/* -1: none */
	uint64_t base;		/* bytes of the request done before this run (--resume) */
	uint64_t recorded[BLKCOPY_MAX_TARGETS];	/* the committed prefixes last recorded */
	double at;		/* when */
};

/* Bytes of the request to record at least this often, and seconds. */
#define JOURNAL_BYTES (64ull << 20)
#define JOURNAL_SECS 1.0

/*
 * --journal: a new journal for the request, or with --resume the old one
 * checked against it, and the ranges cut to what is left (@left, from the
 * smallest committed prefix of the destinations: j->base).  0; 1 when a
 * resumed copy is already complete; -1 on an error (said).
 */
static int journal_begin(struct copy_args *a, struct copy_devs *d, struct copy_journal *j,
			 struct range_list *left)
{
	struct journal_request want = { .nr_dsts = (uint32_t)a->nr_dst,
					.nr_ranges = (uint32_t)a->ranges.n, .flags = a->opts.flags };
	struct journal_state st;
	char why[512];
	uint64_t skip;

	for (size_t i = 0; i < a->ranges.n; i++)
		want.total += a->ranges.v[i].len;
	want.fingerprint = journal_fingerprint(a->ranges.v, a->ranges.n, a->dst_off, a->nr_dst);
	journal_identify(d->src, a->src, &want.src);
	for (size_t k = 0; k < a->nr_dst; k++) {
		journal_identify(d->dst[k], a->dst[k], &want.dst[k]);
		want.dst_off[k] = a->dst_off[k];
	}
	if (!a->resume) {
		j->fd = journal_create(a->journal, &want);
		if (j->fd == -EEXIST)
			msg("copy: journal %s exists: --resume continues its copy (or remove it)", a->journal);
		else if (j->fd < 0)
			msg("copy: journal %s: %s", a->journal, strerror(-j->fd));
		return j->fd < 0 ? -1 : 0;
	}
	j->fd = journal_open(a->journal, &st);
	if (j->fd < 0) {
		msg("copy: journal %s: %s", a->journal,
		    j->fd == -EBADMSG ? "not a blkcopy journal" :
		    j->fd == -EPROTO ? "written by another version of blkcopy" : strerror(-j->fd));
		return -1;
	}
	if (journal_mismatch(&st.req, &want, why, sizeof(why))) {
		msg("copy: --resume: journal %s: %s; nothing written", a->journal, why);
		return -1;
	}
	if (st.complete)
		return 1;
	j->base = journal_resume_point(&st);
	for (size_t k = 0; k < a->nr_dst; k++) {
		j->recorded[k] = st.committed[k];
		d->t[k].offset = a->dst_off[k] + j->base;
	}
	/* What is left: the ranges past the committed prefix. */
	skip = j->base;
	for (size_t i = 0; i < a->ranges.n; i++) {
		struct blkcopy_range r = a->ranges.v[i];

		if (skip >= r.len) {
			skip -= r.len;
			continue;
		}
		r.offset += skip;
		r.len -= skip;
		skip = 0;
		if (range_list_add(left, &r))
			return -1;
	}
	return 0;
}

/*
 * Record every destination's committed prefix (the destinations flushed
 * first) when enough has passed, or at the end (@end).
 */
static int journal_tick(struct copy_journal *j, const struct copy_devs *d,
			const struct blkcopy_progress *tp, bool end, bool complete)
{
	uint64_t committed[BLKCOPY_MAX_TARGETS], most = 0;
	int ret = 0;

	if (j->fd < 0)
		return 0;
	for (size_t k = 0; k < d->nr_dst; k++) {
		/* A resumed destination that had more than the base keeps its record. */
		committed[k] = j->base + tp[k].committed;
		if (committed[k] < j->recorded[k])
			committed[k] = j->recorded[k];
		if (committed[k] - j->recorded[k] > most)
			most = committed[k] - j->recorded[k];
	}
	if (!end && (!most || (most < JOURNAL_BYTES && now_s() - j->at < JOURNAL_SECS)))
		return 0;
	for (size_t k = 0; k < d->nr_dst && !ret; k++)
		if (first_handle(d, k))
			ret = blkcopy_flush(d->dst[k]);
	if (!ret)
		ret = journal_record(j->fd, committed, d->nr_dst, complete);
	if (ret)
		return ret;
	memcpy(j->recorded, committed, d->nr_dst * sizeof(committed[0]));
	j->at = now_s();
	return 0;
}

/*
 * The submission was refused: say why, naming the destination at fault.
 * Each is checked on its own; what none refuses alone (destinations that
 * overlap, no native way under --no-emulation) has its reason on a device.
 */
static void explain_refusal(int err, struct copy_args *a, struct copy_devs *d,
			    struct copy_result *r)
{
	size_t bad = SIZE_MAX, at = SIZE_MAX;
	const char *why = "";

	for (size_t k = 0; k < a->nr_dst && at == SIZE_MAX; k++) {
		const int ret = blkcopy_check(d->src, a->ranges.v, a->ranges.n, d->dst[k],
					      a->dst_off[k], a->opts.flags, &bad);
		if (ret) {
			err = ret;
			at = k;
		}
	}
	for (size_t k = 0; k < a->nr_dst && !*why; k++) {
		if (at == SIZE_MAX || at == k) {
			why = blkcopy_dev_error(d->dst[k]);
			if (*why && at == SIZE_MAX)
				at = k;
		}
	}
	/* A refusal may come with a reason: a suspended dm device, why native copy cannot. */
	if (!*why)
		why = blkcopy_dev_error(d->src);
	if (err == -EADDRINUSE && strstr(why, "overlaps destination"))
		msg("copy: %s (destinations may not share a byte)", why);	/* names both */
	else
		report_invalid(err, a, at, bad, why);
	for (size_t k = 0; k < a->nr_dst; k++) {
		r[k] = (struct copy_result){ .st = { .mismatch_offset = UINT64_MAX }, .err = err,
					     .wp = -1 };
		for (size_t i = 0; i < a->ranges.n; i++)
			r[k].p.total += a->ranges.v[i].len;
		r[k].dev_err = at == SIZE_MAX || at == k ? why : NULL;
	}
}

/* A destination's result: its error on stderr, or (without --json) what it got. */
static void print_result_line(const struct copy_args *a, const struct copy_result *r, size_t k,
			      double secs)
{
	char b[32], c[32], name[560] = "", buf[512];

	if (a->nr_dst > 1)
		snprintf(name, sizeof(name), "%s: ", shown_name(a->dst[k], buf, sizeof(buf)));
	if (r->err) {
		msg("copy: %s%s after %" PRIu64 " of %" PRIu64 " bytes (destination holds the first %"
		    PRIu64 " bytes)", name, blkcopy_strerror(r->err), r->p.done, r->p.total,
		    r->p.committed);
		if (r->dev_err && *r->dev_err)
			msg("copy: %sthe device said: %s", name, r->dev_err);
		if (r->err == -EILSEQ && r->st.mismatch_offset != UINT64_MAX)
			msg("copy: the destination differs from the source at byte %" PRIu64 " of %s",
			    r->st.mismatch_offset, shown_name(a->dst[k], buf, sizeof(buf)));
		return;
	}
	printf("%scopied %s (%" PRIu64 " bytes) in %zu range%s: %.3f s, %s/s; native %" PRIu64
	       ", emulated %" PRIu64 " (%s)\n", name,
	       human(r->p.total, b, sizeof(b)), r->p.total, a->ranges.n,
	       a->ranges.n == 1 ? "" : "s", secs,
	       human(secs > 0 ? (uint64_t)((double)r->p.total / secs) : 0, c, sizeof(c)),
	       r->p.native_bytes, r->p.emulated_bytes, method_of(&r->p));
	if (a->nr_dst == 1)
		print_policy(&r->st);
	if (a->opts.flags & BLKCOPY_P2P)
		printf("%s%" PRIu64 " bytes staged in the P2P memory of %s\n", name, r->st.p2p_bytes,
		       r->st.p2p_pci);
	if (a->opts.flags & BLKCOPY_VERIFY)
		printf("%sverified %" PRIu64 " bytes: the destination holds the source ranges\n",
		       name, r->st.verified_bytes);
}

static int run_copy(struct copy_args *a)
{
	struct copy_devs d = { 0 };
	struct blkcopy_info si;
	struct copy_result all = { .st = { .mismatch_offset = UINT64_MAX }, .wp = -1 };
	struct copy_result res[BLKCOPY_MAX_TARGETS];
	struct blkcopy_progress tp[BLKCOPY_MAX_TARGETS] = { { 0 } };
	struct copy_journal jr = { .fd = -1, .at = now_s() };
	struct range_list left = { 0 };
	struct blkcopy_job *job;
	const bool verify = a->opts.flags & BLKCOPY_VERIFY;
	int ret = 0;

	if (open_devs(a, &d)) {
		close_devs(&d);
		return 1;
	}
	blkcopy_get_info(d.src, &si);

	if (!a->ranges_given) {
		const struct blkcopy_range whole = { 0, si.capacity };
		ret = range_list_add(&a->ranges, &whole);
		if (ret)
			goto out;
	}

	const struct range_list *todo = &a->ranges;

	if (a->journal) {
		ret = journal_begin(a, &d, &jr, &left);
		if (ret) {
			if (ret > 0)
				printf("journal %s: the copy is complete; nothing to do\n", a->journal);
			ret = ret > 0 ? 0 : -EINVAL;
			goto out;
		}
		if (a->resume)
			todo = &left;
	}
	/* Resumed with nothing left (ended between its last bytes and the mark): mark it. */
	if (a->resume && !todo->n) {
		ret = journal_tick(&jr, &d, tp, true, true);
		if (!ret)
			printf("journal %s: the copy is complete\n", a->journal);
		goto out;
	}

	double t0 = now_s();
	ret = blkcopy_job_submit_multi(d.src, todo->v, todo->n, d.t, d.nr_dst, &a->opts, &job);
	if (ret) {
		explain_refusal(ret, a, &d, res);
		if (a->json) {
			all = res[0];
			for (size_t k = 1; k < d.nr_dst; k++)
				all.p.total += res[k].p.total;
			print_json(&all, res, d.nr_dst, a->dst, a->dst_off, verify, 0, a->ranges.n);
		}
		goto out;
	}

	struct sigaction sa = { .sa_handler = on_signal };	/* no SA_RESTART: wake the wait */
	sigaction(SIGINT, &sa, NULL);
	sigaction(SIGTERM, &sa, NULL);
	bool cancelled = false;
	/* Short waits: a signal may land between waits, and the bar wants redrawing. */
	while (!blkcopy_job_wait(job, 100)) {
		if (interrupted && !cancelled) {
			blkcopy_job_cancel(job);
			cancelled = true;
		}
		if (a->progress) {
			blkcopy_job_progress(job, &all.p);
			draw_progress(&all.p, t0, false);
		}
		for (size_t k = 0; jr.fd >= 0 && k < d.nr_dst; k++)
			blkcopy_job_target_progress(job, k, &tp[k]);
		if (journal_tick(&jr, &d, tp, false, false)) {
			msg("copy: journal %s: cannot record: %s; stopping", a->journal, strerror(errno));
			blkcopy_job_cancel(job);
			cancelled = true;
		}
	}
	/* The job's own account goes with it at finish; everything is done by now. */
	for (size_t k = 0; k < d.nr_dst; k++) {
		struct copy_result *r = &res[k];

		*r = (struct copy_result){ .wp = -1 };
		blkcopy_job_target_progress(job, k, &r->p);
		blkcopy_job_target_stats(job, k, &r->st, sizeof(r->st));
		tp[k] = r->p;
		r->err = r->p.error;
		/* A native command's own story (an NVMe status, SCSI sense), wherever it was left. */
		r->dev_err = *blkcopy_dev_error(d.dst[k]) ? blkcopy_dev_error(d.dst[k])
							  : blkcopy_dev_error(d.src);
		r->wp = dst_write_pointer(d.dst[k], d.t[k].offset, &r->p);
	}
	blkcopy_job_stats(job, &all.st, sizeof(all.st));
	ssize_t n = blkcopy_job_finish(job, &all.p);
	double secs = now_s() - t0;
	if (a->progress)
		draw_progress(&all.p, t0, true);
	ret = n < 0 ? (int)n : 0;
	if (journal_tick(&jr, &d, tp, true, !ret) && !ret) {
		msg("copy: journal %s: cannot record the end", a->journal);
		ret = -EIO;
	}
	all.err = ret;
	for (size_t k = 0; k < d.nr_dst && ret && !all.dev_err; k++)
		if (res[k].err)
			all.dev_err = res[k].dev_err;
	if (d.nr_dst == 1)
		all.wp = res[0].wp;
	if (a->json)
		print_json(&all, res, d.nr_dst, a->dst, a->dst_off, verify, secs, a->ranges.n);
	/* Errors go to stderr with --json too: a script sees them without parsing. */
	for (size_t k = 0; k < d.nr_dst; k++)
		if (res[k].err || !a->json)
			print_result_line(a, &res[k], k, secs);
out:
	if (jr.fd >= 0)
		close(jr.fd);
	range_list_free(&left);
	close_devs(&d);
	return ret ? 1 : 0;
}

static int cmd_copy(int argc, char **argv)
{
	struct copy_args a = { 0 };
	int ret = parse_copy_args(argc, argv, &a);

	if (!ret)
		ret = run_copy(&a);
	else
		/* Too many ranges is a bad request, like the library's validation errors. */
		ret = ret == -E2BIG ? 1 : EXIT_USAGE;
	range_list_free(&a.ranges);
	free(a.src);
	for (size_t k = 0; k < a.nr_dst; k++)
		free(a.dst[k]);
	return ret;
}

/* ------------------------------------------------------------------------ */
/* limits                                                                   */
/* ------------------------------------------------------------------------ */

static void usage_limits(FILE *f)
{
	fprintf(f,
		"Usage: %s limits [--json] DEV...\n"
		"Show each device's geometry and copy limits (512-byte sectors).\n",
		prog);
}

static void mapping_json(const struct blkcopy_dev *d)
{
	struct blkcopy_mapping m;

	fputs(",\"mapping\":[", stdout);
	for (size_t k = 0; blkcopy_get_mapping(d, k, &m) == 0; k++) {
		printf("%s{\"depth\":%u,\"start\":%" PRIu64 ",\"length\":%" PRIu64 ",\"target\":",
		       k ? "," : "", m.depth, m.start, m.length);
		json_string(stdout, m.target);
		fputs(",\"device\":", stdout);
		if (m.device)
			json_string(stdout, m.device);
		else
			fputs("null", stdout);
		printf(",\"offset\":%" PRIu64 ",\"stripe\":%u,\"stripes\":%u,\"chunk\":%" PRIu64
		       ",\"backend\":", m.offset, m.stripe, m.stripes, m.chunk);
		json_string(stdout, m.backend);
		printf(",\"copy_offload\":%u}", m.copy_offload);
	}
	putchar(']');
}

static void mapping_text(const struct blkcopy_dev *d)
{
	struct blkcopy_mapping m;

	for (size_t k = 0; blkcopy_get_mapping(d, k, &m) == 0; k++) {
		if (!k)
			puts("  mapping (bytes)");
		printf("  %*s%" PRIu64 "+%" PRIu64 " %s", 2 + 2 * (int)m.depth, "", m.start, m.length,
		       m.target);
		if (m.stripes > 1)
			printf(" stripe %u/%u chunk %" PRIu64, m.stripe, m.stripes, m.chunk);
		if (m.device)
			printf(" -> %s@%" PRIu64 " (%s%s)\n", m.device, m.offset, m.backend,
			       m.copy_offload ? "" : ", offload off");
		else
			puts(" (emulated through the dm node)");
	}
}

/* A zoned device's zones, summed up for `limits`. */
struct zone_summary {
	uint64_t nr, conventional;
	uint64_t cap_min, cap_max;	/* of the sequential zones */
	uint64_t short_cap;		/* sequential zones whose capacity is below their size */
	int error;			/* the report failed: -errno */
};

static struct zone_summary zone_summary(struct blkcopy_dev *d, const struct blkcopy_info *i)
{
	struct zone_summary s = { .cap_min = UINT64_MAX };
	struct blkcopy_zone z[256];
	uint64_t off = 0;

	if (i->zoned == BLKCOPY_ZONED_NONE)
		return (struct zone_summary){ 0 };
	while (off < i->capacity) {
		ssize_t n = blkcopy_report_zones(d, off, z, sizeof(z) / sizeof(z[0]));

		if (n <= 0) {
			s.error = n ? (int)n : -EIO;
			break;
		}
		for (ssize_t k = 0; k < n; k++) {
			s.nr++;
			if (z[k].type == BLKCOPY_ZONE_CONVENTIONAL) {
				s.conventional++;
				continue;
			}
			s.cap_min = z[k].capacity < s.cap_min ? z[k].capacity : s.cap_min;
			s.cap_max = z[k].capacity > s.cap_max ? z[k].capacity : s.cap_max;
			s.short_cap += z[k].capacity < z[k].len;
		}
		off = z[n - 1].start + z[n - 1].len;
	}
	if (s.cap_min == UINT64_MAX)
		s.cap_min = 0;
	return s;
}

static void zones_json(const struct blkcopy_info *i, const struct zone_summary *s)
{
	printf(",\"zoned\":\"%s\",\"zone_size\":%" PRIu64 ",\"zone_capacity\":%" PRIu64
	       ",\"zone_capacity_max\":%" PRIu64 ",\"nr_zones\":%u,\"conventional_zones\":%" PRIu64
	       ",\"max_open_zones\":%u,\"max_active_zones\":%u",
	       blkcopy_zoned_name((enum blkcopy_zoned)i->zoned), i->zone_size, s->cap_min,
	       s->cap_max, i->nr_zones, s->conventional, i->max_open_zones, i->max_active_zones);
}

static void zones_text(const struct blkcopy_info *i, const struct zone_summary *s)
{
	char a[32], b[32];

	if (i->zoned == BLKCOPY_ZONED_NONE)
		return;
	printf("  zoned                   %s\n"
	       "  zones                   %u of %s",
	       blkcopy_zoned_name((enum blkcopy_zoned)i->zoned), i->nr_zones,
	       human(i->zone_size, a, sizeof(a)));
	if (s->conventional)
		printf(" (%" PRIu64 " conventional)", s->conventional);
	putchar('\n');
	if (s->error)
		printf("  zone_capacity           unknown: %s\n", strerror(-s->error));
	else if (s->cap_min == s->cap_max)
		printf("  zone_capacity           %s%s\n", human(s->cap_min, a, sizeof(a)),
		       s->short_cap ? " (less than the zone size: the rest is never writable)" : "");
	else
		printf("  zone_capacity           differs: %s to %s; %" PRIu64 " of %" PRIu64
		       " sequential zones have less than their size\n",
		       human(s->cap_min, a, sizeof(a)), human(s->cap_max, b, sizeof(b)),
		       s->short_cap, s->nr - s->conventional);
	printf("  max_open_zones          %u%s\n"
	       "  max_active_zones        %u%s\n",
	       i->max_open_zones, i->max_open_zones ? "" : " (no limit)",
	       i->max_active_zones, i->max_active_zones ? "" : " (no limit)");
}

static void limits_json(const struct blkcopy_info *i, bool first)
{
	printf("%s{\"device\":", first ? "" : ",");
	json_string(stdout, i->path);
	printf(",\"kind\":\"%s\",\"backend\":", blkcopy_kind_name(i->kind));
	json_string(stdout, i->backend);
	fputs(",\"native_reason\":", stdout);
	json_string(stdout, i->native_reason);
	printf(",\"logical_block_size\":%u,\"capacity\":%" PRIu64 ",\"read_only\":%s"
	       ",\"partition\":%s,\"partition_start\":%" PRIu64
	       ",\"copy_offload\":%u,\"max_copy_sectors\":%" PRIu64
	       ",\"max_copy_nr_ranges\":%u,\"max_copy_range_sectors\":%" PRIu64,
	       i->logical_block_size, i->capacity, i->read_only ? "true" : "false",
	       i->partition ? "true" : "false", i->partition_start, i->limits.copy_offload,
	       i->limits.max_copy_sectors, i->limits.max_copy_nr_ranges,
	       i->limits.max_copy_range_sectors);
}

static void limits_text(const struct blkcopy_info *i)
{
	char cap[32];

	printf("%s: %s, %s (%" PRIu64 " bytes), %u-byte blocks, %s\n", i->path,
	       blkcopy_kind_name(i->kind), human(i->capacity, cap, sizeof(cap)), i->capacity,
	       i->logical_block_size, i->read_only ? "read-only" : "read-write");
	if (i->partition)
		printf("  partition_start         %" PRIu64 "\n", i->partition_start);
	printf("  backend                 %s\n"
	       "  copy_offload            %u\n"
	       "  max_copy_sectors        %" PRIu64 "\n"
	       "  max_copy_nr_ranges      %u\n"
	       "  max_copy_range_sectors  %" PRIu64 "\n"
	       "  native copy             %s\n",
	       i->backend, i->limits.copy_offload, i->limits.max_copy_sectors,
	       i->limits.max_copy_nr_ranges, i->limits.max_copy_range_sectors, i->native_reason);
}

/* The PCI function under a block device and its P2P memory ("p2p": null when it is on none). */
static void p2p_json(struct blkcopy_dev *d)
{
	struct blkcopy_p2p_info p;

	fputs(",\"p2p\":", stdout);
	if (blkcopy_dev_p2p(d, &p)) {
		fputs("null", stdout);
		return;
	}
	fputs("{\"pci\":", stdout);
	json_string(stdout, p.pci);
	fputs(",\"driver\":", stdout);
	json_string(stdout, p.driver);
	printf(",\"memory\":%s,\"published\":%s,\"size\":%" PRIu64 ",\"available\":%" PRIu64 "}",
	       p.has_memory ? "true" : "false", p.published ? "true" : "false", p.size,
	       p.available);
}

static void p2p_text(struct blkcopy_dev *d)
{
	struct blkcopy_p2p_info p;
	char a[32], b[32];

	if (blkcopy_dev_p2p(d, &p))
		return;
	if (!p.has_memory)
		printf("  p2p_memory              none (PCI %s, driver %s)\n", p.pci, p.driver);
	else
		printf("  p2p_memory              %s, %s available, %s (PCI %s, driver %s)\n",
		       human(p.size, a, sizeof(a)), human(p.available, b, sizeof(b)),
		       p.published ? "published" : "not published", p.pci, p.driver);
}

static int cmd_limits(int argc, char **argv)
{
	static const struct option longopts[] = {
		{ "json", no_argument, NULL, 'j' },
		{ "help", no_argument, NULL, 'h' },
		{ 0 },
	};
	bool json = false;
	int c, status = 0, shown = 0;

	while ((c = getopt_long(argc, argv, "jh", longopts, NULL)) != -1) {
		switch (c) {
		case 'j': json = true; break;
		case 'h': usage_limits(stdout); return 0;
		default: usage_limits(stderr); return EXIT_USAGE;
		}
	}
	if (optind == argc) {
		msg("limits: need at least one device");
		usage_limits(stderr);
		return EXIT_USAGE;
	}
	/* Every password out of argv before the first (slow) login. */
	char **paths = calloc((size_t)(argc - optind), sizeof(*paths));
	if (!paths)
		return 1;
	for (int i = optind; i < argc; i++)
		paths[i - optind] = take_device_arg(argv[i]);
	if (json)
		putchar('[');
	for (int i = optind; i < argc; i++) {
		struct blkcopy_dev *d;
		struct blkcopy_info info;
		int ret = paths[i - optind] ? open_dev(paths[i - optind], BLKCOPY_OPEN_READ, &d)
					   : -ENOMEM;

		if (ret) {
			status = 1;
			continue;
		}
		blkcopy_get_info(d, &info);
		const struct zone_summary zs = zone_summary(d, &info);
		if (json) {
			limits_json(&info, !shown);
			zones_json(&info, &zs);
			p2p_json(d);
			mapping_json(d);
			putchar('}');
		} else {
			limits_text(&info);
			zones_text(&info, &zs);
			p2p_text(d);
			mapping_text(d);
		}
		shown++;
		blkcopy_close(d);
	}
	if (json)
		puts("]");
	for (int i = optind; i < argc; i++)
		free(paths[i - optind]);
	free(paths);
	return status;
}

/* ------------------------------------------------------------------------ */
/* journal                                                                  */

static void usage_journal(FILE *f)
{
	fprintf(f,
		"Usage: %s journal [--json] FILE\n"
		"Show the state of a copy's resume journal (blkcopy copy --journal FILE).\n",
		prog);
}

static void dev_json(const char *name, const struct journal_dev *d)
{
	printf("\"%s\":{\"kind\":", name);
	json_string(stdout, blkcopy_kind_name((enum blkcopy_kind)d->kind));
	printf(",\"major\":%u,\"minor\":%u,\"capacity\":%" PRIu64 ",\"logical_block_size\":%u,\"id\":",
	       d->major, d->minor, d->capacity, d->lbs);
	json_string(stdout, d->id);
	putchar('}');
}

static void dev_line(const char *name, const struct journal_dev *d)
{
	char b[32];

	printf("%s: %s %u:%u, %s (%" PRIu64 " bytes), %u-byte blocks%s%s\n", name,
	       blkcopy_kind_name((enum blkcopy_kind)d->kind), d->major, d->minor,
	       human(d->capacity, b, sizeof(b)), d->capacity, d->lbs, d->id[0] ? ", " : "", d->id);
}

static int cmd_journal(int argc, char **argv)
{
	static const struct option longopts[] = {
		{ "json", no_argument, NULL, 'j' },
		{ "help", no_argument, NULL, 'h' },
		{ 0 },
	};
	struct journal_state st;
	bool json = false;
	int c, ret;

	while ((c = getopt_long(argc, argv, "jh", longopts, NULL)) != -1) {
		switch (c) {
		case 'j': json = true; break;
		case 'h': usage_journal(stdout); return 0;
		default: usage_journal(stderr); return EXIT_USAGE;
		}
	}
	if (argc - optind != 1) {
		usage_journal(stderr);
		return EXIT_USAGE;
	}
	ret = journal_read(argv[optind], &st);
	if (ret) {
		msg("journal %s: %s", argv[optind], ret == -EBADMSG ? "not a blkcopy journal"
						   : ret == -EPROTO ? "a journal of another version"
						   : strerror(-ret));
		return 1;
	}
	/* committed: where a resume starts, the smallest of the destinations'. */
	const uint64_t committed = journal_resume_point(&st);
	if (json) {
		printf("{\"complete\":%s,\"committed\":%" PRIu64 ",\"total\":%" PRIu64
		       ",\"ranges\":%u,\"dst_offset\":%" PRIu64 ",\"records\":%u,\"torn\":%s,",
		       st.complete ? "true" : "false", committed, st.req.total, st.req.nr_ranges,
		       st.req.dst_off[0], st.records, st.torn ? "true" : "false");
		dev_json("source", &st.req.src);
		putchar(',');
		dev_json("destination", &st.req.dst[0]);
		fputs(",\"destinations\":[", stdout);
		for (uint32_t k = 0; k < st.req.nr_dsts; k++) {
			printf("%s{\"dst_offset\":%" PRIu64 ",\"committed\":%" PRIu64 ",", k ? "," : "",
			       st.req.dst_off[k], st.committed[k]);
			dev_json("device", &st.req.dst[k]);
			putchar('}');
		}
		puts("]}");
		return 0;
	}
	char a[32], b[32];
	printf("%s: %s, %s of %s (%" PRIu64 " of %" PRIu64 " bytes, %.1f%%) in place\n", argv[optind],
	       st.complete ? "complete" : "incomplete", human(committed, a, sizeof(a)),
	       human(st.req.total, b, sizeof(b)), committed, st.req.total,
	       st.req.total ? 100.0 * (double)committed / (double)st.req.total : 100.0);
	printf("request: %u range%s to %u destination%s, %u record%s%s\n",
	       st.req.nr_ranges, st.req.nr_ranges == 1 ? "" : "s", st.req.nr_dsts,
	       st.req.nr_dsts == 1 ? "" : "s", st.records,
	       st.records == 1 ? "" : "s", st.torn ? " (a torn record at the end ignored)" : "");
	dev_line("source", &st.req.src);
	for (uint32_t k = 0; k < st.req.nr_dsts; k++) {
		char name[64];

		snprintf(name, sizeof(name), "destination %u at offset %" PRIu64 ", %" PRIu64
			 " bytes in place", k + 1, st.req.dst_off[k], st.committed[k]);
		dev_line(name, &st.req.dst[k]);
	}
	return 0;
}

/* ------------------------------------------------------------------------ */

static const struct command {
	const char *name;
	int (*run)(int argc, char **argv);
	const char *summary;
} commands[] = {
	{ "copy", cmd_copy, "copy source ranges to a destination offset" },
	{ "limits", cmd_limits, "show devices' copy limits" },
	{ "journal", cmd_journal, "show the state of a copy's resume journal" },
};

static void usage(FILE *f)
{
	fprintf(f, "Usage: %s COMMAND [OPTIONS] ...\n       %s --help | --version\n\n", prog, prog);
	for (size_t i = 0; i < sizeof(commands) / sizeof(commands[0]); i++)
		fprintf(f, "  %-8s %s\n", commands[i].name, commands[i].summary);
	fprintf(f, "\nRun '%s COMMAND --help' for a command's options.\n", prog);
}

int main(int argc, char **argv)
{
	if (argc < 2) {
		usage(stderr);
		return EXIT_USAGE;
	}
	if (!strcmp(argv[1], "--help") || !strcmp(argv[1], "-h")) {
		usage(stdout);
		return 0;
	}
	if (!strcmp(argv[1], "--version") || !strcmp(argv[1], "-V")) {
		printf("blkcopy %s\n", blkcopy_version());
		return 0;
	}
	for (size_t i = 0; i < sizeof(commands) / sizeof(commands[0]); i++) {
		if (!strcmp(argv[1], commands[i].name)) {
			/* getopt names argv[0] in its messages: make that "blkcopy". */
			static char progname[] = "blkcopy";
			argv[1] = progname;
			return commands[i].run(argc - 1, argv + 1);
		}
	}
	msg("unknown command '%s'", argv[1]);
	usage(stderr);
	return EXIT_USAGE;
}
