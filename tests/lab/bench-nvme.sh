#!/bin/bash
# SPDX-License-Identifier: MIT
# NVMe Copy against forced emulation, same guest, same copies: 64 MiB as one
# range and as 16,384 scattered 4 KiB ranges.  Prints wall time and CPU time
# (user + system of the blkcopy process) and the ratios.  Runs only with
# LAB_BENCH=1 (sudo LAB_BENCH=1 bash lab/run.sh --only bench-nvme).
#
# Under TCG the guest's own instructions are emulated while QEMU's NVMe
# model copies with host code, so the ratio says more about where the work
# happens than about a real drive.
. "$(dirname "${BASH_SOURCE[0]}")/lib.sh"

SIZE=$((64 * MiB))
REPEAT=${BENCH_REPEAT:-3}

# timed NAME ARGS...: best wall time of REPEAT runs, with that run's CPU time.
timed() {
	local name=$1 best="" cpu t
	shift
	for ((k = 0; k < REPEAT; k++)); do
		drop_caches "$DEV"
		local TIMEFORMAT='%R %U %S'
		t=$({ time "$BLKCOPY" "$@" >"$T_OUT" 2>"$T_ERR"; } 2>&1) || { WHY="$name: $(cat "$T_ERR")"; return 1; }
		read -r wall user sys <<<"$t"
		if [[ -z $best ]] || awk "BEGIN{exit !($wall < $best)}"; then
			best=$wall cpu=$(awk "BEGIN{print $user + $sys}")
		fi
	done
	echo "$best $cpu $(jq -r .method <"$T_OUT")"
}

# verify RANGES-FILE: every range of a short list, 64 spread-out ranges of a long one.
verify() {
	local n step i=0 pos=$SIZE off len
	n=$(wc -l <"$1")
	step=$(((n + 63) / 64))
	while IFS=: read -r off len; do
		if ((i % step == 0)) && [[ $(md5_region "$DEV" "$off" "$len") != $(md5_region "$DEV" $pos "$len") ]]; then
			WHY="range $i ($off:$len) is not at $pos"
			return 1
		fi
		pos=$((pos + len)) i=$((i + 1))
	done <"$1"
}

# bench SHAPE RANGES-FILE: native, then emulated, each verified; one INFO line.
bench() {
	local shape=$1 ranges=$2 n e nw nc ew ec
	fill_random "$DEV" $SIZE $SIZE || { WHY="fill failed"; return 1; }
	n=$(timed native copy --json --no-progress --ranges-from "$ranges" --dst-offset $SIZE "$DEV" "$DEV") || return 1
	[[ $n == *nvme_copy ]] || { WHY="$shape: the native run used ${n##* }"; return 1; }
	verify "$ranges" || { WHY="$shape native: $WHY"; return 1; }
	fill_random "$DEV" $SIZE $SIZE || { WHY="fill failed"; return 1; }
	e=$(timed emulated copy --json --no-progress --no-offload --ranges-from "$ranges" --dst-offset $SIZE "$DEV" "$DEV") || return 1
	[[ $e == *emulate ]] || { WHY="$shape: the emulated run used ${e##* }"; return 1; }
	verify "$ranges" || { WHY="$shape emulated: $WHY"; return 1; }
	read -r nw nc _ <<<"$n"
	read -r ew ec _ <<<"$e"
	info "bench nvme $shape 64MiB: native ${nw}s (cpu ${nc}s) vs emulated --no-offload ${ew}s (cpu ${ec}s):" \
		"native is $(awk "BEGIN{printf \"%.2f\", $ew / $nw}")x faster, uses $(awk "BEGIN{printf \"%.1f\", $ec / ($nc > 0.001 ? $nc : 0.001)}")x less cpu"
}

case_bench() {
	need NVME_DEFAULT || return 77
	DEV=$NVME_DEFAULT
	fill_random "$DEV" 0 $SIZE || { WHY="fill failed"; return 1; }
	echo "0:$SIZE" >"$T_DIR/one"
	# Every 4 KiB block of the source once, in a scrambled order.
	awk -v n=$((SIZE / 4096)) 'BEGIN { for (i = 0; i < n; i++) printf "%d:4096\n", ((i * 7919) % n) * 4096 }' >"$T_DIR/scattered"
	bench one-range "$T_DIR/one" && bench 4k-scattered "$T_DIR/scattered"
}

if [[ ${LAB_BENCH:-0} != 1 ]]; then
	skip bench-nvme "LAB_BENCH=1 not set"
	finish
fi
run_case bench-nvme case_bench
finish
