/* SPDX-License-Identifier: MIT */
/* Parsing of the command line's sizes and ranges. */
#ifndef BLKCOPY_PARSE_H
#define BLKCOPY_PARSE_H

#include <stdint.h>
#include <stdio.h>

#include "blkcopy.h"

/*
 * A size: decimal digits with an optional suffix s (512-byte sectors),
 * k, m, g, t (powers of 1024), either case; or "0x" and hex digits, without
 * a suffix.  Returns 0, -EINVAL for bad syntax, -EOVERFLOW when it does not
 * fit in 64 bits.
 */
int parse_size(const char *s, uint64_t *out);

/* "OFF:LEN", both sizes.  Returns 0, -EINVAL or -EOVERFLOW. */
int parse_range(const char *s, struct blkcopy_range *r);

struct range_list {
	struct blkcopy_range *v;
	size_t n, cap;
};

/* Append; -E2BIG past BLKCOPY_MAX_RANGES so a huge list is refused early. */
int range_list_add(struct range_list *l, const struct blkcopy_range *r);
void range_list_free(struct range_list *l);

/*
 * Read one "OFF:LEN" per line; blank lines and lines starting with '#' are
 * skipped.  On a parse error returns it and sets *@lineno to the line.
 */
int parse_ranges_file(FILE *f, struct range_list *l, size_t *lineno);

#endif
