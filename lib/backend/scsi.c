/* SPDX-License-Identifier: MIT */
/*
 * Native copy by a SCSI copy manager: EXTENDED COPY (LID1) through SG_IO on
 * the sd node, within one LU or between two LUs of one target.  The data
 * moves inside the target; blkcopy only sends descriptors.  The protocol
 * (discovery, parameter lists, sense) lives in ../scsi.c, shared with the
 * iSCSI transport.
 */
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <scsi/sg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/sysmacros.h>
#include <unistd.h>

#include "../backend.h"
#include "../scsi.h"
#include "../transport/fd.h"

#define XCOPY_TIMEOUT_MS 120000
#define SAM_CHECK_CONDITION 0x02
#define SAM_BUSY 0x08
#define SAM_RESERVATION_CONFLICT 0x18
#define SAM_TASK_SET_FULL 0x28
#define DID_TIME_OUT 0x03

struct sg_lu {
	int fd;			/* the whole LU's block node: SG_IO */
	struct bc_scsi_transport t;
	struct bc_scsi_lu lu;
	char nexus[64];		/* "host:channel:target", the LU number cut off */
};

static int sg_exec(void *ctx, const uint8_t *cdb, uint8_t cdb_len, enum bc_scsi_dir dir, void *buf,
		   uint32_t len, uint32_t timeout_ms, uint8_t *sense, uint32_t *sense_len)
{
	const struct sg_lu *s = ctx;
	struct sg_io_hdr h = {
		.interface_id = 'S',
		.dxfer_direction = dir == BC_SCSI_TO_DEV	  ? SG_DXFER_TO_DEV
				   : dir == BC_SCSI_FROM_DEV ? SG_DXFER_FROM_DEV
							     : SG_DXFER_NONE,
		.cmd_len = cdb_len,
		.mx_sb_len = 252,
		.dxfer_len = dir == BC_SCSI_NONE ? 0 : len,
		.dxferp = dir == BC_SCSI_NONE ? NULL : buf,
		.cmdp = (unsigned char *)cdb,
		.sbp = sense,
		.timeout = timeout_ms,
	};

	if (ioctl(s->fd, SG_IO, &h) < 0)
		return -errno;
	*sense_len = h.sb_len_wr;
	if (h.status == SAM_CHECK_CONDITION && h.sb_len_wr)
		return 1;
	if (h.host_status)
		return h.host_status == DID_TIME_OUT ? -ETIMEDOUT : -EIO;
	switch (h.status) {
	case 0:
		return 0;
	case SAM_BUSY:
	case SAM_TASK_SET_FULL:
	case SAM_RESERVATION_CONFLICT:
		return -EBUSY;
	}
	return -EIO;
}

/* "0:0:1:2" from the sysfs device link: the nexus is everything but the LU. */
static void read_nexus(dev_t whole, char *nexus, size_t size)
{
	char link[PATH_MAX], target[PATH_MAX];
	ssize_t n;

	nexus[0] = '\0';
	snprintf(link, sizeof(link), "/sys/dev/block/%u:%u/device", major(whole), minor(whole));
	n = readlink(link, target, sizeof(target) - 1);
	if (n <= 0)
		return;
	target[n] = '\0';
	const char *base = strrchr(target, '/') ? strrchr(target, '/') + 1 : target;
	const char *lun = strrchr(base, ':');
	if (lun)
		snprintf(nexus, size, "%.*s", (int)(lun - base), base);
}

static void lu_free(struct sg_lu *s)
{
	if (s->fd >= 0)
		close(s->fd);
	free(s);
}

