/* SPDX-License-Identifier: MIT */
/*
 * What an NVMe controller answers (lib/nvme.c): Identify Controller and
 * Identify Namespace pages decoded for Copy, and completion status put in
 * words.  The input: block size selector, status, then the two pages.
 */
#include <errno.h>

#include "fuzz.h"
#include "nvme.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	static uint8_t ctrl[BC_NVME_ID_SIZE], ns[BC_NVME_ID_SIZE];
	struct fuzz_input in = { data, size };
	struct bc_nvme_copy_caps caps;
	const uint32_t lbs = 512u << (fuzz_u32(&in) % 4);
	const int status = (int)(fuzz_u32(&in) & 0x7fff);
	char msg[160];
	int ret;

	fuzz_take(&in, ctrl, sizeof(ctrl));
	fuzz_take(&in, ns, sizeof(ns));
	ret = bc_nvme_copy_caps(ctrl, ns, lbs, &caps, msg, sizeof(msg));
	if (ret == 0 && (!caps.mssrl || !caps.mcl))
		abort();
	if (ret != 0 && ret != -ENODEV)
		abort();
	ret = bc_nvme_status_errno(status, "NVMe Copy", msg, sizeof(msg));
	if (ret >= 0)
		abort();	/* a status is never success */
	return 0;
}
