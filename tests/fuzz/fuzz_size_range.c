/* SPDX-License-Identifier: MIT */
/* Sizes and OFF:LEN ranges as the command line takes them (tools/parse.c). */
#include <errno.h>

#include "fuzz.h"
#include "parse.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	char *s = fuzz_string(data, size);
	struct blkcopy_range r;
	uint64_t v;
	int ret;

	if (!s)
		return 0;
	ret = parse_size(s, &v);
	if (ret != 0 && ret != -EINVAL && ret != -EOVERFLOW)
		abort();
	ret = parse_range(s, &r);
	if (ret != 0 && ret != -EINVAL && ret != -EOVERFLOW)
		abort();
	free(s);
	return 0;
}
