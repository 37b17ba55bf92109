/* SPDX-License-Identifier: MIT */
/* What the fuzz targets share: taking the fuzzer's bytes apart. */
#ifndef BLKCOPY_FUZZ_H
#define BLKCOPY_FUZZ_H

#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

/* The input as a NUL-terminated string (the caller frees it). */
static inline char *fuzz_string(const uint8_t *data, size_t size)
{
	char *s = malloc(size + 1);

	if (s) {
		memcpy(s, data, size);
		s[size] = '\0';
	}
	return s;
}

/* A reader over the input: the next @n bytes, zero-padded when it runs out. */
struct fuzz_input {
	const uint8_t *p;
	size_t left;
};

static inline void fuzz_take(struct fuzz_input *in, void *out, size_t n)
{
	size_t k = n < in->left ? n : in->left;

	memcpy(out, in->p, k);
	memset((uint8_t *)out + k, 0, n - k);
	in->p += k;
	in->left -= k;
}

static inline uint32_t fuzz_u32(struct fuzz_input *in)
{
	uint32_t v;

	fuzz_take(in, &v, sizeof(v));
	return v;
}

#endif
