/* SPDX-License-Identifier: MIT */
/*
 * Requests in flight.  A job validates its request, then plans it: native
 * pieces cut by the pair's copy limits, or everything to the emulation
 * engine.  A native piece the device refuses falls back to emulation.  The
 * core never builds a device command: it talks to backends through
 * struct bc_backend only.
 */
#include <errno.h>
#include <fcntl.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <unistd.h>

#include "internal.h"

#define MAX_QUEUE_DEPTH 4096u
#define MAX_NATIVE_DEPTH 64u	/* native commands in flight; each may copy MiBs */

/* Spans handed to emulation after a native refusal; they must outlive the engine. */
struct fallback {
	struct fallback *next;
	struct bc_span segs[];
};

/* A native piece between planning and completion. */
struct native_slot {
	struct bc_piece piece;
	struct bc_span *segs;
	bool busy;
};

struct blkcopy_job {
	struct blkcopy_dev *src, *dst;
	struct bc_span *spans;
	size_t nr_spans;
	uint64_t dst_off;
	uint64_t total;
	unsigned int flags;

	struct bc_emu *emu;
	int epfd;		/* emulation ring + native queue, when both exist */

	const struct bc_backend *native;	/* NULL: all emulated */
	struct bc_native_queue *queue;		/* NULL: native pieces run synchronously */
	struct bc_splitter nsplit;
	uint32_t nsegs_cap;
	struct native_slot *slots;
	uint32_t nr_slots;
	uint32_t inflight;
	bool native_left;	/* pieces not yet planned */
	bool native_proven;	/* a piece succeeded: more may go in flight */
	bool native_started;	/* caches flushed, so they must be invalidated at the end */
	uint64_t native_done;
	struct bc_copy_stats stats;
	uint64_t native_fail_low;
	struct fallback *fallbacks;

	int error;
	bool cancelled;
	bool finished;
};

/* Can @src -> @dst go native?  Fills the pair's limits. */
static const struct bc_backend *native_pair(const struct blkcopy_dev *src,
					    const struct blkcopy_dev *dst, unsigned int flags,
					    struct blkcopy_limits *lim)
{
	if (flags & BLKCOPY_NOOFFLOAD)
		return NULL;
	if (!src->backend || src->backend != dst->backend || !src->limits.copy_offload ||
	    !dst->limits.copy_offload)
		return NULL;
	if (src->backend->pair(src, dst, lim))
		return NULL;
	return src->backend;
}

int blkcopy_check(const struct blkcopy_dev *src, const struct blkcopy_range *ranges,
		  size_t nr, const struct blkcopy_dev *dst, uint64_t dst_off,
		  unsigned int flags, size_t *bad_range)
{
	struct blkcopy_limits lim;
	int ret = bc_validate(src, ranges, nr, dst, dst_off, flags, NULL, bad_range);

	if (ret)
		return ret;
	if ((flags & BLKCOPY_NOEMULATION) && !native_pair(src, dst, flags, &lim))
		return -EOPNOTSUPP;
	return 0;
}

static int resolve_opts(const struct blkcopy_opts *in, struct blkcopy_opts *out)
{
	*out = in ? *in : (struct blkcopy_opts){ 0 };
	if (!out->queue_depth)
		out->queue_depth = BC_DEFAULT_QUEUE_DEPTH;
	if (!out->max_inflight)
		out->max_inflight = BC_DEFAULT_INFLIGHT;
	if (!out->chunk_size)
		out->chunk_size = BC_DEFAULT_CHUNK;
	if (out->queue_depth > MAX_QUEUE_DEPTH || out->max_inflight < 4096 ||
	    out->chunk_size < 4096)
		return -EINVAL;
	if (out->chunk_size > out->max_inflight)
		out->chunk_size = out->max_inflight;
	return 0;
}

