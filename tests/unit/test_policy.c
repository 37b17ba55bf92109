/* SPDX-License-Identifier: MIT */
/*
 * The piece policy: which pieces of a lane go native.  First the rule on
 * its own, fed with figures; then a whole job over a fake backend whose
 * commands are slow (as LIO's EXTENDED COPY is for small pieces), where
 * small pieces must end up emulated, the data must be right, and the
 * stats must say why.  The real thing is tested in the lab (40-scsi).
 */
#include <errno.h>
#include <fcntl.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "check.h"
#include "fake_native.h"
#include "policy.h"

#define KIB 1024ull
#define MIB (1024ull * KIB)

static void test_rule(void)
{
	/* Emulation: 64 MiB/s. */
	const struct bc_emu_rate emu = { .bytes = 64 * MIB, .busy_ns = 1000000000ull };
	const struct bc_emu_rate none = { 0 };
	enum blkcopy_emulated why;
	struct bc_policy p;
	bool learnt;

	/* Not learning, nothing set: everything native. */
	bc_policy_init(&p, 0, false);
	CHECK(!bc_policy_emulate(&p, 4096, &emu, &why), "no policy emulated");
	CHECK_EQ(bc_policy_threshold(&p, &emu, &learnt), 0);

	/* Set: shorter pieces emulated, whatever was measured. */
	bc_policy_init(&p, 64 * KIB, true);
	CHECK(bc_policy_emulate(&p, 4096, &none, &why) && why == BLKCOPY_EMULATED_NATIVE_MIN,
	      "below native_min went native");
	CHECK(!bc_policy_emulate(&p, 64 * KIB, &none, &why), "native_min itself emulated");
	CHECK_EQ(bc_policy_threshold(&p, &none, &learnt), 64 * KIB);
	CHECK(!learnt, "a set minimum called learnt");

	/* Learning: nothing known yet, so 8 native (the size is explored), then a probe. */
	bc_policy_init(&p, 0, true);
	for (int i = 0; i < 8; i++)
		CHECK(!bc_policy_emulate(&p, 4096, &none, &why), "unexplored size emulated");
	/* 4 KiB commands take 250 us each: 16 MiB/s, slower than emulation. */
	uint64_t t = 1000;
	bc_policy_busy(&p, t);
	for (int i = 0; i < 8; i++)
		bc_policy_completed(&p, 4096, true, t += 250000);
	/* A failed command is not a sample, but moves the mark. */
	bc_policy_completed(&p, 4096, false, t += 999999999);
	CHECK_EQ(p.commands, 8);
	CHECK_EQ(p.ns, 8 * 250000);
	/* The probe does not wait for the explored commands to land (they have here). */

	/* Emulation not measured: a probe of at most 4 MiB, of pieces up to 256 KiB. */
	uint64_t probed = 0;
	while (bc_policy_emulate(&p, 4096, &none, &why)) {
		CHECK(why == BLKCOPY_EMULATED_PROBE, "why %d", why);
		probed += 4096;
		if (probed > 8 * MIB)
			break;
	}
	CHECK_EQ(probed, 4 * MIB);
	/* While emulation measures the probe, the lane waits; not once it is idle or measured. */
	const struct bc_emu_rate busy = { .bytes = 4096, .busy_ns = 1000 };
	const struct bc_emu_rate done = { .bytes = 4096, .busy_ns = 1000, .idle = true };
	CHECK(bc_policy_waits(&p, &busy), "does not wait for the probe");
	CHECK(!bc_policy_waits(&p, &done), "waits for an idle emulation");
	CHECK(!bc_policy_waits(&p, &emu), "waits once emulation is measured");
	bc_policy_init(&p, 0, true);
	for (int i = 0; i < 9; i++)
		CHECK(!bc_policy_emulate(&p, 512 * KIB, &none, &why), "a large piece probed");
	/* While a size's explored commands are out, once the probe is handed, the lane waits. */
	bc_policy_init(&p, 0, true);
	for (int i = 0; i < 8 + 1024; i++)
		bc_policy_emulate(&p, 4096, &none, &why);
	CHECK_EQ(p.probe_bytes, 4 * MIB);
	CHECK(bc_policy_waits(&p, &emu), "does not wait for the explored commands");
	for (int i = 0; i < 8; i++)
		bc_policy_completed(&p, 4096, true, t += 250000);
	CHECK(!bc_policy_waits(&p, &emu), "waits once they landed and emulation is measured");
	/* Explored commands that were refused come back too: the lane must not wait for them. */
	bc_policy_init(&p, 0, true);
	for (int i = 0; i < 8 + 1024; i++)
		bc_policy_emulate(&p, 4096, &none, &why);
	for (int i = 0; i < 8; i++)
		bc_policy_completed(&p, 4096, false, t += 250000);
	CHECK(!bc_policy_waits(&p, &emu), "waits for refused commands");
	CHECK(!bc_policy_emulate(&p, 4096, &emu, &why), "a size never judged emulated");

	/* Measured: 4 KiB slower, 1 MiB (4 GiB/s) faster: threshold 8 KiB. */
	bc_policy_init(&p, 0, true);
	for (int i = 0; i < 8; i++) {
		bc_policy_emulate(&p, 4096, &none, &why);
		bc_policy_emulate(&p, MIB, &none, &why);
		bc_policy_emulate(&p, 8192, &none, &why);
	}
	bc_policy_busy(&p, t);
	for (int i = 0; i < 8; i++)
		bc_policy_completed(&p, 4096, true, t += 250000);
	for (int i = 0; i < 8; i++)
		bc_policy_completed(&p, MIB, true, t += 250000);
	CHECK_EQ(bc_policy_threshold(&p, &emu, &learnt), 8 * KIB);
	CHECK(learnt, "not learnt");
	CHECK(bc_policy_emulate(&p, 4096, &emu, &why) && why == BLKCOPY_EMULATED_SLOWER,
	      "slower size went native");
	CHECK(!bc_policy_emulate(&p, 8192, &emu, &why), "8 KiB (unexplored, above) emulated");
	CHECK(!bc_policy_emulate(&p, MIB, &emu, &why), "faster size emulated");
	/* Below it, sizes never tried go emulated too: native gets slower as pieces shrink. */
	CHECK(bc_policy_emulate(&p, 2048, &emu, &why), "2 KiB below the threshold went native");

	/* Native faster at every size measured: no threshold. */
	bc_policy_init(&p, 0, true);
	for (int i = 0; i < 8; i++)
		bc_policy_emulate(&p, 4096, &none, &why);
	bc_policy_busy(&p, t);
	for (int i = 0; i < 8; i++)
		bc_policy_completed(&p, 4096, true, t += 10000);	/* 400 MiB/s */
	CHECK_EQ(bc_policy_threshold(&p, &emu, &learnt), 0);
	CHECK(!bc_policy_emulate(&p, 4096, &emu, &why), "faster native emulated");
}

