/* SPDX-License-Identifier: MIT */
/* The public entry points that wrap a job, and the library's names for things. */
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "job.h"
#include "request.h"

const char *blkcopy_version(void)
{
	return BLKCOPY_VERSION_STRING;
}

int blkcopy_check(struct blkcopy_dev *src, const struct blkcopy_range *ranges, size_t nr,
		  struct blkcopy_dev *dst, uint64_t dst_off, unsigned int flags, size_t *bad_range)
{
	struct bc_span *spans;
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
	ret = bc_validate(src, ranges, nr, dst, dst_off, flags, NULL, bad_range);
	if (ret || !(flags & BLKCOPY_NOEMULATION))
		return ret;
	n = bc_coalesce(ranges, nr, &spans);
	if (n < 0)
		return (int)n;
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

const char *blkcopy_kind_name(enum blkcopy_kind kind)
{
	switch (kind) {
	case BLKCOPY_KIND_FILE: return "file";
	case BLKCOPY_KIND_LOOP: return "loop";
	case BLKCOPY_KIND_NVME: return "nvme";
	case BLKCOPY_KIND_SCSI: return "scsi";
	case BLKCOPY_KIND_DM: return "dm";
	case BLKCOPY_KIND_MD: return "md";
	case BLKCOPY_KIND_BLOCK: return "block";
	case BLKCOPY_KIND_ISCSI: return "iscsi";
	}
	return "unknown";
}

const char *blkcopy_method_name(enum blkcopy_method m)
{
	switch (m) {
	case BLKCOPY_METHOD_EMULATE: return "emulate";
	case BLKCOPY_METHOD_REFLINK: return "reflink";
	case BLKCOPY_METHOD_COPY_FILE_RANGE: return "copy_file_range";
	case BLKCOPY_METHOD_NVME_COPY: return "nvme_copy";
	case BLKCOPY_METHOD_SCSI_XCOPY: return "scsi_xcopy";
	case BLKCOPY_METHOD_MAX: break;
	}
	return NULL;
}

const char *blkcopy_strerror(int err)
{
	switch (err < 0 ? -err : err) {
	case ENODATA: return "zero-length range";
	case E2BIG: return "too many ranges";
	case EOVERFLOW: return "range arithmetic overflows";
	case EINVAL: return "invalid argument (offset or length not aligned to the logical block size?)";
	case ENXIO: return "source range past the end of the source";
	case ENOSPC: return "destination range past the end of the destination";
	case EROFS: return "destination is read-only";
	case EBADF: return "destination not opened for writing";
	case EADDRINUSE: return "source range overlaps the destination";
	case EOPNOTSUPP: return "native copy not available and emulation forbidden";
	case ECANCELED: return "copy cancelled";
	case ESTALE: return "a device-mapper table under the copy changed or was suspended during it";
	case EBUSY: return "device or target busy (blkcopy_dev_error() may say more)";
	case ENOTBLK: return "not a block device or regular file";
	}
	return strerror(err < 0 ? -err : err);
}
