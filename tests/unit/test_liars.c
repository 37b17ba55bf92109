/* SPDX-License-Identifier: MIT */
/*
 * Devices that lie, behind a fake queued backend over real files: a copy
 * manager that claims more segments than it takes, completions for
 * commands never sent (and twice for one that was), a completion that says
 * neither success nor an error, a sense buffer whose length field claims
 * more than it holds.  Whatever they say, blkcopy never counts a byte it
 * cannot vouch for: the copy either lands exactly or ends in an error with
 * the exact committed prefix, and nothing outside the destination span
 * changes.
 */
#include <errno.h>
#include <fcntl.h>
#include <stdlib.h>
#include <string.h>
#include <sys/eventfd.h>
#include <unistd.h>

#include "check.h"
#include "fake_native.h"
#include "scsi.h"

#define SIZE (4u << 20)
#define DST_OFF (2u << 20)

static const struct blkcopy_limits claimed = {
	.copy_offload = 1,
	.max_copy_sectors = 64,		/* 32 KiB pieces */
	.max_copy_nr_ranges = 8,	/* what it claims ... */
	.max_copy_range_sectors = 16,
};

static struct {
	uint32_t takes_segs;	/* ... and what it takes: more is "too many segment descriptors" */
	int stray_every;	/* every Nth reap adds completions for tags not in flight */
	int twice_every;	/* every Nth completion is reported twice */
	int odd_result_at;	/* completion N says +5: neither 0 nor -errno */
	int completions, reaps;
	int pieces_landed;
} liar;

struct liar_queue {
	struct bc_native_queue base;
	struct blkcopy_dev *src, *dst;
	int efd;
	uint32_t depth, n;
	struct {
		uint32_t tag;
		struct bc_piece piece;
		struct bc_span segs[8];
	} pending[64];
};

static int liar_pair(const struct blkcopy_dev *s, const struct blkcopy_dev *d,
		     struct blkcopy_limits *lim, char *why, size_t why_size)
{
	*lim = claimed;
	return 0;
}

static int liar_create(struct blkcopy_dev *s, struct blkcopy_dev *d, uint32_t depth,
		       struct bc_native_queue **qp)
{
	struct liar_queue *q = calloc(1, sizeof(*q));

	if (!q || depth > 64)
		abort();
	q->src = s;
	q->dst = d;
	q->depth = depth;
	q->efd = eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
	*qp = &q->base;
	return 0;
}

static int liar_submit(struct bc_native_queue *nq, const struct bc_span *segs,
		       const struct bc_piece *piece, uint32_t tag)
{
	struct liar_queue *q = (struct liar_queue *)nq;
	const uint64_t one = 1;

	if (piece->nr_segs > 8 || q->n == 64)
		abort();
	q->pending[q->n].tag = tag;
	q->pending[q->n].piece = *piece;
	memcpy(q->pending[q->n].segs, segs, piece->nr_segs * sizeof(*segs));
	q->n++;
	if (write(q->efd, &one, sizeof(one)) != sizeof(one))
		abort();
	return 0;
}

/* One completion: what a lying device would say for the piece. */
static int outcome(struct liar_queue *q, uint32_t i)
{
	static char buf[8192];
	const struct bc_piece *p = &q->pending[i].piece;

	liar.completions++;
	if (liar.takes_segs && p->nr_segs > liar.takes_segs)
		return -E2BIG;	/* ILLEGAL REQUEST, too many segment descriptors */
	if (fake_move(q->src, q->dst, q->pending[i].segs, p, buf))
		return -EIO;
	liar.pieces_landed++;
	/* It landed, but the device says something that is neither success nor an error. */
	if (liar.odd_result_at && liar.completions == liar.odd_result_at)
		return 5;
	return 0;
}

