/* SPDX-License-Identifier: MIT */
/*
 * NVMe Simple Copy (TP4065): many source LBA ranges to one destination LBA
 * inside one namespace, done by the drive; and between two namespaces of
 * one controller with descriptor format 2h (TP4130: a source namespace per
 * range), which the host must enable first (Host Behavior Support, CDFE).
 * Discovery and commands go
 * through the kernel's passthrough interface: Identify through the admin
 * ioctl, Copy through io_uring URING_CMD on the namespace's generic char
 * node (/dev/ngXnY) with many commands in flight, or through the
 * synchronous ioctl where io_uring passthrough is not available.
 *
 * blkcopy never relies on the drive to police its own limits (QEMU answers
 * Internal Error past MSSRL and does not enforce MCL at all): the planner
 * cuts every command inside MSSRL, MCL and MSRC before it is built.
 */
#include <dirent.h>
#include <endian.h>
#include <errno.h>
#include <fcntl.h>
#include <liburing.h>
#include <linux/nvme_ioctl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/stat.h>
#include <sys/sysmacros.h>
#include <unistd.h>

#include "../backend.h"
#include "../nvme.h"
#include "../sysfs.h"
#include "../transport/fd.h"
#include "../util.h"

#define OP_COPY 0x19
#define RANGE_DESC_SIZE 32	/* source range descriptor, format 0 */
/* One command at most: bounds how long a cancel waits for what is in flight. */
#define MAX_CMD_BYTES (256ull << 20)

struct nvme_ns {
	int pt_fd;		/* where passthrough commands go */
	bool pt_char;		/* pt_fd is the generic char node: io_uring can use it */
	uint32_t nsid;
	uint32_t lbs;
	uint32_t max_ranges;	/* MSRC + 1 */
	uint16_t ocfs;		/* descriptor formats the controller offers */
	char ctrl[32];		/* its controller's char device, "major:minor" ("": unknown) */
	char ctrl_name[32];	/* "nvme0" */
	char transport[16];	/* "pcie", "tcp", "loop", ... ("": unknown) */
};

static void ns_free(struct nvme_ns *ns)
{
	if (ns->pt_fd >= 0)
		close(ns->pt_fd);
	free(ns);
}

/*
 * A descriptor for passthrough: the generic char node when there is one
 * (io_uring needs it), else the whole namespace's block node (never a
 * partition's: the kernel refuses passthrough there).
 */
static int open_passthrough(struct blkcopy_dev *d, struct nvme_ns *ns)
{
	struct bc_nvme_identity want;
	char path[PATH_MAX];
	int fd = bc_fd_open_whole(d), ret;

	if (fd < 0)
		return fd;
	ret = bc_nvme_read_identity(fd, &want);
	if (ret) {
		close(fd);
		return ret;
	}
	ns->nsid = want.nsid;
	ns->pt_fd = bc_nvme_find_node("/sys/class/nvme-generic", "ng", &want, path, sizeof(path));
	if (ns->pt_fd >= 0) {
		ns->pt_char = true;
		close(fd);
	} else {
		ns->pt_fd = fd;
	}
	return 0;
}

/* The last component of the link @attr of @disk's sysfs directory into @out, or "". */
static void sysfs_link_name(dev_t disk, const char *attr, char *out, size_t size)
{
	char link[PATH_MAX], path[96];
	const char *base;
	ssize_t n;

	out[0] = '\0';
	snprintf(path, sizeof(path), "/sys/dev/block/%u:%u/%s", major(disk), minor(disk), attr);
	n = readlink(path, link, sizeof(link) - 1);
	if (n <= 0)
		return;
	link[n] = '\0';
	base = strrchr(link, '/') ? strrchr(link, '/') + 1 : link;
	if (strlen(base) < size)
		memcpy(out, base, strlen(base) + 1);
}

