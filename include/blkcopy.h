/* SPDX-License-Identifier: MIT */
/*
 * blkcopy.h - block-layer copy offload for Linux user space.
 *
 * One request names a source device, a list of source byte ranges, a
 * destination device and a destination offset.  The bytes of the ranges, in
 * the order given, land contiguously at the destination.  blkcopy sends the
 * copy to the storage when the storage can do it (native copy) and does it
 * itself otherwise (emulation: io_uring reads and writes, bounded memory).
 *
 * Conventions:
 *  - Offsets and lengths are bytes.  Limits that the kernel's copy offload
 *    series calls "sectors" are 512-byte sectors, as in sysfs.
 *  - Functions return 0 (or a byte count) on success and -errno on failure.
 *  - The library never prints and never calls exit().
 *  - Handles are not thread safe; a job may run on any one thread at a time.
 */
#ifndef BLKCOPY_H
#define BLKCOPY_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

#ifdef __cplusplus
extern "C" {
#endif

#define BLKCOPY_VERSION_MAJOR 0
#define BLKCOPY_VERSION_MINOR 1
#define BLKCOPY_VERSION_PATCH 0

/* The library's version as "MAJOR.MINOR.PATCH" (may differ from the header's). */
const char *blkcopy_version(void);

/* ------------------------------------------------------------------------ */
/* Devices                                                                  */
/* ------------------------------------------------------------------------ */

/* An open source or destination: a block device or a regular file. */
struct blkcopy_dev;

/* What a device is.  Kinds blkcopy does not understand are emulation-only. */
enum blkcopy_kind {
	BLKCOPY_KIND_FILE = 1,	/* regular file */
	BLKCOPY_KIND_LOOP,	/* loop device (/dev/loopN) */
	BLKCOPY_KIND_NVME,	/* NVMe namespace (/dev/nvmeXnY) */
	BLKCOPY_KIND_SCSI,	/* SCSI disk (/dev/sdX) */
	BLKCOPY_KIND_DM,	/* device-mapper (/dev/dm-N) */
	BLKCOPY_KIND_MD,	/* md RAID (/dev/mdN) */
	BLKCOPY_KIND_BLOCK,	/* any other block device (virtio, brd, ...) */
	BLKCOPY_KIND_ISCSI,	/* iSCSI LUN by URL, through libiscsi (no kernel device) */
};

/* Human-readable kind name ("file", "loop", "nvme", ...). */
const char *blkcopy_kind_name(enum blkcopy_kind kind);

/*
 * Copy limits, with the names of the kernel's copy offload series.
 * All native limits are 0 when the device has no native copy.
 */
struct blkcopy_limits {
	/* 1: native copy allowed; 0: forced emulation (see blkcopy_set_copy_offload). */
	uint32_t copy_offload;
	/* Source ranges in one native command. */
	uint32_t max_copy_nr_ranges;
	/* Total 512-byte sectors in one native command; 0 = no native copy. */
	uint64_t max_copy_sectors;
	/* 512-byte sectors in one source range of a native command. */
	uint64_t max_copy_range_sectors;
};

/* blkcopy_open() flags. */
#define BLKCOPY_OPEN_READ	(1u << 0)	/* use as a source */
#define BLKCOPY_OPEN_WRITE	(1u << 1)	/* use as a destination (also readable) */
#define BLKCOPY_OPEN_EXCL	(1u << 2)	/* O_EXCL on block devices: fail if mounted or claimed */

/*
 * Open @path and probe it.  @flags: BLKCOPY_OPEN_READ and/or
 * BLKCOPY_OPEN_WRITE, optionally BLKCOPY_OPEN_EXCL.
 * Returns 0 and sets *@devp, or:
 *   -EINVAL   bad flags or NULL arguments
 *   -ENOTBLK  not a block device or regular file (a directory, a char
 *             device other than an NVMe passthrough node /dev/ngXnY, which
 *             opens as its namespace's block device)
 *   -EROFS    BLKCOPY_OPEN_WRITE on a read-only device or file system
 *   other     -errno from open(2) or the probe ioctls
 *
 * iSCSI: @path may be iscsi://[user[%password]@]host[:port]/target-iqn/lun
 * (the form QEMU and libiscsi use; %XX in the IQN is decoded).  The session
 * is logged in by open and lives as long as the handle.  CHAP credentials
 * may come from LIBISCSI_CHAP_USERNAME and LIBISCSI_CHAP_PASSWORD instead
 * of the URL (a URL's password shows in ps); the handle's path never holds
 * the password.  BLKCOPY_ISCSI_TIMEOUT bounds, in seconds (default 30), the
 * TCP connect, the login and each command; BLKCOPY_ISCSI_INITIATOR names
 * the initiator (default iqn.2025-11.org.blkcopy:initiator).  Errors:
 *   -EPROTONOSUPPORT  built without libiscsi
 *   -EINVAL           a malformed URL
 *   -ECONNREFUSED, -EHOSTUNREACH, -ETIMEDOUT ...  the portal cannot be reached
 *   -EACCES           login refused (authentication or authorization)
 *   -ENOENT           no such target at that portal
 *   -ENXIO            no such LUN on the target
 * blkcopy_open_error() says which, in words.
 */
int blkcopy_open(const char *path, unsigned int flags, struct blkcopy_dev **devp);

/*
 * Why the most recent blkcopy_open() on this thread failed, when it knows
 * more than its -errno ("login to iqn...:tgt at 10.0.0.1:3260 refused:
 * authentication failed (status 0x0201)"); "" after an open that succeeded
 * or had nothing to add.  Never holds a password.
 */
const char *blkcopy_open_error(void);

/* Close a handle.  NULL is ignored. */
void blkcopy_close(struct blkcopy_dev *dev);

/* What a probe learnt about a device.  Strings live as long as the handle. */
struct blkcopy_info {
	const char *path;		/* as given to blkcopy_open(), an iSCSI URL without its password */
	const char *backend;		/* native backend, or "emulate" */
	const char *native_reason;	/* why native copy is or is not available */
	enum blkcopy_kind kind;
	uint32_t logical_block_size;	/* bytes; 1 for regular files */
	uint64_t capacity;		/* bytes */
	bool read_only;
	bool partition;			/* a partition of a whole disk */
	uint64_t partition_start;	/* bytes from the start of the whole disk */
	uint32_t major, minor;		/* device number; 0:0 for files */
	struct blkcopy_limits limits;
};

/* Fill @info for @dev.  Returns 0 or -EINVAL. */
int blkcopy_get_info(const struct blkcopy_dev *dev, struct blkcopy_info *info);

/*
 * The device's own account of the last native command on @dev that failed
 * ("NVMe Copy: status 0x281 (SCT 2, SC 0x81: Unrecovered Read Error)",
 * "EXTENDED COPY: CHECK CONDITION, ..."), or "" when none did.
 * A copy that ends in an error other than a validation error may leave it
 * on the source or on the destination handle.  Lives as long as the handle.
 */
const char *blkcopy_dev_error(const struct blkcopy_dev *dev);

/*
 * One leg of a device-mapper device's table, as blkcopy resolved it for its
 * last request (tables are re-read for every request).  linear and striped
 * targets are resolved, recursively; a copy on the dm device is cut at
 * their boundaries and each piece goes native when the two leaves under it
 * allow.  Other target types have no device here: pieces touching them are
 * emulated through the dm node.  Offsets and lengths are bytes.
 */
struct blkcopy_mapping {
	uint32_t depth;		/* 0: @dev's own table; 1: a table under it; ... */
	uint64_t start;		/* first byte this target maps, on its dm device */
	uint64_t length;	/* bytes the target maps */
	const char *target;	/* dm target type: "linear", "striped", "zero", ... */
	const char *device;	/* the device under this leg; NULL when not resolved */
	uint64_t offset;	/* where the leg starts on @device */
	uint32_t stripe;	/* striped: this leg's index; else 0 */
	uint32_t stripes;	/* striped: number of stripes; else 1 */
	uint64_t chunk;		/* striped: bytes per chunk; else 0 */
	const char *backend;	/* @device's native backend, or "emulate" */
	uint32_t copy_offload;	/* @device's copy_offload */
};

/*
 * Fill @m with leg number @index of @dev's mapping: targets in order, the
 * legs of each, and right after a leg on another dm device that device's
 * legs (depth + 1).  Returns 0, -ENOENT past the last leg (at once for
 * devices that are not device-mapper), or -EINVAL.  Strings live until the
 * next request on @dev or its close.
 */
int blkcopy_get_mapping(const struct blkcopy_dev *dev, size_t index, struct blkcopy_mapping *m);

/*
 * Allow (@enable true) or forbid native copy on @dev, like writing the
 * copy_offload sysfs attribute.  Enabling on a device without native copy
 * returns -EOPNOTSUPP.
 */
int blkcopy_set_copy_offload(struct blkcopy_dev *dev, bool enable);

/* ------------------------------------------------------------------------ */
/* Copy requests                                                            */
/* ------------------------------------------------------------------------ */

/* One source range, in bytes. */
struct blkcopy_range {
	uint64_t offset;
	uint64_t len;
};

/* Copy flags. */
#define BLKCOPY_NOEMULATION	(1u << 0)	/* fail with -EOPNOTSUPP rather than emulate */
#define BLKCOPY_NOOFFLOAD	(1u << 1)	/* never use native copy: emulate everything */
#define BLKCOPY_SYNC		(1u << 2)	/* flush the destination before reporting success */
#define BLKCOPY_BUFFERED	(1u << 3)	/* emulation: never use O_DIRECT */

/* More ranges than this in one request is refused with -E2BIG. */
#define BLKCOPY_MAX_RANGES	(1u << 24)

/*
 * Validation errors.  Every request is checked in full before anything is
 * written; a request that fails a check changes nothing.  The checks, in
 * order, and their errors:
 *   -ENODATA     no ranges (@nr == 0), or a range of length 0
 *   -E2BIG       @nr > BLKCOPY_MAX_RANGES
 *   -EOVERFLOW   offset + len of a range, the sum of the lengths, or
 *                dst_off + that sum exceeds INT64_MAX (the largest off_t)
 *   -EINVAL      an offset or length is not a multiple of the larger of the
 *                two logical block sizes (also: NULL arguments, unknown flags)
 *   -ENXIO       a source range ends past the end of the source
 *   -ENOSPC      the destination range ends past the end of the destination
 *   -EROFS       the destination is read-only
 *   -EBADF       @dst was not opened with BLKCOPY_OPEN_WRITE
 *   -EADDRINUSE  a source range overlaps the destination range on the same
 *                medium (same file, or same whole disk)
 *   -EOPNOTSUPP  BLKCOPY_NOEMULATION and native copy cannot do the request
 */

/*
 * Check a request without doing it.  Returns 0 or one of the validation
 * errors above; when the error concerns one range, *@bad_range (if not
 * NULL) receives its index, otherwise SIZE_MAX.
 */
int blkcopy_check(const struct blkcopy_dev *src, const struct blkcopy_range *ranges,
		  size_t nr, const struct blkcopy_dev *dst, uint64_t dst_off,
		  unsigned int flags, size_t *bad_range);

/*
 * Copy the @nr @ranges of @src, in order, to @dst starting at @dst_off.
 * The shape of the kernel's blkdev_issue_copy().  Blocks until done.
 *
 * Returns the number of bytes copied (the sum of the range lengths) or
 * -errno.  If an I/O error stops the copy after some data was written, the
 * error is returned and blkcopy_copy_ex() tells how many bytes reached the
 * destination.
 */
ssize_t blkcopy_copy(struct blkcopy_dev *src, const struct blkcopy_range *ranges, size_t nr,
		     struct blkcopy_dev *dst, uint64_t dst_off, unsigned int flags);

/* Tuning and flags for one request; zero fields take the defaults. */
struct blkcopy_opts {
	unsigned int flags;		/* BLKCOPY_* copy flags */
	uint32_t queue_depth;		/* I/Os in flight, default 128 */
	uint64_t max_inflight;		/* buffer bytes in flight, default 16 MiB */
	uint64_t chunk_size;		/* bytes per emulated write, default 1 MiB */
};

/* How bytes were copied, for blkcopy_progress.method_bytes[]. */
enum blkcopy_method {
	BLKCOPY_METHOD_EMULATE = 0,		/* read + write by blkcopy */
	BLKCOPY_METHOD_REFLINK,			/* FICLONERANGE: extents shared */
	BLKCOPY_METHOD_COPY_FILE_RANGE,		/* copy_file_range(2): the file system copied */
	BLKCOPY_METHOD_NVME_COPY,		/* NVMe Copy command (TP4065): the drive copied */
	BLKCOPY_METHOD_SCSI_XCOPY,		/* SCSI EXTENDED COPY (LID1): the target copied */
	BLKCOPY_METHOD_MAX = 8			/* room for more; not a method */
};

/* "emulate", "reflink", "copy_file_range", ...; NULL for an unknown method. */
const char *blkcopy_method_name(enum blkcopy_method method);

/* State of a request, as bytes. */
struct blkcopy_progress {
	uint64_t total;		/* sum of the range lengths */
	uint64_t done;		/* bytes written to the destination so far, any order */
	uint64_t committed;	/* dst_off .. dst_off + committed is fully written */
	uint64_t native_bytes;	/* of done: by native copy */
	uint64_t emulated_bytes;/* of done: by emulation */
	int error;		/* first error, -errno; 0 if none */
	bool finished;		/* nothing in flight and nothing more will be issued */
	/* Of done, by method (indexed by enum blkcopy_method). */
	uint64_t method_bytes[BLKCOPY_METHOD_MAX];
};

/*
 * Like blkcopy_copy(), with options, and with the final state in *@res
 * (may be NULL).  On failure after a partial copy, res->committed is
 * exactly the length of the destination prefix that holds the copied data;
 * a caller may resume from there.
 */
ssize_t blkcopy_copy_ex(struct blkcopy_dev *src, const struct blkcopy_range *ranges, size_t nr,
			struct blkcopy_dev *dst, uint64_t dst_off,
			const struct blkcopy_opts *opts, struct blkcopy_progress *res);

/* ------------------------------------------------------------------------ */
/* Asynchronous jobs                                                        */
/* ------------------------------------------------------------------------ */

/*
 * A job is a copy request in flight.  It has no thread of its own: the
 * caller drives it with blkcopy_job_poll() or blkcopy_job_wait(), which
 * reap completions and issue more I/O.  blkcopy_job_fd() gives a file
 * descriptor that becomes readable when the job has completions to reap,
 * for callers with their own poll(2) loop.
 */
struct blkcopy_job;

/*
 * Validate the request and start it.  The ranges are copied; the caller's
 * array may be freed once this returns.  Both handles must stay open until
 * blkcopy_job_finish().  Returns 0 and sets *@jobp, or a validation error
 * (nothing written), or -ENOMEM and other setup errors.
 */
int blkcopy_job_submit(struct blkcopy_dev *src, const struct blkcopy_range *ranges, size_t nr,
		       struct blkcopy_dev *dst, uint64_t dst_off,
		       const struct blkcopy_opts *opts, struct blkcopy_job **jobp);

/* Reap what has completed and issue more, without blocking.  Returns 1 when finished, else 0. */
int blkcopy_job_poll(struct blkcopy_job *job);

/*
 * Drive the job until it finishes or @timeout_ms passes (-1: no timeout).
 * Returns 1 when finished, 0 on timeout.  A signal interrupts the wait and
 * returns 0 early, so a caller can react (e.g. cancel).
 */
int blkcopy_job_wait(struct blkcopy_job *job, int timeout_ms);

/* Current state.  Cheap; does not drive the job. */
void blkcopy_job_progress(const struct blkcopy_job *job, struct blkcopy_progress *p);

/*
 * Ask the job to stop: nothing new is issued, what is in flight completes.
 * The job then finishes with error -ECANCELED.  Safe to call more than once.
 */
void blkcopy_job_cancel(struct blkcopy_job *job);

/*
 * A descriptor that polls readable when blkcopy_job_poll() has completions
 * to reap, emulated I/O or queued native commands (NVMe through io_uring).
 * Native backends without a queue (files, SCSI, and NVMe through the
 * synchronous ioctl) run their commands inside blkcopy_job_poll() and _wait(), one per
 * call; a caller that waits on this descriptor should call
 * blkcopy_job_poll() once more whenever progress shows native work left,
 * or simply use blkcopy_job_wait() with a timeout.
 */
int blkcopy_job_fd(const struct blkcopy_job *job);

/*
 * Wait for the job to finish, store its final state in *@res (may be NULL)
 * and free it.  Returns the bytes copied (= total) or the job's error.
 */
ssize_t blkcopy_job_finish(struct blkcopy_job *job, struct blkcopy_progress *res);

/* ------------------------------------------------------------------------ */
/* Errors                                                                   */
/* ------------------------------------------------------------------------ */

/*
 * A message for @err (a negative or positive errno) in blkcopy's terms:
 * the validation errors above read as what was wrong with the request.
 */
const char *blkcopy_strerror(int err);

#ifdef __cplusplus
}
#endif

#endif /* BLKCOPY_H */
