/* SPDX-License-Identifier: MIT */
/*
 * The SCSI copy protocol against a scripted copy manager that answers like
 * LIO (one segment per command, two target descriptors, a 16-byte NAA
 * designator): discovery with a Unit Attention first, the limits, the exact
 * bytes of an EXTENDED COPY parameter list, and sense decoding.  The lab
 * runs the same code against the real LIO target.
 */
#include <errno.h>
#include <string.h>
#include <sys/types.h>

#include "check.h"
#include "scsi.h"

static struct {
	int calls;
	int unit_attentions;	/* answer this many commands with a Unit Attention first */
	bool no_3pc;
	bool descriptor_sense;	/* sense in descriptor format */
	uint8_t last_cdb[16];
} fake;

static const uint8_t naa16[16] = { 0x60, 0x01, 0x40, 0x5a, 0xbc, 0xde, 0xf0, 0x01,
				   0x23, 0x45, 0x67, 0x89, 0xab, 0xcd, 0xef, 0x01 };

static int fixed_sense(uint8_t *sense, uint32_t *len, uint8_t key, uint8_t asc, uint8_t ascq)
{
	memset(sense, 0, 18);
	if (fake.descriptor_sense) {
		sense[0] = 0x72;
		sense[1] = key;
		sense[2] = asc;
		sense[3] = ascq;
		*len = 8;
	} else {
		sense[0] = 0x70;
		sense[2] = key;
		sense[7] = 10;
		sense[12] = asc;
		sense[13] = ascq;
		*len = 18;
	}
	return 1;
}

static int fake_exec(void *ctx, const uint8_t *cdb, uint8_t cdb_len, enum bc_scsi_dir dir,
		     void *buf, uint32_t len, uint32_t timeout_ms, uint8_t *sense,
		     uint32_t *sense_len)
{
	uint8_t *b = buf;

	(void)ctx, (void)dir, (void)timeout_ms;
	fake.calls++;
	memcpy(fake.last_cdb, cdb, cdb_len);
	if (fake.unit_attentions > 0) {
		fake.unit_attentions--;
		return fixed_sense(sense, sense_len, 0x6, 0x3f, 0x0e);
	}
	memset(buf, 0, len);
	if (cdb[0] == 0x12 && !(cdb[1] & 1)) {		/* standard INQUIRY */
		b[0] = 0x00;
		b[5] = fake.no_3pc ? 0 : 0x08;
	} else if (cdb[0] == 0x12 && cdb[2] == 0x00) {	/* supported VPD pages */
		b[1] = 0x00;
		b[3] = 3;
		b[4] = 0x00, b[5] = 0x80, b[6] = 0x83;
	} else if (cdb[0] == 0x12 && cdb[2] == 0x83) {	/* device identification */
		uint8_t *d = b + 4;
		b[1] = 0x83;
		/* a T10 vendor ID (ASCII) first, then an 8-byte NAA, then the 16-byte one */
		d[0] = 0x02, d[1] = 0x01, d[3] = 8;
		memcpy(d + 4, "LIO-ORG ", 8);
		d += 12;
		d[0] = 0x01, d[1] = 0x03, d[3] = 8;
		memcpy(d + 4, naa16, 8);
		d[4] = 0x50;
		d += 12;
		d[0] = 0x01, d[1] = 0x03, d[3] = 16;
		memcpy(d + 4, naa16, 16);
		d += 20;
		b[3] = (uint8_t)(d - b - 4);
	} else if (cdb[0] == 0x9e) {			/* READ CAPACITY(16): 64 MiB of 512 */
		b[4] = 0x00, b[5] = 0x01, b[6] = 0xff, b[7] = 0xff;
		b[10] = 0x02;
	} else if (cdb[0] == 0x84 && cdb[1] == 0x03) {	/* RECEIVE COPY OPERATING PARAMETERS */
		b[9] = 2;				/* targets */
		b[11] = 1;				/* segments */
		b[14] = 0x04;				/* 1024-byte lists */
		b[16] = 0x10;				/* 256 MiB segments */
		b[43] = 2;
		b[44] = 0x02, b[45] = 0xe4;
	} else if (cdb[0] == 0x83) {
		return fixed_sense(sense, sense_len, 0x5, 0x26, 0x08);
	} else {
		return fixed_sense(sense, sense_len, 0x5, 0x20, 0x00);
	}
	return 0;
}

static const struct bc_scsi_transport transport = { .exec = fake_exec };

