/* SPDX-License-Identifier: MIT */
/*
 * device-mapper: a dm device's table, read through /dev/mapper/control, and
 * the arithmetic that maps a byte of the dm device to the device below.
 * linear and striped targets are understood and resolved recursively (dm
 * over dm, dm over a partition); any other target type maps to the dm
 * device itself, so that pieces touching it are emulated through the dm
 * node and never sent to what lies below.
 *
 * Native commands bypass dm, so a table swapped during a copy would send
 * them to a stale place.  A signature of the table (types, boundaries,
 * legs; never a target's parameters blkcopy does not parse, which may hold
 * a key) is kept, and dm_verify() compares it with the kernel's.
 */
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <limits.h>
#include <linux/dm-ioctl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/sysmacros.h>
#include <unistd.h>

#include "../backend.h"
#include "../layer.h"
#include "../sysfs.h"
#include "../util.h"
#include "dm.h"

static struct bc_dm_dev *dm_of(const struct blkcopy_dev *d)
{
	return bc_layer_data(d, &bc_layer_dm);
}

const struct bc_dm_table *bc_dm_table_of(const struct blkcopy_dev *d)
{
	const struct bc_dm_dev *dm = dm_of(d);

	return dm ? dm->table : NULL;
}

#define DM_CONTROL "/dev/mapper/control"
#define MAX_STRIPES 1024

/* ------------------------------------------------------------------------ */
/* Table text                                                               */

static int parse_dev(const char *tok, dev_t *dev)
{
	unsigned int maj, min;
	int n = 0;

	if (sscanf(tok, "%u:%u%n", &maj, &min, &n) != 2 || tok[n])
		return -EINVAL;
	*dev = makedev(maj, min);
	return 0;
}

static int parse_u64(const char *tok, uint64_t *v)
{
	char *end;

	if (!tok || *tok < '0' || *tok > '9')
		return -EINVAL;
	errno = 0;
	*v = strtoull(tok, &end, 10);
	return errno || *end ? -EINVAL : 0;
}

static int sectors_to_bytes(uint64_t sectors, uint64_t *bytes)
{
	return __builtin_mul_overflow(sectors, (uint64_t)BC_SECTOR, bytes) ? -EOVERFLOW : 0;
}

void bc_target_free(struct bc_target *t)
{
	free(t->legs);
	free(t->leg_devs);
	t->legs = NULL;
	t->leg_devs = NULL;
}

int bc_dm_parse_target(const char *type, const char *params, uint64_t start, uint64_t len,
		       struct bc_target *t)
{
	char buf[4096], *save = NULL, *tok;
	uint64_t v;
	int ret = -EINVAL;

	*t = (struct bc_target){ 0 };
	snprintf(t->type, sizeof(t->type), "%s", type);
	if (sectors_to_bytes(start, &t->start) || sectors_to_bytes(len, &t->len) || !t->len ||
	    t->start + t->len < t->start)
		return -EOVERFLOW;
	if (strcmp(type, "linear") && strcmp(type, "striped"))
		return 0;	/* not understood: no legs, emulated through the dm node */
	if (strlen(params) >= sizeof(buf))
		return -EINVAL;
	strcpy(buf, params);

	if (!strcmp(type, "linear")) {
		t->nr_legs = 1;
	} else {
		uint64_t chunk;

		if (parse_u64(strtok_r(buf, " ", &save), &v) || !v || v > MAX_STRIPES ||
		    parse_u64(strtok_r(NULL, " ", &save), &chunk) || !chunk ||
		    sectors_to_bytes(chunk, &t->chunk))
			return -EINVAL;
		t->nr_legs = (uint32_t)v;
		t->striped = true;
		/* dm-striped refuses tables whose length is not whole chunks per stripe. */
		if (t->len % (t->chunk * t->nr_legs))
			return -EINVAL;
	}
	t->legs = calloc(t->nr_legs, sizeof(*t->legs));
	t->leg_devs = calloc(t->nr_legs, sizeof(*t->leg_devs));
	if (!t->legs || !t->leg_devs) {
		ret = -ENOMEM;
		goto fail;
	}
	for (uint32_t i = 0; i < t->nr_legs; i++) {
		tok = strtok_r(t->striped ? NULL : buf, " ", &save);
		if (!tok || parse_dev(tok, &t->leg_devs[i]) ||
		    parse_u64(strtok_r(NULL, " ", &save), &v) || sectors_to_bytes(v, &t->legs[i].offset))
			goto fail;
	}
	if (strtok_r(NULL, " ", &save))
		goto fail;	/* more than the format has: a newer syntax, do not guess */
	return 0;
fail:
	bc_target_free(t);
	t->nr_legs = 0;
	return ret;
}