/*
 * Where the namespace's commands go, as sysfs has it: its controller (char
 * device, name, transport), which makes two namespaces "of one
 * controller".  A multipath head node's device is its NVM subsystem
 * (namespace IDs are the subsystem's, and a command on the head goes to one
 * of its controllers): the subsystem NQN names it then, and the transport
 * is its first controller's.
 */
static void find_controller(const struct blkcopy_dev *d, struct nvme_ns *ns)
{
	char nqn[256], path[PATH_MAX];
	DIR *dir;
	struct dirent *e;

	sysfs_link_name(d->medium.disk, "device", ns->ctrl_name, sizeof(ns->ctrl_name));
	if (!bc_sysfs_read(d->medium.disk, "device/dev", ns->ctrl, sizeof(ns->ctrl))) {
		if (bc_sysfs_read(d->medium.disk, "device/transport", ns->transport,
				  sizeof(ns->transport)))
			ns->transport[0] = '\0';
		return;
	}
	ns->ctrl[0] = ns->transport[0] = '\0';
	if (bc_sysfs_read(d->medium.disk, "device/subsysnqn", nqn, sizeof(nqn)))
		return;
	/* A hash of the NQN keeps the identity short; a clash only refuses a pair. */
	uint64_t h = 0xcbf29ce484222325ull;
	for (const char *c = nqn; *c; c++)
		h = (h ^ (uint8_t)*c) * 0x100000001b3ull;
	snprintf(ns->ctrl, sizeof(ns->ctrl), "subsys:%016llx", (unsigned long long)h);
	snprintf(path, sizeof(path), "/sys/class/nvme-subsystem/%s", ns->ctrl_name);
	dir = opendir(path);
	while (dir && (e = readdir(dir))) {
		char attr[PATH_MAX + 300];
		FILE *f;

		if (strncmp(e->d_name, "nvme", 4) || !strncmp(e->d_name, "nvme-", 5))
			continue;
		snprintf(attr, sizeof(attr), "%s/%s/transport", path, e->d_name);
		if ((f = fopen(attr, "re"))) {
			if (fgets(ns->transport, sizeof(ns->transport), f))
				ns->transport[strcspn(ns->transport, "\n")] = '\0';
			fclose(f);
			break;
		}
	}
	if (dir)
		closedir(dir);
}

/* The other namespaces of the controller with the same block size: "/dev/nvme0n2 ...". */
static void list_peers(const struct nvme_ns *ns, char *out, size_t size)
{
	char dir[96], attr[PATH_MAX], buf[32];
	struct dirent *e;
	size_t len = 0;
	DIR *d;

	if (!ns->ctrl_name[0])
		return;
	/* A controller's namespaces, or a subsystem's head nodes: nvmeXnY either way. */
	snprintf(dir, sizeof(dir), "/sys/class/%s/%s",
		 strncmp(ns->ctrl_name, "nvme-subsys", 11) ? "nvme" : "nvme-subsystem", ns->ctrl_name);
	d = opendir(dir);
	if (!d)
		return;
	while ((e = readdir(d)) && len + 1 < size) {
		unsigned int nsid = 0, x, y;
		char tail;
		FILE *f;

		if (sscanf(e->d_name, "nvme%un%u%c", &x, &y, &tail) != 2)
			continue;
		snprintf(attr, sizeof(attr), "%s/%s/nsid", dir, e->d_name);
		if (!(f = fopen(attr, "re")))
			continue;
		if (fscanf(f, "%u", &nsid) != 1)
			nsid = 0;
		fclose(f);
		snprintf(attr, sizeof(attr), "%s/%s/queue/logical_block_size", dir, e->d_name);
		if (!nsid || nsid == ns->nsid || !(f = fopen(attr, "re")))
			continue;
		if (!fgets(buf, sizeof(buf), f) || (uint32_t)strtoul(buf, NULL, 10) != ns->lbs) {
			fclose(f);
			continue;
		}
		fclose(f);
		len += (size_t)snprintf(out + len, size - len, "%s/dev/%s", len ? " " : "", e->d_name);
	}
	closedir(d);
	if (len >= size && size > 4)
		memcpy(out + size - 4, "...", 4);
}