/* Which answers send a command again, how often, and after what pause. */
static void test_retry(void)
{
	const struct bc_scsi_sense ua = { .key = 0x6, .asc = 0x29 };
	const struct bc_scsi_sense alua = { .key = 0x2, .asc = 0x04, .ascq = 0x0a };
	const struct bc_scsi_sense becoming = { .key = 0x2, .asc = 0x04, .ascq = 0x01 };
	const struct bc_scsi_sense offline = { .key = 0x2, .asc = 0x04, .ascq = 0x03 };
	const struct bc_scsi_sense medium = { .key = 0x3, .asc = 0x11 };
	struct bc_scsi_retry r = { 0 };
	int n;

	for (n = 0; bc_scsi_retry(&r, &ua) == 0; n++)
		;
	CHECK_EQ(n, BC_SCSI_UA_SENDS - 1);
	r = (struct bc_scsi_retry){ 0 };
	CHECK_EQ(bc_scsi_retry(&r, &becoming), 5000);
	for (n = 1; bc_scsi_retry(&r, &alua) > 0; n++)
		;
	CHECK_EQ(n, 199);	/* about a second of 5 ms pauses in all */
	r = (struct bc_scsi_retry){ 0 };
	CHECK_EQ(bc_scsi_retry(&r, &offline), -1);	/* needs manual intervention: no */
	CHECK_EQ(bc_scsi_retry(&r, &medium), -1);
}

