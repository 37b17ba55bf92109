/* SPDX-License-Identifier: MIT */
/* Walks over a device's layers: probing, mapping down to the leaves, refreshing, verifying. */
#include <errno.h>

#include "layer.h"

const struct bc_layer *const bc_layers[] = {
	&bc_layer_partition,
	&bc_layer_loop,
	&bc_layer_dm,
	NULL,
};

void *bc_layer_data(const struct blkcopy_dev *d, const struct bc_layer *ops)
{
	for (uint32_t i = 0; i < d->nr_layers; i++)
		if (d->layers[i].ops == ops)
			return d->layers[i].data;
	return NULL;
}

int bc_layers_probe(struct blkcopy_dev *d)
{
	for (const struct bc_layer *const *l = bc_layers; *l; l++) {
		void *data = NULL;
		int ret;

		if (d->nr_layers == BC_MAX_LAYERS)
			return -ELOOP;
		ret = (*l)->probe(d, &data);
		if (ret == -ENODEV)
			continue;
		if (ret)
			return ret;
		d->layers[d->nr_layers++] = (struct bc_layer_slot){ .ops = *l, .data = data };
	}
	return 0;
}

/* The layer of @d that maps it onto devices below, or NULL. */
static const struct bc_layer *mapping_layer(const struct blkcopy_dev *d)
{
	for (uint32_t i = 0; i < d->nr_layers; i++) {
		const struct bc_layer *l = d->layers[i].ops;

		if (l->map && l->maps(d))
			return l;
	}
	return NULL;
}

bool bc_is_stacked(const struct blkcopy_dev *d)
{
	return mapping_layer(d) != NULL;
}

uint64_t bc_map_leaf(const struct blkcopy_dev *d, uint64_t off, uint64_t len,
		     struct blkcopy_dev **leaf, uint64_t *leaf_off)
{
	struct blkcopy_dev *cur = (struct blkcopy_dev *)d;
	const struct bc_layer *l;

	*leaf = cur;
	*leaf_off = off;
	for (int depth = 0; (l = mapping_layer(cur)) && depth <= BC_MAX_STACK_DEPTH; depth++) {
		struct blkcopy_dev *lower;
		uint64_t lower_off, run = l->map(cur, *leaf_off, len, &lower, &lower_off);

		if (!run)
			return 0;	/* past the mapping: the caller validated against capacity */
		len = run;
		if (!lower)
			break;		/* not understood below @cur: the leaf is @cur */
		cur = lower;
		*leaf = cur;
		*leaf_off = lower_off;
	}
	return len;
}

int bc_layers_refresh(struct blkcopy_dev *d, bool pinned, bool *refreshed)
{
	int ret = 0;

	*refreshed = false;
	for (uint32_t i = 0; i < d->nr_layers && !ret; i++) {
		const struct bc_layer *l = d->layers[i].ops;

		if (l->refresh) {
			ret = l->refresh(d, pinned);
			*refreshed = true;
		}
	}
	return ret;
}

int bc_layers_verify(struct blkcopy_dev *d)
{
	for (uint32_t i = 0; i < d->nr_layers; i++) {
		const struct bc_layer *l = d->layers[i].ops;
		int ret = l->verify ? l->verify(d) : 0;

		if (ret)
			return ret;
	}
	return 0;
}

int bc_layers_limits(const struct blkcopy_dev *d, struct blkcopy_limits *lim, char *reason,
		     size_t reason_size)
{
	int ret = -ENODEV;

	for (uint32_t i = 0; i < d->nr_layers && ret; i++) {
		const struct bc_layer *l = d->layers[i].ops;

		if (l->limits)
			ret = l->limits(d, lim, reason, reason_size);
	}
	return ret;
}

void bc_layers_info(const struct blkcopy_dev *d, struct blkcopy_info *info)
{
	for (uint32_t i = 0; i < d->nr_layers; i++)
		if (d->layers[i].ops->info)
			d->layers[i].ops->info(d, info);
}

void bc_layers_release(struct blkcopy_dev *d)
{
	while (d->nr_layers) {
		const struct bc_layer_slot *slot = &d->layers[d->nr_layers - 1];

		if (slot->ops->release)
			slot->ops->release(d, slot->data);
		d->nr_layers--;
	}
}
