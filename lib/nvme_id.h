/* SPDX-License-Identifier: MIT */
/*
 * NVMe identities: which namespace of which subsystem a node is.  Used to
 * find a namespace's block node from its passthrough node (the fd
 * transport) and its passthrough node from its block node (the backend).
 */
#ifndef BLKCOPY_NVME_ID_H
#define BLKCOPY_NVME_ID_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

#define BC_NVME_ID_SIZE 4096
#define BC_NVME_CNS_NS 0x00
#define BC_NVME_CNS_CTRL 0x01

/* An identity that names one namespace of one NVM subsystem. */
struct bc_nvme_identity {
	uint32_t nsid;
	char sn[20], mn[40], subnqn[256];
};

/* Identify (@cns) through the admin passthrough ioctl into @buf (BC_NVME_ID_SIZE, aligned). */
int bc_nvme_identify(int fd, uint32_t nsid, uint32_t cns, void *buf);

/* The namespace ID and controller identity of the node open as @fd. */
int bc_nvme_read_identity(int fd, struct bc_nvme_identity *id);

/*
 * The node in @dir (a /sys/class directory) whose name has @prefix ("nvme",
 * "ng") and the identity @want, opened read-write.  Returns the descriptor
 * with its path in @path, or -errno (-ENOENT: none).
 */
int bc_nvme_find_node(const char *dir, const char *prefix, const struct bc_nvme_identity *want,
		      char *path, size_t size);

/* NVMe passthrough node (/dev/ngXnY, char device @chr) -> its block node's path; 0 or -errno. */
int bc_nvme_block_path(dev_t chr, char *path, size_t size);

#endif
