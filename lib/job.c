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
#include <unistd.h>

#include "internal.h"

#define MAX_QUEUE_DEPTH 4096u

/* Spans handed to emulation after a native refusal; they must outlive the engine. */
struct fallback {
	struct fallback *next;
	struct bc_span segs[];
};

struct blkcopy_job {
	struct blkcopy_dev *src, *dst;
	struct bc_span *spans;
	size_t nr_spans;
	uint64_t dst_off;
	uint64_t total;
	unsigned int flags;

	struct bc_emu *emu;

	const struct bc_backend *native;	/* NULL: all emulated */
	struct bc_splitter nsplit;
	struct bc_span *nsegs;
	uint32_t nsegs_cap;
	bool native_left;
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

static int start_native(struct blkcopy_job *j, const struct blkcopy_limits *lim)
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
	j->nsegs_cap = sl.max_segs < 4096 ? sl.max_segs : 4096;
	j->nsegs = calloc(j->nsegs_cap, sizeof(*j->nsegs));
	if (!j->nsegs)
		return -ENOMEM;
	j->native_left = true;
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
		ret = start_native(j, &lim);
		/* Limits too small to cut anything: the pair is not native after all. */
		if (ret == -EOPNOTSUPP && !(o.flags & BLKCOPY_NOEMULATION))
			j->native = NULL;
		else if (ret)
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
	bc_emu_destroy(j->emu);
	free(j->nsegs);
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

static int fall_back(struct blkcopy_job *j, const struct bc_piece *piece)
{
	struct fallback *f = malloc(sizeof(*f) + piece->nr_segs * sizeof(f->segs[0]));

	if (!f)
		return -ENOMEM;
	memcpy(f->segs, j->nsegs, piece->nr_segs * sizeof(f->segs[0]));
	f->next = j->fallbacks;
	j->fallbacks = f;
	return bc_emu_add(j->emu, f->segs, piece->nr_segs, piece->dst);
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

/* Run one native piece. */
static void native_step(struct blkcopy_job *j)
{
	struct bc_copy_stats st = { 0 };
	struct bc_piece piece;
	int ret;

	if (!j->native_started) {
		j->native_started = true;
		ret = flush_caches(j);
		if (ret) {
			stop(j, ret);
			return;
		}
	}
	if (!bc_split_next(&j->nsplit, j->nsegs, j->nsegs_cap, &piece)) {
		j->native_left = false;
		return;
	}
	ret = j->native->copy(j->src, j->dst, j->nsegs, &piece, &st);
	if (ret == 0) {
		j->native_done += piece.len;
		for (int m = 0; m < BLKCOPY_METHOD_MAX; m++)
			j->stats.bytes[m] += st.bytes[m];
		return;
	}
	if ((ret == -EOPNOTSUPP || ret == -E2BIG) && !(j->flags & BLKCOPY_NOEMULATION))
		ret = fall_back(j, &piece);
	if (ret) {
		j->native_fail_low = piece.dst;
		stop(j, ret == -E2BIG ? -EOPNOTSUPP : ret);
	}
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
		if (j->native_left) {
			native_step(j);
			wait = 0;	/* keep native commands going while emulation runs */
		} else if (timeout_ms > 0) {
			int64_t left = deadline - bc_now_ms();
			wait = left > 0 ? (int)left : 0;
		}

		int idle = bc_emu_run(j->emu, wait);
		if (idle < 0)
			j->native_left = false;	/* the ring failed: finish with its error */
		if (idle != 0 && !j->native_left) {
			finish_up(j->emu, j);
			break;
		}
		/* Back to the caller on a timeout, a signal, or after one pass of a poll. */
		if (timeout_ms == 0 || (timeout_ms > 0 && bc_now_ms() >= deadline) ||
		    (idle == 0 && wait != 0))
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
	return bc_emu_fd(j->emu);
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

	bc_emu_destroy(j->emu);
	while (j->fallbacks) {
		struct fallback *f = j->fallbacks;
		j->fallbacks = f->next;
		free(f);
	}
	free(j->nsegs);
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
