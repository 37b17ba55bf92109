/* SPDX-License-Identifier: MIT */
/*
 * Zoned destinations: where a copy may start and end on them, and what the
 * device holds after a write into a zone failed.  Zones come from the
 * device's transport; a device whose transport reports none is not zoned.
 */
#ifndef BLKCOPY_ZONE_H
#define BLKCOPY_ZONE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

#include "device.h"

/* Writes to @d must be sequential within its zones (host-managed). */
static inline bool bc_zoned_seq(const struct blkcopy_dev *d)
{
	return d->zoned.model == BLKCOPY_ZONED_HOST_MANAGED;
}

/* @d's zone size for cutting writes at zone boundaries; 0 when @d is not host-managed. */
static inline uint64_t bc_zone_boundary(const struct blkcopy_dev *d)
{
	return bc_zoned_seq(d) ? d->zoned.zone_size : 0;
}

/* Up to @nr zones of @d from the one holding @off on: the number, or -errno (-EOPNOTSUPP: not zoned). */
ssize_t bc_zone_report(struct blkcopy_dev *d, uint64_t off, struct blkcopy_zone *z, size_t nr);

/*
 * Can [@off, @off + @len) be written, in order, into zone @z?  0, or
 * -ESPIPE (not at the write pointer), -EFBIG (past the capacity), -EROFS
 * (read-only or offline), with the reason in @why.
 */
int bc_zone_check(const struct blkcopy_zone *z, uint64_t off, uint64_t len, char *why,
		  size_t why_size);

/* bc_zone_check() for every zone under a host-managed destination; the reason goes to dst->error. */
int bc_zone_validate(struct blkcopy_dev *dst, uint64_t off, uint64_t len);

/*
 * A write of [@off, @off + @len) within one zone of @d failed: how many of
 * its bytes the device holds all the same (the zone's write pointer says;
 * 0 when it cannot be read).
 */
uint64_t bc_zone_landed(struct blkcopy_dev *d, uint64_t off, uint64_t len);

/* After native commands wrote [@lo, @hi) of @d: the kernel's write pointers of its zones made true again. */
void bc_zone_sync(struct blkcopy_dev *d, uint64_t lo, uint64_t hi);

#endif
