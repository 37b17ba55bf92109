/* SPDX-License-Identifier: MIT */
/*
 * Device handles: claimed and opened by a transport, mapped by layers,
 * given a native backend by probing.  Nothing here names a transport,
 * layer or backend: they are found through their tables.
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/sysmacros.h>

#include "backend.h"
#include "layer.h"
#include "transport.h"

/* Why the last failed open failed, in words: blkcopy_open_error(). */
static _Thread_local char open_error[512];

const char *blkcopy_open_error(void)
{
	return open_error;
}

static const struct bc_transport *claim(const char *path)
{
	for (const struct bc_transport *const *t = bc_transports; *t; t++)
		if ((*t)->claims(path))
			return *t;
	return NULL;
}

/*
 * The first valid backend that claims @d; its probe's reason either way.
 * A probe that fails otherwise than -ENODEV (a bad setting) fails the open.
 */
static int probe_backend(struct blkcopy_dev *d)
{
	for (const struct bc_backend *const *b = bc_backends; *b; b++) {
		const char *why;
		int ret;

		if (!bc_backend_valid(*b, &why))
			continue;
		ret = (*b)->probe(d);
		if (ret == 0) {
			d->backend = *b;
			return 0;
		}
		if (ret != -ENODEV) {
			snprintf(open_error, sizeof(open_error), "%s", d->probe_reason);
			return ret;
		}
	}
	memset(&d->probed, 0, sizeof(d->probed));
	return 0;
}

/*
 * The one place that decides what a device shows as its native limits:
 * a layer that stacks @d on others speaks for it, else the backend's
 * probe; copy_offload follows the user's switch.
 */
static void settle_native(struct blkcopy_dev *d)
{
	char layer_reason[sizeof(d->reason)] = "";
	struct blkcopy_limits lim = { 0 };

	if (!bc_layers_limits(d, &lim, layer_reason, sizeof(layer_reason))) {
		snprintf(d->reason, sizeof(d->reason), "%s", layer_reason);
	} else if (d->backend) {
		lim = d->probed;
		snprintf(d->reason, sizeof(d->reason), "%s", d->probe_reason);
	} else if (layer_reason[0] || d->probe_reason[0]) {
		snprintf(d->reason, sizeof(d->reason), "%s",
			 layer_reason[0] ? layer_reason : d->probe_reason);
	} else if (d->kind == BLKCOPY_KIND_MD) {
		snprintf(d->reason, sizeof(d->reason),
			 "md device: emulation only (stacked mapping not resolved)");
	} else {
		snprintf(d->reason, sizeof(d->reason), "no native copy backend for %s devices",
			 blkcopy_kind_name(d->kind));
	}
	lim.copy_offload = lim.max_copy_sectors && !d->offload_off ? 1 : 0;
	d->limits = lim;
}

int bc_dev_refresh(struct blkcopy_dev *d, bool pinned)
{
	bool refreshed;
	int ret = bc_layers_refresh(d, pinned, &refreshed);

	if (refreshed)
		settle_native(d);
	return ret;
}

int bc_open_lower(const char *path, unsigned int flags, int depth, struct blkcopy_dev **devp)
{
	const unsigned int known = BLKCOPY_OPEN_READ | BLKCOPY_OPEN_WRITE | BLKCOPY_OPEN_EXCL;
	struct blkcopy_dev *d;
	int ret;

	open_error[0] = '\0';
	if (!path || !devp || (flags & ~known) || !(flags & (BLKCOPY_OPEN_READ | BLKCOPY_OPEN_WRITE)))
		return -EINVAL;
	d = calloc(1, sizeof(*d));
	if (!d)
		return -ENOMEM;
	d->open_flags = flags;
	d->depth = depth;
	d->path = strdup(path);
	d->transport = claim(path);
	if (!d->path || !d->transport) {
		free(d->path);
		free(d);
		return -ENOMEM;
	}
	ret = d->transport->open(d, path, open_error, sizeof(open_error));
	if (!ret && (flags & BLKCOPY_OPEN_WRITE) && d->read_only)
		ret = -EROFS;
	if (!ret)
		ret = bc_layers_probe(d);
	if (ret)
		goto fail;
	d->kind = d->transport->kind(d);
	ret = probe_backend(d);
	if (ret)
		goto fail;
	settle_native(d);
	*devp = d;
	return 0;
fail:
	blkcopy_close(d);
	return ret;
}

int blkcopy_open(const char *path, unsigned int flags, struct blkcopy_dev **devp)
{
	return bc_open_lower(path, flags, 0, devp);
}

void blkcopy_close(struct blkcopy_dev *d)
{
	if (!d)
		return;
	if (d->backend && d->backend->close)
		d->backend->close(d);
	bc_layers_release(d);
	d->transport->close(d);
	free(d->path);
	free(d);
}

int blkcopy_get_info(const struct blkcopy_dev *d, struct blkcopy_info *info)
{
	if (!d || !info)
		return -EINVAL;
	*info = (struct blkcopy_info){
		.path = d->path,
		.backend = d->backend ? d->backend->name : "emulate",
		.native_reason = d->reason,
		.kind = d->kind,
		.logical_block_size = d->lbs,
		.capacity = d->capacity,
		.read_only = d->read_only,
		.major = major(d->rdev),
		.minor = minor(d->rdev),
		.limits = d->limits,
		.zoned = d->zoned.model,
		.nr_zones = d->zoned.nr_zones,
		.zone_size = d->zoned.zone_size,
		.max_open_zones = d->zoned.max_open,
		.max_active_zones = d->zoned.max_active,
	};
	bc_layers_info(d, info);
	return 0;
}

int bc_dev_flush(struct blkcopy_dev *d)
{
	return d->transport->flush(d);
}

int blkcopy_flush(struct blkcopy_dev *d)
{
	return d ? bc_dev_flush(d) : -EINVAL;
}

const char *blkcopy_dev_error(const struct blkcopy_dev *d)
{
	return d ? d->error : "";
}

int blkcopy_set_copy_offload(struct blkcopy_dev *d, bool enable)
{
	if (!d)
		return -EINVAL;
	if (enable && !d->limits.max_copy_sectors)
		return -EOPNOTSUPP;
	d->offload_off = !enable;
	d->limits.copy_offload = enable;
	return 0;
}