static int scsi_probe(struct blkcopy_dev *d)
{
	char why[128];
	struct sg_lu *s;
	int ret;

	if (d->kind != BLKCOPY_KIND_SCSI)
		return -ENODEV;
	/* Untried, so not offered: the lab has no ZBC target (a zoned disk is emulated, in order). */
	if (d->zoned.model == BLKCOPY_ZONED_HOST_MANAGED) {
		snprintf(d->probe_reason, sizeof(d->probe_reason),
			 "scsi: zoned (ZBC) disk: EXTENDED COPY into zones is not supported");
		return -ENODEV;
	}
	s = calloc(1, sizeof(*s));
	if (!s)
		return -ENOMEM;
	/* SG_IO goes to the whole LU: partitions would need CAP_SYS_RAWIO even to read. */
	s->fd = bc_fd_open_whole(d);
	if (s->fd < 0) {
		snprintf(d->probe_reason, sizeof(d->probe_reason), "scsi: cannot open the whole LU: %s",
			 strerror(-s->fd));
		free(s);
		return -ENODEV;
	}
	s->t = (struct bc_scsi_transport){ .exec = sg_exec, .ctx = s };
	ret = bc_scsi_discover(&s->t, &s->lu, why, sizeof(why));
	if (!ret && s->lu.lbs != d->lbs) {
		snprintf(why, sizeof(why), "READ CAPACITY block length %u differs from the kernel's %u",
			 s->lu.lbs, d->lbs);
		ret = -EIO;
	}
	if (ret) {
		snprintf(d->probe_reason, sizeof(d->probe_reason), "scsi: %s: emulation only", why);
		lu_free(s);
		return -ENODEV;
	}
	read_nexus(d->medium.disk, s->nexus, sizeof(s->nexus));
	bc_scsi_limits(&s->lu, &s->lu, &d->probed);
	snprintf(d->probe_reason, sizeof(d->probe_reason),
		 "scsi: EXTENDED COPY (LID1) by the target: %u segment(s) of up to %u bytes, %u target descriptor(s)%s",
		 s->lu.max_segments, s->lu.max_segment_bytes, s->lu.max_targets,
		 s->lu.has_tpc_vpd ? ", Third-party Copy VPD present" : "");
	d->backend_data = s;
	return 0;
}

static void scsi_close(struct blkcopy_dev *d)
{
	lu_free(d->backend_data);
	d->backend_data = NULL;
}

/* One LU, or two LUs behind one target port that the copy manager can address. */
static int scsi_pair(const struct blkcopy_dev *src, const struct blkcopy_dev *dst,
		     struct blkcopy_limits *lim, char *why, size_t why_size)
{
	const struct sg_lu *a = src->backend_data, *b = dst->backend_data;

	if (bc_medium_same(&src->medium, &dst->medium)) {
		bc_scsi_limits(&a->lu, &a->lu, lim);
	} else {
		if (!a->nexus[0] || strcmp(a->nexus, b->nexus)) {
			snprintf(why, why_size, "scsi: LUs behind different targets (%.20s and %.20s)",
				 a->nexus[0] ? a->nexus : "?", b->nexus[0] ? b->nexus : "?");
			return -EOPNOTSUPP;
		}
		if (a->lu.lbs != b->lu.lbs) {
			snprintf(why, why_size, "scsi: different block sizes (%u and %u bytes)",
				 a->lu.lbs, b->lu.lbs);
			return -EOPNOTSUPP;
		}
		/* Two LUs that one designator names cannot be told apart by the copy manager. */
		if (a->lu.designator_len == b->lu.designator_len &&
		    !memcmp(a->lu.designator, b->lu.designator, a->lu.designator_len)) {
			snprintf(why, why_size, "scsi: two LUs report one designator");
			return -EOPNOTSUPP;
		}
		bc_scsi_limits(&a->lu, &b->lu, lim);
	}
	if (!lim->max_copy_sectors) {
		snprintf(why, why_size, "scsi: the copy manager cannot copy between these LUs");
		return -EOPNOTSUPP;
	}
	return 0;
}

static int scsi_copy(struct blkcopy_dev *src, struct blkcopy_dev *dst, const struct bc_span *segs,
		     const struct bc_piece *piece, struct bc_copy_stats *stats)
{
	const struct sg_lu *a = src->backend_data, *b = dst->backend_data;
	const bool same = bc_medium_same(&src->medium, &dst->medium);
	char msg[sizeof(dst->error)] = "";
	int ret;

	/* The destination LU receives the command: the copy manager that writes. */
	ret = bc_scsi_xcopy(&b->t, &a->lu, src->medium.base, same ? &a->lu : &b->lu, dst->medium.base,
			    same, segs, piece, XCOPY_TIMEOUT_MS, msg, sizeof(msg));
	if (!ret) {
		stats->bytes[BLKCOPY_METHOD_SCSI_XCOPY] += piece->len;
		return 0;
	}
	if (!msg[0])
		snprintf(msg, sizeof(msg), "EXTENDED COPY: SG_IO: %s%s", strerror(-ret),
			 ret == -EPERM ? " (needs CAP_SYS_RAWIO)" : "");
	memcpy(dst->error, msg, sizeof(msg));
	memcpy(src->error, msg, sizeof(msg));
	return ret == -EPERM ? -EOPNOTSUPP : ret;	/* not allowed to ask: emulate */
}

const struct bc_backend bc_backend_scsi = {
	.name = "scsi",
	.caps = BC_BACKEND_SYNC,
	.probe = scsi_probe,
	.pair = scsi_pair,
	.copy = scsi_copy,
	.close = scsi_close,
};
