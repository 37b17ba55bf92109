/* SPDX-License-Identifier: MIT */
/*
 * SCSI third-party copy, the protocol half: commands are built and decoded
 * here and run by a transport (backend/scsi.c: SG_IO).  References: SPC-4
 * 6.4 (EXTENDED COPY LID1), 6.26 (RECEIVE COPY OPERATING PARAMETERS),
 * 7.8.6 (Device Identification VPD), 4.5 (sense data).
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <sys/types.h>

#include "scsi.h"

#define DISCOVER_TIMEOUT_MS 30000
#define HEADER_LEN 16
#define TARGET_DESC_LEN 32
#define SEGMENT_DESC_LEN 28
#define MAX_SEGMENT_BLOCKS 0xffffu	/* the segment's BLOCK DEVICE NUMBER OF BLOCKS is 16 bits */
/* One command at most: bounds a copy manager's time per command and a cancel's wait. */
#define MAX_PIECE_BYTES (256ull << 20)

enum {
	KEY_NOT_READY = 0x2,
	KEY_ILLEGAL_REQUEST = 0x5,
	KEY_UNIT_ATTENTION = BC_SCSI_KEY_UNIT_ATTENTION,
	KEY_DATA_PROTECT = 0x7,
	KEY_COPY_ABORTED = 0xa,
};

static uint16_t be16(const uint8_t *p)
{
	return (uint16_t)(p[0] << 8 | p[1]);
}

static uint32_t be32(const uint8_t *p)
{
	return (uint32_t)p[0] << 24 | (uint32_t)p[1] << 16 | (uint32_t)p[2] << 8 | p[3];
}

static uint64_t be64(const uint8_t *p)
{
	return (uint64_t)be32(p) << 32 | be32(p + 4);
}

static void put_be16(uint8_t *p, uint16_t v)
{
	p[0] = (uint8_t)(v >> 8);
	p[1] = (uint8_t)v;
}

static void put_be32(uint8_t *p, uint32_t v)
{
	put_be16(p, (uint16_t)(v >> 16));
	put_be16(p + 2, (uint16_t)v);
}

static void put_be64(uint8_t *p, uint64_t v)
{
	put_be32(p, (uint32_t)(v >> 32));
	put_be32(p + 4, (uint32_t)v);
}

/* Fixed (70h/71h) and descriptor (72h/73h) sense formats. */
void bc_scsi_parse_sense(const uint8_t *b, uint32_t len, struct bc_scsi_sense *s)
{
	const uint8_t code = len ? b[0] & 0x7f : 0;

	*s = (struct bc_scsi_sense){ 0 };
	if ((code == 0x70 || code == 0x71) && len >= 14) {
		s->key = b[2] & 0xf;
		s->asc = b[12];
		s->ascq = b[13];
		s->info_valid = b[0] & 0x80;
		s->info = be32(b + 3);
		s->cmd_info = be32(b + 8);
	} else if ((code == 0x72 || code == 0x73) && len >= 8) {
		s->key = b[1] & 0xf;
		s->asc = b[2];
		s->ascq = b[3];
		for (uint32_t at = 8; at + 2 <= len && at + 2 + b[at + 1] <= len; at += 2 + b[at + 1]) {
			const uint8_t *d = b + at;
			if (d[0] == 0x00 && d[1] >= 10) {
				s->info_valid = d[2] & 0x80;
				s->info = be64(d + 4);
			} else if (d[0] == 0x01 && d[1] >= 10) {
				s->cmd_info = (uint32_t)be64(d + 4);
			}
		}
	}
}

#define TRANSIENT_PAUSE_US 5000
#define TRANSIENT_SENDS 200	/* a second of pauses */

long bc_scsi_retry(struct bc_scsi_retry *r, const struct bc_scsi_sense *s)
{
	if (s->key == KEY_UNIT_ATTENTION)
		return ++r->unit_attentions < BC_SCSI_UA_SENDS ? 0 : -1;
	/* LOGICAL UNIT NOT READY: becoming ready (04/01), asymmetric access state transition (04/0A). */
	if (s->key == KEY_NOT_READY && s->asc == 0x04 && (s->ascq == 0x01 || s->ascq == 0x0a))
		return ++r->transients < TRANSIENT_SENDS ? TRANSIENT_PAUSE_US : -1;
	return -1;
}

