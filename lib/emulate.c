/* SPDX-License-Identifier: MIT */
/*
 * Copy emulation: reads into buffers and writes them out, through io_uring.
 *
 * The destination of a request is contiguous, so the engine fills each
 * buffer ("chunk") with the source segments that land next to each other
 * and writes it with one large write, however scattered the sources are.
 * A chunk owns its buffer from its first read until its write completes:
 * reads can never take all the memory and starve the writes.  Memory in
 * flight is the chunk count times the chunk size, fixed at setup.  Each
 * end's reads or writes go through its device's transport (struct
 * bc_io_end): into this ring for a descriptor, over a session for a LUN.
 *
 * A fan-out engine writes each chunk to several destinations, each at its
 * own offset, from one read: a chunk is free once every destination has it.
 * A destination whose write fails is dropped (what it misses counts against
 * it alone); the others go on.
 */
#include <errno.h>
#include <liburing.h>
#include <poll.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "emulate.h"
#include "memory.h"
#include "split.h"
#include "transport.h"
#include "util.h"
#include "zone.h"

#define SEGS_PER_CHUNK 512u
#define WRITE_TAG 0x80000000u	/* | destination: a write (verifying, a read back) */
#define PAGE 4096u
#define MAX_DSTS BLKCOPY_MAX_TARGETS

struct seg {
	uint64_t src;
	uint64_t len;
	uint64_t buf_off;
	uint64_t done;
	bool in_flight;
};

enum chunk_state { CHUNK_FREE, CHUNK_READING, CHUNK_WRITING };

struct chunk {
	enum chunk_state state;
	char *buf;
	char *cmp;		/* verification: a destination read back, one after another */
	uint64_t dst;		/* in the first destination's offsets */
	uint64_t len;
	uint64_t *wdone;	/* per destination: bytes of its write completed */
	uint32_t pending;	/* destinations (bits) still to write, or to read back */
	uint32_t writing;	/* destinations with a write in flight */
	uint32_t nr_segs;
	uint32_t next_seg;	/* first segment never issued */
	uint32_t reads_left;	/* segments not fully read */
	uint32_t short_reads;	/* segments waiting to be reissued */
	struct seg *segs;
};

/* A destination of the engine. */
struct dst_state {
	uint64_t shift;		/* its offset minus the first destination's (modulo 2^64) */
	uint64_t done;		/* bytes written (verifying: read back and compared) */
	uint64_t fail_low;	/* lowest byte (first destination's offsets) it was left without */
	uint64_t mismatch;	/* verifying: lowest byte (its offsets) that differs */
	int error;		/* its write failed: it is dropped */
};

/* A batch: the spans of one bc_emu_add(), consumed in order. */
struct batch {
	struct batch *next;
	struct bc_splitter split;
	struct bc_span own[];	/* the spans, when the caller's may not outlive the batch */
};

/* Ends: the source, then destination k at 1 + k; WATCH: the descriptor bc_emu_wait_with() polls. */
enum { SRC = 0, DST = 1, WATCH = 0xffff };

struct bc_emu {
	struct io_uring ring;
	bool ring_ready;
	/* The ends, each through its device's transport. */
	struct bc_io_end end[1 + MAX_DSTS];
	const struct bc_transport *t[1 + MAX_DSTS];
	uint32_t io_max[1 + MAX_DSTS];
	bool ends_open[1 + MAX_DSTS];
	uint32_t nr_ends;
	struct dst_state dst[MAX_DSTS];
	uint32_t live;		/* destinations (bits) new chunks go to: no error, no difference */
	struct bc_emu_params p;
	uint32_t align;

	const struct bc_memory *memory;	/* where the buffers come from */
	void *mem;
	size_t mem_len;
	struct chunk *chunks;
	uint32_t nr_chunks;
	uint32_t busy_chunks;
	uint32_t inflight;	/* SQEs submitted or queued, not yet reaped */
	uint64_t busy_ns;	/* time with I/O in flight, before busy_since */
	uint64_t busy_since;	/* when inflight last went from 0 */

