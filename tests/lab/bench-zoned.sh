#!/bin/bash
# SPDX-License-Identifier: MIT
# Zoned garbage collection, as f2fs or ZenFS do it: 16,384 valid 4 KiB
# blocks scattered over 8 source zones (every fourth block), copied into 2
# empty zones of the same ZNS namespace.  NVMe Copy against forced
# emulation against the naive pread/pwrite loop (bench/naive-copy.c), in one
# run, as ratios; then emulated throughput onto zones against onto a
# conventional namespace of the same controller (64 MiB, 1 MiB chunks).
# lab/run.sh runs it only with LAB_BENCH=1: sudo LAB_BENCH=1 bash lab/run.sh --only bench-zoned
. "$(dirname "${BASH_SOURCE[0]}")/benchlib.sh"

ZS=$((32 * MiB))

zreset() { zones_reset "$@"; }

# best_of CMD...: the best wall time (s) of REPEAT runs, "wall cpu"; BENCH_BEFORE runs before each.
best_of() {
	local best="" bcpu t wall user sys
	for ((k = 0; k < REPEAT; k++)); do
		eval "$BENCH_BEFORE" || { WHY="$BENCH_BEFORE failed"; return 1; }
		local TIMEFORMAT='%R %U %S'
		t=$({ time "$@" >"$T_OUT" 2>"$T_ERR"; } 2>&1) || { WHY="$*: $(head -c 300 "$T_ERR")"; return 1; }
		read -r wall user sys <<<"$t"
		if [[ -z $best ]] || awk "BEGIN{exit !($wall < $best)}"; then
			best=$wall bcpu=$(awk "BEGIN{print $user + $sys}")
		fi
	done
	echo "$best $bcpu"
}

ratio() { awk "BEGIN{printf \"%.2f\", $1 / ($2 > 0.0001 ? $2 : 0.0001)}"; }

case_bench_gc() {
	need ZNS_BENCH || return 77
	local n e v nw nc ew ec vw vc
	zreset "$ZNS_BENCH" 0 $((512 * MiB)) &&
		dd if=/dev/urandom of="$ZNS_BENCH" bs=1M count=256 seek=256 oflag=direct status=none ||
		{ WHY="filling the source zones failed"; return 1; }
	awk -v base=$((256 * MiB)) 'BEGIN { for (i = 0; i < 16384; i++) printf "%d:4096\n", base + i * 4 * 4096 }' \
		>"$T_DIR/valid"
	B_SRC=$ZNS_BENCH B_DST=$ZNS_BENCH B_DST_OFF=0
	BENCH_BEFORE="zreset $ZNS_BENCH 0 $((2 * ZS))"
	n=$(best_of "$BLKCOPY" copy --json --no-progress --ranges-from "$T_DIR/valid" "$ZNS_BENCH" "$ZNS_BENCH") ||
		return 1
	json_check "$T_OUT" '.method == "nvme_copy"' "the native run was not NVMe Copy" || return 1
	verify "$T_DIR/valid" || { WHY="native: $WHY"; return 1; }
	e=$(best_of "$BLKCOPY" copy --json --no-progress --no-offload --ranges-from "$T_DIR/valid" \
		"$ZNS_BENCH" "$ZNS_BENCH") || return 1
	verify "$T_DIR/valid" || { WHY="emulated: $WHY"; return 1; }
	v=$(best_of naive-copy --direct "$T_DIR/valid" "$ZNS_BENCH" "$ZNS_BENCH") || return 1
	verify "$T_DIR/valid" || { WHY="naive: $WHY"; return 1; }
	read -r nw nc <<<"$n"
	read -r ew ec <<<"$e"
	read -r vw vc <<<"$v"
	info "bench zoned GC 16384x4KiB over 8 zones -> 2 zones: nvme_copy ${nw}s (cpu ${nc}s)," \
		"emulated ${ew}s (cpu ${ec}s), naive pread/pwrite ${vw}s (cpu ${vc}s):" \
		"native $(ratio "$vw" "$nw")x and emulated $(ratio "$vw" "$ew")x the naive loop's speed," \
		"native $(ratio "$ew" "$nw")x emulated"
}

case_bench_emulated_zoned() {
	need ZNS_BENCH ZNS_CONV NVME_DEFAULT || return 77
	local z c zw zc cw cc
	fill_random "$NVME_DEFAULT" 0 64m || { WHY="fill failed"; return 1; }
	echo "0:$((64 * MiB))" >"$T_DIR/one"
	B_SRC=$NVME_DEFAULT B_DST=$ZNS_BENCH B_DST_OFF=0
	BENCH_BEFORE="zreset $ZNS_BENCH 0 $((2 * ZS)); drop_caches $NVME_DEFAULT"
	z=$(best_of "$BLKCOPY" copy --json --no-progress --ranges-from "$T_DIR/one" "$NVME_DEFAULT" "$ZNS_BENCH") ||
		return 1
	verify "$T_DIR/one" || { WHY="onto zones: $WHY"; return 1; }
	B_DST=$ZNS_CONV
	BENCH_BEFORE="drop_caches $NVME_DEFAULT"
	c=$(best_of "$BLKCOPY" copy --json --no-progress --ranges-from "$T_DIR/one" "$NVME_DEFAULT" "$ZNS_CONV") ||
		return 1
	verify "$T_DIR/one" || { WHY="onto the conventional namespace: $WHY"; return 1; }
	read -r zw zc <<<"$z"
	read -r cw cc <<<"$c"
	info "bench emulated 64MiB onto zones ${zw}s (cpu ${zc}s) vs onto a conventional namespace ${cw}s" \
		"(cpu ${cc}s): zoned at $(awk "BEGIN{printf \"%.0f\", 100 * $cw / $zw}")% of the unconstrained speed"
}

run_case bench-zoned-gc case_bench_gc
run_case bench-zoned-emulated case_bench_emulated_zoned
finish