/* ------------------------------------------------------------------------ */
/* Mapping                                                                  */

/* The target of @s holding byte @off, by binary search (targets are sorted and contiguous). */
static const struct bc_target *find_target(const struct bc_dm_table *s, uint64_t off)
{
	size_t lo = 0, hi = s->nr_targets;

	while (lo < hi) {
		size_t mid = lo + (hi - lo) / 2;
		const struct bc_target *t = &s->targets[mid];

		if (off < t->start)
			hi = mid;
		else if (off - t->start >= t->len)
			lo = mid + 1;
		else
			return t;
	}
	return NULL;
}

uint64_t bc_dm_table_map(const struct bc_dm_table *s, uint64_t off, uint64_t len,
			  struct blkcopy_dev **lower, uint64_t *lower_off)
{
	const struct bc_target *t = find_target(s, off);
	uint64_t rel, run;

	if (!t || !len)
		return 0;
	rel = off - t->start;
	run = t->len - rel;
	if (!t->nr_legs) {
		*lower = NULL;
		*lower_off = off;
	} else if (!t->striped) {
		*lower = t->legs[0].dev;
		*lower_off = t->legs[0].offset + rel;
	} else {
		uint64_t chunk_nr = rel / t->chunk, in_chunk = rel % t->chunk;
		const struct bc_leg *leg = &t->legs[chunk_nr % t->nr_legs];

		*lower = leg->dev;
		*lower_off = leg->offset + chunk_nr / t->nr_legs * t->chunk + in_chunk;
		run = t->chunk - in_chunk;
	}
	return run < len ? run : len;
}

static bool dm_maps(const struct blkcopy_dev *d)
{
	return bc_dm_table_of(d) != NULL;
}

/* A partition of a dm device maps through its disk's table, from its start. */
static uint64_t dm_map(const struct blkcopy_dev *d, uint64_t off, uint64_t len,
		       struct blkcopy_dev **lower, uint64_t *lower_off)
{
	return bc_dm_table_map(bc_dm_table_of(d), off + d->medium.base, len, lower, lower_off);
}

/* ------------------------------------------------------------------------ */
/* The kernel's side                                                        */

static int dm_control(void)
{
	int fd = open(DM_CONTROL, O_RDWR | O_CLOEXEC);

	return fd < 0 ? -errno : fd;
}

/* DM_TABLE_STATUS of @devno into a buffer that grows until the table fits. */
static int table_status(int ctl, dev_t devno, struct dm_ioctl **iop)
{
	size_t size = 16384;

	for (;;) {
		struct dm_ioctl *io = calloc(1, size);

		if (!io)
			return -ENOMEM;
		io->version[0] = DM_VERSION_MAJOR;
		io->data_size = (uint32_t)size;
		io->data_start = sizeof(*io);
		io->flags = DM_STATUS_TABLE_FLAG;
		io->dev = devno;
		if (ioctl(ctl, DM_TABLE_STATUS, io)) {
			int err = -errno;
			free(io);
			return err;
		}
		if (!(io->flags & DM_BUFFER_FULL_FLAG)) {
			*iop = io;
			return 0;
		}
		explicit_bzero(io, size);
		free(io);
		if (size >= (16u << 20))
			return -E2BIG;
		size *= 4;
	}
}

static void wipe_free(struct dm_ioctl *io)
{
	if (io) {
		explicit_bzero(io, io->data_size);
		free(io);
	}
}

/* Walk the target specs of a DM_TABLE_STATUS answer. */
static const struct dm_target_spec *spec_at(const struct dm_ioctl *io, uint32_t rel)
{
	const char *data = (const char *)io + io->data_start;
	const char *end = (const char *)io + io->data_size;

	/* The kernel aligns every spec (align_ptr); anything else is not a status it wrote. */
	if (io->data_start > io->data_size || rel > (size_t)(end - data) ||
	    (size_t)(end - data) - rel < sizeof(struct dm_target_spec) ||
	    (io->data_start + rel) % _Alignof(struct dm_target_spec))
		return NULL;
	return (const struct dm_target_spec *)(data + rel);
}

