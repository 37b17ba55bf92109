/* SPDX-License-Identifier: MIT */
/*
 * The transports, in claim order: the fd transport last, since it takes
 * every path the others leave.  A new transport adds its table here and
 * its file under transport/; the core does not change.
 */
#include <stddef.h>

#include "transport.h"

const struct bc_transport *const bc_transports[] = {
	&bc_transport_iscsi,
	&bc_transport_fd,
	NULL,
};
