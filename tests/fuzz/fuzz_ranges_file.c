/* SPDX-License-Identifier: MIT */
/* A --ranges-from file: one OFF:LEN per line, comments and blank lines (tools/parse.c). */
#include <errno.h>
#include <stdio.h>

#include "fuzz.h"
#include "parse.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct range_list l = { 0 };
	size_t line = 0;
	FILE *f;
	int ret;

	if (!size)
		return 0;
	f = fmemopen((void *)data, size, "r");
	if (!f)
		return 0;
	ret = parse_ranges_file(f, &l, &line);
	fclose(f);
	if (ret == 0 && l.n > BLKCOPY_MAX_RANGES)
		abort();
	range_list_free(&l);
	return 0;
}
