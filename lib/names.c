/* SPDX-License-Identifier: MIT */
/* The library's names for things: device kinds, copy methods, errors in a request's terms. */
#include <errno.h>
#include <string.h>

#include "blkcopy.h"

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

const char *blkcopy_zoned_name(enum blkcopy_zoned model)
{
	switch (model) {
	case BLKCOPY_ZONED_NONE: return "none";
	case BLKCOPY_ZONED_HOST_AWARE: return "host-aware";
	case BLKCOPY_ZONED_HOST_MANAGED: return "host-managed";
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
	/* Validation's, and a write that found its file system full. */
	case ENOSPC: return "destination range past the end of the destination, or no space left on it";
	case EROFS: return "destination is read-only";
	case EBADF: return "destination not opened for writing";
	case EADDRINUSE: return "source range overlaps the destination";
	case ESPIPE: return "destination is not at the write pointer of its zone";
	case EFBIG: return "destination runs past the capacity of a zone";
	case EOPNOTSUPP: return "native copy not available and emulation forbidden";
	case ECANCELED: return "copy cancelled";
	case EILSEQ: return "destination differs from the source (verification)";
	case ESTALE: return "a device-mapper table under the copy changed or was suspended during it";
	case EBUSY: return "device or target busy";
	case ENOTBLK: return "not a block device or regular file";
	}
	return strerror(err < 0 ? -err : err);
}

const char *blkcopy_emulated_name(enum blkcopy_emulated why)
{
	switch (why) {
	case BLKCOPY_EMULATED_NO_OFFLOAD: return "no_offload";
	case BLKCOPY_EMULATED_NO_NATIVE: return "no_native";
	case BLKCOPY_EMULATED_REFUSED: return "refused";
	case BLKCOPY_EMULATED_NATIVE_MIN: return "native_min";
	case BLKCOPY_EMULATED_SLOWER: return "slower";
	case BLKCOPY_EMULATED_PROBE: return "probe";
	case BLKCOPY_EMULATED_MAX: break;
	}
	return NULL;
}
