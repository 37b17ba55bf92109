/* SPDX-License-Identifier: MIT */
/*
 * Backends: native copy by the storage (NVMe Copy, SCSI EXTENDED COPY, a
 * file system's clone or copy_file_range).  The core plans and executes
 * native pieces through this table only; it never builds a device command.
 */
#ifndef BLKCOPY_BACKEND_H
#define BLKCOPY_BACKEND_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "device.h"
#include "span.h"

/* Bytes a native piece copied, by method; added to the job only when the piece succeeds. */
struct bc_copy_stats {
	uint64_t bytes[BLKCOPY_METHOD_MAX];
};

/* A completed native piece, from a backend queue. */
struct bc_native_cqe {
	uint32_t tag;
	int result;		/* as for bc_backend.copy */
	enum blkcopy_method method;
};

/*
 * A backend's queue as the core holds it: each backend's own queue begins
 * with one (its first member), and the core never looks inside.
 */
struct bc_native_queue {
	const struct bc_backend *backend;
};

/* What a backend can do, declared in its table and checked by bc_backend_valid(). */
enum {
	BC_BACKEND_SYNC = 1u << 0,	/* copy(): one piece at a time, synchronously */
	BC_BACKEND_QUEUED = 1u << 1,	/* queue_*(): many pieces in flight, polled */
	/* queue_create() may say -EOPNOTSUPP (then copy() runs instead): needs BC_BACKEND_SYNC. */
	BC_BACKEND_QUEUE_MAY_REFUSE = 1u << 2,
	/*
	 * A command costs more than small pieces repay (a copy manager that
	 * takes one segment per command): the core learns below which size
	 * emulation is faster (policy.h).
	 */
	BC_BACKEND_COSTLY_COMMANDS = 1u << 3,
};

/*
 * A native backend.
 *   probe:  claim @dev (return 0) with dev->probed (limits) and
 *           dev->probe_reason filled, or return -ENODEV to let the next
 *           backend look (with probe_reason saying why, when it is @dev's
 *           kind of device but cannot copy); another -errno fails the
 *           open, with probe_reason saying why (a bad setting).
 *   pair:   0 when a copy from @src to @dst can be native, with the limits
 *           the pair imposes in *@lim; -EOPNOTSUPP otherwise, with the
 *           reason in @why ("different namespaces (nsid 1 and 2)").
 *   copy:   (BC_BACKEND_SYNC) copy one planned piece natively and
 *           synchronously, adding the bytes to @stats by method.  Returns 0,
 *           -EOPNOTSUPP or -E2BIG when the device refused the piece before
 *           writing (the core then emulates that piece), or another -errno
 *           (the core stops the copy).
 *   close:  release backend_data.
 * (BC_BACKEND_QUEUED) all five of:
 *   queue_create:  a queue for @src -> @dst with room for @depth pieces;
 *                  -EOPNOTSUPP (BC_BACKEND_QUEUE_MAY_REFUSE only) makes the
 *                  core use copy() instead.
 *   queue_submit:  queue one piece under @tag; @segs may be reused on return.
 *                  An error return means the piece never reached the device.
 *   queue_reap:    send what is queued, then collect up to @max completions,
 *                  waiting for one if @wait.  Returns how many, or -errno when
 *                  the queue itself failed.
 *   queue_fd:      readable when completions wait, for the job's poll loop.
 *   queue_destroy: after every submitted piece has been reaped.
 */
struct bc_backend {
	const char *name;
	unsigned int caps;
	int (*probe)(struct blkcopy_dev *dev);
	int (*pair)(const struct blkcopy_dev *src, const struct blkcopy_dev *dst,
		    struct blkcopy_limits *lim, char *why, size_t why_size);
	int (*copy)(struct blkcopy_dev *src, struct blkcopy_dev *dst,
		    const struct bc_span *segs, const struct bc_piece *piece,
		    struct bc_copy_stats *stats);
	void (*close)(struct blkcopy_dev *dev);

	int (*queue_create)(struct blkcopy_dev *src, struct blkcopy_dev *dst, uint32_t depth,
			    struct bc_native_queue **qp);
	int (*queue_submit)(struct bc_native_queue *q, const struct bc_span *segs,
			    const struct bc_piece *piece, uint32_t tag);
	int (*queue_reap)(struct bc_native_queue *q, struct bc_native_cqe *cqes, uint32_t max,
			  bool wait);
	int (*queue_fd)(const struct bc_native_queue *q);
	void (*queue_destroy)(struct bc_native_queue *q);
};

/* The native backends, in probe order, NULL-terminated (lib/backends.c). */
extern const struct bc_backend *const bc_backends[];
extern const struct bc_backend bc_backend_file;
extern const struct bc_backend bc_backend_nvme;
extern const struct bc_backend bc_backend_scsi;
extern const struct bc_backend bc_backend_iscsi;

/*
 * A backend table is usable: its declared capabilities match its
 * operations.  False with *@why naming the first mismatch; such a
 * backend is never probed.
 */
bool bc_backend_valid(const struct bc_backend *b, const char **why);

#endif
