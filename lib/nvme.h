/* SPDX-License-Identifier: MIT */
/*
 * NVMe protocol that the fd transport and the backend share: identities
 * (which namespace of which subsystem a node is: a namespace's block node
 * from its passthrough node and back), what Identify says about Copy, and
 * completion status in words.
 */
#ifndef BLKCOPY_NVME_H
#define BLKCOPY_NVME_H

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

/* What Identify Namespace (and OCFS of Identify Controller) says about Copy. */
struct bc_nvme_copy_caps {
	uint16_t mssrl;		/* blocks in one source range */
	uint32_t mcl;		/* blocks in one command */
	uint8_t msrc;		/* source ranges in one command, 0's based */
	uint16_t ocfs;		/* descriptor formats offered (bit N: format Nh); 0: format 0 only */
};

/* Copy descriptor format 2h (TP4130): format 0h with a source namespace per range. */
#define BC_NVME_OCFS_FORMAT2 (1u << 2)

/*
 * Identify Controller @ctrl and Identify Namespace @ns (BC_NVME_ID_SIZE
 * bytes each), as the controller answered: 0 when Copy with descriptor
 * format 0 can be used on the namespace, whose block device has @lbs-byte
 * blocks, with *@caps filled; -ENODEV with the reason in @why.
 */
int bc_nvme_copy_caps(const uint8_t *ctrl, const uint8_t *ns, uint32_t lbs,
		      struct bc_nvme_copy_caps *caps, char *why, size_t size);

/*
 * Host Behavior Support (Set Features 16h), Copy Descriptor Formats Enable:
 * make sure the formats in @formats (OCFS bits) are enabled on the
 * controller behind @fd, by a read-modify-write that keeps every other
 * field as the host (Linux: ACRE) set it.  A controller reset clears it,
 * so callers check before each request.  0, -EOPNOTSUPP when the
 * controller keeps refusing, or -errno of the ioctl.
 */
int bc_nvme_enable_copy_formats(int fd, uint16_t formats);

/*
 * A completion status as the kernel reports it (status field >> 1: SC in
 * bits 7:0, SCT in 10:8, DNR in 14) -> -errno, with "@what: status ..." in
 * @msg.  Refusals before any write are -EOPNOTSUPP or -E2BIG: the core
 * then emulates the piece.
 */
int bc_nvme_status_errno(int status, const char *what, char *msg, size_t size);

#endif
