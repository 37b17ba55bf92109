/* SPDX-License-Identifier: MIT */
/*
 * device-mapper tables without a kernel: target parsing, and the mapping of
 * every sector of linear, striped and nested tables checked against a
 * sector-by-sector model, including the run lengths (maximal, never past a
 * chunk or target).  Overlap checks through stacks on fake devices.
 */
#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <sys/sysmacros.h>

#include "check.h"
#include "layer.h"
#include "layer/dm.h"
#include "request.h"

#define S 512ull

static void test_parse(void)
{
	struct bc_target t;

	CHECK_EQ(bc_dm_parse_target("linear", "8:16 2048", 0, 100, &t), 0);
	CHECK_EQ(t.nr_legs, 1);
	CHECK(!t.striped, "linear is not striped");
	CHECK_EQ(t.len, 100 * S);
	CHECK_EQ(t.legs[0].offset, 2048 * S);
	CHECK(t.leg_devs[0] == makedev(8, 16), "leg device");
	bc_target_free(&t);

	CHECK_EQ(bc_dm_parse_target("striped", "2 8 259:5 131072 8:32 0", 64, 32, &t), 0);
	CHECK_EQ(t.start, 64 * S);
	CHECK_EQ(t.nr_legs, 2);
	CHECK(t.striped, "striped");
	CHECK_EQ(t.chunk, 8 * S);
	CHECK(t.leg_devs[0] == makedev(259, 5) && t.leg_devs[1] == makedev(8, 32), "legs");
	CHECK_EQ(t.legs[0].offset, 131072 * S);
	CHECK_EQ(t.legs[1].offset, 0);
	bc_target_free(&t);

	/* Types blkcopy does not understand: no legs, whatever the parameters say. */
	CHECK_EQ(bc_dm_parse_target("zero", "", 0, 8, &t), 0);
	CHECK_EQ(t.nr_legs, 0);
	CHECK_EQ(bc_dm_parse_target("crypt", "aes-xts-plain64 00ff 0 8:1 0", 0, 8, &t), 0);
	CHECK_EQ(t.nr_legs, 0);
	CHECK(!strcmp(t.type, "crypt"), "type kept");

	static const char *const bad_linear[] = { "", "8:16", "8:16 x", "8 2048", "8:16 2048 1",
						  "8:16: 1", "8:16 -1", "8:16 99999999999999999999" };
	for (size_t i = 0; i < sizeof(bad_linear) / sizeof(bad_linear[0]); i++)
		CHECK(bc_dm_parse_target("linear", bad_linear[i], 0, 8, &t) < 0, "linear \"%s\"",
		      bad_linear[i]);
	static const char *const bad_striped[] = { "2 8 8:1 0", "0 8", "2 0 8:1 0 8:2 0",
						   "2 8 8:1 0 8:2 0 8:3 0", "x 8 8:1 0 8:2 0",
						   "2 8 8:1 0 8:2" };
	for (size_t i = 0; i < sizeof(bad_striped) / sizeof(bad_striped[0]); i++)
		CHECK(bc_dm_parse_target("striped", bad_striped[i], 0, 32, &t) < 0,
		      "striped \"%s\"", bad_striped[i]);
	/* A length that is not whole chunks on every stripe is not a table dm accepts. */
	CHECK(bc_dm_parse_target("striped", "2 8 8:1 0 8:2 0", 0, 24, &t) < 0, "odd length");
	CHECK(bc_dm_parse_target("linear", "8:1 0", UINT64_MAX / 256, 8, &t) < 0, "overflow");
	CHECK(bc_dm_parse_target("linear", "8:1 0", 0, 0, &t) < 0, "empty target");
}

/* ------------------------------------------------------------------------ */

static struct blkcopy_dev leaves[4];

static struct blkcopy_dev *fake_leaf(int i, dev_t whole)
{
	struct blkcopy_dev *d = &leaves[i];

	*d = (struct blkcopy_dev){ .kind = BLKCOPY_KIND_BLOCK, .lbs = 512, .capacity = 1ull << 40,
				   .rdev = whole };
	bc_medium_set_disk(&d->medium, whole);
	return d;
}

/* Put @s on @d as the dm layer would after reading its table. */
static void attach(struct blkcopy_dev *d, struct bc_dm_dev *dm, struct bc_dm_table *s)
{
	dm->table = s;
	d->layers[0] = (struct bc_layer_slot){ .ops = &bc_layer_dm, .data = dm };
	d->nr_layers = 1;
}

