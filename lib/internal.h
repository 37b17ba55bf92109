/* SPDX-License-Identifier: MIT */
/* Internal interfaces between the core and the backends.  Not installed. */
#ifndef BLKCOPY_INTERNAL_H
#define BLKCOPY_INTERNAL_H

#include <stdint.h>
#include <sys/types.h>
#include <time.h>

#include "blkcopy.h"

#define BC_SECTOR 512u
#define BC_DEFAULT_QUEUE_DEPTH 128u
#define BC_DEFAULT_INFLIGHT (16ull << 20)
#define BC_DEFAULT_CHUNK (1ull << 20)

struct bc_backend;
struct bc_stack;

static inline int64_t bc_now_ms(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

struct blkcopy_dev {
	char *path;
	int fd;			/* buffered */
	int fd_direct;		/* O_DIRECT, or -1 when the medium refuses it */
	unsigned int open_flags;
	enum blkcopy_kind kind;
	uint32_t lbs;		/* logical block size; 1 for files */
	uint32_t dio_align;	/* O_DIRECT offset/length/memory alignment */
	uint64_t capacity;
	bool read_only;
	bool partition;
	uint64_t part_start;
	dev_t rdev;		/* block devices: the node itself */
	dev_t whole;		/* block devices: the whole disk */
	/*
	 * Where the bytes live when a file holds them: the file itself, or a
	 * loop device's backing file (through a partition, too).  Device offset
	 * 0 is file offset base.  Filled by the stack resolver.
	 */
	struct bc_file_map {
		bool valid;
		int fd;		/* d->fd for files; opened by blkcopy for loops */
		bool own_fd;
		uint64_t base;
		dev_t st_dev;
		ino_t ino;
		uint32_t clone_align;	/* the file system's block size */
	} file;
	struct blkcopy_limits limits;	/* native limits; all 0 without a backend */
	bool offload_off;	/* the user switched native copy off */
	struct bc_stack *stack;	/* dm: the table, re-read for every request; else NULL */
	int depth;		/* 0: opened by the caller; n: n tables above it */
	unsigned int jobs;	/* jobs running on this handle: its stack must stay */
	const struct bc_backend *backend;	/* native backend, or NULL */
	void *backend_data;
	/* Devices without a descriptor (iSCSI): fd and fd_direct are -1. */
	const struct bc_remote *remote;
	void *remote_data;
	uint32_t max_io;	/* remote: largest single read or write, bytes */
	char reason[384];	/* why native copy is or is not available */
	char error[384];	/* the device's own account of the last failed native command */
};

/*
 * A span: bytes that go from src to dst unchanged in length.  A request is a
 * list of spans in destination order; its destination is contiguous.
 */
struct bc_span {
	uint64_t src;
	uint64_t len;
};

/* One piece of a plan: consecutive segments whose destination is contiguous. */
struct bc_piece {
	uint64_t dst;		/* destination offset of the first byte */
	uint64_t len;		/* sum of the segment lengths */
	uint32_t nr_segs;
};

/* Limits the splitter honours, in bytes.  0 means unlimited. */
struct bc_split_limits {
	uint64_t max_piece_bytes;
	uint64_t max_seg_bytes;
	uint32_t max_segs;
	uint32_t align;		/* all cut points are multiples of this (>= 1) */
};

/*
 * Cuts a span list into pieces.  Cut points inside a span are aligned to
 * @align relative to the span start, so a span that is aligned stays so.
 */
struct bc_splitter {
	const struct bc_span *spans;
	size_t nr_spans;
	size_t idx;		/* current span */
	uint64_t skip;		/* bytes of spans[idx] already handed out */
	uint64_t dst;		/* destination of the next byte */
	struct bc_split_limits lim;
};

int bc_split_init(struct bc_splitter *s, const struct bc_span *spans, size_t nr,
		  uint64_t dst_off, const struct bc_split_limits *lim);
/*
 * Next piece: writes up to lim.max_segs (or @cap, the smaller) segments
 * into @segs.  Returns 1 with *@piece filled, 0 when nothing is left.
 */
int bc_split_next(struct bc_splitter *s, struct bc_span *segs, uint32_t cap,
		  struct bc_piece *piece);
/* Translate device limits (sectors) into splitter limits (bytes). */
int bc_split_limits_from(const struct blkcopy_limits *l, uint32_t align,
			 struct bc_split_limits *out);

/*
 * Request preparation: validate, then copy the ranges into spans with
 * adjacent ranges coalesced.  Returns the number of spans or -errno.
 */
int bc_validate(const struct blkcopy_dev *src, const struct blkcopy_range *ranges, size_t nr,
		const struct blkcopy_dev *dst, uint64_t dst_off, unsigned int flags,
		uint64_t *total, size_t *bad_range);
ssize_t bc_coalesce(const struct blkcopy_range *ranges, size_t nr, struct bc_span **spansp);

/*
 * Same medium: same file or same whole disk.  When true, *@abase and *@bbase
 * turn device offsets of @a and @b into offsets on that medium.
 */
bool bc_same_medium(const struct blkcopy_dev *a, const struct blkcopy_dev *b,
		    uint64_t *abase, uint64_t *bbase);

/* A sysfs attribute of a block device ("partition", "loop/backing_file"), first line only. */
int bc_sysfs_read(dev_t devno, const char *attr, char *buf, size_t size);

/* The kernel's name of a "block" or "char" device ("nvme0n1", "ng0n1"), from its uevent. */
int bc_sysfs_devname(const char *class, dev_t devno, char *name, size_t size);

/*
 * A new descriptor on the whole disk under @d (a partition's disk, else @d
 * itself), for commands the kernel takes only there.  -errno on failure.
 */
int bc_open_whole(const struct blkcopy_dev *d);

/* blkcopy_open() for a device @depth tables under the one the caller opened. */
int bc_open_depth(const char *path, unsigned int flags, int depth, struct blkcopy_dev **devp);

/*
 * device-mapper (lib/dm.c).  A target maps [start, start + len) of its dm
 * device onto legs: one for linear, nr_legs chunk-interleaved for striped,
 * none for a type blkcopy does not understand (emulated through the node).
 */
struct bc_leg {
	struct blkcopy_dev *dev;	/* the device under the leg, owned by the stack */
	uint64_t offset;		/* bytes on dev */
};

struct bc_target {
	char type[16];		/* dm's target type name */
	uint64_t start, len;	/* bytes on the dm device */
	bool striped;
	uint64_t chunk;		/* striped: bytes per chunk */
	uint32_t nr_legs;	/* 0: not understood, or a leg could not be opened */
	struct bc_leg *legs;
	dev_t *leg_devs;	/* as the table names them */
};

struct bc_stack {
	char name[128];		/* dm's name of the device */
	uint32_t flags;		/* DM_*_FLAG, from the last table status */
	char *signature;	/* what a table change would change; compared by verify */
	struct bc_target *targets;	/* sorted, back to back */
	size_t nr_targets;
	struct blkcopy_dev **lower;	/* devices opened under this one */
	size_t nr_lower;
	unsigned int open_flags;
	int depth;
};

/* Parse one target of a table ("linear", "8:16 2048").  Sectors in, bytes out. */
int bc_dm_parse_target(const char *type, const char *params, uint64_t start_sectors,
		       uint64_t len_sectors, struct bc_target *t);
void bc_target_free(struct bc_target *t);
/* One level: byte @off of the stack's device -> *@lower (NULL: not understood).  Run length. */
uint64_t bc_stack_map_one(const struct bc_stack *s, uint64_t off, uint64_t len,
			  struct blkcopy_dev **lower, uint64_t *lower_off);
/*
 * All levels: byte @off of @d -> the leaf holding it, for at most @len
 * bytes.  The leaf is @d itself for devices without a stack, and the dm
 * device whose target blkcopy does not understand when it meets one.
 * Returns the run length (>0), or 0 for an offset outside every table.
 */
uint64_t bc_stack_map(const struct blkcopy_dev *d, uint64_t off, uint64_t len,
		      struct blkcopy_dev **leaf, uint64_t *leaf_off);
/*
 * (Re)read the tables of @d and every dm device under it; open new legs; set
 * the stacked limits.  No-op for other kinds.  -EBUSY (suspended) and
 * -ESTALE (changed under a running job) keep the resolution and fill
 * d->error; other failures leave @d emulated through its node.
 */
int bc_stack_refresh(struct blkcopy_dev *d);
/* 0 while every table under @d is as resolved; -ESTALE, -EBUSY (suspended) with d->error. */
int bc_stack_verify(struct blkcopy_dev *d);
void bc_stack_release(struct blkcopy_dev *d);

/* Stack resolution (lib/stack.c): find the file behind a file or loop device. */
void bc_resolve_file(struct blkcopy_dev *d);
void bc_release_file(struct blkcopy_dev *d);

/* Bytes a native piece copied, by method; added to the job only when the piece succeeds. */
struct bc_copy_stats {
	uint64_t bytes[BLKCOPY_METHOD_MAX];
};

/* A completed native piece, from a backend queue. */
struct bc_native_cqe {
	uint32_t tag;
	int result;		/* as for bc_backend.copy */
	enum blkcopy_method method;
};

struct bc_native_queue;

/*
 * A native backend.  The core knows backends only through this table.
 *   probe:  claim @dev (return 0) and fill dev->limits and dev->reason, or
 *           return -ENODEV to let the next backend look.
 *   pair:   0 when a copy from @src to @dst can be native, with the limits
 *           the pair imposes in *@lim; -EOPNOTSUPP otherwise.
 *   copy:   copy one planned piece natively and synchronously, adding the
 *           bytes to @stats by method.  Returns 0,
 *           -EOPNOTSUPP or -E2BIG when the device refused the piece before
 *           writing (the core then emulates that piece), or another -errno
 *           (the core stops the copy).
 *   close:  release backend_data.
 * Backends that can keep many commands in flight also provide a queue
 * (all four or none):
 *   queue_create:  a queue for @src -> @dst with room for @depth pieces;
 *                  -EOPNOTSUPP makes the core use copy() instead.  A backend
 *                  whose queue_create never says -EOPNOTSUPP needs no copy().
 *   queue_submit:  queue one piece under @tag; @segs may be reused on return.
 *                  An error return means the piece never reached the device.
 *   queue_reap:    send what is queued, then collect up to @max completions,
 *                  waiting for one if @wait.  Returns how many, or -errno when
 *                  the queue itself failed.
 *   queue_fd:      readable when completions wait, for the job's poll loop.
 *   queue_destroy: after every submitted piece has been reaped.
 */
struct bc_backend {
	const char *name;
	int (*probe)(struct blkcopy_dev *dev);
	int (*pair)(const struct blkcopy_dev *src, const struct blkcopy_dev *dst,
		    struct blkcopy_limits *lim);
	int (*copy)(struct blkcopy_dev *src, struct blkcopy_dev *dst,
		    const struct bc_span *segs, const struct bc_piece *piece,
		    struct bc_copy_stats *stats);
	void (*close)(struct blkcopy_dev *dev);

	int (*queue_create)(struct blkcopy_dev *src, struct blkcopy_dev *dst, uint32_t depth,
			    struct bc_native_queue **qp);
	int (*queue_submit)(struct bc_native_queue *q, const struct bc_span *segs,
			    const struct bc_piece *piece, uint32_t tag);
	int (*queue_reap)(struct bc_native_queue *q, struct bc_native_cqe *cqes, uint32_t max,
			  bool wait);
	int (*queue_fd)(const struct bc_native_queue *q);
	void (*queue_destroy)(struct bc_native_queue *q);
};

/*
 * A device reached by messages rather than through a file descriptor (an
 * iSCSI LUN).  Emulation sends its reads and writes here and polls fd() for
 * their completions, calling service() with what poll said, or with 0 at
 * least once a second while commands are in flight (command timeouts are
 * checked there).  Completions arrive as done(arg, tag, bytes or -errno),
 * only from inside service() or remote_close().
 *   submit:     start a read or write of @len bytes at byte @off; -errno when
 *               it never started (done is then not called).
 *   fd:         the descriptor to poll for POLLIN, or -1 once the session is gone.
 *   want_write: queued output waits for POLLOUT.
 *   inflight:   commands submitted and not completed.
 *   flush:      make written data durable (SYNCHRONIZE CACHE).
 *   same_lu:    @a and @b, both remote, are the same logical unit.
 *   abandon:    complete every command in flight now, with -ECANCELED (the
 *               target may still carry them out).
 *   close:      end the session.
 */
typedef void (*bc_remote_done)(void *arg, uint64_t tag, int res);

struct bc_remote {
	int (*submit)(struct blkcopy_dev *d, bool write, void *buf, uint32_t len, uint64_t off,
		      bc_remote_done done, void *arg, uint64_t tag);
	int (*fd)(const struct blkcopy_dev *d);
	bool (*want_write)(const struct blkcopy_dev *d);
	void (*service)(struct blkcopy_dev *d, int revents);
	uint32_t (*inflight)(const struct blkcopy_dev *d);
	int (*flush)(struct blkcopy_dev *d);
	bool (*same_lu)(const struct blkcopy_dev *a, const struct blkcopy_dev *b);
	void (*abandon)(struct blkcopy_dev *d);
	void (*close)(struct blkcopy_dev *d);
};

/* iscsi:// URLs (lib/backend/iscsi.c): fill @d (path, kind, geometry, remote).  -errno with @why. */
bool bc_is_iscsi_url(const char *path);
int bc_iscsi_open(struct blkcopy_dev *d, const char *url, char *why, size_t why_size);

/* Make what was written to @d durable: fdatasync, or the remote's flush. */
int bc_dev_flush(struct blkcopy_dev *d);

/* The native backends, in probe order, NULL-terminated (lib/backends.c). */
extern const struct bc_backend *const bc_backends[];
extern const struct bc_backend bc_backend_file;
extern const struct bc_backend bc_backend_nvme;
extern const struct bc_backend bc_backend_scsi;
extern const struct bc_backend bc_backend_iscsi;

/* NVMe passthrough node (/dev/ngXnY) -> its block node's path; 0 or -errno. */
int bc_nvme_block_path(dev_t chr, char *path, size_t size);

/* The emulation engine (lib/backend/emulate.c). */
struct bc_emu;
struct bc_emu_params {
	uint32_t queue_depth;
	uint64_t max_inflight;
	uint64_t chunk_size;
	uint64_t expected_bytes;	/* the request's size: no more buffer than it can use */
	bool direct;		/* both ends O_DIRECT */
};
int bc_emu_create(struct blkcopy_dev *src, struct blkcopy_dev *dst,
		  const struct bc_emu_params *p, struct bc_emu **emup);
/*
 * Queue spans whose destination starts at @dst and is contiguous.  With
 * @copy the engine keeps its own copy of @spans; else they must outlive it.
 */
int bc_emu_add(struct bc_emu *e, const struct bc_span *spans, size_t nr, uint64_t dst,
	       bool copy);
/* Spans queued in runs not yet consumed: how far emulation lags behind planning. */
size_t bc_emu_queued(const struct bc_emu *e);
/* Issue, then reap for up to @timeout_ms (-1 forever, 0 never blocks).  1 when idle. */
int bc_emu_run(struct bc_emu *e, int timeout_ms);
void bc_emu_stop(struct bc_emu *e, int error);
/* Bytes written, any order; lowest destination offset not known written; first error. */
void bc_emu_state(const struct bc_emu *e, uint64_t *done, uint64_t *low_pending, int *error);
bool bc_emu_direct_ok(const struct blkcopy_dev *src, const struct blkcopy_dev *dst,
		      const struct bc_span *spans, size_t nr, uint64_t dst_off);
int bc_emu_fd(const struct bc_emu *e);
void bc_emu_destroy(struct bc_emu *e);

#endif