int bc_scsi_run(const struct bc_scsi_transport *t, const uint8_t *cdb, uint8_t cdb_len,
		enum bc_scsi_dir dir, void *buf, uint32_t len, uint32_t timeout_ms,
		struct bc_scsi_sense *s)
{
	struct bc_scsi_retry retry = { 0 };
	uint8_t sense[252];

	for (;;) {
		uint32_t sense_len = 0;
		int rc = t->exec(t->ctx, cdb, cdb_len, dir, buf, len, timeout_ms, sense, &sense_len);
		long pause;

		if (rc <= 0)
			return rc;
		bc_scsi_parse_sense(sense, sense_len < sizeof(sense) ? sense_len : sizeof(sense), s);
		pause = bc_scsi_retry(&retry, s);
		if (pause < 0)
			return -EIO;
		if (pause)
			usleep((useconds_t)pause);
	}
}

static const char *key_name(uint8_t key)
{
	static const char *const names[16] = {
		"NO SENSE", "RECOVERED ERROR", "NOT READY", "MEDIUM ERROR", "HARDWARE ERROR",
		"ILLEGAL REQUEST", "UNIT ATTENTION", "DATA PROTECT", "BLANK CHECK",
		"VENDOR SPECIFIC", "COPY ABORTED", "ABORTED COMMAND", "reserved",
		"VOLUME OVERFLOW", "MISCOMPARE", "COMPLETED",
	};
	return names[key & 0xf];
}

static const char *asc_name(uint8_t asc, uint8_t ascq)
{
	static const struct {
		uint8_t asc, ascq;
		const char *name;
	} t[] = {
		{ 0x0d, 0x00, "error detected by third party temporary initiator" },
		{ 0x0d, 0x01, "third party device failure" },
		{ 0x0d, 0x02, "copy target device not reachable" },
		{ 0x0d, 0x03, "incorrect copy target device type" },
		{ 0x0d, 0x04, "copy target device data underrun" },
		{ 0x0d, 0x05, "copy target device data overrun" },
		{ 0x11, 0x00, "unrecovered read error" },
		{ 0x20, 0x00, "invalid command operation code" },
		{ 0x21, 0x00, "logical block address out of range" },
		{ 0x24, 0x00, "invalid field in CDB" },
		{ 0x26, 0x00, "invalid field in parameter list" },
		{ 0x26, 0x06, "too many target descriptors" },
		{ 0x26, 0x07, "unsupported target descriptor type code" },
		{ 0x26, 0x08, "too many segment descriptors" },
		{ 0x26, 0x09, "unsupported segment descriptor type code" },
		{ 0x26, 0x0a, "unexpected inexact segment" },
		{ 0x26, 0x0b, "inline data length exceeded" },
		{ 0x26, 0x0c, "invalid operation for copy source or destination" },
		{ 0x27, 0x00, "write protected" },
		{ 0x29, 0x00, "power on, reset, or bus device reset occurred" },
		{ 0x2a, 0x01, "mode parameters changed" },
		{ 0x3f, 0x0e, "reported luns data has changed" },
		{ 0x55, 0x06, "insufficient resources to create ROD" },
	};
	for (size_t i = 0; i < sizeof(t) / sizeof(t[0]); i++)
		if (t[i].asc == asc && t[i].ascq == ascq)
			return t[i].name;
	return "";
}

int bc_scsi_sense_errno(const struct bc_scsi_sense *s, const char *what, char *msg, size_t size)
{
	const char *name = asc_name(s->asc, s->ascq);
	int err = -EIO;

	snprintf(msg, size, "%s: CHECK CONDITION, %s, ASC/ASCQ 0x%02x/0x%02x%s%s%s", what,
		 key_name(s->key), s->asc, s->ascq, *name ? " (" : "", name, *name ? ")" : "");
	if (s->key == KEY_ILLEGAL_REQUEST && s->asc == 0x26 && s->ascq == 0x08)
		err = -E2BIG;
	else if (s->key == KEY_ILLEGAL_REQUEST && s->asc != 0x21)
		err = -EOPNOTSUPP;
	else if (s->key == KEY_COPY_ABORTED && s->asc == 0x0d && (s->ascq == 0x02 || s->ascq == 0x03))
		err = -EOPNOTSUPP;
	else if (s->key == KEY_DATA_PROTECT)
		err = -EROFS;
	return err;
}