static void set_linear(struct bc_target *t, uint64_t start, uint64_t len, struct blkcopy_dev *dev,
		       uint64_t off)
{
	*t = (struct bc_target){ .start = start, .len = len, .nr_legs = 1 };
	strcpy(t->type, "linear");
	t->legs = calloc(1, sizeof(*t->legs));
	t->legs[0] = (struct bc_leg){ .dev = dev, .offset = off };
}

/* Sector-by-sector model of one table level; *@left: bytes to the chunk's or target's end. */
static void model(const struct bc_dm_table *s, uint64_t off, struct blkcopy_dev **lower,
		  uint64_t *lower_off, uint64_t *left)
{
	for (size_t i = 0; i < s->nr_targets; i++) {
		const struct bc_target *t = &s->targets[i];

		if (off < t->start || off >= t->start + t->len)
			continue;
		*left = t->start + t->len - off;
		if (!t->nr_legs) {
			*lower = NULL;
			*lower_off = off;
			return;
		}
		uint64_t rel = off - t->start, stripe = 0, nth = 0, c;
		if (t->striped) {
			/* Walk the chunks one by one rather than dividing. */
			for (c = 0; c + t->chunk <= rel; c += t->chunk) {
				if (++stripe == t->nr_legs) {
					stripe = 0;
					nth++;
				}
			}
			*left = c + t->chunk - rel;
			*lower = t->legs[stripe].dev;
			*lower_off = t->legs[stripe].offset + nth * t->chunk + rel % t->chunk;
		} else {
			*lower = t->legs[0].dev;
			*lower_off = t->legs[0].offset + rel;
		}
		return;
	}
	*lower = NULL;
	*lower_off = UINT64_MAX;
}

/* Through every level, like bc_map_leaf but one sector at a time. */
static uint64_t model_all(struct blkcopy_dev *d, uint64_t off, struct blkcopy_dev **leaf,
			  uint64_t *leaf_off)
{
	uint64_t left_all = UINT64_MAX;

	*leaf = d;
	*leaf_off = off;
	while (bc_dm_table_of(*leaf)) {
		struct blkcopy_dev *lower;
		uint64_t lo, left = 0;

		model(bc_dm_table_of(*leaf), *leaf_off, &lower, &lo, &left);
		left_all = left < left_all ? left : left_all;
		if (!lower)
			return left_all;
		*leaf = lower;
		*leaf_off = lo;
	}
	return left_all;
}

static void check_map(struct blkcopy_dev *top, uint64_t size)
{
	for (uint64_t off = 0; off < size; off += S) {
		for (uint64_t want = S; want <= 64 * S; want += 7 * S) {
			struct blkcopy_dev *leaf, *ml;
			uint64_t loff, mo, run = bc_map_leaf(top, off, want, &leaf, &loff);

			model_all(top, off, &ml, &mo);
			CHECK(run >= S && run <= want && run % S == 0, "run %llu at %llu",
			      (unsigned long long)run, (unsigned long long)off);
			CHECK(leaf == ml && loff == mo, "sector %llu maps wrong",
			      (unsigned long long)(off / S));
			/* Every sector of the run continues the first... */
			for (uint64_t k = S; k < run; k += S) {
				model_all(top, off + k, &ml, &mo);
				if (ml != leaf || mo != loff + k) {
					CHECK(0, "run at %llu is not contiguous at +%llu",
					      (unsigned long long)off, (unsigned long long)k);
					break;
				}
			}
			/* ...and ends only at a chunk or target end of some level, or @want. */
			uint64_t left = model_all(top, off, &ml, &mo);
			CHECK_EQ(run, left < want ? left : want);
		}
	}
}

