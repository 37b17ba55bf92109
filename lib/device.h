/* SPDX-License-Identifier: MIT */
/*
 * A device handle as the library sees it.  The core fills the generic part;
 * each transport, layer and backend keeps its own state in its private
 * pointer and nowhere else.
 */
#ifndef BLKCOPY_DEVICE_H
#define BLKCOPY_DEVICE_H

#include <stdbool.h>
#include <stdint.h>
#include <string.h>
#include <sys/types.h>

#include "blkcopy.h"

#define BC_MAX_LAYERS 4		/* layers on one device: partition, loop, dm */

struct bc_transport;
struct bc_layer;
struct bc_backend;

/*
 * Where a device's bytes live.  Two devices whose media have the same id
 * share bytes: medium offset = base + device offset.  The transport sets
 * the id (a file, a whole disk, a logical unit); a partition moves base.
 */
struct bc_medium {
	uint8_t id[48];
	uint8_t id_len;		/* 0: unknown, never the same as anything */
	uint64_t base;
	dev_t disk;		/* block devices: the whole disk; else 0 */
};

/*
 * A regular file that holds a device's bytes: the file itself, or a loop
 * device's backing file (through a partition, too).  Device offset 0 is
 * file offset base.  Filled by the file transport or the loop layer; the
 * file backend copies between such files.
 */
struct bc_backing_file {
	bool valid;
	int fd;
	bool own_fd;		/* opened by the loop layer: closed with the handle */
	struct bc_medium medium;
	dev_t fs;		/* the file system holding it (st_dev) */
	uint32_t clone_align;	/* the file system's block size */
};

/* A zoned block device's geometry (queue/zoned and friends); model NONE elsewhere. */
struct bc_zoned {
	enum blkcopy_zoned model;
	uint64_t zone_size;	/* bytes */
	uint32_t nr_zones;
	uint32_t max_open, max_active;	/* 0: no limit */
};

struct bc_layer_slot {
	const struct bc_layer *ops;
	void *data;
};

struct blkcopy_dev {
	char *path;
	unsigned int open_flags;
	int depth;		/* 0: opened by the caller; n: n tables above it */
	enum blkcopy_kind kind;

	/* Geometry, from the transport. */
	uint32_t lbs;		/* logical block size; 1 for files */
	uint32_t dio_align;	/* O_DIRECT offset/length/memory alignment */
	uint64_t capacity;
	bool read_only;
	dev_t rdev;		/* block devices: the node itself; else 0 */
	struct bc_medium medium;
	struct bc_backing_file backing;
	struct bc_zoned zoned;

	const struct bc_transport *transport;
	void *transport_data;
	struct bc_layer_slot layers[BC_MAX_LAYERS];
	uint32_t nr_layers;
	const struct bc_backend *backend;	/* native backend, or NULL */
	void *backend_data;

	/* What the backend's probe said: its limits, or why it would not claim @d. */
	struct blkcopy_limits probed;
	char probe_reason[384];
	/*
	 * What the device shows: settled by device.c alone, from the layers
	 * (a stacked device takes its leaves'), else from the probe.
	 */
	struct blkcopy_limits limits;	/* native limits; all 0 without native copy */
	char reason[384];	/* why native copy is or is not available */
	bool offload_off;	/* the user switched native copy off */

	unsigned int jobs;	/* jobs running on this handle: its tables must stay */
	char error[384];	/* the device's own account of the last failed command */
};

/*
 * Open a device @depth tables under the one the caller opened: the one
 * function through which a layer reaches the devices below it.
 */
int bc_open_lower(const char *path, unsigned int flags, int depth, struct blkcopy_dev **devp);

/*
 * Re-read what @d's layers resolved (device-mapper tables), then settle its
 * limits again; @pinned: a job maps through the current view (a change is
 * then -ESTALE).  -EBUSY, -ESTALE and -ENOMEM with d->error; other failures
 * leave @d emulated, with the reason.
 */
int bc_dev_refresh(struct blkcopy_dev *d, bool pinned);

/* A medium named by @len bytes of @id, tagged by its type ('b' disk, 'f' file, 'i' iSCSI LU). */
static inline void bc_medium_set(struct bc_medium *m, char type, const void *id, size_t len)
{
	if (len > sizeof(m->id) - 1)
		len = sizeof(m->id) - 1;
	m->id[0] = (uint8_t)type;
	memcpy(m->id + 1, id, len);
	m->id_len = (uint8_t)(1 + len);
}

/* The whole disk @disk as the medium. */
static inline void bc_medium_set_disk(struct bc_medium *m, dev_t disk)
{
	const uint64_t v = disk;

	bc_medium_set(m, 'b', &v, sizeof(v));
	m->disk = disk;
}

/* The regular file (@st_dev, @ino) as the medium. */
static inline void bc_medium_set_file(struct bc_medium *m, dev_t st_dev, ino_t ino)
{
	const uint64_t v[2] = { st_dev, ino };

	bc_medium_set(m, 'f', v, sizeof(v));
}

/* Two media are one: the same file, whole disk or logical unit. */
static inline bool bc_medium_same(const struct bc_medium *a, const struct bc_medium *b)
{
	return a->id_len && a->id_len == b->id_len && !memcmp(a->id, b->id, a->id_len);
}

/* Make what was written to @d durable (fdatasync, SYNCHRONIZE CACHE). */
int bc_dev_flush(struct blkcopy_dev *d);

#endif