static int start_native(struct blkcopy_job *j, const struct blkcopy_limits *lim,
			uint32_t queue_depth)
{
	struct bc_split_limits sl;
	uint32_t align = j->src->lbs > j->dst->lbs ? j->src->lbs : j->dst->lbs;
	int ret = bc_split_limits_from(lim, align, &sl);

	if (ret)
		return ret;
	ret = bc_split_init(&j->nsplit, j->spans, j->nr_spans, j->dst_off, &sl);
	if (ret)
		return ret;
	/* Devices advertise up to 256 ranges (SCSI) or 256 (NVMe MSRC+1); never trust more. */
	j->nsegs_cap = sl.max_segs && sl.max_segs < 4096 ? sl.max_segs : 4096;

	j->nr_slots = 1;
	if (j->native->queue_create) {
		uint32_t depth = queue_depth < MAX_NATIVE_DEPTH ? queue_depth : MAX_NATIVE_DEPTH;

		ret = j->native->queue_create(j->src, j->dst, depth, &j->queue);
		if (ret && ret != -EOPNOTSUPP)
			return ret;
		if (!ret)
			j->nr_slots = depth;
	}
	j->slots = calloc(j->nr_slots, sizeof(*j->slots));
	if (!j->slots)
		return -ENOMEM;
	for (uint32_t i = 0; i < j->nr_slots; i++) {
		j->slots[i].segs = calloc(j->nsegs_cap, sizeof(struct bc_span));
		if (!j->slots[i].segs)
			return -ENOMEM;
	}
	j->native_left = true;
	return 0;
}

static void free_native(struct blkcopy_job *j)
{
	if (j->queue)
		j->native->queue_destroy(j->queue);
	j->queue = NULL;
	for (uint32_t i = 0; j->slots && i < j->nr_slots; i++)
		free(j->slots[i].segs);
	free(j->slots);
	j->slots = NULL;
}

/* One descriptor for callers' poll loops, readable when either engine has completions. */
static int make_epoll(struct blkcopy_job *j)
{
	struct epoll_event ev = { .events = EPOLLIN };
	int fds[2] = { bc_emu_fd(j->emu), j->native->queue_fd(j->queue) };

	j->epfd = epoll_create1(EPOLL_CLOEXEC);
	if (j->epfd < 0)
		return -errno;
	for (int i = 0; i < 2; i++) {
		if (fds[i] < 0)
			continue;
		ev.data.fd = fds[i];
		if (epoll_ctl(j->epfd, EPOLL_CTL_ADD, fds[i], &ev))
			return -errno;
	}
	return 0;
}

int blkcopy_job_submit(struct blkcopy_dev *src, const struct blkcopy_range *ranges, size_t nr,
		       struct blkcopy_dev *dst, uint64_t dst_off,
		       const struct blkcopy_opts *opts, struct blkcopy_job **jobp)
{
	struct blkcopy_limits lim;
	struct blkcopy_opts o;
	struct blkcopy_job *j;
	uint64_t total;
	ssize_t n;
	int ret;

	if (!jobp || resolve_opts(opts, &o))
		return -EINVAL;
	ret = bc_validate(src, ranges, nr, dst, dst_off, o.flags, &total, NULL);
	if (ret)
		return ret;
	const struct bc_backend *native = native_pair(src, dst, o.flags, &lim);
	if (!native && (o.flags & BLKCOPY_NOEMULATION))
		return -EOPNOTSUPP;

	j = calloc(1, sizeof(*j));
	if (!j)
		return -ENOMEM;
	*j = (struct blkcopy_job){
		.src = src,
		.dst = dst,
		.dst_off = dst_off,
		.total = total,
		.flags = o.flags,
		.native_fail_low = UINT64_MAX,
		.epfd = -1,
	};
	n = bc_coalesce(ranges, nr, &j->spans);
	if (n < 0) {
		free(j);
		return (int)n;
	}
	j->nr_spans = (size_t)n;

	const struct bc_emu_params ep = {
		.queue_depth = o.queue_depth,
		.max_inflight = o.max_inflight,
		.chunk_size = o.chunk_size,
		.expected_bytes = total,
		.direct = !(o.flags & BLKCOPY_BUFFERED) &&
			  bc_emu_direct_ok(src, dst, j->spans, j->nr_spans, dst_off),
	};
	ret = bc_emu_create(src, dst, &ep, &j->emu);
	if (ret)
		goto fail;
	if (native) {
		j->native = native;
		ret = start_native(j, &lim, o.queue_depth);
		/* Limits too small to cut anything: the pair is not native after all. */
		if (ret == -EOPNOTSUPP && !(o.flags & BLKCOPY_NOEMULATION)) {
			free_native(j);
			j->native = NULL;
		} else if (ret) {
			goto fail;
		}
	}
	if (j->queue) {
		ret = make_epoll(j);
		if (ret)
			goto fail;
	}
	if (!j->native) {
		ret = bc_emu_add(j->emu, j->spans, j->nr_spans, dst_off);
		if (ret)
			goto fail;
	}
	*jobp = j;
	return 0;
fail:
	if (j->native)
		free_native(j);
	if (j->epfd >= 0)
		close(j->epfd);
	bc_emu_destroy(j->emu);
	free(j->spans);
	free(j);
	return ret;
}