/* Read Identify data and decide.  Returns 0 with limits filled, or -ENODEV with the reason. */
static int check_copy(struct blkcopy_dev *d, struct nvme_ns *ns)
{
	uint8_t *ctrl = NULL, *id = NULL;
	int ret = -ENODEV;

	if (posix_memalign((void **)&ctrl, 4096, BC_NVME_ID_SIZE) ||
	    posix_memalign((void **)&id, 4096, BC_NVME_ID_SIZE)) {
		free(ctrl);
		return -ENOMEM;
	}
	int err = bc_nvme_identify(ns->pt_fd, 0, BC_NVME_CNS_CTRL, ctrl);
	if (!err)
		err = bc_nvme_identify(ns->pt_fd, ns->nsid, BC_NVME_CNS_NS, id);
	if (err) {
		snprintf(d->probe_reason, sizeof(d->probe_reason), "nvme: Identify failed (%s)%s",
			 strerror(-err),
			 err == -EACCES || err == -EPERM ? ": passthrough needs CAP_SYS_ADMIN" : "");
		goto out;
	}

	struct bc_nvme_copy_caps caps;
	if (bc_nvme_copy_caps(ctrl, id, d->lbs, &caps, d->probe_reason, sizeof(d->probe_reason)))
		goto out;
	ns->ocfs = caps.ocfs;
	find_controller(d, ns);
	/*
	 * Zoned namespaces (ZNS) take Copy too: its destination must be at the
	 * zone's write pointer and within one zone, which validation and the
	 * planner see to (one command in flight per zone).
	 */
	const uint64_t spb = d->lbs / BC_SECTOR;	/* sectors per block */
	uint64_t cmd_blocks = caps.mcl;
	if (cmd_blocks * d->lbs > MAX_CMD_BYTES)
		cmd_blocks = MAX_CMD_BYTES / d->lbs;
	ns->lbs = d->lbs;
	ns->max_ranges = caps.msrc + 1u;
	d->probed = (struct blkcopy_limits){
		.copy_offload = 1,
		.max_copy_nr_ranges = ns->max_ranges,
		.max_copy_sectors = cmd_blocks * spb,
		.max_copy_range_sectors = (uint64_t)caps.mssrl * spb,
	};
	char peers[160] = "";
	if (ns->ocfs & BC_NVME_OCFS_FORMAT2)
		list_peers(ns, peers, sizeof(peers));
	snprintf(d->probe_reason, sizeof(d->probe_reason),
		 "nvme: Copy (MSSRL %u, MCL %u, MSRC %u blocks of %u bytes) through %s; controller "
		 "%s over %s; across namespaces (format 2h): %s",
		 caps.mssrl, caps.mcl, caps.msrc, d->lbs, ns->pt_char ? "io_uring passthrough" : "ioctl",
		 ns->ctrl_name[0] ? ns->ctrl_name : "?", ns->transport[0] ? ns->transport : "?",
		 !(ns->ocfs & BC_NVME_OCFS_FORMAT2) ? "not offered" : peers[0] ? peers : "no other namespace");
	ret = 0;
out:
	free(ctrl);
	free(id);
	return ret;
}

static int nvme_probe(struct blkcopy_dev *d)
{
	struct nvme_ns *ns;
	int ret;

	if (d->kind != BLKCOPY_KIND_NVME)
		return -ENODEV;
	ns = calloc(1, sizeof(*ns));
	if (!ns)
		return -ENOMEM;
	ns->pt_fd = -1;
	ret = open_passthrough(d, ns);
	if (ret) {
		snprintf(d->probe_reason, sizeof(d->probe_reason), "nvme: no passthrough access (%s)%s",
			 strerror(-ret),
			 ret == -EACCES || ret == -EPERM ? ": needs CAP_SYS_ADMIN" : "");
		ns_free(ns);
		return -ENODEV;
	}
	ret = check_copy(d, ns);
	if (ret) {
		ns_free(ns);
		return -ENODEV;
	}
	d->backend_data = ns;
	return 0;
}