static void set_why(char *buf, size_t size, const char *fmt, const char *name, int err)
{
	snprintf(buf, size, fmt, name, strerror(err < 0 ? -err : err));
}

/*
 * The table signature: what a stale mapping would change.  Types and
 * boundaries of every target and the legs of those blkcopy maps.  (dm's
 * event number does not move when a table is swapped: no use here.)
 */
static char *make_signature(const struct bc_dm_table *s)
{
	char *sig = NULL;
	size_t len = 0;
	FILE *f = open_memstream(&sig, &len);

	if (!f)
		return NULL;
	for (size_t i = 0; i < s->nr_targets; i++) {
		const struct bc_target *t = &s->targets[i];

		fprintf(f, "%s %" PRIu64 " %" PRIu64 " %" PRIu64, t->type, t->start, t->len, t->chunk);
		for (uint32_t l = 0; l < t->nr_legs; l++)
			fprintf(f, " %u:%u@%" PRIu64, major(t->leg_devs[l]), minor(t->leg_devs[l]),
				t->legs[l].offset);
		fputc(';', f);
	}
	if (fclose(f)) {
		free(sig);
		return NULL;
	}
	return sig;
}

int bc_dm_parse_status(const struct dm_ioctl *io, struct bc_dm_table *s, char *why,
		       size_t why_size)
{
	uint32_t rel = 0;
	int ret;

	snprintf(s->name, sizeof(s->name), "%.*s", (int)sizeof(io->name), io->name);
	s->flags = io->flags;
	if (!(io->flags & DM_ACTIVE_PRESENT_FLAG) || !io->target_count) {
		snprintf(why, why_size, "device-mapper: %.48s has no active table", s->name);
		return -ENXIO;
	}
	/* Every target takes a spec in the data: more than fit is not a table we know. */
	if (io->data_start > io->data_size ||
	    io->target_count > (io->data_size - io->data_start) / sizeof(struct dm_target_spec)) {
		ret = -EIO;
		goto bad;
	}
	s->targets = calloc(io->target_count, sizeof(*s->targets));
	if (!s->targets)
		return -ENOMEM;
	for (uint32_t i = 0; i < io->target_count; i++) {
		const struct dm_target_spec *sp = spec_at(io, rel);
		char type[DM_MAX_TYPE_NAME];
		const char *params;

		if (!sp) {
			ret = -EIO;
			goto bad;
		}
		params = (const char *)(sp + 1);
		if (!memchr(params, '\0', (size_t)((const char *)io + io->data_size - params))) {
			ret = -EIO;
			goto bad;
		}
		snprintf(type, sizeof(type), "%.*s", DM_MAX_TYPE_NAME - 1, sp->target_type);
		ret = bc_dm_parse_target(type, params, sp->sector_start, sp->length,
					 &s->targets[s->nr_targets]);
		if (ret) {
			snprintf(why, why_size, "device-mapper: %.48s: cannot read its %.15s target: %s",
				 s->name, type, strerror(-ret));
			return ret;
		}
		s->nr_targets++;
		/* Targets come sorted and back to back; anything else is not a table we know. */
		const struct bc_target *t = &s->targets[s->nr_targets - 1];
		if (t->start != (s->nr_targets > 1 ? t[-1].start + t[-1].len : 0)) {
			ret = -EIO;
			goto bad;
		}
		rel = sp->next;
	}
	return 0;
bad:
	snprintf(why, why_size, "device-mapper: %.48s: malformed table status", s->name);
	return ret;
}

/* Read and parse the table of @devno into @s (legs not opened yet). */
static int read_table(int ctl, dev_t devno, struct bc_dm_table *s, char *why, size_t why_size)
{
	struct dm_ioctl *io = NULL;
	int ret = table_status(ctl, devno, &io);

	if (ret) {
		snprintf(why, why_size, "device-mapper: table status of %u:%u: %s", major(devno),
			 minor(devno), strerror(-ret));
		return ret;
	}
	ret = bc_dm_parse_status(io, s, why, why_size);
	wipe_free(io);
	return ret;
}

static void table_free(struct bc_dm_table *s)
{
	if (!s)
		return;
	for (size_t i = 0; i < s->nr_targets; i++)
		bc_target_free(&s->targets[i]);
	free(s->targets);
	for (size_t i = 0; i < s->nr_lower; i++)
		blkcopy_close(s->lower[i]);
	free(s->lower);
	free(s->signature);
	free(s);
}


