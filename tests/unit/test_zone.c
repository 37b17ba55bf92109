/* SPDX-License-Identifier: MIT */
/*
 * The zone rules a copy onto a host-managed device follows, on zones made
 * up here: where a destination may start, how far it may run, what a
 * read-only, offline, full or host-aware zone allows, and the words the
 * refusal uses.  The real devices (QEMU ZNS, null_blk) are in the lab.
 */
#include <errno.h>
#include <string.h>

#include "check.h"
#include "transport/fd.h"
#include "zone.h"

#define MiB (1ull << 20)
#define KiB 1024ull

static struct blkcopy_zone seq(uint64_t start, uint64_t len, uint64_t cap, uint64_t wp)
{
	return (struct blkcopy_zone){
		.start = start, .len = len, .capacity = cap, .write_pointer = wp,
		.type = BLKCOPY_ZONE_SEQ_REQUIRED,
		.cond = wp == start ? BLKCOPY_ZONE_EMPTY
				    : wp >= start + cap ? BLKCOPY_ZONE_FULL : BLKCOPY_ZONE_IMP_OPEN,
	};
}

static int check(const struct blkcopy_zone *z, uint64_t off, uint64_t len, char *why)
{
	why[0] = '\0';
	return bc_zone_check(z, off, len, why, 256);
}

static void start_at_write_pointer(void)
{
	const struct blkcopy_zone z = seq(56 * MiB, 4 * MiB, 4 * MiB, 56 * MiB);
	char why[256];

	CHECK_EQ(check(&z, 56 * MiB, 4 * MiB, why), 0);	/* an exact fill */
	CHECK_EQ(check(&z, 56 * MiB, 4 * KiB, why), 0);
	CHECK_EQ(check(&z, 57408 * KiB, 4 * KiB, why), -ESPIPE);
	CHECK(!strcmp(why, "destination 57408 KiB is not at the write pointer of its zone (56 MiB)"),
	      "message: %s", why);
	/* A copy that only passes through (starts in an earlier zone) must find it empty. */
	const struct blkcopy_zone used = seq(60 * MiB, 4 * MiB, 4 * MiB, 61 * MiB);
	CHECK_EQ(check(&used, 59 * MiB, 2 * MiB, why), -ESPIPE);
	CHECK(strstr(why, "continues into the zone at 60 MiB") != NULL, "message: %s", why);
	/* Zones the range does not touch say nothing. */
	CHECK_EQ(check(&used, 10 * MiB, 2 * MiB, why), 0);
	CHECK_EQ(check(&used, 64 * MiB, 2 * MiB, why), 0);
}

static void capacity(void)
{
	const struct blkcopy_zone z = seq(0, 4 * MiB, 3 * MiB, 1 * MiB);
	char why[256];

	CHECK_EQ(check(&z, 1 * MiB, 2 * MiB, why), 0);		/* up to the capacity, exactly */
	CHECK_EQ(check(&z, 1 * MiB, 2 * MiB + 4 * KiB, why), -EFBIG);
	CHECK(strstr(why, "4 KiB past the capacity of the zone at 0 (3 MiB writable of 4 MiB)"),
	      "message: %s", why);
	/* On into the next zone: only where capacity is the zone's size. */
	CHECK_EQ(check(&z, 1 * MiB, 4 * MiB, why), -EFBIG);
	const struct blkcopy_zone whole = seq(0, 4 * MiB, 4 * MiB, 3 * MiB);
	CHECK_EQ(check(&whole, 3 * MiB, 2 * MiB, why), 0);
}

static void conditions(void)
{
	struct blkcopy_zone z = seq(0, 4 * MiB, 4 * MiB, 4 * MiB);
	char why[256];

	CHECK_EQ(check(&z, 0, 4 * KiB, why), -ESPIPE);		/* full: no write pointer */
	CHECK(strstr(why, "full zone") != NULL, "message: %s", why);
	z = seq(0, 4 * MiB, 4 * MiB, 0);
	z.cond = BLKCOPY_ZONE_READONLY;
	CHECK_EQ(check(&z, 0, 4 * KiB, why), -EROFS);
	z.cond = BLKCOPY_ZONE_OFFLINE;
	CHECK_EQ(check(&z, 0, 4 * KiB, why), -EROFS);
	CHECK(strstr(why, "offline") != NULL, "message: %s", why);
	/* Conventional and host-aware zones take writes anywhere. */
	z = (struct blkcopy_zone){ .start = 0, .len = 4 * MiB, .capacity = 4 * MiB,
				   .type = BLKCOPY_ZONE_CONVENTIONAL, .cond = BLKCOPY_ZONE_NOT_WP };
	CHECK_EQ(check(&z, 1 * MiB, 3 * MiB, why), 0);
	z = seq(0, 4 * MiB, 4 * MiB, 2 * MiB);
	z.type = BLKCOPY_ZONE_SEQ_PREFERRED;
	CHECK_EQ(check(&z, 1 * MiB, 3 * MiB, why), 0);
}

static void kernels(void)
{
	CHECK(!bc_kernel_plugs_zone_writes("6.1.0-28-amd64"), "6.1");
	CHECK(!bc_kernel_plugs_zone_writes("5.15.0"), "5.15");
	CHECK(!bc_kernel_plugs_zone_writes("6.9.12"), "6.9");
	CHECK(bc_kernel_plugs_zone_writes("6.10.0"), "6.10");
	CHECK(bc_kernel_plugs_zone_writes("6.12.117+deb12-amd64"), "6.12");
	CHECK(bc_kernel_plugs_zone_writes("7.0.0"), "7.0");
	CHECK(bc_kernel_plugs_zone_writes("weird"), "unknown releases are taken as new");
}

int main(void)
{
	start_at_write_pointer();
	capacity();
	conditions();
	kernels();
	return check_done("zone");
}