	struct batch *queue, *queue_tail;
	size_t queued_spans;	/* in batches not yet consumed */
	struct bc_span *split_tmp;

	uint64_t done;		/* over all destinations */
	int error;		/* the engine stopped: every destination's, unless it had its own */
	bool stopping;
	bool watch_armed;
};

static void io_done(void *engine, uint64_t data, int res);

static uint64_t round_up(uint64_t v, uint64_t a)
{
	return (v + a - 1) / a * a;
}

bool bc_emu_direct_ok(const struct blkcopy_dev *src, const struct blkcopy_dev *dst,
		      const struct bc_span *spans, size_t nr, uint64_t dst_off)
{
	uint32_t a = src->dio_align > dst->dio_align ? src->dio_align : dst->dio_align;

	if (!src->transport->direct_ok(src) || !dst->transport->direct_ok(dst) || dst_off % a)
		return false;
	for (size_t i = 0; i < nr; i++)
		if (spans[i].src % a || spans[i].len % a)
			return false;
	return true;
}

static uint32_t max_u32(uint32_t a, uint32_t b)
{
	return a > b ? a : b;
}

int bc_emu_create(struct blkcopy_dev *src, struct blkcopy_dev *dst,
		  const struct bc_emu_params *p, struct bc_emu **emup)
{
	struct bc_emu *e;
	int ret;

	/* A zone takes its writes in order: one destination's, at its write pointer. */
	if (p->nr_fanout >= MAX_DSTS || (p->nr_fanout && p->zone_size))
		return -EINVAL;
	e = calloc(1, sizeof(*e));
	if (!e)
		return -ENOMEM;
	e->p = *p;
	e->p.fanout = NULL;	/* the caller's array need not outlive this call */
	e->memory = p->memory ? p->memory : &bc_host_memory;
	e->nr_ends = 2 + (uint32_t)p->nr_fanout;

	struct blkcopy_dev *devs[1 + MAX_DSTS] = { src, dst };
	for (size_t k = 0; k < p->nr_fanout; k++) {
		devs[2 + k] = p->fanout[k].dev;
		e->dst[1 + k].shift = p->fanout[k].offset - p->dst_off;
	}
	for (uint32_t k = 0; k + 1 < e->nr_ends; k++) {
		e->dst[k].fail_low = UINT64_MAX;
		e->dst[k].mismatch = UINT64_MAX;
		e->live |= 1u << k;
	}
	/* Every I/O suits every end: offsets and lengths aligned to the strictest. */
	for (uint32_t i = 0; i < e->nr_ends; i++)
		e->align = max_u32(e->align, p->direct ? devs[i]->dio_align : devs[i]->lbs);

	struct io_uring_params up = {
		.flags = IORING_SETUP_SUBMIT_ALL | IORING_SETUP_COOP_TASKRUN |
			 IORING_SETUP_SINGLE_ISSUER,
	};
	ret = io_uring_queue_init_params(p->queue_depth, &e->ring, &up);
	if (ret == -EINVAL) {
		/* An older kernel without those setup flags. */
		memset(&up, 0, sizeof(up));
		ret = io_uring_queue_init_params(p->queue_depth, &e->ring, &up);
	}
	if (ret) {
		free(e);
		return ret;
	}
	e->ring_ready = true;

	for (uint32_t i = 0; i < e->nr_ends; i++) {
		e->t[i] = devs[i]->transport;
		e->io_max[i] = e->t[i]->io_max(devs[i]);
		e->end[i] = (struct bc_io_end){ .dev = devs[i], .ring = &e->ring, .index = i,
						.direct = p->direct, .fd = -1, .fixed_file = -1,
						.done = io_done, .engine = e };
		ret = e->t[i]->io_open(&e->end[i]);
		if (ret) {
			bc_emu_destroy(e);
			return ret;
		}
		e->ends_open[i] = true;
	}
	/* Descriptors on every end: registered files save a lookup per I/O. */
	int fds[1 + MAX_DSTS];
	bool all_fds = true;
	for (uint32_t i = 0; i < e->nr_ends; i++) {
		fds[i] = e->end[i].fd;
		all_fds = all_fds && fds[i] >= 0;
	}
	if (all_fds && io_uring_register_files(&e->ring, fds, e->nr_ends) == 0)
		for (uint32_t i = 0; i < e->nr_ends; i++)
			e->end[i].fixed_file = (int)i;
	*emup = e;
	return 0;
}

