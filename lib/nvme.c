/* SPDX-License-Identifier: MIT */
/*
 * NVMe protocol that the fd transport and the backend share: which
 * namespace of which subsystem a node is, what Identify says about Copy,
 * and completion status in words.  The decoders take the controller's
 * bytes as they come: they are fuzzed (tests/fuzz).
 */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <linux/nvme_ioctl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <unistd.h>

#include "nvme.h"
#include "sysfs.h"

#define OP_SET_FEATURES 0x09
#define OP_GET_FEATURES 0x0a
#define OP_IDENTIFY 0x06
#define FID_HOST_BEHAVIOR 0x16
#define HBS_SIZE 512
#define HBS_CDFE 4	/* byte offset of Copy Descriptor Formats Enable, le16 */
#define ONCS_COPY (1u << 8)
#define OCFS_FORMAT0 (1u << 0)

static uint16_t le16_at(const uint8_t *p)
{
	return (uint16_t)(p[0] | p[1] << 8);
}

static uint32_t le32_at(const uint8_t *p)
{
	return (uint32_t)p[0] | (uint32_t)p[1] << 8 | (uint32_t)p[2] << 16 | (uint32_t)p[3] << 24;
}

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

/*
 * A namespace node's name: "nvme0n1", "ng2n13"; not a path of a multipath
 * head ("nvme0c0n1") nor a partition.  The number after the n is the
 * kernel's instance, which is not always the NSID (Linux 6.12 numbers them
 * in the order it finds them): only the namespace itself can say its NSID.
 */