static void nvme_close(struct blkcopy_dev *d)
{
	ns_free(d->backend_data);
	d->backend_data = NULL;
}

static uint64_t min_u64(uint64_t a, uint64_t b)
{
	return a < b ? a : b;
}

/* Copy from namespace @a to @b is one command to @b naming @a per range (format 2h). */
static bool across(const struct nvme_ns *a, const struct nvme_ns *b)
{
	return a->nsid != b->nsid;
}

/*
 * Inside one namespace, format 0h.  Between two namespaces of one
 * controller with the same LBA size (and no metadata: probe refuses it),
 * format 2h when the controller offers it; the host enables it here, and
 * again on every request, since a controller reset disables it.  A command
 * across namespaces keeps inside both namespaces' limits.
 */
static int nvme_pair(const struct blkcopy_dev *src, const struct blkcopy_dev *dst,
		     struct blkcopy_limits *lim, char *why, size_t why_size)
{
	const struct nvme_ns *a = src->backend_data, *b = dst->backend_data;
	int ret;

	if (bc_medium_same(&src->medium, &dst->medium)) {
		*lim = src->limits;
		return 0;
	}
	if (!a->ctrl[0] || strcmp(a->ctrl, b->ctrl)) {
		snprintf(why, why_size, "nvme: namespaces of different controllers (%s, %s): a Copy "
			 "command goes to one controller", a->ctrl_name[0] ? a->ctrl_name : "?",
			 b->ctrl_name[0] ? b->ctrl_name : "?");
		return -EOPNOTSUPP;
	}
	if (!across(a, b)) {
		snprintf(why, why_size, "nvme: the same namespace (nsid %u) through different media",
			 a->nsid);
		return -EOPNOTSUPP;
	}
	if (!(b->ocfs & BC_NVME_OCFS_FORMAT2)) {
		snprintf(why, why_size, "nvme: different namespaces (nsid %u and %u) and %s offers no "
			 "copy across namespaces (OCFS 0x%x: no format 2h)", a->nsid, b->nsid,
			 b->ctrl_name[0] ? b->ctrl_name : "the controller", b->ocfs);
		return -EOPNOTSUPP;
	}
	if (a->lbs != b->lbs) {
		snprintf(why, why_size, "nvme: namespaces %u and %u have different LBA sizes (%u, %u "
			 "bytes): Copy across namespaces needs the same format", a->nsid, b->nsid,
			 a->lbs, b->lbs);
		return -EOPNOTSUPP;
	}
	ret = bc_nvme_enable_copy_formats(b->pt_fd, BC_NVME_OCFS_FORMAT2);
	if (ret == -EACCES || ret == -EPERM) {
		/* Linux 6.1 lets CAP_SYS_ADMIN set it; 6.12 keeps the feature to itself. */
		snprintf(why, why_size, "nvme: Copy descriptor format 2h is not enabled on %s, and "
			 "this kernel refuses Set Features Host Behavior Support from user space (%s): "
			 "copy across namespaces needs it enabled", b->ctrl_name[0] ? b->ctrl_name : "?",
			 strerror(-ret));
		return -EOPNOTSUPP;
	}
	if (ret) {
		snprintf(why, why_size, "nvme: cannot enable Copy descriptor format 2h on %s (Set "
			 "Features Host Behavior Support: %s)", b->ctrl_name[0] ? b->ctrl_name : "?",
			 strerror(-ret));
		return -EOPNOTSUPP;
	}
	*lim = (struct blkcopy_limits){
		.copy_offload = 1,
		.max_copy_nr_ranges = (uint32_t)min_u64(src->limits.max_copy_nr_ranges,
							dst->limits.max_copy_nr_ranges),
		.max_copy_sectors = min_u64(src->limits.max_copy_sectors, dst->limits.max_copy_sectors),
		.max_copy_range_sectors = min_u64(src->limits.max_copy_range_sectors,
						  dst->limits.max_copy_range_sectors),
	};
	return 0;
}