static int liar_reap(struct bc_native_queue *nq, struct bc_native_cqe *cqes, uint32_t max, bool wait)
{
	struct liar_queue *q = (struct liar_queue *)nq;
	uint64_t v;
	uint32_t n = 0;

	if (read(q->efd, &v, sizeof(v)) < 0 && errno != EAGAIN)
		abort();
	liar.reaps++;
	if (liar.stray_every && liar.reaps % liar.stray_every == 0 && max >= 2) {
		/* Completions for commands never sent: a tag out of range, and one not in flight. */
		cqes[n++] = (struct bc_native_cqe){ .tag = q->depth + 7, .result = 0 };
		cqes[n++] = (struct bc_native_cqe){ .tag = q->n ? (q->pending[0].tag + 1) % q->depth : 0,
						     .result = 0 };
	}
	while (q->n && n < max) {
		q->n--;
		cqes[n] = (struct bc_native_cqe){ .tag = q->pending[q->n].tag,
						  .method = BLKCOPY_METHOD_COPY_FILE_RANGE,
						  .result = outcome(q, q->n) };
		n++;
		if (liar.twice_every && liar.completions % liar.twice_every == 0 && n < max) {
			cqes[n] = cqes[n - 1];
			n++;
		}
	}
	return (int)n;
}

static int liar_fd(const struct bc_native_queue *nq)
{
	return ((const struct liar_queue *)nq)->efd;
}

static void liar_destroy(struct bc_native_queue *nq)
{
	struct liar_queue *q = (struct liar_queue *)nq;

	close(q->efd);
	free(q);
}

static const struct bc_backend liar_backend = {
	.name = "liar",
	.caps = BC_BACKEND_QUEUED,
	.probe = fake_probe,
	.pair = liar_pair,
	.queue_create = liar_create,
	.queue_submit = liar_submit,
	.queue_reap = liar_reap,
	.queue_fd = liar_fd,
	.queue_destroy = liar_destroy,
};

static char src_path[] = "/tmp/blkcopy-liars-src-XXXXXX";
static char dst_path[] = "/tmp/blkcopy-liars-dst-XXXXXX";
static char *src_data, *dst_data;

/* 300 ranges of 4 KiB, every other 8 KiB: they coalesce into nothing, many segments a piece. */
static struct blkcopy_range ranges[300];

static void open_pair(struct blkcopy_dev **s, struct blkcopy_dev **d)
{
	fake_open_pair(src_path, dst_path, dst_data, SIZE, &liar_backend, &claimed, s, d);
	memset(&liar, 0, sizeof(liar));
}

/* The destination holds the copy in [0, upto), its old bytes outside the span; inside, past upto, anything. */
static bool dst_exact(uint64_t upto)
{
	char *got = malloc(SIZE), *want = malloc(SIZE);
	int fd = open(dst_path, O_RDONLY);
	const uint64_t total = sizeof(ranges) / sizeof(ranges[0]) * 4096;
	uint64_t at = DST_OFF;
	bool same;

	if (!got || !want || fd < 0 || pread(fd, got, SIZE, 0) != SIZE)
		abort();
	close(fd);
	memcpy(want, dst_data, SIZE);
	for (size_t i = 0; i < sizeof(ranges) / sizeof(ranges[0]) && at - DST_OFF < upto; i++, at += 4096)
		memcpy(want + at, src_data + ranges[i].offset, 4096);
	memcpy(got + DST_OFF + upto, want + DST_OFF + upto, total - upto);
	same = !memcmp(got, want, SIZE);
	free(got);
	free(want);
	return same;
}

