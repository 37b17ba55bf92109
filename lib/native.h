/* SPDX-License-Identifier: MIT */
/*
 * Native execution: the lanes' pieces sent to their backends, one at a
 * time through copy() or many through a queue; a piece the device refuses
 * before writing goes back to planning to be emulated.
 */
#ifndef BLKCOPY_NATIVE_H
#define BLKCOPY_NATIVE_H

#include <stdbool.h>

#include "leg.h"

/* Issue what the lanes have cut, without blocking (one synchronous piece per call at most). */
void bc_native_issue(struct bc_leg *j);
/* Collect completions of every queue; @wait: block for one where something is in flight. */
void bc_native_reap(struct bc_leg *j, bool wait);
/* Native work waits in some lane (cut or not). */
bool bc_native_work(const struct bc_leg *j);
/* Native work waits or is in flight. */
bool bc_native_active(const struct bc_leg *j);
/* Native work that could go now, without waiting for a completion. */
bool bc_native_ready(const struct bc_leg *j);
/* A lane held back by the piece policy until emulation has been measured. */
bool bc_native_waiting(const struct bc_leg *j);
/* A lane with pieces in flight in a queue (the job's descriptor will wake for them). */
bool bc_native_queued(const struct bc_leg *j);
/* After the copy: drop what native commands made stale in the destinations' page caches. */
void bc_native_invalidate(struct bc_leg *j);
void bc_lane_free(struct bc_lane *l);

#endif