/* Source ranges one command may carry between @src and @dst. */
static uint32_t pair_ranges(const struct blkcopy_dev *src, const struct blkcopy_dev *dst)
{
	const struct nvme_ns *a = src->backend_data, *b = dst->backend_data;

	return a->max_ranges < b->max_ranges ? a->max_ranges : b->max_ranges;
}

/* --- commands ------------------------------------------------------------ */

/* A completion status -> -errno, with the story on both handles. */
static int status_errno(int status, struct blkcopy_dev *src, struct blkcopy_dev *dst)
{
	const int err = bc_nvme_status_errno(status, "NVMe Copy", dst->error, sizeof(dst->error));

	memcpy(src->error, dst->error, sizeof(src->error));
	return err;
}

static int result_errno(int res, struct blkcopy_dev *src, struct blkcopy_dev *dst)
{
	if (res > 0)
		return status_errno(res, src, dst);
	if (res < 0) {
		snprintf(dst->error, sizeof(dst->error), "NVMe Copy: passthrough failed: %s",
			 strerror(-res));
		memcpy(src->error, dst->error, sizeof(src->error));
	}
	return res;
}

/*
 * Fill the source range descriptors and the command for one piece: format
 * 0h inside a namespace, 2h (bytes 0-3: the source namespace) across two.
 * The command goes to the destination namespace.
 */
static void build_copy(const struct blkcopy_dev *src, const struct blkcopy_dev *dst,
		       const struct bc_span *segs, const struct bc_piece *piece,
		       uint8_t *descs, struct nvme_uring_cmd *cmd)
{
	const struct nvme_ns *ns = src->backend_data, *dns = dst->backend_data;
	const uint64_t sdlba = (dst->medium.base + piece->dst) / dns->lbs;
	const bool format2 = across(ns, dns);
	const uint32_t snsid = htole32(ns->nsid);

	memset(descs, 0, (size_t)piece->nr_segs * RANGE_DESC_SIZE);
	for (uint32_t i = 0; i < piece->nr_segs; i++) {
		uint8_t *d = descs + (size_t)i * RANGE_DESC_SIZE;
		uint64_t slba = htole64((src->medium.base + segs[i].src) / ns->lbs);
		uint16_t nlb = htole16((uint16_t)(segs[i].len / ns->lbs - 1));

		if (format2)
			memcpy(d, &snsid, sizeof(snsid));
		memcpy(d + 8, &slba, sizeof(slba));
		memcpy(d + 16, &nlb, sizeof(nlb));
	}
	*cmd = (struct nvme_uring_cmd){
		.opcode = OP_COPY,
		.nsid = dns->nsid,
		.addr = (uint64_t)(uintptr_t)descs,
		.data_len = piece->nr_segs * RANGE_DESC_SIZE,
		.cdw10 = (uint32_t)sdlba,
		.cdw11 = (uint32_t)(sdlba >> 32),
		/* NR, 0's based; the descriptor format in bits 11:8. */
		.cdw12 = ((piece->nr_segs - 1) & 0xff) | (format2 ? 2u << 8 : 0),
	};
}

/* The planner keeps pieces inside the limits; this re-checks before anything reaches the drive. */
static bool piece_fits(const struct blkcopy_dev *src, const struct blkcopy_dev *dst,
		       const struct bc_span *segs, const struct bc_piece *piece)
{
	const struct nvme_ns *ns = src->backend_data;

	if (!piece->nr_segs || piece->nr_segs > pair_ranges(src, dst))
		return false;
	for (uint32_t i = 0; i < piece->nr_segs; i++)
		if (!segs[i].len || segs[i].len % ns->lbs || segs[i].len / ns->lbs > 65536)
			return false;
	return true;
}