/* A failed discovery command, in words. */
static int discover_fail(int rc, const struct bc_scsi_sense *s, const char *cmd, char *why,
			 size_t size)
{
	if (rc == -EIO) {
		int err = bc_scsi_sense_errno(s, cmd, why, size);
		return err == -EOPNOTSUPP ? -EOPNOTSUPP : rc;
	}
	snprintf(why, size, "%s: %s%s", cmd, strerror(-rc),
		 rc == -EPERM || rc == -EACCES ? " (SCSI copy commands need CAP_SYS_RAWIO)" : "");
	return rc;
}

/* A NAA designator of the LU itself, binary: what an 0xE4 descriptor can carry. */
static void pick_designator(const uint8_t *page, uint32_t len, struct bc_scsi_lu *lu)
{
	uint32_t end = 4 + be16(page + 2);

	if (end > len)
		end = len;
	for (uint32_t at = 4; at + 4 <= end && at + 4 + page[at + 3] <= end; at += 4 + page[at + 3]) {
		const uint8_t *d = page + at;
		const uint8_t dlen = d[3];

		if ((d[0] & 0xf) != 1 || (d[1] & 0x30) != 0 || (d[1] & 0xf) != 3)
			continue;
		if (dlen != 8 && dlen != 16)
			continue;
		/* Prefer the 16-byte IEEE Registered Extended form: what LIO matches. */
		if (lu->designator_len && dlen <= lu->designator_len - 4)
			continue;
		memcpy(lu->designator, d, 4u + dlen);
		lu->designator_len = (uint8_t)(4 + dlen);
	}
}

/* A 16-byte command with a service action that reads @len bytes (allocation length at 10). */
static int read16(const struct bc_scsi_transport *t, uint8_t op, uint8_t sa, const char *name,
		  void *buf, uint32_t len, char *why, size_t size)
{
	uint8_t cdb[16] = { op, sa };
	struct bc_scsi_sense s;
	int rc;

	put_be32(cdb + 10, len);
	rc = bc_scsi_run(t, cdb, sizeof(cdb), BC_SCSI_FROM_DEV, buf, len, DISCOVER_TIMEOUT_MS, &s);
	return rc ? discover_fail(rc, &s, name, why, size) : 0;
}

static int read_copy_params(const struct bc_scsi_transport *t, struct bc_scsi_lu *lu, char *why,
			    size_t size)
{
	uint8_t buf[256] = { 0 };
	int rc = read16(t, 0x84, 0x03, "RECEIVE COPY OPERATING PARAMETERS", buf, sizeof(buf), why,
			size);

	if (rc)
		return rc;
	lu->max_targets = be16(buf + 8);
	lu->max_segments = be16(buf + 10);
	lu->max_list_bytes = be32(buf + 12);
	lu->max_segment_bytes = be32(buf + 16);
	lu->granularity_log2 = buf[39];
	for (uint32_t i = 0; i < buf[43] && 44 + i < sizeof(buf); i++) {
		lu->seg_block_to_block |= buf[44 + i] == 0x02;
		lu->target_id_desc |= buf[44 + i] == 0xe4;
	}
	return 0;
}

int bc_scsi_capacity(const struct bc_scsi_transport *t, uint32_t *lbs, uint64_t *capacity,
		     char *why, size_t size)
{
	uint8_t buf[32] = { 0 };
	int rc = read16(t, 0x9e, 0x10, "READ CAPACITY(16)", buf, sizeof(buf), why, size);

	if (rc)
		return rc;
	*lbs = be32(buf + 8);
	if (*lbs < 512 || *lbs > (1u << 20) || (*lbs & (*lbs - 1))) {
		snprintf(why, size, "unusable logical block length %u", *lbs);
		return -EOPNOTSUPP;
	}
	*capacity = (be64(buf) + 1) * *lbs;
	return 0;
}