/* Open (or reuse from @old) the device @devno under @s. */
static struct blkcopy_dev *open_lower(struct bc_dm_table *s, struct bc_dm_table *old, dev_t devno,
				      char *why, size_t why_size)
{
	char name[64], path[PATH_MAX];
	struct blkcopy_dev *d;
	int ret;

	for (size_t i = 0; i < s->nr_lower; i++)
		if (s->lower[i]->rdev == devno)
			return s->lower[i];
	for (size_t i = 0; old && i < old->nr_lower; i++) {
		if (old->lower[i] && old->lower[i]->rdev == devno) {
			d = old->lower[i];
			old->lower[i] = NULL;	/* moved: the old table must not close it */
			goto add;
		}
	}
	ret = bc_sysfs_devname("block", devno, name, sizeof(name));
	if (!ret) {
		snprintf(path, sizeof(path), "/dev/%s", name);
		/* A dm device by the name its users know, when udev or libdevmapper made one. */
		char dm_name[128], mapper[PATH_MAX];
		if (!bc_sysfs_read(devno, "dm/name", dm_name, sizeof(dm_name))) {
			snprintf(mapper, sizeof(mapper), "/dev/mapper/%s", dm_name);
			if (!access(mapper, F_OK))
				snprintf(path, sizeof(path), "%s", mapper);
		}
		/* No O_EXCL below: dm holds these devices itself. */
		ret = bc_open_lower(path, s->open_flags & ~BLKCOPY_OPEN_EXCL, s->depth + 1, &d);
	}
	if (ret) {
		snprintf(why, why_size, "device-mapper: %.48s: cannot open %u:%u under it: %s", s->name,
			 major(devno), minor(devno), strerror(-ret));
		return NULL;
	}
add:
	s->lower[s->nr_lower++] = d;
	return d;
}

/* Open the legs of every target; a leg that cannot be opened makes its target emulated. */
static void open_legs(struct bc_dm_table *s, struct bc_dm_table *old, char *why, size_t why_size)
{
	size_t legs = 0;

	for (size_t i = 0; i < s->nr_targets; i++)
		legs += s->targets[i].nr_legs;
	s->lower = calloc(legs ? legs : 1, sizeof(*s->lower));
	for (size_t i = 0; i < s->nr_targets; i++) {
		struct bc_target *t = &s->targets[i];

		for (uint32_t l = 0; l < t->nr_legs && s->lower; l++) {
			t->legs[l].dev = open_lower(s, old, t->leg_devs[l], why, why_size);
			if (!t->legs[l].dev) {
				/* Keep the signature (leg_devs), lose only the native path. */
				t->nr_legs = 0;
				break;
			}
		}
		if (!s->lower)
			t->nr_legs = 0;
	}
}

/* Limits over every leaf with native copy, and how many leaves lack it. */
static void table_limits(const struct bc_dm_table *s, struct blkcopy_limits *lim,
			 unsigned int *native, unsigned int *other)
{

	for (size_t i = 0; i < s->nr_targets; i++) {
		const struct bc_target *t = &s->targets[i];

		if (!t->nr_legs)
			(*other)++;
		for (uint32_t l = 0; l < t->nr_legs; l++) {
			const struct blkcopy_dev *leaf = t->legs[l].dev;

			if (bc_dm_table_of(leaf)) {
				table_limits(bc_dm_table_of(leaf), lim, native, other);
				continue;
			}
			if (!leaf->limits.max_copy_sectors) {
				(*other)++;
				continue;
			}
			(*native)++;
			if (!lim->max_copy_sectors) {
				*lim = leaf->limits;
				continue;
			}
#define MIN_INTO(f) lim->f = lim->f < leaf->limits.f ? lim->f : leaf->limits.f
			MIN_INTO(max_copy_sectors);
			MIN_INTO(max_copy_nr_ranges);
			MIN_INTO(max_copy_range_sectors);
#undef MIN_INTO
		}
	}
}

