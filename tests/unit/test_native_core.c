/* SPDX-License-Identifier: MIT */
/*
 * The core's native path, through a fake backend over regular files: pieces
 * respect the pair's limits, refused pieces fall back to emulation, an error
 * stops the copy with an exact committed prefix, and the flags are obeyed.
 * Real backends are tested against real devices; this pins the core's logic.
 */
#include <errno.h>
#include <fcntl.h>
#include <stdlib.h>
#include <string.h>
#include <sys/eventfd.h>
#include <unistd.h>

#include "check.h"
#include "fake_native.h"

#define SIZE (4u << 20)

static struct {
	int pieces;
	int refuse_every;	/* refuse each Nth piece with -EOPNOTSUPP (0: never) */
	int fail_at;		/* fail piece N with -EIO (0: never) */
	int corrupt_at;		/* piece N lands with its 100th byte flipped, and says it landed */
	uint64_t corrupt_dst;	/* where that byte went (file offset) */
	int violations;
} fake;

static const struct blkcopy_limits fake_limits = {
	.copy_offload = 1,
	.max_copy_sectors = 16,
	.max_copy_nr_ranges = 3,
	.max_copy_range_sectors = 4,
};

static int fake_pair(const struct blkcopy_dev *s, const struct blkcopy_dev *d,
		     struct blkcopy_limits *lim, char *why, size_t why_size)
{
	*lim = fake_limits;
	return 0;
}

static int fake_copy(struct blkcopy_dev *s, struct blkcopy_dev *d, const struct bc_span *segs,
		     const struct bc_piece *p, struct bc_copy_stats *st)
{
	static char buf[8192];

	fake.pieces++;
	if (p->nr_segs > 3 || p->len > 16 * 512)
		fake.violations++;
	for (uint32_t i = 0; i < p->nr_segs; i++)
		if (segs[i].len > 4 * 512)
			fake.violations++;
	if (fake.violations)
		return -EIO;	/* never past the buffer */
	if (fake.refuse_every && fake.pieces % fake.refuse_every == 0)
		return -EOPNOTSUPP;
	if (fake.fail_at && fake.pieces == fake.fail_at)
		return -EIO;
	if (fake_move(s, d, segs, p, buf))
		return -EIO;
	if (fake.corrupt_at && fake.pieces == fake.corrupt_at && p->len > 100) {
		char c;

		fake.corrupt_dst = p->dst + 100;
		if (pread(bc_fd_of(d), &c, 1, (off_t)fake.corrupt_dst) != 1)
			return -EIO;
		c ^= 0x40;
		if (pwrite(bc_fd_of(d), &c, 1, (off_t)fake.corrupt_dst) != 1)
			return -EIO;
	}
	st->bytes[BLKCOPY_METHOD_COPY_FILE_RANGE] += p->len;
	return 0;
}

static const struct bc_backend fake_backend = {
	.name = "fake",
	.caps = BC_BACKEND_SYNC,
	.probe = fake_probe,
	.pair = fake_pair,
	.copy = fake_copy,
};

/*
 * The same fake behind a queue: pieces wait until reaped, then complete
 * newest first, so the core sees completions out of order.
 */
struct fake_queue {
	struct bc_native_queue base;
	struct blkcopy_dev *src, *dst;
	int efd;
	uint32_t n;
	struct {
		uint32_t tag;
		struct bc_piece piece;
		struct bc_span segs[3];
	} pending[64];
};

static struct {
	uint32_t max_inflight;
	uint32_t inflight_before_first;	/* pieces queued before the first completion */
	int completions;
} fq;

static int fq_create(struct blkcopy_dev *s, struct blkcopy_dev *d, uint32_t depth,
		     struct bc_native_queue **qp)
{
	struct fake_queue *q = calloc(1, sizeof(*q));

	if (!q || depth > 64)
		abort();
	q->src = s;
	q->dst = d;
	q->efd = eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
	*qp = &q->base;
	memset(&fq, 0, sizeof(fq));
	return 0;
}

static int fq_submit(struct bc_native_queue *nq, const struct bc_span *segs,
		     const struct bc_piece *piece, uint32_t tag)
{
	struct fake_queue *q = (struct fake_queue *)nq;
	uint64_t one = 1;

	if (piece->nr_segs > 3)
		fake.violations++;
	q->pending[q->n].tag = tag;
	q->pending[q->n].piece = *piece;
	memcpy(q->pending[q->n].segs, segs, piece->nr_segs * sizeof(*segs));
	q->n++;
	if (q->n > fq.max_inflight)
		fq.max_inflight = q->n;
	if (!fq.completions)
		fq.inflight_before_first = q->n;
	if (write(q->efd, &one, sizeof(one)) != sizeof(one))
		abort();
	return 0;
}

