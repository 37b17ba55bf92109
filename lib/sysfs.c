/* SPDX-License-Identifier: MIT */
/* What sysfs says about block and char devices. */
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <stdio.h>
#include <string.h>
#include <sys/sysmacros.h>
#include <unistd.h>

#include "sysfs.h"

int bc_sysfs_read(dev_t devno, const char *attr, char *buf, size_t size)
{
	char path[PATH_MAX];

	snprintf(path, sizeof(path), "/sys/dev/block/%u:%u/%s", major(devno), minor(devno), attr);
	return bc_sysfs_read_path(path, buf, size);
}

int bc_sysfs_read_path(const char *path, char *buf, size_t size)
{
	ssize_t n;
	int fd;

	fd = open(path, O_RDONLY | O_CLOEXEC);
	if (fd < 0)
		return -errno;
	n = read(fd, buf, size - 1);
	close(fd);
	if (n < 0)
		return -errno;
	buf[n] = '\0';
	buf[strcspn(buf, "\n")] = '\0';
	return 0;
}

bool bc_sysfs_exists(dev_t devno, const char *attr)
{
	char path[PATH_MAX];

	snprintf(path, sizeof(path), "/sys/dev/block/%u:%u/%s", major(devno), minor(devno), attr);
	return access(path, F_OK) == 0;
}

int bc_sysfs_devname(const char *class, dev_t devno, char *name, size_t size)
{
	char path[PATH_MAX], line[256];
	FILE *f;

	name[0] = '\0';
	snprintf(path, sizeof(path), "/sys/dev/%s/%u:%u/uevent", class, major(devno), minor(devno));
	f = fopen(path, "re");
	if (!f)
		return -errno;
	while (fgets(line, sizeof(line), f)) {
		if (!strncmp(line, "DEVNAME=", 8)) {
			snprintf(name, size, "%.*s", (int)strcspn(line + 8, "\n"), line + 8);
			break;
		}
	}
	fclose(f);
	return name[0] ? 0 : -ENOENT;
}
