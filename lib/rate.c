/* SPDX-License-Identifier: MIT */
/* The job's rate limit: see rate.h. */
#include "rate.h"

#define BURST_DIV 20	/* the bucket holds a twentieth of a second */

void bc_rate_set(struct bc_rate *r, uint64_t bytes_per_s, uint64_t now_ns)
{
	*r = (struct bc_rate){ .bytes_per_s = bytes_per_s, .since_ns = now_ns };
}

/* Bytes the limit allows by @now_ns, with the burst. */
static uint64_t allowed(const struct bc_rate *r, uint64_t now_ns)
{
	const uint64_t ns = now_ns > r->since_ns ? now_ns - r->since_ns : 0;

	return (uint64_t)((unsigned __int128)r->bytes_per_s * ns / 1000000000u) +
	       r->bytes_per_s / BURST_DIV;
}

bool bc_rate_ready(const struct bc_rate *r, uint64_t now_ns)
{
	return !r->bytes_per_s || r->spent < allowed(r, now_ns);
}

void bc_rate_charge(struct bc_rate *r, uint64_t len)
{
	if (r->bytes_per_s)
		r->spent += len;
}

uint64_t bc_rate_piece_cap(const struct bc_rate *r)
{
	if (!r->bytes_per_s)
		return 0;
	return r->bytes_per_s / BURST_DIV ? r->bytes_per_s / BURST_DIV : 1;
}

int bc_rate_wait_ms(const struct bc_rate *r, uint64_t now_ns)
{
	if (bc_rate_ready(r, now_ns))
		return 0;
	/* spent < allowed(t) once bytes_per_s * (t - since) > spent - burst. */
	const uint64_t need = r->spent + 1 - r->bytes_per_s / BURST_DIV;
	const uint64_t at = r->since_ns +
			    (uint64_t)((unsigned __int128)need * 1000000000u / r->bytes_per_s);
	const uint64_t ms = at > now_ns ? (at - now_ns + 999999) / 1000000 : 1;

	return ms > 1000 ? 1000 : (int)ms;	/* a second at most: a new limit may come */
}
