/* SPDX-License-Identifier: MIT */
/*
 * The native backends, in probe order.  A new backend adds its table here
 * and its file under backend/; the core does not change.
 */
#include <stddef.h>

#include "backend.h"

const struct bc_backend *const bc_backends[] = {
	&bc_backend_file,
	&bc_backend_nvme,
	&bc_backend_scsi,
#ifdef BLKCOPY_HAVE_LIBISCSI
	&bc_backend_iscsi,
#endif
	NULL,
};

bool bc_backend_valid(const struct bc_backend *b, const char **why)
{
	const bool queue = b->queue_create || b->queue_submit || b->queue_reap || b->queue_fd ||
			   b->queue_destroy;
	const bool full_queue = b->queue_create && b->queue_submit && b->queue_reap &&
				b->queue_fd && b->queue_destroy;

	*why = NULL;
	if (!b->name || !b->probe || !b->pair)
		*why = "name, probe and pair are required";
	else if (!(b->caps & (BC_BACKEND_SYNC | BC_BACKEND_QUEUED)))
		*why = "neither synchronous nor queued";
	else if (!(b->caps & BC_BACKEND_SYNC) != !b->copy)
		*why = "copy() must be given exactly when BC_BACKEND_SYNC is declared";
	else if (!(b->caps & BC_BACKEND_QUEUED) ? queue : !full_queue)
		*why = "all five queue operations must be given exactly when BC_BACKEND_QUEUED is declared";
	else if ((b->caps & BC_BACKEND_QUEUE_MAY_REFUSE) &&
		 (b->caps & (BC_BACKEND_SYNC | BC_BACKEND_QUEUED)) !=
			 (BC_BACKEND_SYNC | BC_BACKEND_QUEUED))
		*why = "a queue that may refuse needs copy() to fall back on";
	return *why == NULL;
}
