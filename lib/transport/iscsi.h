/* SPDX-License-Identifier: MIT */
/*
 * The iSCSI transport's session, for the backend that sends EXTENDED COPY
 * through it (../backend/iscsi.c).  Only with libiscsi.
 */
#ifndef BLKCOPY_TRANSPORT_ISCSI_H
#define BLKCOPY_TRANSPORT_ISCSI_H

#include <iscsi/iscsi.h>
#include <iscsi/scsi-lowlevel.h>
#include <stdbool.h>
#include <stdint.h>

#include "../device.h"
#include "../iscsi_url.h"
#include "../scsi.h"

/* A step (connect, login, logout, one command) waited for synchronously. */
struct bc_iscsi_wait {
	bool done;
	int status;
};

/* One logged-in session to one LU: the transport data of an iSCSI handle. */
struct bc_iscsi_lu {
	struct iscsi_context *ctx;
	struct blkcopy_dev *dev;
	struct bc_iscsi_url url;	/* the password is wiped once logged in */
	int timeout_s;
	uint32_t max_io;	/* largest single read or write, bytes */
	bool logged_in;
	bool lost;		/* the session dropped: nothing more goes out */
	bool cancelling;	/* our own cancel, not a dropped session */
	uint32_t inflight;	/* data commands not yet completed */
	uint32_t copies;	/* EXTENDED COPY commands of a native queue not yet completed */
	struct bc_scsi_transport t;
	struct bc_scsi_lu lu;
	bool copy_manager;	/* discovery found one blkcopy can use */
	/*
	 * Connect, login and logout wait here: their callbacks may come after
	 * the wait gave up (in iscsi_destroy_context()), so never into a stack.
	 */
	struct bc_iscsi_wait step;
	char copy_reason[384];	/* what discovery found out about it */
};

/* @d's session, or NULL when @d is not an iSCSI LU. */
struct bc_iscsi_lu *bc_iscsi_of(const struct blkcopy_dev *d);

/*
 * Let libiscsi work on what poll said (@revents, or 0 for a timeout
 * check).  -1 when the connection failed: commands waiting on it fail.
 */
int bc_iscsi_service(struct bc_iscsi_lu *s, int revents);

/* Queued output waits for POLLOUT. */
bool bc_iscsi_want_write(const struct bc_iscsi_lu *s);

/* Complete every command in flight now, with -ECANCELED (our own doing, not a dropped session). */
void bc_iscsi_cancel_all(struct bc_iscsi_lu *s);

/*
 * A command's end -> -errno, with the story in the device's error.  @cmd
 * names it; @copy: EXTENDED COPY, whose refusals before writing keep their
 * meaning (-EOPNOTSUPP, -E2BIG: emulate that piece).
 */
int bc_iscsi_status_errno(struct bc_iscsi_lu *s, int status, struct scsi_task *task,
			  const char *cmd, bool copy);

#endif
