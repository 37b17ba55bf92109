/* SPDX-License-Identifier: MIT */
/*
 * property: thousands of random requests through the public API, valid and
 * invalid, checked against a small model of what blkcopy promises.
 *
 *   property SEED REQUESTS SRC DST [SAME]
 *
 * SRC and DST are opened as blkcopy would (files or block devices, here
 * loop devices of different block sizes); SAME names a third handle on
 * SRC's medium (the same file, or a loop device over it), so that sources
 * may overlap the destination.  Every request is made of ranges drawn to
 * hit the edges: zero lengths, misalignment, offsets and lengths near 2^63
 * and 2^64, ranges past the end, overlaps, many ranges.  The model
 * computes the validation error the header promises (the checks in order)
 * or the bytes that must land; then:
 *   - a refused request changes nothing, and says the model's error (and,
 *     through blkcopy_check(), the model's range);
 *   - an accepted one returns the total, puts exactly the ranges' bytes at
 *     the destination and changes nothing else.
 * Prints one line per failure (with the seed and the request number to
 * replay it) and a summary; exits 0 when every request kept the promise.
 */
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <blkcopy.h>

#define MAX_NR 1000
#define OFF_MAX ((uint64_t)INT64_MAX)

static uint64_t rng;

static uint64_t next(void)
{
	rng ^= rng << 13;
	rng ^= rng >> 7;
	rng ^= rng << 17;
	return rng;
}

static uint64_t below(uint64_t n)
{
	return n ? next() % n : 0;
}

struct end {
	const char *path;
	struct blkcopy_dev *dev;
	struct blkcopy_info info;
	int fd;		/* to read it back (O_DIRECT-free, after the copy's flush) */
	char *before;
};

static int open_end(struct end *e, const char *path, unsigned int flags)
{
	int ret = blkcopy_open(path, flags, &e->dev);

	if (ret) {
		fprintf(stderr, "property: %s: %s\n", path, blkcopy_strerror(ret));
		return ret;
	}
	blkcopy_get_info(e->dev, &e->info);
	e->path = path;
	e->fd = open(path, O_RDONLY | O_CLOEXEC);
	e->before = malloc(e->info.capacity);
	return e->fd < 0 || !e->before ? -errno : 0;
}

static void snapshot(struct end *e, char *buf)
{
	/* Block devices: what a buffered reader sees after blkcopy invalidated its cache. */
	posix_fadvise(e->fd, 0, 0, POSIX_FADV_DONTNEED);
	if (pread(e->fd, buf, e->info.capacity, 0) != (ssize_t)e->info.capacity)
		abort();
}

/* One range: inside the device, or (@edgy) drawn to hit the edges of what validation must catch. */
static struct blkcopy_range draw_range(uint64_t cap, uint32_t align, bool edgy)
{
	const uint64_t blocks = cap / align;
	struct blkcopy_range r;

	r.offset = below(blocks) * align;
	r.len = (1 + below(blocks / 8 + 1)) * align;
	if (!edgy) {
		if (r.offset + r.len > cap)
			r.len = cap - r.offset;
		return r;
	}
	switch (below(24)) {
	case 0: r.len = 0; break;
	case 1: r.offset += 1 + below(align - 1 ? align - 1 : 1); break;
	case 2: r.len += align / 2 ? align / 2 : 1; break;
	case 3: r.offset = OFF_MAX - below(3) * align; break;
	case 4: r.offset = UINT64_MAX - below(3) * align; break;
	case 5: r.len = UINT64_MAX - below(2); break;
	case 6: r.len = OFF_MAX / 2 + align; break;
	case 7: r.offset = cap - align; r.len = 2 * (uint64_t)align; break;	/* past the end */
	case 8: r.offset = cap; r.len = align; break;
	}
	return r;
}

static bool overlaps(uint64_t a, uint64_t alen, uint64_t b, uint64_t blen)
{
	return a < b + blen && b < a + alen;
}

