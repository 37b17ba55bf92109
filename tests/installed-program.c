/* SPDX-License-Identifier: MIT */
/*
 * A program outside the tree, built with pkg-config against an installed
 * blkcopy (tests/run.sh: meson install --destdir; scripts/packages.sh: the
 * Debian packages): copies 8 KiB from offset 4096 of SRC to the start of DST.
 */
#include <blkcopy.h>
#include <stdio.h>

int main(int argc, char **argv)
{
	struct blkcopy_dev *s, *d;
	struct blkcopy_range r = { 4096, 8192 };

	if (argc != 3 || blkcopy_open(argv[1], BLKCOPY_OPEN_READ, &s) ||
	    blkcopy_open(argv[2], BLKCOPY_OPEN_READ | BLKCOPY_OPEN_WRITE, &d))
		return 1;
	ssize_t n = blkcopy_copy(s, &r, 1, d, 0, BLKCOPY_SYNC);
	printf("libblkcopy %s copied %zd bytes\n", blkcopy_version(), n);
	blkcopy_close(s);
	blkcopy_close(d);
	return n == 8192 ? 0 : 1;
}