static int fq_reap(struct bc_native_queue *nq, struct bc_native_cqe *cqes, uint32_t max, bool wait)
{
	struct fake_queue *q = (struct fake_queue *)nq;
	uint64_t v;
	uint32_t n = 0;

	(void)wait;	/* everything queued is ready */
	if (read(q->efd, &v, sizeof(v)) < 0 && errno != EAGAIN)
		abort();
	while (q->n && n < max) {
		struct bc_copy_stats st = { 0 };
		q->n--;
		fq.completions++;
		cqes[n].tag = q->pending[q->n].tag;
		cqes[n].method = BLKCOPY_METHOD_COPY_FILE_RANGE;
		cqes[n].result = fake_copy(q->src, q->dst, q->pending[q->n].segs,
					   &q->pending[q->n].piece, &st);
		n++;
	}
	return (int)n;
}

static int fq_fd(const struct bc_native_queue *nq)
{
	const struct fake_queue *q = (const struct fake_queue *)nq;
	return q->efd;
}

static void fq_destroy(struct bc_native_queue *nq)
{
	struct fake_queue *q = (struct fake_queue *)nq;
	if (q->n)
		abort();	/* destroyed with pieces in flight */
	close(q->efd);
	free(q);
}

static const struct bc_backend fake_queued_backend = {
	.name = "fake-queued",
	.caps = BC_BACKEND_SYNC | BC_BACKEND_QUEUED | BC_BACKEND_QUEUE_MAY_REFUSE,
	.probe = fake_probe,
	.pair = fake_pair,
	.copy = fake_copy,
	.queue_create = fq_create,
	.queue_submit = fq_submit,
	.queue_reap = fq_reap,
	.queue_fd = fq_fd,
	.queue_destroy = fq_destroy,
};

static char *src_data, *dst_data;
static char src_path[] = "/tmp/blkcopy-native-src-XXXXXX";
static char dst_path[] = "/tmp/blkcopy-native-dst-XXXXXX";

static const struct bc_backend *backend_under_test = &fake_backend;

static void open_pair(struct blkcopy_dev **s, struct blkcopy_dev **d)
{
	fake_open_pair(src_path, dst_path, dst_data, SIZE, backend_under_test, &fake_limits, s, d);
	memset(&fake, 0, sizeof(fake));
}

/*
 * The destination holds the ranges' bytes in [0, @upto) of the copy and the
 * old bytes outside the copy; inside it, past @upto, anything when
 * @only_prefix (pieces in flight when a copy stops may still land).
 */
static bool dst_matches(const struct blkcopy_range *r, size_t nr, uint64_t dst_off, uint64_t upto,
			uint64_t total, bool only_prefix)
{
	char *got = malloc(SIZE), *want = malloc(SIZE);
	int fd = open(dst_path, O_RDONLY);
	bool same;

	if (!got || !want || fd < 0 || pread(fd, got, SIZE, 0) != SIZE)
		abort();
	close(fd);
	memcpy(want, dst_data, SIZE);
	uint64_t at = dst_off, copied = 0;
	for (size_t i = 0; i < nr && copied < upto; i++) {
		uint64_t n = r[i].len < upto - copied ? r[i].len : upto - copied;
		memcpy(want + at, src_data + r[i].offset, n);
		at += n;
		copied += n;
	}
	if (only_prefix)
		memcpy(got + at, want + at, dst_off + total - at);
	same = !memcmp(got, want, SIZE);
	free(got);
	free(want);
	return same;
}

static bool dst_is(const struct blkcopy_range *r, size_t nr, uint64_t dst_off, uint64_t upto)
{
	return dst_matches(r, nr, dst_off, upto, 0, false);
}

/* A BLKCOPY_VERIFY copy as a job, its stats taken before it finishes: what it returned. */
static ssize_t verified_copy(struct blkcopy_dev *s, const struct blkcopy_range *r, size_t nr,
			     struct blkcopy_dev *d, uint64_t dst_off, struct blkcopy_stats *st,
			     struct blkcopy_progress *p)
{
	const struct blkcopy_opts vo = { .flags = BLKCOPY_VERIFY };
	struct blkcopy_job *job;