static int ioctl_copy(int fd, const struct nvme_uring_cmd *c)
{
	struct nvme_passthru_cmd64 cmd = {
		.opcode = c->opcode,
		.nsid = c->nsid,
		.addr = c->addr,
		.data_len = c->data_len,
		.cdw10 = c->cdw10,
		.cdw11 = c->cdw11,
		.cdw12 = c->cdw12,
	};
	int ret = ioctl(fd, NVME_IOCTL_IO64_CMD, &cmd);

	return ret < 0 ? -errno : ret;
}

static int nvme_copy(struct blkcopy_dev *src, struct blkcopy_dev *dst, const struct bc_span *segs,
		     const struct bc_piece *piece, struct bc_copy_stats *stats)
{
	const struct nvme_ns *ns = src->backend_data;
	const struct nvme_ns *dns = dst->backend_data;	/* opened for writing */
	struct nvme_uring_cmd cmd;
	uint8_t *descs;
	int ret;

	if (!piece_fits(src, dst, segs, piece))
		return -E2BIG;
	if (posix_memalign((void **)&descs, 4096, (size_t)ns->max_ranges * RANGE_DESC_SIZE))
		return -ENOMEM;
	build_copy(src, dst, segs, piece, descs, &cmd);
	ret = result_errno(ioctl_copy(dns->pt_fd, &cmd), src, dst);
	free(descs);
	if (!ret)
		stats->bytes[BLKCOPY_METHOD_NVME_COPY] += piece->len;
	return ret;
}

/* --- the io_uring queue -------------------------------------------------- */

struct nvme_queue {
	struct bc_native_queue base;	/* what the core holds */
	struct io_uring ring;
	struct blkcopy_dev *src, *dst;
	int fd;
	uint32_t depth;
	uint8_t *descs;			/* depth x max_ranges descriptors */
	struct nvme_uring_cmd *cmds;	/* kept to re-run through the ioctl */
	bool use_ioctl;			/* the kernel refused URING_CMD: synchronous from now on */
	struct bc_native_cqe *done;	/* completions of synchronous commands, not yet reaped */
	uint32_t nr_done;
};

/* The backend's queue around the part the core holds. */
static struct nvme_queue *nvme_queue_of(const struct bc_native_queue *nq)
{
	return (struct nvme_queue *)nq;
}

static int nvme_queue_create(struct blkcopy_dev *src, struct blkcopy_dev *dst, uint32_t depth,
			     struct bc_native_queue **qp)
{
	const struct nvme_ns *ns = dst->backend_data;	/* opened for writing */
	struct nvme_queue *q;
	const char *env = getenv("BLKCOPY_NVME_SYNC");

	/* BLKCOPY_NVME_SYNC=1 forces the synchronous ioctl path, to test it. */
	if (!ns->pt_char || (env && *env && strcmp(env, "0")))
		return -EOPNOTSUPP;
	q = calloc(1, sizeof(*q));
	if (!q)
		return -ENOMEM;
	q->base.backend = &bc_backend_nvme;
	q->src = src;
	q->dst = dst;
	q->fd = ns->pt_fd;
	q->depth = depth;
	q->cmds = calloc(depth, sizeof(*q->cmds));
	q->done = calloc(depth, sizeof(*q->done));
	if (!q->cmds || !q->done ||
	    posix_memalign((void **)&q->descs, 4096, (size_t)depth * ns->max_ranges * RANGE_DESC_SIZE))
		goto fail;
	/* Big SQEs carry the NVMe command; big CQEs carry its result. */
	if (io_uring_queue_init(depth, &q->ring, IORING_SETUP_SQE128 | IORING_SETUP_CQE32))
		goto fail;
	*qp = &q->base;
	return 0;
fail:
	free(q->descs);
	free(q->cmds);
	free(q->done);
	free(q);
	return -EOPNOTSUPP;
}

static struct bc_native_cqe completion(struct nvme_queue *q, uint32_t tag, int res)
{
	return (struct bc_native_cqe){
		.tag = tag,
		.result = result_errno(res, q->src, q->dst),
		.method = BLKCOPY_METHOD_NVME_COPY,
	};
}

