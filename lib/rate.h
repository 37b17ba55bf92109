/* SPDX-License-Identifier: MIT */
/*
 * A byte rate limit over a job's native and emulated bytes: native bytes
 * count when their command is issued, emulated ones when a chunk is loaded.
 * A token bucket that lets one piece go into debt, so that a piece larger
 * than a second's worth still goes; the average holds.
 */
#ifndef BLKCOPY_RATE_H
#define BLKCOPY_RATE_H

#include <stdbool.h>
#include <stdint.h>

struct bc_rate {
	uint64_t bytes_per_s;	/* 0: no limit */
	uint64_t since_ns;	/* when it was set */
	uint64_t spent;		/* bytes charged since then */
};

/* A new limit from @now_ns on (what went before is forgotten); 0 lifts it. */
void bc_rate_set(struct bc_rate *r, uint64_t bytes_per_s, uint64_t now_ns);
/* More may go now. */
bool bc_rate_ready(const struct bc_rate *r, uint64_t now_ns);
/* @len bytes went. */
void bc_rate_charge(struct bc_rate *r, uint64_t len);
/* The largest native piece to cut under the limit (0: no limit): a burst's worth. */
uint64_t bc_rate_piece_cap(const struct bc_rate *r);
/* Milliseconds until more may go (0: now), rounded up. */
int bc_rate_wait_ms(const struct bc_rate *r, uint64_t now_ns);

#endif