/* INQUIRY: a direct-access LU answers at this number; its 3PC bit. */
static int inquiry(const struct bc_scsi_transport *t, struct bc_scsi_lu *lu, char *why,
		   size_t size)
{
	uint8_t buf[96] = { 0 };
	const uint8_t cdb[6] = { 0x12, 0, 0, 0, sizeof(buf), 0 };
	struct bc_scsi_sense s;
	int rc;

	rc = bc_scsi_run(t, cdb, sizeof(cdb), BC_SCSI_FROM_DEV, buf, sizeof(buf),
			 DISCOVER_TIMEOUT_MS, &s);
	if (rc)
		return discover_fail(rc, &s, "INQUIRY", why, size);
	/* Peripheral qualifier 3: the target has no logical unit at this number. */
	if ((buf[0] >> 5) == 3) {
		snprintf(why, size, "no such logical unit (peripheral qualifier 3)");
		return -ENXIO;
	}
	if ((buf[0] & 0x1f) != 0 || (buf[0] >> 5) != 0) {
		snprintf(why, size, "not a direct-access block device (peripheral 0x%02x)", buf[0]);
		return -ENOTBLK;
	}
	lu->three_pc = buf[5] & 0x08;
	return 0;
}

int bc_scsi_ready(const struct bc_scsi_transport *t, struct bc_scsi_lu *lu, char *why,
		  size_t size)
{
	const uint8_t tur[6] = { 0x00 };
	struct bc_scsi_sense s;
	int rc;

	rc = bc_scsi_run(t, tur, sizeof(tur), BC_SCSI_NONE, NULL, 0, DISCOVER_TIMEOUT_MS, &s);
	if (rc == -EIO && s.key == KEY_ILLEGAL_REQUEST && s.asc == 0x25) {
		snprintf(why, size, "no such logical unit (LOGICAL UNIT NOT SUPPORTED)");
		return -ENXIO;
	}
	if (rc)
		return discover_fail(rc, &s, "TEST UNIT READY", why, size);
	return inquiry(t, lu, why, size);
}

bool bc_scsi_write_protected(const struct bc_scsi_transport *t)
{
	/* MODE SENSE(10), all pages, no block descriptors: only the header is read. */
	uint8_t cdb[10] = { 0x5a, 0x08, 0x3f, 0, 0, 0, 0, 0, 8, 0 }, buf[8] = { 0 };
	struct bc_scsi_sense s;

	if (bc_scsi_run(t, cdb, sizeof(cdb), BC_SCSI_FROM_DEV, buf, sizeof(buf),
			DISCOVER_TIMEOUT_MS, &s))
		return false;
	return buf[3] & 0x80;	/* DEVICE-SPECIFIC PARAMETER: WP */
}

uint64_t bc_scsi_max_transfer(const struct bc_scsi_transport *t, uint32_t lbs)
{
	const uint8_t cdb[6] = { 0x12, 0x01, 0xb0, 0, 64, 0 };
	uint8_t buf[64] = { 0 };
	struct bc_scsi_sense s;

	if (bc_scsi_run(t, cdb, sizeof(cdb), BC_SCSI_FROM_DEV, buf, sizeof(buf),
			DISCOVER_TIMEOUT_MS, &s) || buf[1] != 0xb0)
		return 0;
	return (uint64_t)be32(buf + 8) * lbs;	/* MAXIMUM TRANSFER LENGTH; 0: not reported */
}

int bc_scsi_discover(const struct bc_scsi_transport *t, struct bc_scsi_lu *lu, char *why,
		     size_t size)
{
	int rc;

	*lu = (struct bc_scsi_lu){ 0 };
	rc = inquiry(t, lu, why, size);
	/* Without a copy manager the capacity is not worth a command. */
	if (!rc && lu->three_pc)
		rc = bc_scsi_capacity(t, &lu->lbs, &lu->capacity, why, size);
	return rc ? rc : bc_scsi_copy_manager(t, lu, why, size);
}