static void stop(struct blkcopy_job *j, int error)
{
	if (!j->error)
		j->error = error;
	/* Native pieces never issued are not written: keep them out of the committed prefix. */
	if (j->native_left && j->nsplit.dst < j->native_fail_low)
		j->native_fail_low = j->nsplit.dst;
	j->native_left = false;
	bc_emu_stop(j->emu, error);
}

static int fall_back(struct blkcopy_job *j, const struct native_slot *slot)
{
	const uint32_t n = slot->piece.nr_segs;
	struct fallback *f = malloc(sizeof(*f) + n * sizeof(f->segs[0]));

	if (!f)
		return -ENOMEM;
	memcpy(f->segs, slot->segs, n * sizeof(f->segs[0]));
	f->next = j->fallbacks;
	j->fallbacks = f;
	return bc_emu_add(j->emu, f->segs, n, slot->piece.dst);
}

/*
 * Native commands bypass a block device's page cache.  Before: write back
 * what is dirty on both ends, so that no later writeback lands on top of
 * the copy.  After: drop the destination's cached pages, so that the next
 * buffered read sees the copy.
 */
static int flush_caches(struct blkcopy_job *j)
{
	if (j->src->kind != BLKCOPY_KIND_FILE && fdatasync(j->src->fd))
		return -errno;
	if (j->dst->kind != BLKCOPY_KIND_FILE && fdatasync(j->dst->fd))
		return -errno;
	return 0;
}

static void invalidate_dst(struct blkcopy_job *j)
{
	if (j->dst->kind != BLKCOPY_KIND_FILE)
		posix_fadvise(j->dst->fd, (off_t)j->dst_off, (off_t)j->total, POSIX_FADV_DONTNEED);
}

static void native_complete(struct blkcopy_job *j, struct native_slot *slot, int ret,
			    const struct bc_copy_stats *st)
{
	if (slot->busy) {
		slot->busy = false;
		j->inflight--;
	}
	if (ret == 0) {
		j->native_done += slot->piece.len;
		j->native_proven = true;
		for (int m = 0; m < BLKCOPY_METHOD_MAX; m++)
			j->stats.bytes[m] += st->bytes[m];
		return;
	}
	if ((ret == -EOPNOTSUPP || ret == -E2BIG) && !(j->flags & BLKCOPY_NOEMULATION))
		ret = fall_back(j, slot);
	if (ret) {
		if (slot->piece.dst < j->native_fail_low)
			j->native_fail_low = slot->piece.dst;
		stop(j, ret == -E2BIG ? -EOPNOTSUPP : ret);
	}
}

/* Until one piece succeeds, one at a time: a device that refuses copy refuses the first. */
static bool window_open(const struct blkcopy_job *j)
{
	return j->inflight < (j->native_proven ? j->nr_slots : 1);
}

static struct native_slot *free_slot(struct blkcopy_job *j)
{
	if (!window_open(j))
		return NULL;
	for (uint32_t i = 0; i < j->nr_slots; i++)
		if (!j->slots[i].busy)
			return &j->slots[i];
	return NULL;
}

static void native_issue(struct blkcopy_job *j)
{
	struct native_slot *slot;

	while (j->native_left && (slot = free_slot(j))) {
		struct bc_copy_stats st = { 0 };
		int ret;

		if (!bc_split_next(&j->nsplit, slot->segs, j->nsegs_cap, &slot->piece)) {
			j->native_left = false;
			return;
		}
		if (!j->queue) {
			ret = j->native->copy(j->src, j->dst, slot->segs, &slot->piece, &st);
			native_complete(j, slot, ret, &st);
			return;		/* one synchronous piece per call: callers stay responsive */
		}
		slot->busy = true;
		j->inflight++;
		ret = j->native->queue_submit(j->queue, slot->segs, &slot->piece,
					      (uint32_t)(slot - j->slots));
		if (ret)
			native_complete(j, slot, ret, &st);
	}
}

