/* SPDX-License-Identifier: MIT */
/*
 * Loop devices: a window onto their backing file.  Resolved so that overlap
 * checks and the file backend work in the terms of the file that really
 * holds the bytes (a loop device over a file on XFS clones by reflink).
 */
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <linux/loop.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/stat.h>
#include <unistd.h>

#include "../layer.h"
#include "../sysfs.h"
#include "../transport/fd.h"

/* Why the backing file is not known, when it is not. */
struct loop_dev {
	char note[128];
};

static int loop_probe(struct blkcopy_dev *d, void **data)
{
	struct loop_info64 info;
	char path[PATH_MAX];
	struct loop_dev *l;
	struct stat st;
	int fd;

	if (!d->rdev || !bc_sysfs_exists(d->medium.disk, "loop"))
		return -ENODEV;
	l = calloc(1, sizeof(*l));
	if (!l)
		return -ENOMEM;
	*data = l;
	if (bc_sysfs_read(d->medium.disk, "loop/backing_file", path, sizeof(path))) {
		snprintf(l->note, sizeof(l->note), "loop device: backing file unknown");
		return 0;
	}
	fd = open(path, bc_fd_open_mode(d->open_flags) | O_CLOEXEC);
	if (fd < 0) {
		snprintf(l->note, sizeof(l->note), "loop device: cannot open backing file: %s",
			 strerror(errno));
		return 0;
	}
	/* The path may name another file by now (renamed, deleted, other mount namespace). */
	if (fstat(fd, &st) || !S_ISREG(st.st_mode) || ioctl(bc_fd_of(d), LOOP_GET_STATUS64, &info) ||
	    info.lo_inode != st.st_ino || info.lo_device != st.st_dev) {
		snprintf(l->note, sizeof(l->note),
			 "loop device: its backing file path now names another file");
		close(fd);
		return 0;
	}
	bc_fd_backing_file(&d->backing, fd, true, &st, info.lo_offset + d->medium.base);
	return 0;
}

static int loop_limits(const struct blkcopy_dev *d, struct blkcopy_limits *lim, char *reason,
		       size_t reason_size)
{
	const struct loop_dev *l = bc_layer_data(d, &bc_layer_loop);

	snprintf(reason, reason_size, "%s", l->note);
	return -ENODEV;		/* the file backend speaks for a resolved loop device */
}

static void loop_release(struct blkcopy_dev *d, void *data)
{
	if (d->backing.valid && d->backing.own_fd)
		close(d->backing.fd);
	d->backing.valid = false;
	free(data);
}

const struct bc_layer bc_layer_loop = {
	.name = "loop",
	.probe = loop_probe,
	.limits = loop_limits,
	.release = loop_release,
};
