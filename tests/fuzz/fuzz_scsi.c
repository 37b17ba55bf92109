/* SPDX-License-Identifier: MIT */
/*
 * A SCSI target whose every answer comes from the fuzzer (lib/scsi.c):
 * discovery (TEST UNIT READY, INQUIRY, READ CAPACITY(16), VPD 0x00, 0x83
 * and 0xB0, MODE SENSE, RECEIVE COPY OPERATING PARAMETERS), the copy
 * limits computed from it, and an EXTENDED COPY whose sense data is put in
 * words.  Each command takes the next answer from the input: a status byte
 * (GOOD with data, CHECK CONDITION with sense, a transport error), a
 * length, and that many bytes; a length may claim more than follows.
 * The limits must describe parameter lists the copy manager said it takes.
 */
#include <errno.h>

#include "fuzz.h"
#include "scsi.h"

static int answer(void *ctx, const uint8_t *cdb, uint8_t cdb_len, enum bc_scsi_dir dir, void *buf,
		  uint32_t len, uint32_t timeout_ms, uint8_t *sense, uint32_t *sense_len)
{
	struct fuzz_input *in = ctx;
	uint8_t kind;
	uint16_t n;

	fuzz_take(in, &kind, 1);
	fuzz_take(in, &n, 2);
	switch (kind % 3) {
	case 0:
		if (dir == BC_SCSI_FROM_DEV)
			fuzz_take(in, buf, n < len ? n : len);
		return 0;
	case 1:
		*sense_len = n;	/* may claim more than the 252 bytes a sense buffer has */
		fuzz_take(in, sense, n < 252 ? n : 252);
		return 1;
	}
	return -(int)(n % 200) - 1;
}

static void check_limits(const struct bc_scsi_lu *a, const struct bc_scsi_lu *b, bool same)
{
	struct blkcopy_limits lim;

	bc_scsi_limits(a, same ? a : b, &lim);
	if (!lim.max_copy_sectors)
		return;
	const uint32_t targets = same ? 1 : 2;
	const uint64_t list = 16 + 32ull * targets + 28ull * lim.max_copy_nr_ranges;

	if (list > a->max_list_bytes || (!same && list > b->max_list_bytes) ||
	    lim.max_copy_nr_ranges > a->max_segments || !lim.max_copy_range_sectors ||
	    lim.max_copy_range_sectors > lim.max_copy_sectors)
		abort();	/* limits that promise what the copy manager did not offer */
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct fuzz_input in = { data, size };
	const struct bc_scsi_transport t = { .exec = answer, .ctx = &in };
	struct bc_scsi_lu a, b;
	char why[256];
	int ret;

	ret = bc_scsi_ready(&t, &a, why, sizeof(why));
	(void)bc_scsi_write_protected(&t);
	(void)bc_scsi_max_transfer(&t, 512);
	ret = bc_scsi_discover(&t, &a, why, sizeof(why));
	if (ret)
		return 0;
	if (a.lbs < 512 || a.designator_len > sizeof(a.designator))
		abort();
	check_limits(&a, &a, true);
	if (bc_scsi_discover(&t, &b, why, sizeof(why)))
		return 0;
	check_limits(&a, &b, false);

	/* One EXTENDED COPY of a piece the limits allow; its answer is the next one. */
	struct blkcopy_limits lim;
	bc_scsi_limits(&a, &a, &lim);
	if (!lim.max_copy_sectors)
		return 0;
	const struct bc_span seg = { .src = 0, .len = a.lbs };
	const struct bc_piece piece = { .dst = a.lbs, .len = a.lbs, .nr_segs = 1 };
	ret = bc_scsi_xcopy(&t, &a, 0, &a, 0, true, &seg, &piece, 1000, why, sizeof(why));
	if (ret > 0)
		abort();
	return 0;
}