static void run(const char *what, unsigned int flags, ssize_t want_ret, bool want_emulated)
{
	const size_t nr = sizeof(ranges) / sizeof(ranges[0]);
	const struct blkcopy_opts o = { .flags = flags };
	struct blkcopy_progress p;
	ssize_t ret = blkcopy_copy_ex(NULL, ranges, nr, NULL, 0, &o, &p);	/* argument check */
	struct blkcopy_dev *s, *d;

	CHECK_EQ(ret, -EINVAL);
	open_pair(&s, &d);
	if (!strcmp(what, "takes fewer segments"))
		liar.takes_segs = 2;
	else if (!strcmp(what, "stray completions"))
		liar.stray_every = 2;
	else if (!strcmp(what, "completions twice"))
		liar.twice_every = 3;
	else if (!strcmp(what, "odd result"))
		liar.odd_result_at = 5;
	else if (!strcmp(what, "takes fewer, no emulation"))
		liar.takes_segs = 2;
	ret = blkcopy_copy_ex(s, ranges, nr, d, DST_OFF, &o, &p);
	CHECK(ret == want_ret, "%s: returned %zd, not %zd", what, ret, want_ret);
	CHECK(p.committed <= p.total && p.committed % 4096 == 0, "%s: committed %llu", what,
	      (unsigned long long)p.committed);
	if (ret >= 0) {
		CHECK_EQ(p.committed, p.total);
		CHECK(want_emulated ? p.emulated_bytes > 0 : p.emulated_bytes == 0,
		      "%s: emulated %llu", what, (unsigned long long)p.emulated_bytes);
		CHECK_EQ(p.native_bytes + p.emulated_bytes, p.total);
	} else {
		CHECK(p.committed < p.total, "%s: an error, yet all committed", what);
		/* Nothing a lie reported counts: native bytes are those of pieces that landed. */
		CHECK(p.native_bytes <= (uint64_t)liar.pieces_landed * 32768, "%s: native %llu", what,
		      (unsigned long long)p.native_bytes);
	}
	CHECK(dst_exact(p.committed), "%s: committed prefix wrong or bytes outside the copy changed",
	      what);
	blkcopy_close(s);
	blkcopy_close(d);
}

/* A sense buffer whose length field claims more than the buffer holds, through the protocol. */
static int long_sense(void *ctx, const uint8_t *cdb, uint8_t cdb_len, enum bc_scsi_dir dir,
		      void *buf, uint32_t len, uint32_t timeout_ms, uint8_t *sense,
		      uint32_t *sense_len)
{
	memset(sense, 0, 252);
	sense[0] = 0x70;
	sense[2] = 0x05;	/* ILLEGAL REQUEST */
	sense[7] = 244;		/* additional length: far past the 18 bytes that mean anything */
	sense[12] = 0x26;
	sense[13] = 0x08;	/* too many segment descriptors */
	*sense_len = 4096;	/* and the transport says it wrote more than the buffer holds */
	return 1;
}

static void sense_liar(void)
{
	const struct bc_scsi_transport t = { .exec = long_sense };
	const uint8_t cdb[16] = { 0x83 };
	struct bc_scsi_sense s;
	char msg[256];

	CHECK_EQ(bc_scsi_run(&t, cdb, sizeof(cdb), BC_SCSI_NONE, NULL, 0, 1000, &s), -EIO);
	CHECK(s.key == 0x05 && s.asc == 0x26 && s.ascq == 0x08, "sense %x/%x/%x", s.key, s.asc,
	      s.ascq);
	CHECK_EQ(bc_scsi_sense_errno(&s, "EXTENDED COPY", msg, sizeof(msg)), -E2BIG);
	CHECK(strstr(msg, "too many segment descriptors") != NULL, "%s", msg);
}

int main(void)
{
	src_data = malloc(SIZE);
	dst_data = malloc(SIZE);
	for (size_t i = 0; i < SIZE; i++) {
		src_data[i] = (char)(i * 11 + i / 4096);
		dst_data[i] = (char)(0x5a ^ (i >> 9));
	}
	fake_make_file(src_path, src_data, SIZE);
	fake_make_file(dst_path, NULL, 0);
	for (size_t i = 0; i < sizeof(ranges) / sizeof(ranges[0]); i++)
		ranges[i] = (struct blkcopy_range){ .offset = i * 8192, .len = 4096 };
	const ssize_t total = (ssize_t)sizeof(ranges) / sizeof(ranges[0]) * 4096;

	/* It claims 8 segments a command and refuses more than 2: those pieces are emulated. */
	run("takes fewer segments", 0, total, true);
	/* Under NOEMULATION the refusal is an error, and only what landed before it counts. */
	run("takes fewer, no emulation", BLKCOPY_NOEMULATION, -EOPNOTSUPP, false);
	/* Completions for tags never sent, and twice for one: ignored, the copy is exact. */
	run("stray completions", 0, total, false);
	run("completions twice", 0, total, false);
	/* A result that is neither 0 nor -errno: an I/O error, never "bytes copied". */
	run("odd result", 0, -EIO, false);
	sense_liar();

	unlink(src_path);
	unlink(dst_path);
	free(src_data);
	free(dst_data);
	return check_done("liars");
}
