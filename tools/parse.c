/* SPDX-License-Identifier: MIT */
#include <ctype.h>
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "parse.h"

/* "0x" and hex digits to the end, as nvme-cli and sg3_utils print offsets; no suffix. */
static int parse_hex_n(const char *s, size_t len, uint64_t *out)
{
	uint64_t v = 0;

	if (len <= 2)
		return -EINVAL;
	for (size_t i = 2; i < len; i++) {
		const int c = tolower((unsigned char)s[i]);
		const unsigned int d = isdigit(c) ? (unsigned int)(c - '0') : (unsigned int)(c - 'a' + 10);

		if (!isxdigit(c))
			return -EINVAL;
		if (v >> 60)
			return -EOVERFLOW;
		v = v << 4 | d;
	}
	*out = v;
	return 0;
}

static int parse_size_n(const char *s, size_t len, uint64_t *out)
{
	uint64_t v = 0, mult = 1;
	size_t i = 0;

	if (len >= 2 && s[0] == '0' && (s[1] == 'x' || s[1] == 'X'))
		return parse_hex_n(s, len, out);
	if (!len || !isdigit((unsigned char)s[0]))
		return -EINVAL;
	for (; i < len && isdigit((unsigned char)s[i]); i++) {
		if (__builtin_mul_overflow(v, 10, &v) ||
		    __builtin_add_overflow(v, (uint64_t)(s[i] - '0'), &v))
			return -EOVERFLOW;
	}
	if (i < len) {
		switch (tolower((unsigned char)s[i])) {
		case 's': mult = 512; break;
		case 'k': mult = 1ull << 10; break;
		case 'm': mult = 1ull << 20; break;
		case 'g': mult = 1ull << 30; break;
		case 't': mult = 1ull << 40; break;
		default: return -EINVAL;
		}
		if (++i != len)
			return -EINVAL;
	}
	if (__builtin_mul_overflow(v, mult, out))
		return -EOVERFLOW;
	return 0;
}

int parse_size(const char *s, uint64_t *out)
{
	return parse_size_n(s, strlen(s), out);
}

int parse_range(const char *s, struct blkcopy_range *r)
{
	const char *colon = strchr(s, ':');
	int ret;

	if (!colon)
		return -EINVAL;
	ret = parse_size_n(s, (size_t)(colon - s), &r->offset);
	if (ret)
		return ret;
	return parse_size(colon + 1, &r->len);
}

int range_list_add(struct range_list *l, const struct blkcopy_range *r)
{
	if (l->n >= BLKCOPY_MAX_RANGES)
		return -E2BIG;
	if (l->n == l->cap) {
		size_t cap = l->cap ? l->cap * 2 : 64;
		struct blkcopy_range *v = realloc(l->v, cap * sizeof(*v));

		if (!v)
			return -ENOMEM;
		l->v = v;
		l->cap = cap;
	}
	l->v[l->n++] = *r;
	return 0;
}

void range_list_free(struct range_list *l)
{
	free(l->v);
	*l = (struct range_list){ 0 };
}

int parse_ranges_file(FILE *f, struct range_list *l, size_t *lineno)
{
	char line[256];
	size_t no = 0;

	while (fgets(line, sizeof(line), f)) {
		struct blkcopy_range r;
		char *p = line, *end;
		int ret;

		no++;
		if (!strchr(line, '\n') && !feof(f)) {
			*lineno = no;
			return -EINVAL;	/* no sane range line is this long */
		}
		while (isspace((unsigned char)*p))
			p++;
		end = p + strlen(p);
		while (end > p && isspace((unsigned char)end[-1]))
			*--end = '\0';
		if (!*p || *p == '#')
			continue;
		ret = parse_range(p, &r);
		if (!ret)
			ret = range_list_add(l, &r);
		if (ret) {
			*lineno = no;
			return ret;
		}
	}
	if (ferror(f)) {
		*lineno = no;
		return -EIO;
	}
	return 0;
}