static void test_mapping(void)
{
	struct blkcopy_dev *a = fake_leaf(0, makedev(259, 1));
	struct blkcopy_dev *b = fake_leaf(1, makedev(259, 2));
	struct blkcopy_dev *c = fake_leaf(2, makedev(8, 0));
	struct blkcopy_dev lower = { .kind = BLKCOPY_KIND_DM, .lbs = 512 };
	struct blkcopy_dev top = { .kind = BLKCOPY_KIND_DM, .lbs = 512 };
	struct bc_dm_table lower_stack = { .name = "lower" }, top_stack = { .name = "top" };
	struct bc_dm_dev lower_dm = { 0 }, top_dm = { 0 };
	struct bc_target lt[1], tt[4];

	/* lower: 64 sectors linear over c at 1000. */
	set_linear(&lt[0], 0, 64 * S, c, 1000 * S);
	lower_stack.targets = lt;
	lower_stack.nr_targets = 1;
	attach(&lower, &lower_dm, &lower_stack);

	/* top: linear a | striped (a, b, lower; 3-sector chunks) | zero | linear lower. */
	set_linear(&tt[0], 0, 10 * S, a, 5 * S);
	tt[1] = (struct bc_target){ .start = 10 * S, .len = 36 * S, .striped = true,
				    .chunk = 3 * S, .nr_legs = 3 };
	strcpy(tt[1].type, "striped");
	tt[1].legs = calloc(3, sizeof(*tt[1].legs));
	tt[1].legs[0] = (struct bc_leg){ .dev = a, .offset = 100 * S };
	tt[1].legs[1] = (struct bc_leg){ .dev = b, .offset = 0 };
	tt[1].legs[2] = (struct bc_leg){ .dev = &lower, .offset = 4 * S };
	tt[2] = (struct bc_target){ .start = 46 * S, .len = 5 * S };
	strcpy(tt[2].type, "zero");
	set_linear(&tt[3], 51 * S, 20 * S, &lower, 30 * S);
	top_stack.targets = tt;
	top_stack.nr_targets = 4;
	attach(&top, &top_dm, &top_stack);

	check_map(&top, 71 * S);

	/* Spot checks written out by hand. */
	struct blkcopy_dev *leaf;
	uint64_t off, run;
	run = bc_map_leaf(&top, 3 * S, 100 * S, &leaf, &off);
	CHECK(leaf == a && off == 8 * S && run == 7 * S, "linear head");
	run = bc_map_leaf(&top, 17 * S, 100 * S, &leaf, &off);	/* chunk 2 of the stripe: lower */
	CHECK(leaf == c && off == 1000 * S + 4 * S + S && run == 2 * S, "stripe over dm");
	run = bc_map_leaf(&top, 19 * S, 100 * S, &leaf, &off);	/* chunk 3: a, second row */
	CHECK(leaf == a && off == 103 * S && run == 3 * S, "second row");
	run = bc_map_leaf(&top, 47 * S, 100 * S, &leaf, &off);	/* zero: stays on top */
	CHECK(leaf == &top && off == 47 * S && run == 4 * S, "zero target");
	run = bc_map_leaf(&top, 71 * S, S, &leaf, &off);
	CHECK_EQ(run, 0);

	/* A dm device that is a partition: its offsets start at the partition. */
	top.medium.base = 10 * S;
	run = bc_map_leaf(&top, 0, 100 * S, &leaf, &off);
	CHECK(leaf == a && off == 100 * S && run == 3 * S, "partition of a dm device");
	top.medium.base = 0;

	/* Overlap through stacks: top's stripe on a vs a itself. */
	struct blkcopy_dev *whole_a = fake_leaf(3, makedev(259, 1));
	whole_a->open_flags = BLKCOPY_OPEN_WRITE;
	top.capacity = 71 * S;
	top.open_flags = BLKCOPY_OPEN_READ;
	struct blkcopy_range r = { .offset = 10 * S, .len = 3 * S };	/* a at 100..102 */
	size_t bad = 0;
	CHECK_EQ(bc_validate(&top, &r, 1, whole_a, 101 * S, 0, NULL, &bad), -EADDRINUSE);
	CHECK_EQ(bad, 0);
	CHECK_EQ(bc_validate(&top, &r, 1, whole_a, 103 * S, 0, NULL, NULL), 0);
	CHECK_EQ(bc_validate(&top, &r, 1, whole_a, 97 * S, 0, NULL, NULL), 0);
	/* The destination through the stack, the source on the leaf underneath. */
	whole_a->open_flags = BLKCOPY_OPEN_READ;
	top.open_flags = BLKCOPY_OPEN_WRITE;
	struct blkcopy_range ra = { .offset = 104 * S, .len = 2 * S };
	CHECK_EQ(bc_validate(whole_a, &ra, 1, &top, 19 * S, 0, NULL, NULL), -EADDRINUSE);
	CHECK_EQ(bc_validate(whole_a, &ra, 1, &top, 22 * S, 0, NULL, NULL), 0);

	free(lt[0].legs);
	for (int i = 0; i < 4; i++)
		free(tt[i].legs);
}

int main(void)
{
	test_parse();
	test_mapping();
	return check_done("test_dm");
}
