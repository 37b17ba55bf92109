/* SPDX-License-Identifier: MIT */
/*
 * device-mapper tables as the dm layer resolves them.  A target maps
 * [start, start + len) of its dm device onto legs: one for linear, nr_legs
 * chunk-interleaved for striped, none for a type blkcopy does not
 * understand (emulated through the node).
 */
#ifndef BLKCOPY_LAYER_DM_H
#define BLKCOPY_LAYER_DM_H

#include <stdbool.h>
#include <stdint.h>
#include <sys/types.h>

#include "../device.h"

struct bc_leg {
	struct blkcopy_dev *dev;	/* the device under the leg, owned by the table */
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

/* One dm device's table, resolved: its targets and the devices opened under it. */
struct bc_dm_table {
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

/* The dm layer's private data on a dm device: its resolved table, or why there is none. */
struct bc_dm_dev {
	struct bc_dm_table *table;
	char note[384];		/* a leg that could not be opened, or why the table is unresolved */
};

/* Parse one target of a table ("linear", "8:16 2048").  Sectors in, bytes out. */
int bc_dm_parse_target(const char *type, const char *params, uint64_t start_sectors,
		       uint64_t len_sectors, struct bc_target *t);
void bc_target_free(struct bc_target *t);
/* One level: byte @off of the table's device -> *@lower (NULL: not understood).  Run length. */
uint64_t bc_dm_table_map(const struct bc_dm_table *s, uint64_t off, uint64_t len,
			  struct blkcopy_dev **lower, uint64_t *lower_off);
struct dm_ioctl;
/*
 * The targets of a DM_TABLE_STATUS answer (@io, io->data_size bytes, as the
 * kernel filled it) into @s: 0, or -errno with @why in words.  Legs are
 * not opened.  @s's targets are the caller's to free, also on failure.
 */
int bc_dm_parse_status(const struct dm_ioctl *io, struct bc_dm_table *s, char *why,
		       size_t why_size);
/* @d's resolved table, or NULL (not dm, or not resolved). */
const struct bc_dm_table *bc_dm_table_of(const struct blkcopy_dev *d);

#endif
