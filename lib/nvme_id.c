/* SPDX-License-Identifier: MIT */
/* NVMe identities: which namespace of which subsystem a node is. */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <linux/nvme_ioctl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <unistd.h>

#include "nvme_id.h"
#include "sysfs.h"

#define OP_IDENTIFY 0x06

int bc_nvme_identify(int fd, uint32_t nsid, uint32_t cns, void *buf)
{
	struct nvme_admin_cmd cmd = {
		.opcode = OP_IDENTIFY,
		.nsid = nsid,
		.addr = (uint64_t)(uintptr_t)buf,
		.data_len = BC_NVME_ID_SIZE,
		.cdw10 = cns,
	};
	int ret = ioctl(fd, NVME_IOCTL_ADMIN_CMD, &cmd);

	if (ret < 0)
		return -errno;
	return ret ? -EIO : 0;	/* an NVMe status: the controller refused */
}

int bc_nvme_read_identity(int fd, struct bc_nvme_identity *id)
{
	uint8_t *ctrl;
	int nsid, ret;

	nsid = ioctl(fd, NVME_IOCTL_ID);
	if (nsid <= 0)
		return nsid < 0 ? -errno : -ENODEV;
	if (posix_memalign((void **)&ctrl, 4096, BC_NVME_ID_SIZE))
		return -ENOMEM;
	ret = bc_nvme_identify(fd, 0, BC_NVME_CNS_CTRL, ctrl);
	if (!ret) {
		id->nsid = (uint32_t)nsid;
		memcpy(id->sn, ctrl + 4, sizeof(id->sn));
		memcpy(id->mn, ctrl + 24, sizeof(id->mn));
		memcpy(id->subnqn, ctrl + 768, sizeof(id->subnqn));
	}
	free(ctrl);
	return ret;
}

/* SN and MN name the subsystem (and SUBNQN where reported); a namespace ID is subsystem-wide. */
static bool same_identity(const struct bc_nvme_identity *a, const struct bc_nvme_identity *b)
{
	return a->nsid == b->nsid && !memcmp(a->sn, b->sn, sizeof(a->sn)) &&
	       !memcmp(a->mn, b->mn, sizeof(a->mn)) &&
	       !memcmp(a->subnqn, b->subnqn, sizeof(a->subnqn));
}

/* "nvme0n1" -> 1, "ng2n13" -> 13; 0 for anything else (nvme0c0n1 paths, partitions). */
static uint32_t name_nsid(const char *name, const char *prefix)
{
	const char *p = name + strlen(prefix);
	char *end;

	if (strncmp(name, prefix, strlen(prefix)) || *p < '0' || *p > '9')
		return 0;
	strtoul(p, &end, 10);
	if (*end != 'n' || end[1] < '0' || end[1] > '9')
		return 0;
	unsigned long n = strtoul(end + 1, &end, 10);
	return *end || n > UINT32_MAX ? 0 : (uint32_t)n;
}

/* Names alone do not prove it (with native multipath the numbers differ): each candidate is asked. */
int bc_nvme_find_node(const char *dir, const char *prefix, const struct bc_nvme_identity *want,
		      char *path, size_t size)
{
	struct dirent *de;
	DIR *d = opendir(dir);
	int found = -ENOENT;

	if (!d)
		return -errno;
	while (found < 0 && (de = readdir(d))) {
		struct bc_nvme_identity id;
		int fd;

		if (name_nsid(de->d_name, prefix) != want->nsid)
			continue;
		snprintf(path, size, "/dev/%s", de->d_name);
		fd = open(path, O_RDWR | O_CLOEXEC);
		if (fd < 0)
			continue;
		if (!bc_nvme_read_identity(fd, &id) && same_identity(&id, want))
			found = fd;
		else
			close(fd);
	}
	closedir(d);
	return found;
}

int bc_nvme_block_path(dev_t chr, char *path, size_t size)
{
	char name[64], node[80];
	struct bc_nvme_identity want;
	int fd, ret;

	/* The kernel's name for the node, as /dev holds it (no /dev/char links without udev). */
	if (bc_sysfs_devname("char", chr, name, sizeof(name)) || !name_nsid(name, "ng"))
		return -ENOTBLK;
	snprintf(node, sizeof(node), "/dev/%s", name);
	fd = open(node, O_RDONLY | O_CLOEXEC);
	if (fd < 0)
		return -errno;
	ret = bc_nvme_read_identity(fd, &want);
	close(fd);
	if (ret)
		return ret;
	fd = bc_nvme_find_node("/sys/class/block", "nvme", &want, path, size);
	if (fd < 0)
		return fd == -ENOENT ? -ENODEV : fd;
	close(fd);
	return 0;
}