	CHECK_EQ(blkcopy_job_submit(s, r, nr, d, dst_off, &vo, &job), 0);
	while (!blkcopy_job_wait(job, -1))
		;
	CHECK_EQ(blkcopy_job_stats(job, st, sizeof(*st)), 0);
	return blkcopy_job_finish(job, p);
}

int main(void)
{
	static const struct blkcopy_range r[] = {
		{ 0, 8192 }, { 1 << 20, 3072 }, { 65536, 512 }, { 66048, 4096 }, { 200704, 16384 },
		{ 2 << 20, 512 }, { 4096, 1024 },
	};
	const size_t nr = sizeof(r) / sizeof(r[0]);
	const uint64_t total = 8192 + 3072 + 512 + 4096 + 16384 + 512 + 1024;
	const uint64_t dst_off = 3 << 20;
	struct blkcopy_dev *s, *d;
	struct blkcopy_progress p;
	struct blkcopy_opts o = { 0 };

	src_data = malloc(SIZE);
	dst_data = malloc(SIZE);
	for (size_t i = 0; i < SIZE; i++) {
		src_data[i] = (char)(i * 7 + i / 4096);
		dst_data[i] = (char)(0xA5 ^ (i >> 9));
	}
	fake_make_file(src_path, src_data, SIZE);
	fake_make_file(dst_path, dst_data, SIZE);

	/* All native. */
	open_pair(&s, &d);
	CHECK_EQ(blkcopy_copy_ex(s, r, nr, d, dst_off, &o, &p), total);
	CHECK_EQ(p.native_bytes, total);
	CHECK_EQ(p.emulated_bytes, 0);
	CHECK_EQ(fake.violations, 0);
	CHECK(fake.pieces >= (int)(total / 8192), "only %d pieces", fake.pieces);
	CHECK(dst_is(r, nr, dst_off, total), "native copy wrong");
	blkcopy_close(s);
	blkcopy_close(d);

	/* Every third piece refused: those are emulated. */
	open_pair(&s, &d);
	fake.refuse_every = 3;
	CHECK_EQ(blkcopy_copy_ex(s, r, nr, d, dst_off, &o, &p), total);
	CHECK(p.native_bytes && p.emulated_bytes, "native %llu emulated %llu",
	      (unsigned long long)p.native_bytes, (unsigned long long)p.emulated_bytes);
	CHECK_EQ(p.native_bytes + p.emulated_bytes, total);
	CHECK_EQ(p.committed, total);
	CHECK(dst_is(r, nr, dst_off, total), "mixed copy wrong");
	blkcopy_close(s);
	blkcopy_close(d);

	/* A media error at piece 4 stops the copy: committed is exactly pieces 1-3. */
	open_pair(&s, &d);
	fake.fail_at = 4;
	CHECK_EQ(blkcopy_copy_ex(s, r, nr, d, dst_off, &o, &p), -EIO);
	CHECK_EQ(fake.pieces, 4);
	CHECK_EQ(p.committed, p.native_bytes);
	CHECK(p.committed > 0 && p.committed < total, "committed %llu", (unsigned long long)p.committed);
	CHECK(dst_is(r, nr, dst_off, p.committed), "destination beyond the committed prefix changed");
	blkcopy_close(s);
	blkcopy_close(d);

	/*
	 * VERIFY: a device that says a piece landed when one of its bytes is
	 * wrong.  The read-back names that byte; committed stops there.
	 */
	open_pair(&s, &d);
	fake.corrupt_at = 3;
	{
		struct blkcopy_stats st;

		CHECK_EQ(verified_copy(s, r, nr, d, dst_off, &st, &p), -EILSEQ);
		CHECK(fake.corrupt_dst > dst_off, "nothing corrupted");
		CHECK_EQ(st.mismatch_offset, fake.corrupt_dst);
		CHECK_EQ(p.committed, fake.corrupt_dst - dst_off);
		CHECK(st.verified_bytes > 0 && st.verified_bytes <= total, "verified %llu",
		      (unsigned long long)st.verified_bytes);
	}
	blkcopy_close(s);
	blkcopy_close(d);
	/* The same copy without a liar verifies every byte. */
	open_pair(&s, &d);
	{
		struct blkcopy_stats st;

		CHECK_EQ(verified_copy(s, r, nr, d, dst_off, &st, &p), total);
		CHECK_EQ(st.verified_bytes, total);
		CHECK_EQ(st.mismatch_offset, UINT64_MAX);
		CHECK(dst_is(r, nr, dst_off, total), "verified copy wrong");
	}
	blkcopy_close(s);
	blkcopy_close(d);

	/* NOEMULATION: a refusal fails the copy instead of emulating. */
	open_pair(&s, &d);
	fake.refuse_every = 2;
	o.flags = BLKCOPY_NOEMULATION;
	CHECK_EQ(blkcopy_copy_ex(s, r, nr, d, dst_off, &o, &p), -EOPNOTSUPP);
	CHECK_EQ(p.emulated_bytes, 0);
	CHECK_EQ(fake.pieces, 2);
	CHECK(dst_is(r, nr, dst_off, p.committed), "NOEMULATION wrote past its committed prefix");
	blkcopy_close(s);
	blkcopy_close(d);

	/* NOOFFLOAD, and copy_offload switched off: never native. */
	open_pair(&s, &d);
	o.flags = BLKCOPY_NOOFFLOAD;
	CHECK_EQ(blkcopy_copy_ex(s, r, nr, d, dst_off, &o, &p), total);
	CHECK_EQ(fake.pieces, 0);
	CHECK_EQ(p.emulated_bytes, total);
	CHECK(dst_is(r, nr, dst_off, total), "NOOFFLOAD copy wrong");
	blkcopy_close(s);
	blkcopy_close(d);

	open_pair(&s, &d);
	o.flags = 0;
	CHECK_EQ(blkcopy_set_copy_offload(s, false), 0);
	CHECK_EQ(blkcopy_copy_ex(s, r, nr, d, dst_off, &o, &p), total);
	CHECK_EQ(fake.pieces, 0);
	CHECK_EQ(blkcopy_check(s, r, nr, d, dst_off, BLKCOPY_NOEMULATION, NULL), -EOPNOTSUPP);
	blkcopy_close(s);
	blkcopy_close(d);

	/* Queued: many pieces in flight once the first succeeded, completions out of order. */
	backend_under_test = &fake_queued_backend;
	o.flags = 0;
	open_pair(&s, &d);
	CHECK_EQ(blkcopy_copy_ex(s, r, nr, d, dst_off, &o, &p), total);
	CHECK_EQ(p.native_bytes, total);
	CHECK_EQ(p.method_bytes[BLKCOPY_METHOD_COPY_FILE_RANGE], total);
	CHECK_EQ(fake.violations, 0);
	CHECK_EQ(fq.inflight_before_first, 1);
	CHECK(fq.max_inflight > 1, "max in flight %u", fq.max_inflight);
	CHECK(dst_is(r, nr, dst_off, total), "queued copy wrong");
	blkcopy_close(s);
	blkcopy_close(d);

	open_pair(&s, &d);
	fake.refuse_every = 2;
	CHECK_EQ(blkcopy_copy_ex(s, r, nr, d, dst_off, &o, &p), total);
	CHECK(p.native_bytes && p.emulated_bytes, "queued refusals: native %llu emulated %llu",
	      (unsigned long long)p.native_bytes, (unsigned long long)p.emulated_bytes);
	CHECK_EQ(p.committed, total);
	CHECK(dst_is(r, nr, dst_off, total), "queued mixed copy wrong");
	blkcopy_close(s);
	blkcopy_close(d);

	/* An error among pieces in flight: committed ends before the failed piece, all reaped. */
	open_pair(&s, &d);
	fake.fail_at = 3;
	CHECK_EQ(blkcopy_copy_ex(s, r, nr, d, dst_off, &o, &p), -EIO);
	CHECK(p.committed < total, "committed %llu", (unsigned long long)p.committed);
	CHECK(dst_matches(r, nr, dst_off, p.committed, total, true),
	      "queued: committed prefix wrong or bytes outside the copy changed");
	blkcopy_close(s);
	blkcopy_close(d);

	/* The job descriptor is pollable and the async API drives the queue. */
	open_pair(&s, &d);
	struct blkcopy_job *job;
	CHECK_EQ(blkcopy_job_submit(s, r, nr, d, dst_off, &o, &job), 0);
	CHECK(blkcopy_job_fd(job) >= 0, "no job fd");
	int polls = 0;
	while (!blkcopy_job_poll(job) && polls < 100000)
		polls++;
	CHECK_EQ(blkcopy_job_finish(job, &p), total);
	CHECK(dst_is(r, nr, dst_off, total), "queued async copy wrong");
	blkcopy_close(s);
	blkcopy_close(d);

	unlink(src_path);
	unlink(dst_path);
	free(src_data);
	free(dst_data);
	return check_done("native_core");
}
