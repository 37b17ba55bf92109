/* SPDX-License-Identifier: MIT */
/* The public entry points that wrap a job: a checked request, a copy that waits for its end. */
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "leg.h"
#include "request.h"
#include "zone.h"

const char *blkcopy_version(void)
{
	return BLKCOPY_VERSION_STRING;
}

int blkcopy_check(struct blkcopy_dev *src, const struct blkcopy_range *ranges, size_t nr,
		  struct blkcopy_dev *dst, uint64_t dst_off, unsigned int flags, size_t *bad_range)
{
	struct bc_span *spans;
	uint64_t total;
	ssize_t n;
	int ret;

	if (bad_range)
		*bad_range = SIZE_MAX;
	if (!src || !dst)
		return -EINVAL;
	/* The resolved tables are a view kept in the handles, re-read for every request. */
	ret = bc_refresh_pair(src, dst);
	if (ret)
		return ret;
	ret = bc_validate(src, ranges, nr, dst, dst_off, flags, &total, bad_range);
	if (!ret)
		ret = bc_zone_validate(dst, dst_off, total);
	if (ret || (!(flags & BLKCOPY_NOEMULATION) && !bc_zoned_seq(dst)))
		return ret;
	n = bc_coalesce(ranges, nr, &spans);
	if (n < 0)
		return (int)n;
	ret = bc_check_zoned_direct(src, dst,
				    bc_emulate_direct(src, spans, (size_t)n, dst, dst_off, flags));
	if (!ret && (flags & BLKCOPY_NOEMULATION))
		ret = bc_check_all_native(src, spans, (size_t)n, dst, dst_off, flags);
	free(spans);
	return ret;
}

ssize_t blkcopy_copy_ex(struct blkcopy_dev *src, const struct blkcopy_range *ranges, size_t nr,
			struct blkcopy_dev *dst, uint64_t dst_off,
			const struct blkcopy_opts *opts, struct blkcopy_progress *res)
{
	struct blkcopy_job *j;
	int ret = blkcopy_job_submit(src, ranges, nr, dst, dst_off, opts, &j);

	if (ret) {
		if (res)
			*res = (struct blkcopy_progress){ .error = ret, .finished = true };
		return ret;
	}
	return blkcopy_job_finish(j, res);
}

ssize_t blkcopy_copy(struct blkcopy_dev *src, const struct blkcopy_range *ranges, size_t nr,
		     struct blkcopy_dev *dst, uint64_t dst_off, unsigned int flags)
{
	const struct blkcopy_opts opts = { .flags = flags };

	return blkcopy_copy_ex(src, ranges, nr, dst, dst_off, &opts, NULL);
}