/* A job over a fake backend whose commands take 300 us each, one segment per command. */
#define SIZE (40u << 20)
#define NR 4096u
#define DST_OFF (20ull << 20)

static int commands;

static int slow_pair(const struct blkcopy_dev *s, const struct blkcopy_dev *d,
		     struct blkcopy_limits *lim, char *why, size_t why_size)
{
	*lim = (struct blkcopy_limits){ .copy_offload = 1, .max_copy_sectors = 2048,
					.max_copy_nr_ranges = 1, .max_copy_range_sectors = 2048 };
	return 0;
}

static int slow_copy(struct blkcopy_dev *s, struct blkcopy_dev *d, const struct bc_span *segs,
		     const struct bc_piece *p, struct bc_copy_stats *st)
{
	static char buf[1 << 20];
	const struct timespec ms = { 0, 300000 };

	commands++;
	nanosleep(&ms, NULL);
	if (p->nr_segs != 1 || segs[0].len > sizeof(buf) || fake_move(s, d, segs, p, buf))
		return -EIO;
	st->bytes[BLKCOPY_METHOD_SCSI_XCOPY] += p->len;
	return 0;
}

static const struct bc_backend slow_backend = {
	.name = "slow",
	.caps = BC_BACKEND_SYNC | BC_BACKEND_COSTLY_COMMANDS,
	.probe = fake_probe,
	.pair = slow_pair,
	.copy = slow_copy,
};

static char src_path[] = "/tmp/blkcopy-policy-src-XXXXXX";
static char dst_path[] = "/tmp/blkcopy-policy-dst-XXXXXX";
static char *src_data, *dst_data;
static struct blkcopy_range ranges[NR];

/* Copy the scattered ranges to DST_OFF with @native_min: the stats, and whether the data is right. */
static bool run_job(uint64_t native_min, unsigned int flags, struct blkcopy_stats *st,
		    struct blkcopy_progress *p)
{
	const struct blkcopy_opts o = { .flags = flags, .native_min = native_min };
	struct blkcopy_dev *s, *d;
	struct blkcopy_job *job;
	char *got = malloc(NR * 4096);
	bool ok = true;
	int fd;

	fake_open_pair(src_path, dst_path, dst_data, SIZE, &slow_backend, &(struct blkcopy_limits){
		.copy_offload = 1, .max_copy_sectors = 2048, .max_copy_nr_ranges = 1,
		.max_copy_range_sectors = 2048 }, &s, &d);
	commands = 0;
	memset(st, 0, sizeof(*st));
	if (blkcopy_job_submit(s, ranges, NR, d, DST_OFF, &o, &job))
		abort();
	while (!blkcopy_job_wait(job, -1))
		;
	CHECK_EQ(blkcopy_job_stats(job, st, sizeof(*st)), 0);
	/* A caller with a smaller struct gets its part; a larger one zeros past ours. */
	_Alignas(struct blkcopy_stats) unsigned char small[sizeof(*st) + 16];
	memset(small, 0xee, sizeof(small));
	CHECK_EQ(blkcopy_job_stats(job, (struct blkcopy_stats *)small, 8), 0);
	CHECK(!memcmp(small, st, 8) && small[8] == 0xee, "small size overran");
	CHECK_EQ(blkcopy_job_stats(job, (struct blkcopy_stats *)small, sizeof(small)), 0);
	CHECK(small[sizeof(small) - 1] == 0 && small[sizeof(*st)] == 0, "large size not zeroed");
	CHECK_EQ(blkcopy_job_finish(job, p), NR * 4096);
	fd = open(dst_path, O_RDONLY);
	if (!got || fd < 0 || pread(fd, got, NR * 4096, DST_OFF) != NR * 4096)
		abort();
	close(fd);
	for (size_t i = 0; i < NR && ok; i++)
		ok = !memcmp(got + i * 4096, src_data + ranges[i].offset, 4096);
	free(got);
	blkcopy_close(s);
	blkcopy_close(d);
	return ok;
}

