/* SPDX-License-Identifier: MIT */
/*
 * Zoned block devices through the fd transport: the geometry sysfs shows,
 * BLKREPORTZONE, and keeping the kernel's cached write pointers true after
 * native commands (which bypass the block layer) wrote into a zone.
 */
#include <errno.h>
#include <linux/blkzoned.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/utsname.h>
#include <unistd.h>

#include "../sysfs.h"
#include "../util.h"
#include "fd.h"

static uint32_t sysfs_u32(dev_t disk, const char *attr)
{
	char buf[32];
	char *end;
	unsigned long v;

	if (bc_sysfs_read(disk, attr, buf, sizeof(buf)))
		return 0;
	v = strtoul(buf, &end, 10);
	return end != buf && v <= UINT32_MAX ? (uint32_t)v : 0;
}

void bc_fd_zoned_probe(struct blkcopy_dev *d)
{
	char model[32];

	d->zoned = (struct bc_zoned){ .model = BLKCOPY_ZONED_NONE };
	/* A partition has no queue of its own (and zoned disks take no partitions). */
	if (bc_sysfs_read(d->rdev, "queue/zoned", model, sizeof(model)))
		return;
	if (!strcmp(model, "host-managed"))
		d->zoned.model = BLKCOPY_ZONED_HOST_MANAGED;
	else if (!strcmp(model, "host-aware"))
		d->zoned.model = BLKCOPY_ZONED_HOST_AWARE;
	else
		return;
	/* chunk_sectors is the zone size of a zoned queue. */
	d->zoned.zone_size = (uint64_t)sysfs_u32(d->rdev, "queue/chunk_sectors") * BC_SECTOR;
	d->zoned.nr_zones = sysfs_u32(d->rdev, "queue/nr_zones");
	d->zoned.max_open = sysfs_u32(d->rdev, "queue/max_open_zones");
	d->zoned.max_active = sysfs_u32(d->rdev, "queue/max_active_zones");
	if (!d->zoned.zone_size)
		d->zoned.model = BLKCOPY_ZONED_NONE;	/* nothing to follow: treat as plain */
}

#define REPORT_BATCH 128u

ssize_t bc_fd_report_zones(int fd, uint64_t off, struct blkcopy_zone *z, size_t nr)
{
	const size_t want = nr < REPORT_BATCH ? nr : REPORT_BATCH;
	struct blk_zone_report *rep;
	size_t n = 0;

	if (!nr)
		return 0;
	rep = calloc(1, sizeof(*rep) + want * sizeof(struct blk_zone));
	if (!rep)
		return -ENOMEM;
	while (n < nr) {
		rep->sector = off / BC_SECTOR;
		rep->nr_zones = (uint32_t)(nr - n < want ? nr - n : want);
		if (ioctl(fd, BLKREPORTZONE, rep)) {
			int ret = -errno;

			free(rep);
			return ret;
		}
		if (!rep->nr_zones)
			break;	/* past the last zone */
		for (uint32_t i = 0; i < rep->nr_zones; i++) {
			const struct blk_zone *k = &rep->zones[i];
			/* Kernels before 5.9 have no capacity field: the zone is all capacity. */
			const uint64_t cap = (rep->flags & BLK_ZONE_REP_CAPACITY) ? k->capacity : k->len;

			z[n] = (struct blkcopy_zone){
				.start = k->start * BC_SECTOR,
				.len = k->len * BC_SECTOR,
				.capacity = cap * BC_SECTOR,
				.write_pointer = k->wp * BC_SECTOR,
				.type = k->type,
				.cond = k->cond,
			};
			/* Devices differ on a full zone's pointer (undefined in ZNS): say its end. */
			if (k->cond == BLK_ZONE_COND_FULL)
				z[n].write_pointer = z[n].start + z[n].capacity;
			n++;
		}
		off = z[n - 1].start + z[n - 1].len;
	}
	free(rep);
	return (ssize_t)n;
}

bool bc_kernel_plugs_zone_writes(const char *release)
{
	unsigned int major = 0, minor = 0;

	/* Zone write plugging (Linux 6.10) caches each zone's write pointer. */
	if (sscanf(release, "%u.%u", &major, &minor) != 2)
		return true;	/* unknown: assume the newer kernel */
	return major > 6 || (major == 6 && minor >= 10);
}

/*
 * Linux 6.10 and later keep a write pointer per zone that regular writes
 * have touched, and fail a write that does not start there.  Native
 * commands move the device's write pointer without the kernel seeing it.
 * The kernel re-reads a zone's pointer on a zone report only after a
 * write to the zone failed, so make one fail: rewrite the zone's first
 * block with what it holds.  A sequential-write-required zone whose write
 * pointer is past its start refuses it (in the block layer or in the
 * device), and a device that took it anyway would change no byte.  @z is
 * such a zone, written part way (bc_zone_sync() picks them).
 */
void bc_fd_zone_sync(int fd, uint32_t lbs, const struct blkcopy_zone *z)
{
	struct blkcopy_zone now;
	struct utsname u;
	void *block;

	if (uname(&u) || !bc_kernel_plugs_zone_writes(u.release))
		return;
	if (posix_memalign(&block, 4096, lbs < 4096 ? 4096 : lbs))
		return;
	if (pread(fd, block, lbs, (off_t)z->start) == (ssize_t)lbs &&
	    pwrite(fd, block, lbs, (off_t)z->start) < 0)
		bc_fd_report_zones(fd, z->start, &now, 1);
	free(block);
}
