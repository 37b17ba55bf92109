/* SPDX-License-Identifier: MIT */
/*
 * The native backends, in probe order.  A new backend adds its table here
 * and its file under backend/; the core does not change.
 */
#include "internal.h"

const struct bc_backend *const bc_backends[] = {
	&bc_backend_file,
	&bc_backend_nvme,
	&bc_backend_scsi,
	&bc_backend_iscsi,
	NULL,
};