/* The header's validation, in its order: 0 or -errno, with the range at fault in *@bad. */
static int model(const struct end *s, const struct blkcopy_range *r, size_t nr, const struct end *d,
		 bool same_medium, uint64_t dst_off, unsigned int flags, bool dst_writable,
		 uint64_t *totalp, size_t *bad)
{
	const uint64_t align = s->info.logical_block_size > d->info.logical_block_size ?
				       s->info.logical_block_size : d->info.logical_block_size;
	uint64_t total = 0, end;

	*bad = SIZE_MAX;
	if ((flags & BLKCOPY_NOEMULATION) && (flags & BLKCOPY_NOOFFLOAD))
		return -EINVAL;
	if (!nr)
		return -ENODATA;
	for (size_t i = 0; i < nr; i++) {
		*bad = i;
		if (!r[i].len)
			return -ENODATA;
		if (__builtin_add_overflow(r[i].offset, r[i].len, &end) || end > OFF_MAX ||
		    __builtin_add_overflow(total, r[i].len, &total) || total > OFF_MAX)
			return -EOVERFLOW;
	}
	*bad = SIZE_MAX;
	if (__builtin_add_overflow(dst_off, total, &end) || end > OFF_MAX)
		return -EOVERFLOW;
	for (size_t i = 0; i < nr; i++) {
		*bad = i;
		if (r[i].offset % align || r[i].len % align)
			return -EINVAL;
		if (r[i].offset + r[i].len > s->info.capacity)
			return -ENXIO;
	}
	*bad = SIZE_MAX;
	if (dst_off % align)
		return -EINVAL;
	if (dst_off + total > d->info.capacity)
		return -ENOSPC;
	if (!dst_writable)
		return -EBADF;
	for (size_t i = 0; same_medium && i < nr; i++) {
		*bad = i;
		if (overlaps(r[i].offset, r[i].len, dst_off, total))
			return -EADDRINUSE;
	}
	*bad = SIZE_MAX;
	*totalp = total;
	return 0;
}