/* Buffers are set up on first use (a native copy may never need them), sized for the request. */
static int setup_chunks(struct bc_emu *e, uint64_t want)
{
	uint64_t chunk = round_up(e->p.chunk_size, e->align > PAGE ? e->align : PAGE);
	uint64_t nr;

	if (want < chunk)
		chunk = round_up(want, e->align > PAGE ? e->align : PAGE);
	nr = e->p.max_inflight / chunk;
	if (nr > (want + chunk - 1) / chunk)
		nr = (want + chunk - 1) / chunk;
	/* Verification reads the destination back into a second buffer per chunk. */
	const uint64_t per_chunk = chunk * (e->p.verify ? 2 : 1);
	if (nr > e->memory->limit / per_chunk)
		nr = e->memory->limit / per_chunk;
	if (nr < 1)
		nr = 1;
	if (nr > UINT16_MAX)
		nr = UINT16_MAX;

	e->mem_len = per_chunk * nr;
	e->mem = bc_memory_map(e->memory, e->mem_len);
	if (!e->mem)
		return errno ? -errno : -ENOMEM;
	const uint32_t nr_dsts = e->nr_ends - 1;
	e->chunks = calloc(nr, sizeof(*e->chunks));
	e->split_tmp = calloc(SEGS_PER_CHUNK, sizeof(*e->split_tmp));
	struct seg *segs = calloc(nr * SEGS_PER_CHUNK, sizeof(*segs));
	uint64_t *wdone = calloc(nr * nr_dsts, sizeof(*wdone));
	struct iovec *iov = calloc(nr, sizeof(*iov));
	if (!e->chunks || !e->split_tmp || !segs || !wdone || !iov) {
		free(segs);
		free(wdone);
		free(iov);
		return -ENOMEM;
	}
	e->nr_chunks = (uint32_t)nr;
	e->p.chunk_size = chunk;
	for (uint32_t i = 0; i < nr; i++) {
		e->chunks[i].buf = (char *)e->mem + i * chunk;
		if (e->p.verify)
			e->chunks[i].cmp = (char *)e->mem + (nr + i) * chunk;
		e->chunks[i].segs = segs + (size_t)i * SEGS_PER_CHUNK;
		e->chunks[i].wdone = wdone + (size_t)i * nr_dsts;
		iov[i] = (struct iovec){ .iov_base = e->chunks[i].buf, .iov_len = chunk };
	}
	/*
	 * Registration pins the pages; without it (RLIMIT_MEMLOCK) plain I/O
	 * still works.  A registered buffer is a chunk's: not its second one.
	 */
	const bool fixed = !e->p.verify && e->memory->registrable &&
		io_uring_register_buffers(&e->ring, iov, (unsigned int)nr) == 0;
	for (uint32_t i = 0; i < e->nr_ends; i++)
		e->end[i].fixed_bufs = fixed;
	free(iov);
	return 0;
}

int bc_emu_add(struct bc_emu *e, const struct bc_span *spans, size_t nr, uint64_t dst,
	       bool copy)
{
	struct batch *r;
	int ret;

	if (!e->mem) {
		ret = setup_chunks(e, e->p.expected_bytes);
		if (ret)
			return ret;
	}
	r = calloc(1, sizeof(*r) + (copy ? nr * sizeof(*spans) : 0));
	if (!r)
		return -ENOMEM;
	if (copy) {
		memcpy(r->own, spans, nr * sizeof(*spans));
		spans = r->own;
	}
	/* Chunks are sized at setup, so the limits are known only now. */
	const struct bc_split_limits lim = {
		.max_piece_bytes = e->p.chunk_size,
		.max_seg_bytes = e->p.chunk_size,
		.max_segs = SEGS_PER_CHUNK,
		.align = e->align,
		.dst_boundary = e->p.zone_size,
	};
	ret = bc_split_init(&r->split, spans, nr, dst, &lim);
	if (ret) {
		free(r);
		return ret;
	}
	if (e->queue_tail)
		e->queue_tail->next = r;
	else
		e->queue = r;
	e->queue_tail = r;
	e->queued_spans += nr;
	return 0;
}

