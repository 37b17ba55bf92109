/* SPDX-License-Identifier: MIT */
/*
 * Transports: how bytes move to and from a device.  A descriptor (files and
 * block devices) or a session (an iSCSI LUN).  The core opens, flushes and
 * emulates through this table only.
 */
#ifndef BLKCOPY_TRANSPORT_H
#define BLKCOPY_TRANSPORT_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "device.h"

struct io_uring;
struct io_uring_sqe;

/*
 * One end of the emulation engine (its source or its destination), lent
 * to the device's transport.  The engine owns one io_uring for both ends:
 * a transport with a descriptor queues its reads and writes there; one
 * without (a network session) arms polls there and completes its commands
 * through done().
 */
struct bc_io_end {
	struct blkcopy_dev *dev;
	struct io_uring *ring;
	uint32_t index;		/* 0: source, 1: destination; names this end's ring events */
	bool direct;		/* O_DIRECT descriptors */
	int fd;			/* the descriptor the ring uses, or -1 */
	int fixed_file;		/* its registered file index, or -1 */
	bool fixed_bufs;	/* buffer index i is registered */
	void (*done)(void *engine, uint64_t tag, int res);
	void *engine;
	void *priv;		/* the transport's state for this end */
};

/* A ring completion that belongs to a transport, not to a read or write: see bc_io_event_tag(). */
#define BC_IO_EVENT (0xffffffffull << 32)
static inline uint64_t bc_io_event_tag(const struct bc_io_end *e, uint32_t what)
{
	return BC_IO_EVENT | (uint64_t)e->index << 16 | what;
}

/* A free SQE of the engine's ring (submitting what is queued when full), or NULL. */
struct io_uring_sqe *bc_io_sqe(struct bc_io_end *e);

/*
 * A transport.  The core knows transports only through this table.
 *   claims:      @path is this transport's (an iscsi:// URL).  Looks only;
 *                the last transport registered claims everything left.
 *   open:        open @path into @d: geometry (lbs, dio_align, capacity,
 *                read_only, rdev), medium, kind, backing file of a regular
 *                file.  -errno with @why in words.
 *   kind:        what @d is, once its layers are probed (a partition's
 *                disk is known then).
 *   close:       release transport_data.
 *   flush:       make written data durable.
 *   writeback:   write dirty page cache back (before native commands,
 *                which bypass it); NULL where there is no page cache.
 *   invalidate:  drop cached pages of a byte range (after native
 *                commands); NULL where there is no page cache.
 *   report_zones: up to @nr zones of a zoned device (the core asks only
 *                those whose d->zoned says so) from the one holding @off
 *                on; the number filled or -errno.  NULL: never zoned.
 *   zone_sync:   after native commands wrote into @z (a sequential zone,
 *                written part way) behind the kernel's back, make the
 *                kernel's cached write pointer of @z the device's again
 *                (optional).
 * Emulation's data path:
 *   direct_ok:   O_DIRECT can be used on @d.
 *   io_max:      the largest single read or write, bytes.
 *   io_open:     set up @e (e->fd for a descriptor the ring can use, or -1).
 *   io_submit:   start a read or write of @len bytes at @off into @buf
 *                (buffer index @buf_index when e->fixed_bufs), completing
 *                with @tag: in the ring, or through e->done().  0 when
 *                started, -EAGAIN when there is no room now (nothing
 *                happened), another -errno when it failed at once.
 *   io_arm:      before the engine waits: push queued output, arm the
 *                ring to wake for this end's events (optional).
 *   io_event:    a ring completion with bc_io_event_tag(e, what) (optional).
 *   io_inflight: commands started and not completed through done() (optional).
 *   io_abandon:  complete every such command now with -ECANCELED (optional).
 *   io_close:    release e->priv (optional).
 */
struct bc_transport {
	const char *name;
	bool (*claims)(const char *path);
	int (*open)(struct blkcopy_dev *d, const char *path, char *why, size_t why_size);
	enum blkcopy_kind (*kind)(const struct blkcopy_dev *d);
	void (*close)(struct blkcopy_dev *d);
	int (*flush)(struct blkcopy_dev *d);
	int (*writeback)(struct blkcopy_dev *d);
	void (*invalidate)(struct blkcopy_dev *d, uint64_t off, uint64_t len);
	ssize_t (*report_zones)(struct blkcopy_dev *d, uint64_t off, struct blkcopy_zone *z,
				size_t nr);
	void (*zone_sync)(struct blkcopy_dev *d, const struct blkcopy_zone *z);

	bool (*direct_ok)(const struct blkcopy_dev *d);
	uint32_t (*io_max)(const struct blkcopy_dev *d);
	int (*io_open)(struct bc_io_end *e);
	int (*io_submit)(struct bc_io_end *e, bool write, void *buf, uint32_t len, uint64_t off,
			 int buf_index, uint64_t tag);
	void (*io_arm)(struct bc_io_end *e);
	void (*io_event)(struct bc_io_end *e, uint32_t what, int res);
	uint32_t (*io_inflight)(const struct bc_io_end *e);
	void (*io_abandon)(struct bc_io_end *e);
	void (*io_close)(struct bc_io_end *e);
};

/* The transports, in claim order, NULL-terminated (lib/transports.c). */
extern const struct bc_transport *const bc_transports[];
extern const struct bc_transport bc_transport_fd;
extern const struct bc_transport bc_transport_iscsi;

#endif
