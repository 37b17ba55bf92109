/* SPDX-License-Identifier: MIT */
/*
 * Which of a lane's pieces go native.  A copy manager that takes one
 * segment per command (LIO's, and many SCSI arrays') makes every small
 * piece pay for a whole command, and below some size blkcopy's own
 * emulation is faster.  The caller may set that size; else, on a lane
 * whose backend has such commands, it is learnt from this copy: native
 * throughput by piece size (power-of-two classes, each completion charged
 * the lane's time since the one before) against emulation's throughput
 * (bytes over the time it had I/O in flight).  When emulation has not run,
 * a little of the small pieces is emulated to measure it, while the lane
 * waits.
 */
#ifndef BLKCOPY_POLICY_H
#define BLKCOPY_POLICY_H

#include <stdbool.h>
#include <stdint.h>

#include "blkcopy.h"

#define BC_POLICY_CLASSES 64

/* Emulation's work so far. */
struct bc_emu_rate {
	uint64_t bytes;
	uint64_t busy_ns;
	bool idle;		/* nothing in flight or queued */
};

struct bc_policy {
	uint64_t native_min;	/* set by the caller: shorter pieces are emulated (0: not set) */
	bool learn;		/* learn it: the backend's commands cost that way */
	struct {
		uint64_t bytes, ns;
		uint32_t n;		/* commands that landed */
		uint32_t back;		/* completions, landed or not */
		uint32_t issued;	/* sent native to explore the size */
	} cls[BC_POLICY_CLASSES];	/* native commands by floor(log2(length)) */
	uint64_t probe_bytes;	/* handed to emulation to measure it */
	uint64_t mark_ns;	/* the lane's last completion, or when it went busy */
	uint64_t commands, bytes, ns;	/* totals over the classes */
};

/* @native_min: blkcopy_opts.native_min (0: learn, when @learn). */
void bc_policy_init(struct bc_policy *p, uint64_t native_min, bool learn);
/* The lane goes busy (a command into an idle lane) at @now_ns. */
void bc_policy_busy(struct bc_policy *p, uint64_t now_ns);
/* A native command of @len bytes landed at @now_ns; @landed false: it failed or was refused. */
void bc_policy_completed(struct bc_policy *p, uint64_t len, bool landed, uint64_t now_ns);
/*
 * Should a piece of @len bytes be emulated?  False: native.  True with the
 * reason in *@why (BLKCOPY_EMULATED_*); a probe is counted as handed.
 */
bool bc_policy_emulate(struct bc_policy *p, uint64_t len, const struct bc_emu_rate *er,
		       enum blkcopy_emulated *why);
/*
 * The lane sends nothing now: the probe is out and emulation, or a size
 * being explored natively, is not measured yet (native must not race ahead
 * with pieces that may be better emulated).
 */
bool bc_policy_waits(const struct bc_policy *p, const struct bc_emu_rate *er);
/* Pieces shorter than this go emulated now (0: none), and whether it was learnt. */
uint64_t bc_policy_threshold(const struct bc_policy *p, const struct bc_emu_rate *er,
			     bool *learnt);

#endif