size_t bc_emu_queued(const struct bc_emu *e)
{
	return e->queued_spans;
}

void bc_emu_stop(struct bc_emu *e, int error)
{
	if (!e->error)
		e->error = error;
	e->stopping = true;
}

/* Load the next piece of queued work into @c.  Returns false when none is left. */
static bool load_chunk(struct bc_emu *e, struct chunk *c)
{
	struct bc_piece piece;

	while (e->queue) {
		struct batch *r = e->queue;

		if (bc_split_next(&r->split, e->split_tmp, SEGS_PER_CHUNK, &piece))
			break;
		e->queue = r->next;
		if (!e->queue)
			e->queue_tail = NULL;
		e->queued_spans -= r->split.nr_spans;
		free(r);
	}
	if (!e->queue)
		return false;

	uint64_t off = 0;
	for (uint32_t i = 0; i < piece.nr_segs; i++) {
		c->segs[i] = (struct seg){
			.src = e->split_tmp[i].src,
			.len = e->split_tmp[i].len,
			.buf_off = off,
		};
		off += e->split_tmp[i].len;
	}
	c->state = CHUNK_READING;
	c->dst = piece.dst;
	c->len = piece.len;
	memset(c->wdone, 0, (e->nr_ends - 1) * sizeof(*c->wdone));
	c->pending = e->live;
	c->writing = 0;
	c->nr_segs = c->reads_left = piece.nr_segs;
	c->next_seg = 0;
	c->short_reads = 0;
	e->busy_chunks++;
	return true;
}

struct io_uring_sqe *bc_io_sqe(struct bc_io_end *end)
{
	struct io_uring_sqe *sqe = io_uring_get_sqe(end->ring);

	if (!sqe) {
		io_uring_submit(end->ring);
		sqe = io_uring_get_sqe(end->ring);
	}
	return sqe;
}

static void complete(struct bc_emu *e, uint64_t data, int res);

static void io_done(void *engine, uint64_t data, int res)
{
	complete(engine, data, res);
}

/*
 * One read or write through end @i's transport, at most its largest I/O:
 * the rest of the segment or chunk follows as a short completion would.
 * False when there is no room now.  The caller marks the I/O in flight
 * first: a command that fails at once completes in here.
 */
static bool submit_io(struct bc_emu *e, int i, uint32_t ci, char *buf, uint64_t left,
		      uint64_t off, uint32_t tag)
{
	const uint32_t len = left > e->io_max[i] ? e->io_max[i] : (uint32_t)left;
	const uint64_t data = (uint64_t)ci << 32 | tag;
	int ret;

	if (!e->inflight++)
		e->busy_since = bc_now_ns();
	/* Verifying, a destination is read back, not written. */
	ret = e->t[i]->io_submit(&e->end[i], i != SRC && !e->p.verify, buf, len, off, (int)ci, data);
	if (ret == -EAGAIN) {
		e->inflight--;	/* an idle time of nothing: busy_since restarts with the next */
		return false;
	}
	if (ret)
		complete(e, data, ret);
	return true;
}

/* Write chunk @ci (the rest of it) to destination @k; verifying, read it back from there. */
static bool issue_write(struct bc_emu *e, uint32_t ci, uint32_t k)
{
	if (e->stopping)
		return false;
	struct chunk *c = &e->chunks[ci];
	const uint64_t done = c->wdone[k];

	c->writing |= 1u << k;
	if (!submit_io(e, DST + (int)k, ci, (e->p.verify ? c->cmp : c->buf) + done, c->len - done,
		       c->dst + e->dst[k].shift + done, WRITE_TAG | k)) {
		c->writing &= ~(1u << k);
		return false;
	}
	return true;
}

