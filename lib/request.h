/* SPDX-License-Identifier: MIT */
/* Request validation: everything is checked before the first write. */
#ifndef BLKCOPY_REQUEST_H
#define BLKCOPY_REQUEST_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

#include "device.h"
#include "span.h"

/*
 * Validate a request (the checks and errors of blkcopy.h, in order), on
 * the devices the caller opened and on the leaves beneath them.  0 with
 * the total length in *@total (may be NULL), or -errno with the index of
 * the range at fault in *@bad_range (SIZE_MAX when none is).
 */
int bc_validate(const struct blkcopy_dev *src, const struct blkcopy_range *ranges, size_t nr,
		const struct blkcopy_dev *dst, uint64_t dst_off, unsigned int flags,
		uint64_t *total, size_t *bad_range);

/*
 * Two destinations of one request, @len bytes each from @a_off on @a and
 * @b_off on @b, share no byte (on the leaves beneath them too): 0, or
 * -EADDRINUSE.  Both were validated first.
 */
int bc_validate_disjoint(const struct blkcopy_dev *a, uint64_t a_off, const struct blkcopy_dev *b,
			 uint64_t b_off, uint64_t len);

/* Copy the ranges into spans, adjacent ranges coalesced.  The number of spans or -errno. */
ssize_t bc_coalesce(const struct blkcopy_range *ranges, size_t nr, struct bc_span **spansp);

/*
 * Same medium: the same file or whole disk or logical unit.  When true,
 * *@abase and *@bbase turn device offsets of @a and @b into offsets on it.
 */
bool bc_same_medium(const struct blkcopy_dev *a, const struct blkcopy_dev *b, uint64_t *abase,
		    uint64_t *bbase);

#endif
