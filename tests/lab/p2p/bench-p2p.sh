#!/bin/bash
# SPDX-License-Identifier: MIT
# P2P-staged emulation against host-memory emulation and dd, between the two
# controllers below one switch (lab/host/p2p.sh): 64 MiB as one range, in
# both directions; wall time and CPU time (user + system of the copying
# process), best of BENCH_REPEAT.  The baselines run in the same guest:
# blkcopy emulating through host memory (the same engine, the same queue
# depth and chunks) and dd (1 MiB O_DIRECT reads and writes, one at a time).
#
# Caveat: under QEMU, DMA from one device into another's memory is not a bus
# transfer but a bounce through a buffer in QEMU (one of 4 KiB for the whole
# machine before QEMU 9.1; per device, as large as
# x-max-bounce-buffer-size, since), so the wall-time ratio says more about
# QEMU than about a PCIe switch.  Neither blkcopy run copies data with the
# CPU (both are O_DIRECT): what P2P saves is host DRAM traffic (every byte
# written into host memory by one controller and read out by the other,
# twice the copy's size, against none), which a guest cannot measure.  Its
# CPU time is higher: P2P pages cannot be registered with io_uring, so each
# I/O pins them, and the mapping is made page by page.
# lab/run.sh runs it only with LAB_BENCH=1: sudo LAB_BENCH=1 bash lab/run.sh --only bench-p2p
. "$(dirname "${BASH_SOURCE[0]}")/../benchlib.sh"

# dd_timed SRC DST SIZE: "best-wall cpu" of REPEAT dd runs.
dd_timed() {
	local best="" cpu wall user sys t
	for ((k = 0; k < REPEAT; k++)); do
		local TIMEFORMAT='%R %U %S'
		t=$({ time dd if="$1" of="$2" bs=1M count=$(($3 / MiB)) iflag=direct oflag=direct status=none; } 2>&1) ||
			{ WHY="dd $1 $2: $t"; return 1; }
		read -r wall user sys <<<"$t"
		if [[ -z $best ]] || awk "BEGIN{exit !($wall < $best)}"; then
			best=$wall cpu=$(awk "BEGIN{print $user + $sys}")
		fi
	done
	echo "$best $cpu"
}

ratio() {
	awk -v a="$1" -v b="$2" 'BEGIN { printf "%.2f", a / (b > 0.001 ? b : 0.001) }'
}

# bench_dir LABEL SRC DST: the three ways, then one INFO line of figures.
bench_dir() {
	local label=$1 src=$2 dst=$3 size=$((64 * MiB)) p h d pw pc hw hc dw dc
	B_SRC=$src B_DST=$dst
	fill_random "$src" 0 $size || { WHY="fill failed"; return 1; }
	p=$(timed copy --json --no-progress --p2p -r 0:$size "$src" "$dst") || return 1
	jq -e ".p2p_bytes == $size" "$T_OUT" >/dev/null || { WHY="$label: not staged in P2P memory"; return 1; }
	cmp -s <(read_region "$src" 0 $size) <(read_region "$dst" 0 $size) || { WHY="$label: p2p copy differs"; return 1; }
	h=$(timed copy --json --no-progress -r 0:$size "$src" "$dst") || return 1
	d=$(dd_timed "$src" "$dst" $size) || return 1
	read -r pw pc _ <<<"$p"
	read -r hw hc _ <<<"$h"
	read -r dw dc <<<"$d"
	info "bench p2p $label 64MiB: p2p ${pw}s (cpu ${pc}s), host memory ${hw}s (cpu ${hc}s), dd ${dw}s (cpu ${dc}s):" \
		"p2p/host wall $(ratio "$pw" "$hw")x, cpu $(ratio "$pc" "$hc")x;" \
		"p2p/dd wall $(ratio "$pw" "$dw")x; every byte of the p2p run staged in ${P2P_CMB_PCI:-the CMB}"
}

case_bench() {
	need P2P_CMB P2P_PEER || return 77
	info "bench p2p: QEMU $(grep -o 'lab.qemu=[^ ]*' /proc/cmdline | cut -d= -f2), bounce buffer $(grep -o 'lab.bounce=[^ ]*' /proc/cmdline | cut -d= -f2) bytes per device (see the caveat in the script's header)"
	bench_dir "cmb->peer" "$P2P_CMB" "$P2P_PEER" && bench_dir "peer->cmb" "$P2P_PEER" "$P2P_CMB"
}

run_case bench-p2p case_bench
finish
