/* SPDX-License-Identifier: MIT */
/*
 * Layers: how a device maps onto what lies below it.  A partition is a
 * window onto its whole disk, a loop device onto its backing file, a
 * device-mapper device onto the devices its table names.  The core maps,
 * refreshes and verifies through this table only.
 */
#ifndef BLKCOPY_LAYER_H
#define BLKCOPY_LAYER_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "device.h"

/* Devices stacked on devices (dm over dm over ...): more than this is surely a loop. */
#define BC_MAX_STACK_DEPTH 8

/*
 * A layer.  Every operation but probe is optional.
 *   probe:    claim @d (return 0, with private data in *@data) or return
 *             -ENODEV; another -errno fails the open.  A layer that
 *             claims but cannot resolve what lies below still returns 0
 *             and says why through limits() (the device is emulated).
 *   maps:     the layer maps @d onto devices below (its view is resolved).
 *   map:      byte @off of @d -> *@lower at *@lower_off, for the returned
 *             run length (at most @len; 0: outside the mapping).  *@lower
 *             NULL: @d is where the mapping stops (a target blkcopy does
 *             not understand).  Layers without map() leave @d a leaf.
 *   refresh:  re-read what may have changed since the last request and
 *             open what is new below; @pinned: a job still maps through
 *             the old view (a change is then -ESTALE).  -EBUSY, -ESTALE
 *             and -ENOMEM with d->error are the caller's business; other
 *             failures leave @d emulated (say why through limits()).
 *   verify:   0 while everything below is as last refreshed; -ESTALE or
 *             -EBUSY with d->error otherwise.
 *   limits:   a stacked device's native limits, from the devices below
 *             (0, with a reason); or -ENODEV to let backends decide, with
 *             a reason when the layer knows why @d has no native copy
 *             (a loop device whose backing file is gone).
 *   info:     add the layer's facts to @info (a partition's start).
 *   release:  free @data and close what the layer opened below.
 */
struct bc_layer {
	const char *name;
	int (*probe)(struct blkcopy_dev *d, void **data);
	bool (*maps)(const struct blkcopy_dev *d);
	uint64_t (*map)(const struct blkcopy_dev *d, uint64_t off, uint64_t len,
			struct blkcopy_dev **lower, uint64_t *lower_off);
	int (*refresh)(struct blkcopy_dev *d, bool pinned);
	int (*verify)(struct blkcopy_dev *d);
	int (*limits)(const struct blkcopy_dev *d, struct blkcopy_limits *lim, char *reason,
		      size_t reason_size);
	void (*info)(const struct blkcopy_dev *d, struct blkcopy_info *info);
	void (*release)(struct blkcopy_dev *d, void *data);
};

/* The layers, in probe order (a partition first: the layers after it see its disk). */
extern const struct bc_layer *const bc_layers[];
extern const struct bc_layer bc_layer_partition;
extern const struct bc_layer bc_layer_loop;
extern const struct bc_layer bc_layer_dm;

/* Walks over a device's layers (lib/layer.c). */

/* The private data of layer @ops on @d, or NULL when @d has no such layer. */
void *bc_layer_data(const struct blkcopy_dev *d, const struct bc_layer *ops);

/*
 * Byte @off of @d -> the leaf holding it, for at most @len bytes: @d
 * itself when no layer maps it, else the lowest device the mappings reach.
 * Returns the run length (>0), or 0 for an offset outside the mapping.
 */
uint64_t bc_map_leaf(const struct blkcopy_dev *d, uint64_t off, uint64_t len,
		     struct blkcopy_dev **leaf, uint64_t *leaf_off);
/* A layer of @d maps it onto other devices (the request must be mapped run by run). */
bool bc_is_stacked(const struct blkcopy_dev *d);
/* Every layer's probe, in table order.  -errno fails the open. */
int bc_layers_probe(struct blkcopy_dev *d);
/* Every layer's refresh; *@refreshed when some layer has one (limits may have changed). */
int bc_layers_refresh(struct blkcopy_dev *d, bool pinned, bool *refreshed);
/* Every layer's verify: the first failure. */
int bc_layers_verify(struct blkcopy_dev *d);
/* The first layer that decides @d's limits: 0, or -ENODEV. */
int bc_layers_limits(const struct blkcopy_dev *d, struct blkcopy_limits *lim, char *reason,
		     size_t reason_size);
void bc_layers_info(const struct blkcopy_dev *d, struct blkcopy_info *info);
void bc_layers_release(struct blkcopy_dev *d);

#endif
