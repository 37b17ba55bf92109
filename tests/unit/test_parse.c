/* SPDX-License-Identifier: MIT */
/* The CLI's size and range syntax. */
#include <errno.h>
#include <string.h>

#include "check.h"
#include "parse.h"

static void size(const char *s, int want_ret, uint64_t want)
{
	uint64_t v = 0;
	int ret = parse_size(s, &v);

	CHECK(ret == want_ret, "parse_size(\"%s\") = %d, want %d", s, ret, want_ret);
	if (!ret && !want_ret)
		CHECK(v == want, "parse_size(\"%s\") = %llu, want %llu", s, (unsigned long long)v,
		      (unsigned long long)want);
}

int main(void)
{
	size("0", 0, 0);
	size("4096", 0, 4096);
	size("8s", 0, 4096);
	size("4k", 0, 4096);
	size("4K", 0, 4096);
	size("3m", 0, 3u << 20);
	size("2g", 0, 2ull << 30);
	size("1t", 0, 1ull << 40);
	size("18446744073709551615", 0, UINT64_MAX);
	size("18446744073709551616", -EOVERFLOW, 0);
	size("16777216t", -EOVERFLOW, 0);
	size("", -EINVAL, 0);
	size("k", -EINVAL, 0);
	size("-1", -EINVAL, 0);
	size("1x", -EINVAL, 0);
	size("1kk", -EINVAL, 0);
	size(" 1", -EINVAL, 0);
	/* Hex, as nvme-cli and sg3_utils print offsets: no suffix. */
	size("0x10", 0, 16);
	size("0X1000", 0, 4096);
	size("0xdeadBEEF", 0, 0xdeadbeefull);
	size("0x0", 0, 0);
	size("0x00000000000000000000ffffffffffffffff", 0, UINT64_MAX);
	size("0xffffffffffffffff", 0, UINT64_MAX);
	size("0x10000000000000000", -EOVERFLOW, 0);
	size("0x", -EINVAL, 0);
	size("0x10k", -EINVAL, 0);
	size("0xg", -EINVAL, 0);
	size("0x-1", -EINVAL, 0);
	size("x10", -EINVAL, 0);
	size("00x10", -EINVAL, 0);

	struct blkcopy_range r;
	CHECK_EQ(parse_range("1m:4k", &r), 0);
	CHECK(r.offset == 1u << 20 && r.len == 4096, "1m:4k");
	CHECK_EQ(parse_range("1m4k", &r), -EINVAL);
	CHECK_EQ(parse_range(":4k", &r), -EINVAL);
	CHECK_EQ(parse_range("4k:", &r), -EINVAL);
	CHECK_EQ(parse_range("1:2:3", &r), -EINVAL);
	CHECK_EQ(parse_range("99999999999999999999:1", &r), -EOVERFLOW);
	CHECK_EQ(parse_range("0x100000:0x1000", &r), 0);
	CHECK(r.offset == 1u << 20 && r.len == 4096, "0x100000:0x1000");
	CHECK_EQ(parse_range("0x10:4k", &r), 0);
	CHECK(r.offset == 16 && r.len == 4096, "0x10:4k");

	char text[] = "# a comment\n0:4k\n\n  8k:4k  \n\t# indented comment\n16s:1s";
	FILE *f = fmemopen(text, strlen(text), "r");
	struct range_list l = { 0 };
	size_t line = 0;
	CHECK_EQ(parse_ranges_file(f, &l, &line), 0);
	CHECK_EQ(l.n, 3);
	if (l.n == 3)
		CHECK(l.v[2].offset == 8192 && l.v[2].len == 512, "last line without newline");
	fclose(f);
	range_list_free(&l);

	char badtext[] = "0:4k\n4k:4k\noops\n";
	f = fmemopen(badtext, strlen(badtext), "r");
	CHECK_EQ(parse_ranges_file(f, &l, &line), -EINVAL);
	CHECK_EQ(line, 3);
	fclose(f);
	range_list_free(&l);

	return check_done("parse");
}
