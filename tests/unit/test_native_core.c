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
#include <unistd.h>

#include "check.h"
#include "internal.h"

#define SIZE (4u << 20)

static struct {
	int pieces;
	int refuse_every;	/* refuse each Nth piece with -EOPNOTSUPP (0: never) */
	int fail_at;		/* fail piece N with -EIO (0: never) */
	int violations;
} fake;

static const struct blkcopy_limits fake_limits = {
	.copy_offload = 1,
	.max_copy_sectors = 16,
	.max_copy_nr_ranges = 3,
	.max_copy_range_sectors = 4,
};

static int fake_probe(struct blkcopy_dev *d)
{
	return -ENODEV;
}

static int fake_pair(const struct blkcopy_dev *s, const struct blkcopy_dev *d,
		     struct blkcopy_limits *lim)
{
	*lim = fake_limits;
	return 0;
}

static int fake_copy(struct blkcopy_dev *s, struct blkcopy_dev *d, const struct bc_span *segs,
		     const struct bc_piece *p, struct bc_copy_stats *st)
{
	static char buf[8192];
	uint64_t off = p->dst;

	fake.pieces++;
	if (p->nr_segs > 3 || p->len > 16 * 512)
		fake.violations++;
	if (fake.refuse_every && fake.pieces % fake.refuse_every == 0)
		return -EOPNOTSUPP;
	if (fake.fail_at && fake.pieces == fake.fail_at)
		return -EIO;
	for (uint32_t i = 0; i < p->nr_segs; i++) {
		if (segs[i].len > 4 * 512)
			fake.violations++;
		if (pread(s->fd, buf, segs[i].len, (off_t)segs[i].src) != (ssize_t)segs[i].len ||
		    pwrite(d->fd, buf, segs[i].len, (off_t)off) != (ssize_t)segs[i].len)
			return -EIO;
		off += segs[i].len;
	}
	st->bytes[BLKCOPY_METHOD_COPY_FILE_RANGE] += p->len;
	return 0;
}

static const struct bc_backend fake_backend = {
	.name = "fake",
	.probe = fake_probe,
	.pair = fake_pair,
	.copy = fake_copy,
};

static char *src_data, *dst_data;
static char src_path[] = "/tmp/blkcopy-native-src-XXXXXX";
static char dst_path[] = "/tmp/blkcopy-native-dst-XXXXXX";

static void make_file(char *path, char *data)
{
	int fd = mkstemp(path);

	if (fd < 0 || write(fd, data, SIZE) != SIZE)
		abort();
	close(fd);
}

static void open_pair(struct blkcopy_dev **s, struct blkcopy_dev **d)
{
	int fd = open(dst_path, O_WRONLY);

	/* Every case starts from the pristine destination. */
	if (fd < 0 || pwrite(fd, dst_data, SIZE, 0) != SIZE)
		abort();
	close(fd);
	if (blkcopy_open(src_path, BLKCOPY_OPEN_READ, s) ||
	    blkcopy_open(dst_path, BLKCOPY_OPEN_READ | BLKCOPY_OPEN_WRITE, d))
		abort();
	(*s)->backend = (*d)->backend = &fake_backend;
	(*s)->limits = (*d)->limits = fake_limits;
	memset(&fake, 0, sizeof(fake));
}

/* The destination holds the ranges' bytes in [0, @upto) of the copy and the old bytes elsewhere. */
static bool dst_is(const struct blkcopy_range *r, size_t nr, uint64_t dst_off, uint64_t upto)
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
	same = !memcmp(got, want, SIZE);
	free(got);
	free(want);
	return same;
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
	make_file(src_path, src_data);
	make_file(dst_path, dst_data);

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

	unlink(src_path);
	unlink(dst_path);
	free(src_data);
	free(dst_data);
	return check_done("native_core");
}