static int nvme_queue_submit(struct bc_native_queue *nq, const struct bc_span *segs,
			     const struct bc_piece *piece, uint32_t tag)
{
	struct nvme_queue *q = nvme_queue_of(nq);
	const struct nvme_ns *ns = q->dst->backend_data;	/* the descriptors' room is its */
	uint8_t *descs = q->descs + (size_t)tag * ns->max_ranges * RANGE_DESC_SIZE;
	struct io_uring_sqe *sqe;

	if (tag >= q->depth)
		return -EINVAL;
	if (!piece_fits(q->src, q->dst, segs, piece))
		return -E2BIG;
	build_copy(q->src, q->dst, segs, piece, descs, &q->cmds[tag]);
	if (q->use_ioctl) {
		q->done[q->nr_done++] = completion(q, tag, ioctl_copy(q->fd, &q->cmds[tag]));
		return 0;
	}
	sqe = io_uring_get_sqe(&q->ring);
	if (!sqe) {
		io_uring_submit(&q->ring);
		sqe = io_uring_get_sqe(&q->ring);
		if (!sqe)
			return -EBUSY;
	}
	memset(sqe, 0, 2 * sizeof(*sqe));
	sqe->opcode = IORING_OP_URING_CMD;
	sqe->fd = q->fd;
	sqe->cmd_op = NVME_URING_CMD_IO;
	sqe->user_data = tag;
	memcpy(sqe->cmd, &q->cmds[tag], sizeof(q->cmds[tag]));
	return 0;
}

static int nvme_queue_reap(struct bc_native_queue *nq, struct bc_native_cqe *cqes, uint32_t max,
			   bool wait)
{
	struct nvme_queue *q = nvme_queue_of(nq);
	struct io_uring_cqe *cqe;
	uint32_t n = 0;
	int ret;

	while (q->nr_done && n < max)
		cqes[n++] = q->done[--q->nr_done];
	if (q->use_ioctl && !io_uring_cq_ready(&q->ring) && !io_uring_sq_ready(&q->ring))
		return (int)n;
	ret = io_uring_submit_and_wait(&q->ring, wait && !n ? 1 : 0);
	if (ret < 0 && ret != -EINTR && ret != -EAGAIN && ret != -EBUSY)
		return ret;
	while (n < max && io_uring_peek_cqe(&q->ring, &cqe) == 0) {
		uint32_t tag = (uint32_t)cqe->user_data;
		int res = cqe->res;

		io_uring_cqe_seen(&q->ring, cqe);
		if (tag >= q->depth)
			continue;
		/* Passthrough over io_uring refused (not an NVMe status): the ioctl does the same. */
		if (res == -EOPNOTSUPP || res == -EINVAL || res == -ENOTTY) {
			q->use_ioctl = true;
			res = ioctl_copy(q->fd, &q->cmds[tag]);
		}
		cqes[n++] = completion(q, tag, res);
	}
	return (int)n;
}

static int nvme_queue_fd(const struct bc_native_queue *nq)
{
	const struct nvme_queue *q = nvme_queue_of(nq);
	return q->ring.ring_fd;
}

static void nvme_queue_destroy(struct bc_native_queue *nq)
{
	struct nvme_queue *q = nvme_queue_of(nq);
	io_uring_queue_exit(&q->ring);
	free(q->descs);
	free(q->cmds);
	free(q->done);
	free(q);
}

const struct bc_backend bc_backend_nvme = {
	.name = "nvme",
	.caps = BC_BACKEND_SYNC | BC_BACKEND_QUEUED | BC_BACKEND_QUEUE_MAY_REFUSE,
	.probe = nvme_probe,
	.pair = nvme_pair,
	.copy = nvme_copy,
	.close = nvme_close,
	.queue_create = nvme_queue_create,
	.queue_submit = nvme_queue_submit,
	.queue_reap = nvme_queue_reap,
	.queue_fd = nvme_queue_fd,
	.queue_destroy = nvme_queue_destroy,
};
