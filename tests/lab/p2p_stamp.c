/* SPDX-License-Identifier: MIT */
/*
 * Stamped blocks, to see where a copy's data went.
 *
 *   p2p_stamp write DEV OFF LEN MAGIC   fill DEV[OFF, OFF+LEN) with 512-byte
 *                                       blocks that begin with MAGIC and the
 *                                       block's index, the rest pseudo-random
 *   p2p_stamp scan RESOURCE MAGIC       map a PCI BAR through its sysfs
 *                                       resource file and count its blocks
 *                                       that begin with MAGIC
 *
 * The P2P tests stamp a source with a fresh MAGIC, stop a copy half way
 * and scan the controller memory buffer: what the CMB holds is what the
 * devices moved through it.  scan prints "N blocks, first at OFF" (OFF -1:
 * none) and reads only the first bytes of each block: the BAR is device
 * memory, and every read of it is a round trip to the device.
 */
#include <fcntl.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#define BLOCK 512u
#define BUF (1u << 20)

static int stamp_write(const char *dev, uint64_t off, uint64_t len, const char *magic)
{
	uint64_t x = 0x9e3779b97f4a7c15ull ^ off;
	unsigned char *buf;
	int fd = open(dev, O_WRONLY | O_CLOEXEC);

	if (fd < 0 || off % BLOCK || len % BLOCK || posix_memalign((void **)&buf, 4096, BUF)) {
		perror(dev);
		return 1;
	}
	for (uint64_t done = 0; done < len; ) {
		const size_t n = len - done < BUF ? (size_t)(len - done) : BUF;

		for (size_t b = 0; b < n; b += BLOCK) {
			for (size_t i = 0; i < BLOCK; i += 8) {
				x ^= x << 13, x ^= x >> 7, x ^= x << 17;
				memcpy(buf + b + i, &x, 8);
			}
			snprintf((char *)buf + b, 64, "%s%012llu", magic,
				 (unsigned long long)((off + done + b) / BLOCK));
		}
		if (pwrite(fd, buf, n, (off_t)(off + done)) != (ssize_t)n) {
			perror("pwrite");
			return 1;
		}
		done += n;
	}
	if (fsync(fd)) {
		perror("fsync");
		return 1;
	}
	free(buf);
	close(fd);
	return 0;
}

static int stamp_scan(const char *resource, const char *magic)
{
	const size_t mlen = strlen(magic);
	size_t found = 0;
	long long first = -1;
	struct stat st;
	int fd = open(resource, O_RDONLY | O_CLOEXEC);

	if (fd < 0 || fstat(fd, &st) || st.st_size <= 0) {
		perror(resource);
		return 1;
	}
	const volatile unsigned char *bar = mmap(NULL, (size_t)st.st_size, PROT_READ, MAP_SHARED,
						 fd, 0);
	if (bar == MAP_FAILED) {
		perror("mmap");
		return 1;
	}
	for (size_t off = 0; off + BLOCK <= (size_t)st.st_size; off += BLOCK) {
		size_t i = 0;

		while (i < mlen && bar[off + i] == (unsigned char)magic[i])
			i++;
		if (i == mlen) {
			if (first < 0)
				first = (long long)off;
			found++;
		}
	}
	printf("%zu blocks, first at %lld\n", found, first);
	munmap((void *)bar, (size_t)st.st_size);
	close(fd);
	return 0;
}

int main(int argc, char **argv)
{
	if (argc == 6 && !strcmp(argv[1], "write") && strlen(argv[5]) && strlen(argv[5]) <= 40)
		return stamp_write(argv[2], strtoull(argv[3], NULL, 0), strtoull(argv[4], NULL, 0),
				   argv[5]);
	if (argc == 4 && !strcmp(argv[1], "scan") && strlen(argv[3]) && strlen(argv[3]) <= 40)
		return stamp_scan(argv[2], argv[3]);
	fprintf(stderr, "usage: p2p_stamp write DEV OFF LEN MAGIC | p2p_stamp scan RESOURCE MAGIC\n"
		"(MAGIC: 1 to 40 bytes; OFF, LEN: multiples of 512)\n");
	return 2;
}