static bool issue_read(struct bc_emu *e, uint32_t ci, uint32_t si)
{
	if (e->stopping)
		return false;
	struct chunk *c = &e->chunks[ci];
	struct seg *s = &c->segs[si];

	s->in_flight = true;
	if (!submit_io(e, SRC, ci, c->buf + s->buf_off + s->done, s->len - s->done,
		       s->src + s->done, si)) {
		s->in_flight = false;
		return false;
	}
	return true;
}

/*
 * On a zoned destination a chunk is written only when it is next in its
 * zone: no write in flight there and no unwritten chunk before it.  Chunks
 * are loaded in destination order, so every earlier byte of the zone is in
 * a chunk or already written.
 */
static bool next_in_zone(const struct bc_emu *e, const struct chunk *c)
{
	const uint64_t zs = e->p.zone_size;

	if (!zs)
		return true;
	for (uint32_t i = 0; i < e->nr_chunks; i++) {
		const struct chunk *o = &e->chunks[i];

		if (o == c || o->state == CHUNK_FREE || o->dst / zs != c->dst / zs)
			continue;
		if (o->writing || o->dst < c->dst)
			return false;
	}
	return true;
}

/* Issue what can be issued: writes first, so that buffers come back soonest. */
static void fill(struct bc_emu *e)
{
	const uint32_t qd = e->p.queue_depth;

	/* After a stop nothing new is issued; what is in flight completes. */
	if (e->stopping)
		return;
	for (uint32_t i = 0; i < e->nr_chunks && e->inflight < qd; i++) {
		struct chunk *c = &e->chunks[i];

		if (c->state != CHUNK_WRITING || !next_in_zone(e, c))
			continue;
		for (uint32_t k = 0; k + 1 < e->nr_ends && e->inflight < qd; k++) {
			const uint32_t bit = 1u << k;

			/* Verifying, destinations are read back into one buffer, in turn. */
			if (!(c->pending & bit) || (c->writing & bit) || (e->p.verify && c->writing))
				continue;
			if (!issue_write(e, i, k))
				return;
		}
	}
	for (uint32_t i = 0; i < e->nr_chunks && e->inflight < qd; i++) {
		struct chunk *c = &e->chunks[i];

		if (c->state != CHUNK_FREE)
			continue;
		if (!e->live || (e->p.rate && !bc_rate_ready(e->p.rate, bc_now_ns())) ||
		    !load_chunk(e, c))
			break;
		/* Every destination's bytes count, however many one read feeds. */
		if (e->p.rate)
			bc_rate_charge(e->p.rate, c->len * (uint64_t)__builtin_popcount(c->pending));
	}
	for (uint32_t i = 0; i < e->nr_chunks && e->inflight < qd; i++) {
		struct chunk *c = &e->chunks[i];

		if (c->state != CHUNK_READING)
			continue;
		for (uint32_t s = 0; c->short_reads && s < c->next_seg && e->inflight < qd; s++) {
			struct seg *sg = &c->segs[s];

			if (!sg->in_flight && sg->done < sg->len) {
				if (!issue_read(e, i, s))
					return;
				c->short_reads--;
			}
		}
		while (c->next_seg < c->nr_segs && e->inflight < qd)
			if (!issue_read(e, i, c->next_seg++))
				return;
	}
}

/*
 * A chunk read back from destination @k: where it first differs from its
 * source, if it does.  Then no more chunks are loaded for it; those loaded
 * (all lower, chunks load in destination order) are still read back, so
 * the lowest difference is found.
 */
static void compare(struct bc_emu *e, const struct chunk *c, uint32_t k)
{
	struct dst_state *d = &e->dst[k];

	if (!memcmp(c->buf, c->cmp, c->len))
		return;
	uint64_t i = 0;

	while (c->buf[i] == c->cmp[i])
		i++;
	if (c->dst + d->shift + i < d->mismatch)
		d->mismatch = c->dst + d->shift + i;
	e->live &= ~(1u << k);
}

/* Give a chunk up, every destination it still owes counted as left without it. */
static void release_chunk(struct bc_emu *e, struct chunk *c)
{
	for (uint32_t k = 0; k + 1 < e->nr_ends; k++)
		if (c->pending & (1u << k))
			e->dst[k].fail_low = bc_min_u64(e->dst[k].fail_low, c->dst + c->wdone[k]);
	c->pending = 0;
	c->state = CHUNK_FREE;
	e->busy_chunks--;
}