static void native_reap(struct blkcopy_job *j, bool wait)
{
	struct bc_native_cqe cqes[MAX_NATIVE_DEPTH];
	int n;

	if (!j->queue || !j->inflight)
		return;
	n = j->native->queue_reap(j->queue, cqes, MAX_NATIVE_DEPTH, wait);
	if (n < 0) {
		/* The queue broke: what it held is lost, so none of it counts as written. */
		for (uint32_t i = 0; i < j->nr_slots; i++) {
			if (j->slots[i].busy && j->slots[i].piece.dst < j->native_fail_low)
				j->native_fail_low = j->slots[i].piece.dst;
			j->slots[i].busy = false;
		}
		j->inflight = 0;
		stop(j, n);
		return;
	}
	for (int i = 0; i < n; i++) {
		struct bc_copy_stats st = { 0 };
		struct native_slot *slot;

		if (cqes[i].tag >= j->nr_slots || !j->slots[cqes[i].tag].busy)
			continue;	/* not ours: never trust a tag blindly */
		slot = &j->slots[cqes[i].tag];
		if (cqes[i].result == 0 && cqes[i].method < BLKCOPY_METHOD_MAX)
			st.bytes[cqes[i].method] = slot->piece.len;
		native_complete(j, slot, cqes[i].result, &st);
	}
}

/* Move native work along without blocking. */
static void native_step(struct blkcopy_job *j)
{
	if (!j->native_started) {
		int ret;

		j->native_started = true;
		ret = flush_caches(j);
		if (ret) {
			stop(j, ret);
			return;
		}
	}
	native_reap(j, false);
	native_issue(j);
	native_reap(j, false);
}

static bool native_active(const struct blkcopy_job *j)
{
	return j->native_left || j->inflight;
}

/* Native work that could go now, without waiting for a completion. */
static bool native_ready(const struct blkcopy_job *j)
{
	return j->native_left && window_open(j);
}

/* Block until either engine has a completion, a signal, or @timeout_ms. */
static void wait_both(struct blkcopy_job *j, int timeout_ms)
{
	struct epoll_event ev[2];

	if (j->epfd >= 0)
		epoll_wait(j->epfd, ev, 2, timeout_ms);
	else
		native_reap(j, true);
}

static void finish_up(struct bc_emu *emu, struct blkcopy_job *j)
{
	uint64_t done, low;
	int err;

	bc_emu_state(emu, &done, &low, &err);
	if (!j->error && err)
		j->error = err;
	if (!j->error && j->cancelled)
		j->error = -ECANCELED;
	if (j->native_started)
		invalidate_dst(j);
	/* fdatasync on a block device also flushes the drive's volatile cache. */
	if (!j->error && (j->flags & BLKCOPY_SYNC) && fdatasync(j->dst->fd))
		j->error = -errno;
	j->finished = true;
}

int blkcopy_job_wait(struct blkcopy_job *j, int timeout_ms)
{
	const int64_t deadline = timeout_ms > 0 ? bc_now_ms() + timeout_ms : 0;

	while (!j->finished) {
		int wait = timeout_ms;

		if (j->cancelled && !j->error)
			stop(j, -ECANCELED);
		if (native_active(j))
			native_step(j);
		if (timeout_ms > 0) {
			int64_t left = deadline - bc_now_ms();
			wait = left > 0 ? (int)left : 0;
		}

		int idle = bc_emu_run(j->emu, native_active(j) ? 0 : wait);
		if (idle < 0)
			j->native_left = false;	/* the ring failed: finish with its error */
		if (idle != 0 && !native_active(j)) {
			finish_up(j->emu, j);
			break;
		}
		if (timeout_ms == 0 || (timeout_ms > 0 && bc_now_ms() >= deadline))
			return 0;
		if (native_ready(j))
			continue;
		if (native_active(j))
			wait_both(j, wait);
		/* Back to the caller after one blocking pass: a signal may want an answer. */
		return 0;
	}
	return 1;
}

int blkcopy_job_poll(struct blkcopy_job *j)
{
	return blkcopy_job_wait(j, 0);
}

