/* SPDX-License-Identifier: MIT */
/* The emulation engine: reads into buffers and writes them out, through io_uring. */
#ifndef BLKCOPY_EMULATE_H
#define BLKCOPY_EMULATE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "device.h"
#include "policy.h"
#include "rate.h"
#include "span.h"

struct bc_emu;
struct bc_memory;
struct bc_emu_params {
	uint32_t queue_depth;
	uint64_t max_inflight;
	uint64_t chunk_size;
	uint64_t expected_bytes;	/* the request's size: no more buffer than it can use */
	bool direct;		/* both ends O_DIRECT */
	/*
	 * Host-managed destination: its zone size.  Writes never cross a zone
	 * boundary and go in order within a zone, one at a time; reads still
	 * run ahead in parallel.
	 */
	uint64_t zone_size;
	/*
	 * Verify instead of copy: each chunk's source is read as for a copy,
	 * then its destination read back and compared.  Twice the buffers.
	 */
	bool verify;
	/* The job's rate limit (NULL: none): a chunk loads only when it allows, and is charged. */
	struct bc_rate *rate;
	/*
	 * Fan-out: destinations beyond the first, written from the same reads,
	 * each at its own offset (the first destination's is @dst_off).  Not
	 * with @zone_size.  The array is read at bc_emu_create() only.
	 */
	const struct blkcopy_target *fanout;
	size_t nr_fanout;
	uint64_t dst_off;
	/*
	 * Where the buffers come from (NULL: host memory); must outlive the
	 * engine.  Its limit bounds them: at least one chunk is mapped.
	 */
	const struct bc_memory *memory;
};
int bc_emu_create(struct blkcopy_dev *src, struct blkcopy_dev *dst,
		  const struct bc_emu_params *p, struct bc_emu **emup);
/*
 * Queue spans whose destination starts at @dst and is contiguous.  With
 * @copy the engine keeps its own copy of @spans; else they must outlive it.
 */
int bc_emu_add(struct bc_emu *e, const struct bc_span *spans, size_t nr, uint64_t dst,
	       bool copy);
/* Spans queued and not yet consumed: how far emulation lags behind planning. */
size_t bc_emu_queued(const struct bc_emu *e);
/*
 * Issue, then reap for up to @timeout_ms (-1 forever, 0 never blocks).
 * 1 when idle; 0 when not idle once the timeout passed; -EINTR when a
 * signal interrupted the wait; another -errno when the ring failed (the
 * engine is then stopped with that error).
 */
int bc_emu_run(struct bc_emu *e, int timeout_ms);
/*
 * Block until the engine has a completion or @fd polls readable, or for
 * @timeout_ms (-1: no limit).  0; -EINTR when a signal interrupted the
 * wait; another -errno when the ring failed.
 */
int bc_emu_wait_with(struct bc_emu *e, int fd, int timeout_ms);
void bc_emu_stop(struct bc_emu *e, int error);
/*
 * Destination @k (0: the first, 1 + i: fanout[i]): bytes written to it
 * (verified, when verifying), any order; its lowest offset not known
 * written; its error (its write failed), or the engine's.
 */
void bc_emu_dst_state(const struct bc_emu *e, uint32_t k, uint64_t *done, uint64_t *low_pending,
		       int *error);
/* The first destination's: bc_emu_dst_state(e, 0, ...). */
void bc_emu_state(const struct bc_emu *e, uint64_t *done, uint64_t *low_pending, int *error);
/*
 * The engine's own error: it stopped (bc_emu_stop(), a source read or the
 * ring failed, every destination was dropped); 0 while it runs on.
 */
int bc_emu_error(const struct bc_emu *e);
/* Verification: destination @k's lowest byte found to differ from its source (UINT64_MAX: none). */
uint64_t bc_emu_dst_mismatch(const struct bc_emu *e, uint32_t k);
uint64_t bc_emu_mismatch(const struct bc_emu *e);	/* destination 0's */
/* Bytes written and the time the engine had I/O in flight, for the piece policy. */
void bc_emu_rate(const struct bc_emu *e, struct bc_emu_rate *r);
/* Both ends can do O_DIRECT with these spans (alignment of every offset and length). */
bool bc_emu_direct_ok(const struct blkcopy_dev *src, const struct blkcopy_dev *dst,
		      const struct bc_span *spans, size_t nr, uint64_t dst_off);
/* Readable when the engine has completions to reap. */
int bc_emu_fd(const struct bc_emu *e);
void bc_emu_destroy(struct bc_emu *e);

#endif