/*
 * Destination @k has what it will get of chunk @c.  Once no destination
 * waits for the chunk it is free, or, still reading, when its reads end.
 */
static void settle(struct bc_emu *e, struct chunk *c, uint32_t k)
{
	const uint32_t bit = 1u << k;

	if (c->wdone[k] < c->len)
		e->dst[k].fail_low = bc_min_u64(e->dst[k].fail_low, c->dst + c->wdone[k]);
	c->pending &= ~bit;
	if (!c->pending && c->state == CHUNK_WRITING) {
		c->state = CHUNK_FREE;
		e->busy_chunks--;
	}
}

/*
 * A write to destination @k failed: it is dropped, and every chunk it still
 * owes is settled for it (those with its write in flight when that comes
 * back).  With no destination left the engine stops, with this error.
 */
static void drop_dst(struct bc_emu *e, uint32_t k, int error)
{
	const uint32_t bit = 1u << k;

	if (!e->dst[k].error)
		e->dst[k].error = error;
	e->live &= ~bit;
	for (uint32_t i = 0; i < e->nr_chunks; i++) {
		struct chunk *c = &e->chunks[i];

		if (c->state != CHUNK_FREE && (c->pending & bit) && !(c->writing & bit))
			settle(e, c, k);
	}
	bool any = false;
	for (uint32_t j = 0; j + 1 < e->nr_ends; j++)
		any = any || !e->dst[j].error;
	if (!any)
		bc_emu_stop(e, error);
}

static void complete(struct bc_emu *e, uint64_t data, int res)
{
	uint32_t ci = (uint32_t)(data >> 32), tag = (uint32_t)data;
	struct chunk *c = &e->chunks[ci];

	if (!--e->inflight)
		e->busy_ns += bc_now_ns() - e->busy_since;
	if (tag & WRITE_TAG) {
		const uint32_t k = tag & ~WRITE_TAG;
		struct dst_state *d = &e->dst[k];

		c->writing &= ~(1u << k);
		/* Zero bytes: a write that would repeat forever. */
		if (res <= 0) {
			/* A zone's write pointer tells how much of a failed write is there. */
			const uint64_t landed = e->p.zone_size ?
				bc_zone_landed(e->end[DST].dev, c->dst + c->wdone[k],
					       c->len - c->wdone[k]) : 0;

			c->wdone[k] += landed;
			d->done += landed;
			e->done += landed;
			drop_dst(e, k, res < 0 ? res : -EIO);	/* settles this chunk too */
			return;
		}
		c->wdone[k] += (uint64_t)res;
		d->done += (uint64_t)res;
		e->done += (uint64_t)res;
		if (c->wdone[k] == c->len) {
			if (e->p.verify)
				compare(e, c, k);
			settle(e, c, k);
		} else if (d->error) {
			settle(e, c, k);	/* dropped while this write was in flight */
		}
		return;
	}
	/* Zero bytes: a source that shrank. */
	if (res <= 0) {
		bc_emu_stop(e, res < 0 ? res : -EIO);
		c->segs[tag].in_flight = false;
		return;
	}

	struct seg *s = &c->segs[tag];
	s->in_flight = false;
	s->done += (uint64_t)res;
	if (s->done < s->len) {
		c->short_reads++;
	} else if (--c->reads_left == 0) {
		c->state = CHUNK_WRITING;
		if (!c->pending) {	/* every destination was dropped meanwhile */
			c->state = CHUNK_FREE;
			e->busy_chunks--;
		}
	}
}

/* After a stop: give up every chunk with nothing in flight, remembering what it left unwritten. */
static void release_stopped_chunks(struct bc_emu *e)
{
	for (uint32_t i = 0; i < e->nr_chunks; i++) {
		struct chunk *c = &e->chunks[i];
		bool busy = c->writing;

		if (c->state == CHUNK_FREE)
			continue;
		for (uint32_t s = 0; !busy && s < c->next_seg; s++)
			busy = c->segs[s].in_flight;
		if (!busy)
			release_chunk(e, c);
	}
}

