/* SPDX-License-Identifier: MIT */
/*
 * Planning: a request mapped down both devices' layers onto leaf pairs, in
 * destination order, a batch at a time.  A run whose leaves can copy
 * natively joins that pair's lane, where the pair's limits cut it into
 * pieces; every other run is grouped for emulation through the devices the
 * caller opened.
 */
#ifndef BLKCOPY_PLAN_H
#define BLKCOPY_PLAN_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "leg.h"

void bc_walk_init(struct bc_leaf_walk *w, const struct blkcopy_dev *src,
		  const struct bc_span *spans, size_t nr, const struct blkcopy_dev *dst,
		  uint64_t dst_off);
/* Next leaf run, or 0 at the end; -EIO when a mapping does not cover a byte it must. */
int bc_walk_next(struct bc_leaf_walk *w, struct bc_leaf_run *r);

/* The flags and both devices allow native pieces at all. */
bool bc_native_allowed(const struct blkcopy_dev *src, const struct blkcopy_dev *dst,
		       unsigned int flags);
/*
 * Would every run of the request go native?  (BLKCOPY_NOEMULATION, before
 * any write.)  0, or -EOPNOTSUPP with the first reason it would not in @why.
 */
int bc_plan_all_native(const struct blkcopy_dev *src, const struct bc_span *spans, size_t nr,
		       const struct blkcopy_dev *dst, uint64_t dst_off, unsigned int flags,
		       char *why, size_t why_size);

/* No run of the request could go native: it is emulated whole (and may share its reads). */
bool bc_plan_none_native(const struct blkcopy_dev *src, const struct bc_span *spans, size_t nr,
			 const struct blkcopy_dev *dst, uint64_t dst_off, unsigned int flags);

/* Lanes per leaf pair onto host-managed leaf @dst: how many of its zones are written at once. */
uint32_t bc_zone_lanes(const struct blkcopy_dev *dst);

/* Plan the first batch.  -errno when planning itself failed. */
int bc_plan_start(struct bc_leg *j);
/* Plan more while the lanes have drained and emulation keeps up. */
void bc_plan_more(struct bc_leg *j);
/* Planning could go on now. */
bool bc_plan_ready(const struct bc_leg *j);
/*
 * Stop: record @error, give up everything planned but not yet issued (its
 * bytes are lost to the watermark), stop emulation.
 */
void bc_plan_stop(struct bc_leg *j, int error);
/* The lowest destination byte that planning and the lanes still hold (UINT64_MAX: none). */
uint64_t bc_plan_pending_low(const struct bc_leg *j);

/* Lanes, for native execution. */
bool bc_lane_has_work(const struct bc_lane *l);
/* Cut the next piece of @l into @slot; false when the batch's spans are all cut. */
bool bc_lane_next_piece(struct bc_lane *l, struct bc_slot *slot);
/* The lowest destination byte (caller's offsets) a slot's piece writes. */
uint64_t bc_slot_low(const struct bc_lane *l, const struct bc_slot *s);
/* Emulate a slot's piece instead (the device refused it), in the caller's offsets. */
int bc_plan_emulate_slot(struct bc_leg *j, const struct bc_lane *l, const struct bc_slot *s);
/* Emulate a slot's piece instead, for @why, grouped with others: bc_plan_flush() after. */
int bc_plan_divert_slot(struct bc_leg *j, const struct bc_lane *l, const struct bc_slot *s,
			enum blkcopy_emulated why);
/* Hand emulation what bc_plan_divert_slot() grouped. */
int bc_plan_flush(struct bc_leg *j);
/* The lane's device refused copy outright: its runs not yet cut are emulated. */
int bc_plan_emulate_unsplit(struct bc_leg *j, struct bc_lane *l);
void bc_lane_free_plan(struct bc_lane *l);

#endif