/* The minimum over the leaves with native copy; the note, when there is one, as the reason. */
static int dm_limits(const struct blkcopy_dev *d, struct blkcopy_limits *lim, char *reason,
		     size_t size)
{
	const struct bc_dm_dev *dm = dm_of(d);
	const struct bc_dm_table *s = dm->table;
	unsigned int native = 0, other = 0;

	if (!s) {
		snprintf(reason, size, "%s", dm->note);
		return -ENODEV;
	}
	*lim = (struct blkcopy_limits){ 0 };
	table_limits(s, lim, &native, &other);
	if (dm->note[0])
		snprintf(reason, size, "%s", dm->note);
	else if (!native)
		snprintf(reason, size, "dm %.48s: no leaf has native copy; emulated through the dm node",
			 s->name);
	else if (other)
		snprintf(reason, size,
			 "dm %.40s: native per piece between leaves that allow it (%u of %u legs); "
			 "the rest emulated", s->name, native, native + other);
	else
		snprintf(reason, size,
			 "dm %.40s: native per piece between leaves that allow it (limits: the "
			 "minimum over its %u legs)", s->name, native);
	return 0;
}

/* Read @d's table again; keep the resolution when it is unchanged, else rebuild it. */
static int refresh_one(struct blkcopy_dev *d, struct bc_dm_dev *dm, bool pinned)
{
	struct bc_dm_table *s, *old = dm->table;
	char why[sizeof(dm->note)] = "";
	int ctl, ret;

	if (d->depth > BC_MAX_STACK_DEPTH) {
		snprintf(dm->note, sizeof(dm->note), "device-mapper: stacked deeper than %d",
			 BC_MAX_STACK_DEPTH);
		return -ELOOP;
	}
	s = calloc(1, sizeof(*s));
	if (!s)
		return -ENOMEM;
	s->open_flags = d->open_flags;
	s->depth = d->depth;
	ctl = dm_control();
	if (ctl < 0) {
		ret = ctl;
		set_why(why, sizeof(why), "device-mapper: %s: %s", DM_CONTROL, ret);
		goto fail;
	}
	ret = read_table(ctl, d->medium.disk, s, why, sizeof(why));
	close(ctl);
	if (ret)
		goto fail;
	s->signature = make_signature(s);
	if (!s->signature) {
		ret = -ENOMEM;
		goto fail;
	}
	if (old && !strcmp(old->signature, s->signature)) {
		old->flags = s->flags;	/* unchanged: keep the legs and their probes */
		table_free(s);
		return 0;
	}
	if (old && pinned) {
		/* A job running on this handle still maps through the old legs: keep them. */
		table_free(s);
		snprintf(d->error, sizeof(d->error), "device-mapper: the table of %.48s changed",
			 old->name);
		return -ESTALE;
	}
	open_legs(s, old, why, sizeof(why));
	table_free(old);
	dm->table = s;
	/* A leg that could not be opened: say so, its targets are emulated. */
	snprintf(dm->note, sizeof(dm->note), "%s", why);
	return 0;
fail:
	table_free(s);
	table_free(dm->table);
	dm->table = NULL;
	snprintf(dm->note, sizeof(dm->note), "%s; emulated through the dm node", why);
	return ret;
}

/*
 * Every table under @d, level by level: a table under an unchanged one
 * may have changed too.  A suspended device keeps its resolution but says
 * -EBUSY: I/O through it would block, native I/O would race whoever
 * suspended it.
 */
static int dm_refresh(struct blkcopy_dev *d, bool pinned)
{
	const struct bc_dm_table *s;
	struct bc_dm_dev *dm = dm_of(d);
	int ret = refresh_one(d, dm, pinned);

	s = dm->table;
	if (ret || !s)
		return ret;
	for (size_t i = 0; i < s->nr_lower; i++) {
		const struct blkcopy_dev *lower = s->lower[i];

		ret = bc_dev_refresh(s->lower[i], pinned);
		if (ret == -ENOMEM || ret == -ESTALE || ret == -EBUSY) {
			if (lower->error[0])
				snprintf(d->error, sizeof(d->error), "%s", lower->error);
			return ret;
		}
	}
	if (s->flags & DM_SUSPEND_FLAG) {
		snprintf(d->error, sizeof(d->error), "device-mapper: %.48s is suspended", s->name);
		return -EBUSY;
	}
	return 0;
}

