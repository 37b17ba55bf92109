/* SPDX-License-Identifier: MIT */
/*
 * device-mapper tables as the kernel reports them (lib/layer/dm.c): a
 * DM_TABLE_STATUS answer (the dm_ioctl header and its target specs with
 * their parameter text) from the fuzzer, data_size set to what it really
 * holds, as the kernel guarantees.  Parsed targets must be sorted and back
 * to back, and every leg of a striped target inside it.
 */
#include <linux/dm-ioctl.h>

#include "fuzz.h"
#include "layer/dm.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct bc_dm_table s = { 0 };
	struct dm_ioctl *io;
	char why[256];
	size_t len = size < sizeof(*io) ? sizeof(*io) : size;

	if (size > (1u << 20))
		return 0;
	io = calloc(1, len);
	if (!io)
		return 0;
	memcpy(io, data, size);
	io->data_size = (uint32_t)len;
	if (!bc_dm_parse_status(io, &s, why, sizeof(why))) {
		for (size_t i = 0; i < s.nr_targets; i++) {
			const struct bc_target *t = &s.targets[i];

			if (!t->len || t->start != (i ? t[-1].start + t[-1].len : 0))
				abort();
			if (t->striped && (!t->nr_legs || !t->chunk || t->len % (t->chunk * t->nr_legs)))
				abort();
		}
	}
	for (size_t i = 0; i < s.nr_targets; i++)
		bc_target_free(&s.targets[i]);
	free(s.targets);
	free(io);
	return 0;
}