int main(void)
{
	struct bc_scsi_lu lu, lu2;
	struct blkcopy_limits lim;
	char why[160];

	test_retry();

	/* Discovery through a first-contact Unit Attention. */
	fake.unit_attentions = 2;
	CHECK_EQ(bc_scsi_discover(&transport, &lu, why, sizeof(why)), 0);
	CHECK_EQ(lu.lbs, 512);
	CHECK_EQ(lu.capacity, 64ull << 20);
	CHECK_EQ(lu.max_targets, 2);
	CHECK_EQ(lu.max_segments, 1);
	CHECK_EQ(lu.max_list_bytes, 1024);
	CHECK_EQ(lu.max_segment_bytes, 256u << 20);
	CHECK(!lu.has_tpc_vpd, "no VPD 0x8F was offered");
	CHECK_EQ(lu.designator_len, 20);
	CHECK(!memcmp(lu.designator + 4, naa16, 16), "not the 16-byte NAA designator");
	CHECK_EQ(lu.designator[0] & 0xf, 1);
	CHECK_EQ(lu.designator[1], 0x03);

	/* LIO's one segment per command, and the 16-bit block count per segment. */
	bc_scsi_limits(&lu, &lu, &lim);
	CHECK_EQ(lim.copy_offload, 1);
	CHECK_EQ(lim.max_copy_nr_ranges, 1);
	CHECK_EQ(lim.max_copy_range_sectors, 0xffff);
	CHECK_EQ(lim.max_copy_sectors, 0xffff);

	/* Two LUs need two target descriptors; a copy manager with one refuses the pair. */
	lu2 = lu;
	bc_scsi_limits(&lu, &lu2, &lim);
	CHECK_EQ(lim.max_copy_nr_ranges, 1);
	lu2.max_targets = 1;
	bc_scsi_limits(&lu, &lu2, &lim);
	CHECK_EQ(lim.max_copy_sectors, 0);
	lu2 = lu;
	lu2.lbs = 4096;
	bc_scsi_limits(&lu, &lu2, &lim);
	CHECK_EQ(lim.max_copy_sectors, 0);

	/* A list with room for several segments fills them by list length and count. */
	lu2 = lu;
	lu2.max_segments = 1000;
	lu2.max_list_bytes = 16 + 64 + 28 * 10 + 27;
	bc_scsi_limits(&lu2, &lu2, &lim);
	CHECK_EQ(lim.max_copy_nr_ranges, 12);	/* (387 - 16 - 32) / 28: one target descriptor */

	/* The exact list: header, two 0xE4 descriptors, block-to-block segments. */
	const struct bc_span segs[2] = { { 4096, 8192 }, { 1 << 20, 512 } };
	const struct bc_piece piece = { .dst = 65536, .len = 8704, .nr_segs = 2 };
	uint8_t list[256];
	lu2 = lu;
	lu2.designator[19] ^= 0xff;
	ssize_t n = bc_scsi_xcopy_list(&lu, 1 << 20, &lu2, 2 << 20, false, segs, &piece, list,
				       sizeof(list));
	CHECK_EQ(n, 16 + 64 + 56);
	CHECK_EQ(list[1], 0x18);
	CHECK_EQ(list[2] << 8 | list[3], 64);
	CHECK_EQ(list[11], 56);
	CHECK_EQ(list[16], 0xe4);
	CHECK(!memcmp(list + 20, lu.designator, 20), "source descriptor");
	CHECK(!memcmp(list + 52, lu2.designator, 20), "destination descriptor");
	CHECK_EQ(list[16 + 30] << 8 | list[16 + 31], 512);
	const uint8_t *s0 = list + 80, *s1 = list + 108;
	CHECK_EQ(s0[0], 0x02);
	CHECK_EQ(s0[3], 24);
	CHECK_EQ(s0[5], 0);
	CHECK_EQ(s0[7], 1);
	CHECK_EQ(s0[10] << 8 | s0[11], 16);
	CHECK_EQ(s0[18] << 8 | s0[19], ((1 << 20) + 4096) / 512);	/* base + offset */
	CHECK_EQ(s0[26] << 8 | s0[27], ((2 << 20) + 65536) / 512);
	CHECK_EQ(s1[10] << 8 | s1[11], 1);
	CHECK_EQ((s1[17] << 16) | (s1[18] << 8) | s1[19], ((1 << 20) + (1 << 20)) / 512);
	CHECK_EQ(s1[26] << 8 | s1[27], ((2 << 20) + 65536 + 8192) / 512);

	/* Same LU: one descriptor, both indexes 0. */
	n = bc_scsi_xcopy_list(&lu, 0, &lu, 0, true, segs, &piece, list, sizeof(list));
	CHECK_EQ(n, 16 + 32 + 56);
	CHECK_EQ(list[3], 32);
	CHECK_EQ(list[48 + 7], 0);
	/* Too small a buffer, a misaligned segment, or a segment past 65535 blocks: refused. */
	CHECK_EQ(bc_scsi_xcopy_list(&lu, 0, &lu, 0, true, segs, &piece, list, 100), -E2BIG);
	const struct bc_span bad[1] = { { 0, 700 } };
	const struct bc_piece bad_piece = { .dst = 0, .len = 700, .nr_segs = 1 };
	CHECK_EQ(bc_scsi_xcopy_list(&lu, 0, &lu, 0, true, bad, &bad_piece, list, sizeof(list)), -E2BIG);
	const struct bc_span huge[1] = { { 0, 65536ull * 512 } };
	const struct bc_piece huge_piece = { .dst = 0, .len = 65536ull * 512, .nr_segs = 1 };
	CHECK_EQ(bc_scsi_xcopy_list(&lu, 0, &lu, 0, true, huge, &huge_piece, list, sizeof(list)), -E2BIG);

	/* The command, and its sense decoded in both formats. */
	uint8_t cdb[16];
	struct bc_scsi_sense s;
	bc_scsi_xcopy_cdb(cdb, 136);
	CHECK_EQ(cdb[0], 0x83);
	CHECK_EQ(cdb[13], 136);
	for (int f = 0; f < 2; f++) {
		fake.descriptor_sense = f;
		CHECK_EQ(bc_scsi_run(&transport, cdb, 16, BC_SCSI_TO_DEV, list, 136, 1000, &s), -EIO);
		CHECK_EQ(s.key, 5);
		CHECK_EQ(s.asc, 0x26);
		CHECK_EQ(s.ascq, 0x08);
		CHECK_EQ(bc_scsi_sense_errno(&s, "EXTENDED COPY", why, sizeof(why)), -E2BIG);
		CHECK(strstr(why, "too many segment descriptors") && strstr(why, "ILLEGAL REQUEST"),
		      "message: %s", why);
	}
	fake.descriptor_sense = false;
	s = (struct bc_scsi_sense){ .key = 0x5, .asc = 0x20 };
	CHECK_EQ(bc_scsi_sense_errno(&s, "x", why, sizeof(why)), -EOPNOTSUPP);
	s = (struct bc_scsi_sense){ .key = 0x3, .asc = 0x11 };
	CHECK_EQ(bc_scsi_sense_errno(&s, "x", why, sizeof(why)), -EIO);
	s = (struct bc_scsi_sense){ .key = 0x7, .asc = 0x27 };
	CHECK_EQ(bc_scsi_sense_errno(&s, "x", why, sizeof(why)), -EROFS);
	s = (struct bc_scsi_sense){ .key = 0xa, .asc = 0x0d, .ascq = 0x02 };
	CHECK_EQ(bc_scsi_sense_errno(&s, "x", why, sizeof(why)), -EOPNOTSUPP);

	/* Unit Attentions forever: given up on, not looped on. */
	fake.calls = 0;
	fake.unit_attentions = 100;
	CHECK_EQ(bc_scsi_run(&transport, cdb, 16, BC_SCSI_TO_DEV, list, 136, 1000, &s), -EIO);
	CHECK_EQ(s.key, 6);
	CHECK(fake.calls <= 4, "%d calls", fake.calls);

	/* No copy manager: a clear reason. */
	fake.unit_attentions = 0;
	fake.no_3pc = true;
	CHECK_EQ(bc_scsi_discover(&transport, &lu, why, sizeof(why)), -EOPNOTSUPP);
	CHECK(strstr(why, "3PC"), "reason: %s", why);
	return check_done("scsi");
}