/* Suspended anywhere in the stack: I/O through it would block, native I/O would race it. */
static int check_one(int ctl, const struct blkcopy_dev *d, bool *changed, char *msg, size_t size)
{
	const struct bc_dm_table *s = bc_dm_table_of(d);
	struct bc_dm_table now = { 0 };
	char why[160];
	int ret;

	if (!s)
		return 0;
	ret = read_table(ctl, d->medium.disk, &now, why, sizeof(why));
	if (ret) {
		snprintf(msg, size, "%s", why);
		*changed = true;
	} else if (now.flags & DM_SUSPEND_FLAG) {
		snprintf(msg, size, "device-mapper: %.48s is suspended", s->name);
		ret = -EBUSY;
	} else {
		char *sig = make_signature(&now);

		if (!sig) {
			ret = -ENOMEM;
		} else if (strcmp(sig, s->signature)) {
			snprintf(msg, size, "device-mapper: the table of %.48s changed", s->name);
			*changed = true;
			ret = -ESTALE;
		}
		free(sig);
	}
	for (size_t i = 0; i < now.nr_targets; i++)
		bc_target_free(&now.targets[i]);
	free(now.targets);
	if (ret)
		return ret;
	for (size_t i = 0; i < s->nr_lower; i++) {
		ret = check_one(ctl, s->lower[i], changed, msg, size);
		if (ret)
			return ret;
	}
	return 0;
}

static int dm_verify(struct blkcopy_dev *d)
{
	bool changed = false;
	int ctl, ret;

	if (!bc_dm_table_of(d))
		return 0;
	ctl = dm_control();
	if (ctl < 0)
		return ctl;
	ret = check_one(ctl, d, &changed, d->error, sizeof(d->error));
	close(ctl);
	if (ret && changed && ret != -ENOMEM)
		ret = -ESTALE;
	return ret;
}

static void dm_release(struct blkcopy_dev *d, void *data)
{
	struct bc_dm_dev *dm = data;

	table_free(dm->table);
	free(dm);
}

/* A table blkcopy cannot read leaves the device emulation-only, with the reason. */
static int dm_probe(struct blkcopy_dev *d, void **data)
{
	struct bc_dm_dev *dm;
	int ret;

	if (!d->rdev || !bc_sysfs_exists(d->medium.disk, "dm"))
		return -ENODEV;
	dm = calloc(1, sizeof(*dm));
	if (!dm)
		return -ENOMEM;
	ret = refresh_one(d, dm, false);
	if (ret == -ENOMEM || ret == -ELOOP) {
		dm_release(d, dm);
		return ret;
	}
	*data = dm;
	return 0;
}

/* ------------------------------------------------------------------------ */
/* The mapping as users see it                                              */

/* Find leg number @want (depth first), counting down in *@left. */
static int find_leg(const struct blkcopy_dev *d, uint32_t depth, size_t *left,
		    struct blkcopy_mapping *m)
{
	const struct bc_dm_table *s = bc_dm_table_of(d);

	for (size_t i = 0; i < s->nr_targets; i++) {
		const struct bc_target *t = &s->targets[i];
		uint32_t legs = t->nr_legs ? t->nr_legs : 1;

		for (uint32_t l = 0; l < legs; l++) {
			const struct blkcopy_dev *lower = t->nr_legs ? t->legs[l].dev : NULL;

			if ((*left)-- == 0) {
				*m = (struct blkcopy_mapping){
					.depth = depth,
					.start = t->start,
					.length = t->len,
					.target = t->type,
					.device = lower ? lower->path : NULL,
					.offset = lower ? t->legs[l].offset : 0,
					.stripe = t->striped && t->nr_legs ? l : 0,
					.stripes = t->striped && t->nr_legs ? t->nr_legs : 1,
					.chunk = t->chunk,
					.backend = lower && lower->backend ? lower->backend->name
									   : "emulate",
					.copy_offload = lower ? lower->limits.copy_offload : 0,
				};
				return 0;
			}
			if (lower && bc_dm_table_of(lower) && !find_leg(lower, depth + 1, left, m))
				return 0;
		}
	}
	return -ENOENT;
}

int blkcopy_get_mapping(const struct blkcopy_dev *d, size_t index, struct blkcopy_mapping *m)
{
	if (!d || !m)
		return -EINVAL;
	if (!bc_dm_table_of(d))
		return -ENOENT;
	return find_leg(d, 0, &index, m);
}

const struct bc_layer bc_layer_dm = {
	.name = "dm",
	.probe = dm_probe,
	.maps = dm_maps,
	.map = dm_map,
	.refresh = dm_refresh,
	.verify = dm_verify,
	.limits = dm_limits,
	.release = dm_release,
};