int bc_scsi_copy_manager(const struct bc_scsi_transport *t, struct bc_scsi_lu *lu, char *why,
			 size_t size)
{
	uint8_t buf[512] = { 0 };
	struct bc_scsi_sense s;
	int rc;

	if (!lu->three_pc) {
		snprintf(why, size, "no copy manager (INQUIRY 3PC bit clear)");
		return -EOPNOTSUPP;
	}

	const uint8_t vpd00[6] = { 0x12, 0x01, 0x00, 0, 255, 0 };
	memset(buf, 0, sizeof(buf));
	if (!bc_scsi_run(t, vpd00, sizeof(vpd00), BC_SCSI_FROM_DEV, buf, 255, DISCOVER_TIMEOUT_MS, &s))
		for (uint32_t i = 0; i < buf[3] && 4 + i < 255; i++)
			lu->has_tpc_vpd |= buf[4 + i] == 0x8f;

	const uint8_t vpd83[6] = { 0x12, 0x01, 0x83, sizeof(buf) >> 8, sizeof(buf) & 0xff, 0 };
	memset(buf, 0, sizeof(buf));
	rc = bc_scsi_run(t, vpd83, sizeof(vpd83), BC_SCSI_FROM_DEV, buf, sizeof(buf),
			 DISCOVER_TIMEOUT_MS, &s);
	if (rc)
		return discover_fail(rc, &s, "Device Identification VPD", why, size);
	pick_designator(buf, sizeof(buf), lu);
	if (!lu->designator_len) {
		snprintf(why, size, "no binary NAA designator in VPD 0x83 to name the LU in a copy");
		return -EOPNOTSUPP;
	}

	rc = read_copy_params(t, lu, why, size);
	if (rc)
		return rc;
	if (!lu->seg_block_to_block || !lu->target_id_desc) {
		snprintf(why, size, "copy manager lacks %s",
			 !lu->seg_block_to_block ? "block-to-block segment descriptors (0x02)"
						 : "identification target descriptors (0xE4)");
		return -EOPNOTSUPP;
	}
	if (!lu->max_targets || !lu->max_segments ||
	    lu->max_list_bytes < HEADER_LEN + TARGET_DESC_LEN + SEGMENT_DESC_LEN) {
		snprintf(why, size, "copy manager has no room (%u targets, %u segments, %u-byte lists)",
			 lu->max_targets, lu->max_segments, lu->max_list_bytes);
		return -EOPNOTSUPP;
	}
	return 0;
}

static uint64_t min64(uint64_t a, uint64_t b)
{
	return a < b ? a : b;
}

void bc_scsi_limits(const struct bc_scsi_lu *a, const struct bc_scsi_lu *b,
		    struct blkcopy_limits *lim)
{
	const bool same = a == b;
	const uint32_t targets = same ? 1 : 2;
	const uint64_t lbs = a->lbs;

	*lim = (struct blkcopy_limits){ 0 };
	if (a->lbs != b->lbs || min64(a->max_targets, b->max_targets) < targets)
		return;
	uint64_t list = min64(a->max_list_bytes, b->max_list_bytes);
	uint64_t segs = min64(a->max_segments, b->max_segments);
	/* A list too short for the header and the target descriptors takes no segment at all. */
	if (list < HEADER_LEN + TARGET_DESC_LEN * targets + SEGMENT_DESC_LEN)
		return;
	segs = min64(segs, (list - HEADER_LEN - TARGET_DESC_LEN * targets) / SEGMENT_DESC_LEN);
	segs = min64(segs, 4096);

	/* A zero maximum segment length reads as "no limit": the 16-bit block count still binds. */
	uint64_t seg = min64(a->max_segment_bytes ? a->max_segment_bytes : UINT64_MAX,
			     b->max_segment_bytes ? b->max_segment_bytes : UINT64_MAX);
	/* No segment longer than a command may be (large blocks: 65535 of them exceed it). */
	seg = min64(min64(seg, MAX_SEGMENT_BLOCKS * lbs), MAX_PIECE_BYTES);
	uint64_t gran = (uint64_t)1 << min64(a->granularity_log2 > b->granularity_log2 ?
						     a->granularity_log2 : b->granularity_log2, 30);
	gran = gran > lbs ? gran : lbs;
	seg = seg / gran * gran;
	if (!segs || !seg)
		return;
	uint64_t piece = min64(segs * seg, MAX_PIECE_BYTES) / lbs * lbs;

	*lim = (struct blkcopy_limits){
		.copy_offload = 1,
		.max_copy_nr_ranges = (uint32_t)segs,
		.max_copy_range_sectors = seg / BC_SECTOR,
		.max_copy_sectors = piece / BC_SECTOR,
	};
}