void blkcopy_job_progress(const struct blkcopy_job *j, struct blkcopy_progress *p)
{
	uint64_t edone, low;
	int err;

	bc_emu_state(j->emu, &edone, &low, &err);
	if (j->native_left && j->nsplit.dst < low)
		low = j->nsplit.dst;
	for (uint32_t i = 0; i < j->nr_slots; i++)
		if (j->slots[i].busy && j->slots[i].piece.dst < low)
			low = j->slots[i].piece.dst;
	if (j->native_fail_low < low)
		low = j->native_fail_low;
	*p = (struct blkcopy_progress){
		.total = j->total,
		.done = j->native_done + edone,
		.committed = low == UINT64_MAX ? j->total : low - j->dst_off,
		.native_bytes = j->native_done,
		.emulated_bytes = edone,
		.error = j->error ? j->error : err,
		.finished = j->finished,
	};
	memcpy(p->method_bytes, j->stats.bytes, sizeof(p->method_bytes));
	p->method_bytes[BLKCOPY_METHOD_EMULATE] = edone;
}

void blkcopy_job_cancel(struct blkcopy_job *j)
{
	j->cancelled = true;
}

int blkcopy_job_fd(const struct blkcopy_job *j)
{
	return j->epfd >= 0 ? j->epfd : bc_emu_fd(j->emu);
}

ssize_t blkcopy_job_finish(struct blkcopy_job *j, struct blkcopy_progress *res)
{
	ssize_t ret;

	if (!j)
		return -EINVAL;
	while (!blkcopy_job_wait(j, -1))
		;
	if (res)
		blkcopy_job_progress(j, res);
	ret = j->error ? j->error : (ssize_t)j->total;

	if (j->native)
		free_native(j);
	if (j->epfd >= 0)
		close(j->epfd);
	bc_emu_destroy(j->emu);
	while (j->fallbacks) {
		struct fallback *f = j->fallbacks;
		j->fallbacks = f->next;
		free(f);
	}
	free(j->spans);
	free(j);
	return ret;
}

ssize_t blkcopy_copy_ex(struct blkcopy_dev *src, const struct blkcopy_range *ranges, size_t nr,
			struct blkcopy_dev *dst, uint64_t dst_off,
			const struct blkcopy_opts *opts, struct blkcopy_progress *res)
{
	struct blkcopy_job *j;
	int ret = blkcopy_job_submit(src, ranges, nr, dst, dst_off, opts, &j);

	if (ret) {
		if (res)
			*res = (struct blkcopy_progress){ .error = ret, .finished = true };
		return ret;
	}
	return blkcopy_job_finish(j, res);
}

ssize_t blkcopy_copy(struct blkcopy_dev *src, const struct blkcopy_range *ranges, size_t nr,
		     struct blkcopy_dev *dst, uint64_t dst_off, unsigned int flags)
{
	const struct blkcopy_opts opts = { .flags = flags };

	return blkcopy_copy_ex(src, ranges, nr, dst, dst_off, &opts, NULL);
}

const char *blkcopy_method_name(enum blkcopy_method m)
{
	switch (m) {
	case BLKCOPY_METHOD_EMULATE: return "emulate";
	case BLKCOPY_METHOD_REFLINK: return "reflink";
	case BLKCOPY_METHOD_COPY_FILE_RANGE: return "copy_file_range";
	case BLKCOPY_METHOD_NVME_COPY: return "nvme_copy";
	case BLKCOPY_METHOD_SCSI_XCOPY: return "scsi_xcopy";
	case BLKCOPY_METHOD_MAX: break;
	}
	return NULL;
}

const char *blkcopy_strerror(int err)
{
	switch (err < 0 ? -err : err) {
	case ENODATA: return "zero-length range";
	case E2BIG: return "too many ranges";
	case EOVERFLOW: return "range arithmetic overflows";
	case EINVAL: return "invalid argument (offset or length not aligned to the logical block size?)";
	case ENXIO: return "source range past the end of the source";
	case ENOSPC: return "destination range past the end of the destination";
	case EROFS: return "destination is read-only";
	case EBADF: return "destination not opened for writing";
	case EADDRINUSE: return "source range overlaps the destination";
	case EOPNOTSUPP: return "native copy not available and emulation forbidden";
	case ECANCELED: return "copy cancelled";
	case ENOTBLK: return "not a block device or regular file";
	}
	return strerror(err < 0 ? -err : err);
}
