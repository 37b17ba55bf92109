/* SPDX-License-Identifier: MIT */
/* What sysfs says about block and char devices. */
#ifndef BLKCOPY_SYSFS_H
#define BLKCOPY_SYSFS_H

#include <stdbool.h>
#include <stddef.h>
#include <sys/types.h>

/* A sysfs attribute of a block device ("partition", "loop/backing_file"), first line only. */
int bc_sysfs_read(dev_t devno, const char *attr, char *buf, size_t size);

/* Any sysfs attribute by its path, first line only. */
int bc_sysfs_read_path(const char *path, char *buf, size_t size);

/* The block device has the attribute (or directory) @attr. */
bool bc_sysfs_exists(dev_t devno, const char *attr);

/* The kernel's name of a "block" or "char" device ("nvme0n1", "ng0n1"), from its uevent. */
int bc_sysfs_devname(const char *class, dev_t devno, char *name, size_t size);

#endif