static bool namespace_node_name(const char *name, const char *prefix)
{
	const char *p = name + strlen(prefix);
	char *end;

	if (strncmp(name, prefix, strlen(prefix)) || *p < '0' || *p > '9')
		return false;
	strtoul(p, &end, 10);
	if (*end != 'n' || end[1] < '0' || end[1] > '9')
		return false;
	strtoul(end + 1, &end, 10);
	return !*end;
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

		if (!namespace_node_name(de->d_name, prefix))
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
	if (bc_sysfs_devname("char", chr, name, sizeof(name)) || !namespace_node_name(name, "ng"))
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

int bc_nvme_copy_caps(const uint8_t *ctrl, const uint8_t *ns, uint32_t lbs,
		      struct bc_nvme_copy_caps *caps, char *why, size_t size)
{
	const uint16_t oncs = le16_at(ctrl + 520), ocfs = le16_at(ctrl + 534);
	const uint8_t flbas = ns[26], dps = ns[29];
	const unsigned int fmt = (flbas & 0x0f) | ((flbas >> 5) & 0x3) << 4;
	const uint8_t *lbaf = ns + 128 + 4 * fmt;	/* fmt < 64: inside the 4 KiB page */
	const uint16_t ms = le16_at(lbaf);
	const uint8_t lbads = lbaf[2];

	*caps = (struct bc_nvme_copy_caps){
		.mssrl = le16_at(ns + 74),
		.mcl = le32_at(ns + 76),
		.msrc = ns[80],
		.ocfs = ocfs,
	};
	if (!(oncs & ONCS_COPY)) {
		snprintf(why, size, "nvme: controller does not support Copy (ONCS bit 8 clear)");
		return -ENODEV;
	}
	/* Before OCFS existed (TP4065 alone), format 0 was the only one. */
	if (ocfs && !(ocfs & OCFS_FORMAT0)) {
		snprintf(why, size, "nvme: Copy descriptor format 0 not supported (OCFS 0x%x)", ocfs);
		return -ENODEV;
	}
	if (lbads < 9 || lbads > 24 || (1u << lbads) != lbs) {
		snprintf(why, size, "nvme: LBA size 2^%u does not match the block device's %u", lbads,
			 lbs);
		return -ENODEV;
	}
	if (ms || (dps & 7)) {
		snprintf(why, size, "nvme: formatted with %u bytes of metadata, PI type %u: not supported",
			 ms, dps & 7);
		return -ENODEV;
	}
	if (!caps->mssrl || !caps->mcl) {
		snprintf(why, size, "nvme: Copy limits unusable (MSSRL %u, MCL %u)", caps->mssrl,
			 caps->mcl);
		return -ENODEV;
	}
	return 0;
}

/* Get or Set Features Host Behavior Support, the 512 bytes in @hbs. */
static int host_behavior(int fd, uint8_t opcode, uint8_t *hbs)
{
	struct nvme_admin_cmd cmd = {
		.opcode = opcode,
		.addr = (uint64_t)(uintptr_t)hbs,
		.data_len = HBS_SIZE,
		.cdw10 = FID_HOST_BEHAVIOR,	/* Get: SEL 0, current; Set: SV 0, not saved */
	};
	int ret = ioctl(fd, NVME_IOCTL_ADMIN_CMD, &cmd);

	if (ret < 0)
		return -errno;
	return ret ? -EOPNOTSUPP : 0;	/* an NVMe status: not supported, or refused */
}

int bc_nvme_enable_copy_formats(int fd, uint16_t formats)
{
	uint8_t *hbs;
	int ret;

	if (posix_memalign((void **)&hbs, 4096, HBS_SIZE))
		return -ENOMEM;
	memset(hbs, 0, HBS_SIZE);
	ret = host_behavior(fd, OP_GET_FEATURES, hbs);
	for (int tries = 0; !ret && (le16_at(hbs + HBS_CDFE) & formats) != formats; tries++) {
		if (tries == 2) {
			ret = -EOPNOTSUPP;	/* set, and still not enabled */
			break;
		}
		const uint16_t cdfe = le16_at(hbs + HBS_CDFE) | formats;

		hbs[HBS_CDFE] = (uint8_t)cdfe;
		hbs[HBS_CDFE + 1] = (uint8_t)(cdfe >> 8);
		ret = host_behavior(fd, OP_SET_FEATURES, hbs);
		if (!ret)
			ret = host_behavior(fd, OP_GET_FEATURES, hbs);	/* what it took */
	}
	free(hbs);
	return ret;
}

static const char *status_name(unsigned int sct, unsigned int sc)
{
	if (sct == 0) {
		switch (sc) {
		case 0x01: return "Invalid Command Opcode";
		case 0x02: return "Invalid Field in Command";
		case 0x04: return "Data Transfer Error";
		case 0x06: return "Internal Error";
		case 0x07: return "Command Abort Requested";
		case 0x0b: return "Invalid Namespace or Format";
		case 0x20: return "Namespace is Write Protected";
		case 0x80: return "LBA Out of Range";
		case 0x81: return "Capacity Exceeded";
		case 0x82: return "Namespace Not Ready";
		}
	} else if (sct == 1) {
		switch (sc) {
		case 0x80: return "Conflicting Attributes";
		case 0x81: return "Invalid Protection Information";
		case 0x82: return "Attempted Write to Read Only Range";
		case 0x83: return "Command Size Limit Exceeded";
		case 0x85: return "Incompatible Namespace or Format";
		case 0x87: return "Overlapping I/O Range";
		}
	} else if (sct == 2) {
		switch (sc) {
		case 0x80: return "Write Fault";
		case 0x81: return "Unrecovered Read Error";
		case 0x82: return "End-to-end Guard Check Error";
		case 0x85: return "Compare Failure";
		case 0x86: return "Access Denied";
		}
	} else if (sct == 3) {
		return "Path Related Status";
	}
	return "unknown status";
}

int bc_nvme_status_errno(int status, const char *what, char *msg, size_t size)
{
	const unsigned int sc = status & 0xff, sct = (status >> 8) & 0x7;
	int err = -EIO;

	/* Refused before any write: emulation takes the piece. */
	if ((sct == 0 && (sc == 0x01 || sc == 0x02 || sc == 0x0b)) ||
	    (sct == 1 && (sc == 0x85 || sc == 0x87)))
		err = -EOPNOTSUPP;
	else if (sct == 1 && sc == 0x83)
		err = -E2BIG;
	else if ((sct == 0 && sc == 0x20) || (sct == 1 && sc == 0x82))
		err = -EROFS;
	else if (sct == 0 && sc == 0x81)
		err = -ENOSPC;
	snprintf(msg, size, "%s: status 0x%03x (SCT %u, SC 0x%02x: %s%s)", what, status & 0x7ff, sct,
		 sc, status_name(sct, sc), status & 0x4000 ? ", do not retry" : "");
	return err;
}
