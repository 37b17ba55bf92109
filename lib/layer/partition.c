/* SPDX-License-Identifier: MIT */
/*
 * Partitions: a window onto the whole disk.  The disk is the medium (native
 * commands go to it, overlap is judged on it) and the partition starts at
 * its offset there.  Passthrough commands are not remapped by the kernel,
 * so backends add the start themselves (DESIGN.md section 4).
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <sys/sysmacros.h>

#include "../layer.h"
#include "../sysfs.h"
#include "../util.h"

static int partition_probe(struct blkcopy_dev *d, void **data)
{
	char buf[64], dev[32];
	unsigned int maj, min;
	dev_t disk;

	if (!d->rdev || !bc_sysfs_exists(d->rdev, "partition"))
		return -ENODEV;
	/* A partition's sysfs directory sits inside its disk's: "../dev" is the disk. */
	if (bc_sysfs_read(d->rdev, "start", buf, sizeof(buf)) ||
	    bc_sysfs_read(d->rdev, "../dev", dev, sizeof(dev)) ||
	    sscanf(dev, "%u:%u", &maj, &min) != 2)
		return -EIO;
	disk = makedev(maj, min);
	/* The medium is the disk, as its own handles have it. */
	bc_medium_set_disk(&d->medium, disk);
	d->medium.base = strtoull(buf, NULL, 10) * BC_SECTOR;
	*data = NULL;
	return 0;
}

static void partition_info(const struct blkcopy_dev *d, struct blkcopy_info *info)
{
	info->partition = true;
	info->partition_start = d->medium.base;
}

const struct bc_layer bc_layer_partition = {
	.name = "partition",
	.probe = partition_probe,
	.info = partition_info,
};
