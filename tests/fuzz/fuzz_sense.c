/* SPDX-License-Identifier: MIT */
/*
 * Sense data as a device or a target returns it (lib/scsi.c): fixed (70h,
 * 71h) and descriptor (72h, 73h) formats, a length that may claim more
 * than the buffer holds, decoded and put in words with the errno blkcopy
 * acts on.  The first two bytes are the claimed length.
 */
#include <errno.h>

#include "fuzz.h"
#include "scsi.h"

static int check_condition(void *ctx, const uint8_t *cdb, uint8_t cdb_len, enum bc_scsi_dir dir,
			   void *buf, uint32_t len, uint32_t timeout_ms, uint8_t *sense,
			   uint32_t *sense_len)
{
	struct fuzz_input *in = ctx;
	uint16_t claimed;

	fuzz_take(in, &claimed, sizeof(claimed));
	*sense_len = claimed;
	fuzz_take(in, sense, 252);
	return 1;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct fuzz_input in = { data, size };
	const struct bc_scsi_transport t = { .exec = check_condition, .ctx = &in };
	const uint8_t cdb[16] = { 0x83 };
	struct bc_scsi_sense s;
	char msg[256];
	int ret;

	ret = bc_scsi_run(&t, cdb, sizeof(cdb), BC_SCSI_NONE, NULL, 0, 1000, &s);
	if (ret != -EIO || s.key > 0xf)
		abort();
	ret = bc_scsi_sense_errno(&s, "EXTENDED COPY", msg, sizeof(msg));
	if (ret != -EIO && ret != -E2BIG && ret != -EOPNOTSUPP && ret != -EROFS)
		abort();
	return 0;
}