/* Before every wait: the transports arm what must wake the ring (a session's socket). */
static void arm_ends(struct bc_emu *e)
{
	for (uint32_t i = 0; i < e->nr_ends; i++)
		if (e->t[i]->io_arm)
			e->t[i]->io_arm(&e->end[i]);
}

/* A ring completion that a transport armed: bc_io_event_tag(). */
static void end_event(struct bc_emu *e, uint64_t tag, int res)
{
	const uint32_t i = (uint32_t)(tag >> 16) & 0xffff;

	if (i == WATCH)
		e->watch_armed = false;
	else if (i < e->nr_ends && e->t[i]->io_event)
		e->t[i]->io_event(&e->end[i], (uint32_t)tag & 0xffff, res);
}

static unsigned int reap(struct bc_emu *e)
{
	struct io_uring_cqe *cqe;
	unsigned int head, n = 0;

	io_uring_for_each_cqe(&e->ring, head, cqe) {
		if ((cqe->user_data & BC_IO_EVENT) == BC_IO_EVENT)
			end_event(e, cqe->user_data, cqe->res);
		else
			complete(e, cqe->user_data, cqe->res);
		n++;
	}
	io_uring_cq_advance(&e->ring, n);
	return n;
}

static bool idle(struct bc_emu *e)
{
	if (e->stopping)
		release_stopped_chunks(e);
	/* No destination left to load for (dropped, or a difference found): the queue stays. */
	return e->inflight == 0 && (e->stopping || (!e->busy_chunks && (!e->queue || !e->live)));
}

/*
 * Submit, then wait for one completion for up to @timeout_ms (-1: no
 * limit): 0, -ETIME when the time passed, -EINTR for a signal, or the
 * error of a ring that failed (the engine is then stopped with it).
 */
static int wait_one(struct bc_emu *e, int64_t timeout_ms)
{
	struct io_uring_cqe *cqe;
	int ret;

	if (timeout_ms < 0) {
		ret = io_uring_submit_and_wait(&e->ring, 1);
	} else {
		struct __kernel_timespec ts = {
			.tv_sec = timeout_ms / 1000,
			.tv_nsec = (timeout_ms % 1000) * 1000000,
		};
		ret = io_uring_submit_and_wait_timeout(&e->ring, &cqe, 1, &ts, NULL);
	}
	if (ret == -EAGAIN || ret == -EBUSY || ret > 0)
		return 0;
	if (ret < 0 && ret != -ETIME && ret != -EINTR)
		bc_emu_stop(e, ret);	/* nothing more can be trusted to complete */
	return ret;
}

int bc_emu_run(struct bc_emu *e, int timeout_ms)
{
	const int64_t deadline = timeout_ms > 0 ? bc_now_ms() + timeout_ms : 0;

	for (;;) {
		int ret;

		reap(e);
		fill(e);
		if (idle(e))
			return 1;
		arm_ends(e);
		/* Held back by the rate limit with nothing in flight: no completion will wake us. */
		if (!e->inflight && e->p.rate && !bc_rate_ready(e->p.rate, bc_now_ns()) && timeout_ms) {
			int ms = bc_rate_wait_ms(e->p.rate, bc_now_ns());

			if (timeout_ms > 0) {
				const int64_t left = deadline - bc_now_ms();

				if (left <= 0)
					return 0;
				if (left < ms)
					ms = (int)left;
			}
			ret = wait_one(e, ms);
			if (ret < 0 && ret != -ETIME)
				return ret;
			continue;
		}
		if (timeout_ms == 0) {
			io_uring_submit(&e->ring);
			reap(e);
			fill(e);
			arm_ends(e);
			io_uring_submit(&e->ring);
			return idle(e);
		}
		if (timeout_ms < 0) {
			ret = wait_one(e, -1);
		} else {
			int64_t left = deadline - bc_now_ms();
			if (left <= 0) {
				io_uring_submit(&e->ring);
				return 0;
			}
			ret = wait_one(e, left);
			if (ret == -ETIME)
				return 0;
		}
		if (ret < 0)
			return ret;	/* a signal, or the ring failed */
	}
}

