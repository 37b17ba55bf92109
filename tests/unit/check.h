/* SPDX-License-Identifier: MIT */
/* A minimal check harness: every failed check prints where and why; main returns the count. */
#ifndef BLKCOPY_CHECK_H
#define BLKCOPY_CHECK_H

#include <stdio.h>

static int check_failures;

#define CHECK(cond, ...)                                                         \
	do {                                                                     \
		if (!(cond)) {                                                   \
			check_failures++;                                        \
			fprintf(stderr, "%s:%d: check failed: %s: ", __FILE__,   \
				__LINE__, #cond);                                \
			fprintf(stderr, __VA_ARGS__);                            \
			fputc('\n', stderr);                                     \
		}                                                                \
	} while (0)

#define CHECK_EQ(a, b)                                                           \
	CHECK((long long)(a) == (long long)(b), "%lld != %lld", (long long)(a),  \
	      (long long)(b))

static inline int check_done(const char *name)
{
	if (check_failures)
		fprintf(stderr, "%s: %d check(s) failed\n", name, check_failures);
	else
		printf("%s: all checks passed\n", name);
	return check_failures ? 1 : 0;
}

#endif
