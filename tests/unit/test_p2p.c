/* SPDX-License-Identifier: MIT */
/*
 * BLKCOPY_P2P where there is no PCI peer-to-peer memory (the lab proves it
 * where there is: tests/lab/p2p): the emulation engine's buffers come from
 * the memory it is given, within its limit, and never registered when it
 * says so; a P2P request between files is refused before anything is
 * written, with the reason; the options are checked.
 */
#include <errno.h>
#include <fcntl.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>

#include "check.h"
#include "blkcopy.h"
#include "emulate.h"
#include "memory.h"

#define SIZE (8u << 20)
#define CHUNK (256u << 10)

/* A memory that counts what the engine maps: anonymous pages, limited to 2.5 chunks. */
static int maps, unmaps;
static size_t mapped_len;

static void *counting_map(const struct bc_memory *m, size_t len)
{
	void *p = mmap(NULL, len, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);

	(void)m;
	maps++;
	mapped_len = len;
	return p == MAP_FAILED ? NULL : p;
}

static void counting_unmap(const struct bc_memory *m, void *p, size_t len)
{
	(void)m;
	unmaps++;
	CHECK_EQ(len, mapped_len);
	munmap(p, len);
}

static const struct bc_memory_ops counting_ops = { .map = counting_map, .unmap = counting_unmap };

static void write_file(const char *path, const char *data, size_t len)
{
	int fd = open(path, O_WRONLY | O_CREAT | O_TRUNC, 0600);

	if (fd < 0 || write(fd, data, len) != (ssize_t)len)
		abort();
	close(fd);
}

static char *read_file(const char *path)
{
	char *buf = malloc(SIZE);
	int fd = open(path, O_RDONLY);

	if (!buf || fd < 0 || pread(fd, buf, SIZE, 0) != SIZE)
		abort();
	close(fd);
	return buf;
}

/* The engine maps its buffers once from the memory it is given, within the limit. */
static void engine_memory(const char *src, const char *dst, const char *data)
{
	const struct bc_memory mem = { .ops = &counting_ops, .limit = CHUNK * 5 / 2, .fd = -1 };
	const struct bc_emu_params p = { .queue_depth = 8, .max_inflight = 16 * CHUNK,
					 .chunk_size = CHUNK, .expected_bytes = SIZE,
					 .memory = &mem };
	const struct bc_span span = { 0, SIZE };
	struct blkcopy_dev *s, *d;
	struct bc_emu *e;
	int ret;

	CHECK_EQ(blkcopy_open(src, BLKCOPY_OPEN_READ, &s), 0);
	CHECK_EQ(blkcopy_open(dst, BLKCOPY_OPEN_READ | BLKCOPY_OPEN_WRITE, &d), 0);
	CHECK_EQ(bc_emu_create(s, d, &p, &e), 0);
	CHECK_EQ(bc_emu_add(e, &span, 1, 0, false), 0);
	while ((ret = bc_emu_run(e, -1)) == 0 || ret == -EINTR)
		;
	CHECK_EQ(ret, 1);
	CHECK_EQ(bc_emu_error(e), 0);
	bc_emu_destroy(e);
	CHECK_EQ(maps, 1);
	CHECK_EQ(unmaps, 1);
	CHECK_EQ(mapped_len, 2 * CHUNK);	/* two whole chunks fit in 2.5 */
	blkcopy_close(s);
	blkcopy_close(d);
	char *got = read_file(dst);
	CHECK(!memcmp(got, data, SIZE), "the copy through the given memory differs");
	free(got);
}

static int submit(struct blkcopy_dev *s, struct blkcopy_dev *d, const struct blkcopy_opts *o)
{
	const struct blkcopy_range r = { 0, SIZE / 2 };
	struct blkcopy_job *j = NULL;
	int ret = blkcopy_job_submit(s, &r, 1, d, 0, o, &j);

	if (!ret)
		blkcopy_job_finish(j, NULL);
	return ret;
}

/* Files are on no PCI device: refused with the reason, nothing written; bad options refused. */
static void refusals(const char *src, const char *dst)
{
	struct blkcopy_dev *s, *d;
	struct blkcopy_p2p_info info;
	char *before = read_file(dst);

	CHECK_EQ(blkcopy_open(src, BLKCOPY_OPEN_READ, &s), 0);
	CHECK_EQ(blkcopy_open(dst, BLKCOPY_OPEN_READ | BLKCOPY_OPEN_WRITE, &d), 0);
	CHECK_EQ(blkcopy_dev_p2p(s, &info), -ENODEV);
	CHECK_EQ(blkcopy_dev_p2p(NULL, &info), -EINVAL);

	CHECK_EQ(submit(s, d, &(struct blkcopy_opts){ .flags = BLKCOPY_P2P }), -EOPNOTSUPP);
	CHECK(strstr(blkcopy_dev_error(d), "no P2P memory") &&
	      strstr(blkcopy_dev_error(d), "is not on a PCI device"), "reason: '%s'",
	      blkcopy_dev_error(d));
	CHECK_EQ(submit(s, d, &(struct blkcopy_opts){ .flags = BLKCOPY_P2P,
						     .p2p_memory = BLKCOPY_P2P_DST }), -EOPNOTSUPP);
	/* Whose memory without BLKCOPY_P2P, an unknown one, and buffered I/O. */
	CHECK_EQ(submit(s, d, &(struct blkcopy_opts){ .p2p_memory = BLKCOPY_P2P_SRC }), -EINVAL);
	CHECK_EQ(submit(s, d, &(struct blkcopy_opts){ .flags = BLKCOPY_P2P, .p2p_memory = 3 }),
		 -EINVAL);
	CHECK_EQ(submit(s, d, &(struct blkcopy_opts){ .flags = BLKCOPY_P2P | BLKCOPY_BUFFERED }),
		 -EINVAL);
	blkcopy_close(s);
	blkcopy_close(d);

	char *after = read_file(dst);
	CHECK(!memcmp(before, after, SIZE), "a refused P2P request changed the destination");
	free(before);
	free(after);
}

int main(void)
{
	char dir[] = "/tmp/blkcopy-p2p-XXXXXX";
	char src[64], dst[64];
	char *data = malloc(SIZE), *zero = calloc(1, SIZE);

	if (!data || !zero || !mkdtemp(dir))
		return 1;
	for (size_t i = 0; i < SIZE; i++)
		data[i] = (char)(i * 7 + i / 4096);
	snprintf(src, sizeof(src), "%s/src", dir);
	snprintf(dst, sizeof(dst), "%s/dst", dir);
	write_file(src, data, SIZE);
	write_file(dst, zero, SIZE);

	engine_memory(src, dst, data);
	write_file(dst, zero, SIZE);
	refusals(src, dst);

	unlink(src);
	unlink(dst);
	rmdir(dir);
	free(data);
	free(zero);
	return check_done("test_p2p");
}