static void put_target(uint8_t *d, const struct bc_scsi_lu *lu)
{
	memset(d, 0, TARGET_DESC_LEN);
	d[0] = 0xe4;
	d[1] = 0x00;	/* LU ID TYPE 0, peripheral device type 0: block */
	memcpy(d + 4, lu->designator, lu->designator_len);
	d[29] = (uint8_t)(lu->lbs >> 16);	/* DISK BLOCK LENGTH */
	d[30] = (uint8_t)(lu->lbs >> 8);
	d[31] = (uint8_t)lu->lbs;
}

ssize_t bc_scsi_xcopy_list(const struct bc_scsi_lu *src, uint64_t src_base,
			   const struct bc_scsi_lu *dst, uint64_t dst_base, bool same_lu,
			   const struct bc_span *segs, const struct bc_piece *piece,
			   uint8_t *buf, size_t size)
{
	const uint32_t targets = same_lu ? 1 : 2;
	const size_t tdl = TARGET_DESC_LEN * targets;
	const size_t sdl = (size_t)SEGMENT_DESC_LEN * piece->nr_segs;
	const size_t len = HEADER_LEN + tdl + sdl;
	const uint64_t lbs = src->lbs;
	uint64_t dst_lba = (dst_base + piece->dst) / lbs;

	if (len > size || src->lbs != dst->lbs)
		return -E2BIG;
	memset(buf, 0, HEADER_LEN);
	buf[1] = 0x18;	/* LIST ID USAGE 11b: no list identifier, nothing held */
	put_be16(buf + 2, (uint16_t)tdl);
	put_be32(buf + 8, (uint32_t)sdl);
	put_target(buf + HEADER_LEN, src);
	if (!same_lu)
		put_target(buf + HEADER_LEN + TARGET_DESC_LEN, dst);

	uint8_t *d = buf + HEADER_LEN + tdl;
	for (uint32_t i = 0; i < piece->nr_segs; i++, d += SEGMENT_DESC_LEN) {
		const uint64_t blocks = segs[i].len / lbs;

		if (!blocks || blocks > MAX_SEGMENT_BLOCKS || segs[i].len % lbs)
			return -E2BIG;
		memset(d, 0, SEGMENT_DESC_LEN);
		d[0] = 0x02;	/* block device to block device */
		put_be16(d + 2, SEGMENT_DESC_LEN - 4);
		put_be16(d + 4, 0);
		put_be16(d + 6, same_lu ? 0 : 1);
		put_be16(d + 10, (uint16_t)blocks);
		put_be64(d + 12, (src_base + segs[i].src) / lbs);
		put_be64(d + 20, dst_lba);
		dst_lba += blocks;
	}
	return (ssize_t)len;
}

size_t bc_scsi_xcopy_list_max(uint32_t nr_segs)
{
	return HEADER_LEN + 2 * TARGET_DESC_LEN + (size_t)SEGMENT_DESC_LEN * nr_segs;
}

void bc_scsi_xcopy_cdb(uint8_t cdb[16], uint32_t len)
{
	memset(cdb, 0, 16);
	cdb[0] = 0x83;	/* EXTENDED COPY, service action 0: LID1 */
	put_be32(cdb + 10, len);
}

int bc_scsi_xcopy(const struct bc_scsi_transport *t, const struct bc_scsi_lu *src,
		  uint64_t src_base, const struct bc_scsi_lu *dst, uint64_t dst_base, bool same_lu,
		  const struct bc_span *segs, const struct bc_piece *piece, uint32_t timeout_ms,
		  char *msg, size_t msg_size)
{
	const size_t size = bc_scsi_xcopy_list_max(piece->nr_segs);
	struct bc_scsi_sense s;
	uint8_t cdb[16], *list;
	ssize_t len;
	int ret;

	list = malloc(size);
	if (!list)
		return -ENOMEM;
	len = bc_scsi_xcopy_list(src, src_base, dst, dst_base, same_lu, segs, piece, list, size);
	if (len < 0) {
		free(list);
		return (int)len;
	}
	bc_scsi_xcopy_cdb(cdb, (uint32_t)len);
	ret = bc_scsi_run(t, cdb, sizeof(cdb), BC_SCSI_TO_DEV, list, (uint32_t)len, timeout_ms, &s);
	free(list);
	if (ret == -EIO)
		ret = bc_scsi_sense_errno(&s, "EXTENDED COPY", msg, msg_size);
	return ret;
}