/*
 * The job's other sources of completions (native queues) are waited for
 * here, in the ring, rather than in epoll_wait(): io_uring's own wait runs
 * the task work that completions of other rings raise, so -EINTR from it
 * means a signal.  (epoll_wait() would be interrupted by that task work.)
 */
int bc_emu_wait_with(struct bc_emu *e, int fd, int timeout_ms)
{
	int ret;

	if (!e->watch_armed) {
		struct io_uring_sqe *sqe = bc_io_sqe(&e->end[SRC]);

		if (!sqe)
			return 0;	/* the ring is full of work: its completions will wake us */
		io_uring_prep_poll_add(sqe, fd, POLLIN);
		io_uring_sqe_set_data64(sqe, BC_IO_EVENT | (uint64_t)WATCH << 16);
		e->watch_armed = true;
	}
	arm_ends(e);
	ret = wait_one(e, timeout_ms);
	reap(e);
	return ret == -ETIME ? 0 : ret;
}

void bc_emu_dst_state(const struct bc_emu *e, uint32_t k, uint64_t *done, uint64_t *low_pending,
		       int *error)
{
	const struct dst_state *d = &e->dst[k];
	uint64_t low = d->fail_low;

	for (uint32_t i = 0; i < e->nr_chunks; i++) {
		const struct chunk *c = &e->chunks[i];

		if (c->state != CHUNK_FREE && (c->pending & (1u << k)))
			low = bc_min_u64(low, c->dst + c->wdone[k]);
	}
	/* Work handed back by native copy joins the queue late, at any destination. */
	for (const struct batch *r = e->queue; r; r = r->next)
		if (r->split.idx < r->split.nr_spans)
			low = bc_min_u64(low, r->split.dst);
	*done = d->done;
	*low_pending = low == UINT64_MAX ? low : low + d->shift;
	*error = d->error ? d->error : e->error;
}

void bc_emu_state(const struct bc_emu *e, uint64_t *done, uint64_t *low_pending, int *error)
{
	bc_emu_dst_state(e, 0, done, low_pending, error);
}

int bc_emu_error(const struct bc_emu *e)
{
	return e->error;
}

uint64_t bc_emu_dst_mismatch(const struct bc_emu *e, uint32_t k)
{
	return e->dst[k].mismatch;
}

uint64_t bc_emu_mismatch(const struct bc_emu *e)
{
	return bc_emu_dst_mismatch(e, 0);
}

void bc_emu_rate(const struct bc_emu *e, struct bc_emu_rate *r)
{
	r->bytes = e->done;
	r->busy_ns = e->busy_ns + (e->inflight ? bc_now_ns() - e->busy_since : 0);
	r->idle = !e->inflight && !e->busy_chunks && !e->queue;
}

int bc_emu_fd(const struct bc_emu *e)
{
	return e->ring.ring_fd;
}

void bc_emu_destroy(struct bc_emu *e)
{
	if (!e)
		return;
	/* Completions outside the ring would land in freed memory: make them happen now. */
	for (uint32_t i = 0; i < e->nr_ends; i++) {
		if (!e->ends_open[i])
			continue;
		if (e->t[i]->io_abandon && e->t[i]->io_inflight(&e->end[i]))
			e->t[i]->io_abandon(&e->end[i]);
	}
	for (uint32_t i = 0; i < e->nr_ends; i++)
		if (e->ends_open[i] && e->t[i]->io_close)
			e->t[i]->io_close(&e->end[i]);
	while (e->queue) {
		struct batch *r = e->queue;
		e->queue = r->next;
		free(r);
	}
	if (e->ring_ready)
		io_uring_queue_exit(&e->ring);
	if (e->chunks) {
		free(e->chunks[0].segs);
		free(e->chunks[0].wdone);
	}
	free(e->chunks);
	free(e->split_tmp);
	if (e->mem)
		bc_memory_unmap(e->memory, e->mem, e->mem_len);
	free(e);
}
