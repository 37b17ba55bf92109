/* SPDX-License-Identifier: MIT */
/* Host memory for the emulation engine's buffers. */
#include <stdint.h>
#include <sys/mman.h>

#include "memory.h"

static void *host_map(const struct bc_memory *m, size_t len)
{
	void *p = mmap(NULL, len, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);

	(void)m;
	return p == MAP_FAILED ? NULL : p;
}

static void host_unmap(const struct bc_memory *m, void *p, size_t len)
{
	(void)m;
	munmap(p, len);
}

static const struct bc_memory_ops host_ops = { .map = host_map, .unmap = host_unmap };

const struct bc_memory bc_host_memory = {
	.ops = &host_ops,
	.registrable = true,
	.limit = UINT64_MAX,
	.fd = -1,
};
