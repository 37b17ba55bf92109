/* SPDX-License-Identifier: MIT */
/* Small helpers every part of the library uses. */
#ifndef BLKCOPY_UTIL_H
#define BLKCOPY_UTIL_H

#include <errno.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <time.h>

#define BC_SECTOR 512u

static inline int64_t bc_now_ms(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

static inline uint64_t bc_now_ns(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (uint64_t)ts.tv_sec * 1000000000u + (uint64_t)ts.tv_nsec;
}

static inline uint64_t bc_min_u64(uint64_t a, uint64_t b)
{
	return a < b ? a : b;
}

/* Resize *@p to @n elements of @size bytes.  False: no memory, *@p unchanged. */
static inline bool bc_resize(void **p, size_t n, size_t size)
{
	void *q = realloc(*p, n * size);

	if (q)
		*p = q;
	return q != NULL;
}

/*
 * Seconds from environment variable @name, 1 to @max; @def when it is unset
 * or empty; -EINVAL with the reason in @why when it is anything else.
 */
static inline int bc_env_seconds(const char *name, int def, int max, char *why, size_t size)
{
	const char *v = getenv(name);
	char *end;
	long t;

	if (!v || !*v)
		return def;
	errno = 0;
	t = strtol(v, &end, 10);
	if (errno || *end || t < 1 || t > max) {
		snprintf(why, size, "%s must be 1 to %d seconds, not '%.32s'", name, max, v);
		return -EINVAL;
	}
	return (int)t;
}

#endif