int main(int argc, char **argv)
{
	struct end src = { 0 }, dst = { 0 }, same = { 0 }, dst_ro = { 0 };
	char *got_src, *got_dst;
	uint64_t requests, failed = 0, accepted = 0, refused = 0, bytes = 0;
	uint64_t by_error[256] = { 0 };

	if (argc != 5 && argc != 6) {
		fprintf(stderr, "usage: property SEED REQUESTS SRC DST [SAME]\n");
		return 2;
	}
	rng = strtoull(argv[1], NULL, 0) * 2654435761u + 1;
	requests = strtoull(argv[2], NULL, 0);
	if (open_end(&src, argv[3], BLKCOPY_OPEN_READ) ||
	    open_end(&dst, argv[4], BLKCOPY_OPEN_READ | BLKCOPY_OPEN_WRITE) ||
	    open_end(&dst_ro, argv[4], BLKCOPY_OPEN_READ) ||
	    (argc == 6 && open_end(&same, argv[5], BLKCOPY_OPEN_READ | BLKCOPY_OPEN_WRITE)))
		return 2;
	got_src = malloc(src.info.capacity);
	got_dst = malloc(dst.info.capacity > same.info.capacity ? dst.info.capacity
								: same.info.capacity);
	if (!got_src || !got_dst)
		return 2;

	for (uint64_t n = 0; n < requests; n++) {
		const uint64_t pick = below(10);
		/* Mostly SRC -> DST; sometimes onto SRC's own medium, or a handle not open for writing. */
		struct end *d = argc == 6 && pick < 3 ? &same : pick == 3 ? &dst_ro : &dst;
		const bool same_medium = d == &same;
		const uint32_t align = src.info.logical_block_size > d->info.logical_block_size ?
					       src.info.logical_block_size :
					       d->info.logical_block_size;
		static const unsigned int flag_sets[] = { 0, BLKCOPY_NOOFFLOAD, BLKCOPY_BUFFERED,
							  BLKCOPY_NOOFFLOAD | BLKCOPY_BUFFERED,
							  BLKCOPY_NOEMULATION,
							  BLKCOPY_NOEMULATION | BLKCOPY_NOOFFLOAD };
		const unsigned int flags = flag_sets[below(10) < 8 ? below(4) : 4 + below(2)];
		struct blkcopy_range r[MAX_NR];
		/* Half the requests clean (inside both devices), half at the edges; a few with many ranges. */
		const bool edgy = below(2);
		size_t nr = edgy && below(12) == 0 ? 0 : 1 + below(below(40) ? 6 : MAX_NR);
		size_t bad = SIZE_MAX, mbad;
		uint64_t dst_off, total = 0;
		struct blkcopy_progress p;
		const struct blkcopy_opts o = { .flags = flags, .chunk_size = 4096u << below(6) };

		for (size_t i = 0; i < nr; i++)
			r[i] = draw_range(src.info.capacity, align, edgy);
		dst_off = below(d->info.capacity / align) * align;
		if (edgy && below(10) == 0)
			dst_off += below(align) | 1;
		else if (edgy && below(10) == 0)
			dst_off = UINT64_MAX - below(4096);

		const int want = model(&src, r, nr, d, same_medium, dst_off, flags, d != &dst_ro,
				       &total, &mbad);
		snapshot(&src, src.before);
		snapshot(d, d->before);
		const ssize_t ret = blkcopy_copy_ex(src.dev, r, nr, d->dev, dst_off, &o, &p);
		const int ck = blkcopy_check(src.dev, r, nr, d->dev, dst_off, flags, &bad);
		snapshot(&src, got_src);
		snapshot(d, got_dst);

		const char *wrong = NULL;
		if (want) {
			if (ret != want)
				wrong = "refused with another error";
			else if (ck != want || bad != mbad)
				wrong = "blkcopy_check() disagrees";
			else if (memcmp(got_dst, d->before, d->info.capacity) ||
				 memcmp(got_src, src.before, src.info.capacity))
				wrong = "a refused request changed bytes";
			refused++;
			by_error[-want & 0xff]++;
		} else if (ret == -EOPNOTSUPP && (flags & BLKCOPY_NOEMULATION)) {
			/* Native copy could not do it and emulation was forbidden: nothing written. */
			if (memcmp(got_dst, d->before, d->info.capacity))
				wrong = "a refused NOEMULATION request changed bytes";
			refused++;
		} else if (ret != (ssize_t)total || ck) {
			wrong = "a valid request failed";
		} else {
			uint64_t at = dst_off;

			for (size_t i = 0; i < nr; i++, at += r[i - 1].len)
				memcpy(d->before + at, src.before + r[i].offset, r[i].len);
			if (memcmp(got_dst, d->before, d->info.capacity))
				wrong = "the destination is not the model's";
			else if (!same_medium && memcmp(got_src, src.before, src.info.capacity))
				wrong = "the source changed";
			accepted++;
			bytes += total;
		}
		if (wrong) {
			failed++;
			printf("FAIL seed %s request %" PRIu64 ": %s: %s -> %s at %" PRIu64
			       ", %zu range(s), flags 0x%x: got %zd (%s), check %d bad %zu; model %d bad %zu\n",
			       argv[1], n, wrong, src.path, d->path, dst_off, nr, flags, ret,
			       ret < 0 ? blkcopy_strerror((int)ret) : "bytes", ck, bad, want, mbad);
			for (size_t i = 0; i < nr && i < 8; i++)
				printf("    range %zu: %" PRIu64 ":%" PRIu64 "\n", i, r[i].offset, r[i].len);
			if (failed >= 10)
				break;
		}
	}
	printf("property: %s -> %s: %" PRIu64 " requests, %" PRIu64 " accepted (%" PRIu64
	       " bytes), %" PRIu64 " refused (ENODATA %" PRIu64 ", EOVERFLOW %" PRIu64
	       ", EINVAL %" PRIu64 ", ENXIO %" PRIu64 ", ENOSPC %" PRIu64 ", EBADF %" PRIu64
	       ", EADDRINUSE %" PRIu64 "), %" PRIu64 " failed\n",
	       argv[3], argv[4], requests, accepted, bytes, refused, by_error[ENODATA],
	       by_error[EOVERFLOW], by_error[EINVAL], by_error[ENXIO], by_error[ENOSPC],
	       by_error[EBADF], by_error[EADDRINUSE], failed);
	struct end *ends[] = { &src, &dst, &dst_ro, &same };
	for (size_t i = 0; i < sizeof(ends) / sizeof(ends[0]); i++) {
		blkcopy_close(ends[i]->dev);
		free(ends[i]->before);
		if (ends[i]->dev)
			close(ends[i]->fd);
	}
	free(got_src);
	free(got_dst);
	return failed ? 1 : 0;
}