static void test_job(void)
{
	struct blkcopy_progress p;
	struct blkcopy_stats st;

	src_data = malloc(SIZE);
	dst_data = malloc(SIZE);
	for (size_t i = 0; i < SIZE; i++) {
		src_data[i] = (char)(i * 13 + i / 4096);
		dst_data[i] = (char)(0x5A ^ (i >> 10));
	}
	fake_make_file(src_path, src_data, SIZE);
	fake_make_file(dst_path, dst_data, SIZE);
	/* Every other 4 KiB block of the first 32 MiB, backwards: no two ranges merge. */
	for (size_t i = 0; i < NR; i++)
		ranges[i] = (struct blkcopy_range){ (NR - 1 - i) * 8192, 4096 };

	/* Learnt: a few natives, a probe, then emulation for the rest. */
	CHECK(run_job(0, 0, &st, &p), "learnt: data wrong");
	CHECK(st.native_commands >= 8, "only %llu native commands", (unsigned long long)st.native_commands);
	/* One at a time: the 8 that judge the size; then the lane waits for the probe. */
	CHECK_EQ(st.native_commands, 8);
	CHECK_EQ(st.native_commands, commands);
	CHECK_EQ(st.native_bytes, p.native_bytes);
	CHECK_EQ(st.emulated[BLKCOPY_EMULATED_PROBE], 4 * MIB);
	CHECK(st.emulated[BLKCOPY_EMULATED_SLOWER] > 0, "nothing emulated as slower");
	CHECK_EQ(st.emulated[BLKCOPY_EMULATED_PROBE] + st.emulated[BLKCOPY_EMULATED_SLOWER],
		 p.emulated_bytes);
	CHECK_EQ(st.emulated_done, p.emulated_bytes);
	CHECK(st.native_min_learnt, "not learnt");
	CHECK_EQ(st.native_min, 8192);
	CHECK(st.native_ns >= st.native_commands * 250000ull, "native time %llu ns",
	      (unsigned long long)st.native_ns);
	CHECK(st.emulated_busy_ns > 0, "no emulation time");

	/* Set above the pieces: all emulated, no command at all. */
	CHECK(run_job(64 * KIB, 0, &st, &p), "native_min: data wrong");
	CHECK_EQ(commands, 0);
	CHECK_EQ(st.emulated[BLKCOPY_EMULATED_NATIVE_MIN], NR * 4096);
	CHECK_EQ(st.native_min, 64 * KIB);
	CHECK(!st.native_min_learnt, "a set minimum called learnt");

	/* 1: every piece native. */
	CHECK(run_job(1, 0, &st, &p), "all native: data wrong");
	CHECK_EQ(commands, NR);
	CHECK_EQ(p.native_bytes, NR * 4096);
	CHECK_EQ(st.native_min, 1);

	/* NOEMULATION: the policy never emulates. */
	CHECK(run_job(0, BLKCOPY_NOEMULATION, &st, &p), "noemulation: data wrong");
	CHECK_EQ(commands, NR);
	CHECK_EQ(p.emulated_bytes, 0);

	/* NOOFFLOAD: everything emulated, for that reason. */
	CHECK(run_job(0, BLKCOPY_NOOFFLOAD, &st, &p), "nooffload: data wrong");
	CHECK_EQ(commands, 0);
	CHECK_EQ(st.emulated[BLKCOPY_EMULATED_NO_OFFLOAD], NR * 4096);

	unlink(src_path);
	unlink(dst_path);
	free(src_data);
	free(dst_data);
}

static void test_stats_sizes(void)
{
	struct blkcopy_stats st;

	CHECK_EQ(blkcopy_job_stats(NULL, &st, sizeof(st)), -EINVAL);
	CHECK(blkcopy_emulated_name(BLKCOPY_EMULATED_SLOWER) &&
	      !strcmp(blkcopy_emulated_name(BLKCOPY_EMULATED_SLOWER), "slower"), "name");
	CHECK(!blkcopy_emulated_name(BLKCOPY_EMULATED_MAX), "a name for MAX");
}

int main(void)
{
	test_rule();
	test_job();
	test_stats_sizes();
	return check_done("test_policy");
}
