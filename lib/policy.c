/* SPDX-License-Identifier: MIT */
/*
 * The per-piece policy: see policy.h.  A class of piece sizes is explored
 * with EXPLORE native commands, while the next small pieces probe
 * emulation, and judged once they have landed; emulation once KNOWN bytes of
 * it are written (or all it had).  The threshold is the top of the largest class judged
 * slower than emulation below the smallest class judged at least as fast:
 * native throughput grows with the piece, so classes above are native (and
 * explored), classes below emulated.
 */
#include "policy.h"

#define EXPLORE 8u			/* native completions before a class is judged */
#define KNOWN (2ull << 20)		/* emulated bytes before its rate counts */
/* Handed to emulation to measure it: several chunks, so that it runs as it would at length. */
#define PROBE_BYTES (4ull << 20)
#define PROBE_PIECE (256ull << 10)	/* the largest piece a probe takes */

void bc_policy_init(struct bc_policy *p, uint64_t native_min, bool learn)
{
	*p = (struct bc_policy){ .native_min = native_min, .learn = learn && !native_min };
}

void bc_policy_busy(struct bc_policy *p, uint64_t now_ns)
{
	p->mark_ns = now_ns;
}

static unsigned int class_of(uint64_t len)
{
	return len ? 63u - (unsigned int)__builtin_clzll(len) : 0;
}

void bc_policy_completed(struct bc_policy *p, uint64_t len, bool landed, uint64_t now_ns)
{
	const uint64_t ns = now_ns > p->mark_ns ? now_ns - p->mark_ns : 0;

	p->mark_ns = now_ns;
	p->cls[class_of(len)].back++;
	if (!landed)
		return;
	p->cls[class_of(len)].bytes += len;
	p->cls[class_of(len)].ns += ns;
	p->cls[class_of(len)].n++;
	p->commands++;
	p->bytes += len;
	p->ns += ns;
}

/* Enough emulated to trust its rate, or all it was given is done. */
static bool emu_known(const struct bc_emu_rate *er)
{
	return (er->bytes >= KNOWN || (er->idle && er->bytes)) && er->busy_ns;
}

/* Native commands of a size were sent to judge it, and are not all back (landed or not). */
static bool exploring(const struct bc_policy *p)
{
	for (unsigned int k = 0; k < BC_POLICY_CLASSES; k++)
		if (p->cls[k].issued >= EXPLORE && p->cls[k].back < EXPLORE)
			return true;
	return false;
}

bool bc_policy_waits(const struct bc_policy *p, const struct bc_emu_rate *er)
{
	/* Once the whole probe is handed: until then its pieces go on being handed. */
	if (!p->learn || p->probe_bytes < PROBE_BYTES)
		return false;
	return (!emu_known(er) && !er->idle) || exploring(p);
}

/* Class @k copied natively at least as fast as emulation: bytes/ns, cross-multiplied. */
static bool native_faster(const struct bc_policy *p, unsigned int k, const struct bc_emu_rate *er)
{
	return (unsigned __int128)p->cls[k].bytes * er->busy_ns >=
	       (unsigned __int128)er->bytes * p->cls[k].ns;
}

uint64_t bc_policy_threshold(const struct bc_policy *p, const struct bc_emu_rate *er,
			     bool *learnt)
{
	uint64_t thr = 0;

	*learnt = false;
	if (p->native_min)
		return p->native_min;
	if (!p->learn || !emu_known(er))
		return 0;
	for (unsigned int k = 0; k < BC_POLICY_CLASSES - 1; k++) {
		if (p->cls[k].n < EXPLORE)
			continue;
		if (native_faster(p, k, er))
			break;
		thr = 1ull << (k + 1);
	}
	*learnt = thr != 0;
	return thr;
}

bool bc_policy_emulate(struct bc_policy *p, uint64_t len, const struct bc_emu_rate *er,
		       enum blkcopy_emulated *why)
{
	bool learnt;

	if (p->native_min) {
		*why = BLKCOPY_EMULATED_NATIVE_MIN;
		return len < p->native_min;
	}
	if (!p->learn)
		return false;
	const unsigned int k = class_of(len);

	*why = BLKCOPY_EMULATED_SLOWER;
	if (emu_known(er) && len < bc_policy_threshold(p, er, &learnt))
		return true;
	/* A size is explored natively first; meanwhile emulation is probed with the next pieces. */
	if (p->cls[k].issued < EXPLORE) {
		p->cls[k].issued++;
		return false;
	}
	if (!emu_known(er) && len <= PROBE_PIECE && p->probe_bytes < PROBE_BYTES) {
		p->probe_bytes += len;
		*why = BLKCOPY_EMULATED_PROBE;
		return true;
	}
	return false;
}
