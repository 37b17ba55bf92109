/* SPDX-License-Identifier: MIT */
/* Zoned destinations: the rules a copy follows on them (see blkcopy_report_zones()). */
#include <errno.h>
#include <inttypes.h>
#include <stdio.h>
#include <string.h>

#include "transport.h"
#include "util.h"
#include "zone.h"

#define ZONE_BATCH 64u

ssize_t bc_zone_report(struct blkcopy_dev *d, uint64_t off, struct blkcopy_zone *z, size_t nr)
{
	if (d->zoned.model == BLKCOPY_ZONED_NONE || !d->transport->report_zones)
		return -EOPNOTSUPP;
	if (off >= d->capacity || !nr)
		return 0;
	return d->transport->report_zones(d, off, z, nr);
}

ssize_t blkcopy_report_zones(struct blkcopy_dev *dev, uint64_t offset, struct blkcopy_zone *zones,
			     size_t nr)
{
	if (!dev || (nr && !zones))
		return -EINVAL;
	return bc_zone_report(dev, offset, zones, nr);
}

/* Sizes in messages as a user would type them: "56 MiB", "57408 KiB", "1536 bytes". */
struct size_text {
	char s[32];
};

static struct size_text size_text(uint64_t v)
{
	struct size_text t;

	if (v && !(v % (1u << 20)))
		snprintf(t.s, sizeof(t.s), "%" PRIu64 " MiB", v >> 20);
	else if (v && !(v % 1024))
		snprintf(t.s, sizeof(t.s), "%" PRIu64 " KiB", v >> 10);
	else if (v)
		snprintf(t.s, sizeof(t.s), "%" PRIu64 " bytes", v);
	else
		snprintf(t.s, sizeof(t.s), "0");
	return t;
}

int bc_zone_check(const struct blkcopy_zone *z, uint64_t off, uint64_t len, char *why,
		  size_t why_size)
{
	const uint64_t end = off + len, zend = z->start + z->len;
	const uint64_t first = off > z->start ? off : z->start;
	const uint64_t last = end < zend ? end : zend;

	if (first >= last || z->type == BLKCOPY_ZONE_CONVENTIONAL)
		return 0;
	if (z->cond == BLKCOPY_ZONE_READONLY || z->cond == BLKCOPY_ZONE_OFFLINE) {
		snprintf(why, why_size, "the zone at %s is %s", size_text(z->start).s,
			 z->cond == BLKCOPY_ZONE_READONLY ? "read-only" : "offline");
		return -EROFS;
	}
	/* Host-aware zones take writes anywhere; only a required order is a rule. */
	if (z->type != BLKCOPY_ZONE_SEQ_REQUIRED)
		return 0;
	if (z->cond == BLKCOPY_ZONE_FULL) {
		snprintf(why, why_size, "destination %s is in a full zone (the zone at %s)",
			 size_text(first).s, size_text(z->start).s);
		return -ESPIPE;
	}
	if (first != z->write_pointer) {
		if (first == off)
			snprintf(why, why_size,
				 "destination %s is not at the write pointer of its zone (%s)",
				 size_text(off).s, size_text(z->write_pointer).s);
		else
			snprintf(why, why_size,
				 "the copy continues into the zone at %s, whose write pointer (%s) "
				 "is not at its start", size_text(z->start).s,
				 size_text(z->write_pointer).s);
		return -ESPIPE;
	}
	if (last > z->start + z->capacity) {
		snprintf(why, why_size,
			 "the copy runs %s past the capacity of the zone at %s "
			 "(%s writable of %s)", size_text(last - (z->start + z->capacity)).s,
			 size_text(z->start).s, size_text(z->capacity).s, size_text(z->len).s);
		return -EFBIG;
	}
	return 0;
}

int bc_zone_validate(struct blkcopy_dev *dst, uint64_t off, uint64_t len)
{
	struct blkcopy_zone z[ZONE_BATCH];
	const uint64_t end = off + len;

	if (!bc_zoned_seq(dst))
		return 0;
	while (off < end) {
		ssize_t n = bc_zone_report(dst, off, z, ZONE_BATCH);

		if (n <= 0) {
			snprintf(dst->error, sizeof(dst->error), "cannot report the zones at %s: %s",
				 size_text(off).s, n ? strerror((int)-n) : "none reported");
			return n ? (int)n : -EIO;
		}
		for (ssize_t i = 0; i < n && off < end; i++) {
			int ret = bc_zone_check(&z[i], off, end - off, dst->error, sizeof(dst->error));

			if (ret)
				return ret;
			off = z[i].start + z[i].len;
		}
	}
	return 0;
}

uint64_t bc_zone_landed(struct blkcopy_dev *d, uint64_t off, uint64_t len)
{
	struct blkcopy_zone z;

	if (!bc_zoned_seq(d) || bc_zone_report(d, off, &z, 1) != 1 ||
	    z.type != BLKCOPY_ZONE_SEQ_REQUIRED || off < z.start || off >= z.start + z.len)
		return 0;
	/* Writes into the zone are in order, so everything below its pointer is ours. */
	if (z.write_pointer <= off)
		return 0;
	return bc_min_u64(z.write_pointer - off, len);
}

void bc_zone_sync(struct blkcopy_dev *d, uint64_t lo, uint64_t hi)
{
	struct blkcopy_zone z[ZONE_BATCH];

	if (!bc_zoned_seq(d) || !d->transport->zone_sync)
		return;
	while (lo < hi) {
		ssize_t n = bc_zone_report(d, lo, z, ZONE_BATCH);

		if (n <= 0)
			return;
		for (ssize_t i = 0; i < n && lo < hi; i++) {
			/* Only a sequential zone written part way has a pointer the kernel may still use. */
			if (z[i].type == BLKCOPY_ZONE_SEQ_REQUIRED && z[i].cond != BLKCOPY_ZONE_FULL &&
			    z[i].write_pointer > z[i].start &&
			    z[i].write_pointer < z[i].start + z[i].capacity)
				d->transport->zone_sync(d, &z[i]);
			lo = z[i].start + z[i].len;
		}
	}
}
