#!/bin/bash
# SPDX-License-Identifier: MIT
# NVMe Copy over NVMe/TCP against emulation over the same connection, with
# the link shaped to 1 Gbit/s (tbf on lo), in 8 KiB and 2 MiB pieces: the
# seeds' headline (the copy offload measurements over NVMe/TCP at 1 Gbit/s
# that issue 16 cites: 107 -> 787 MiB/s with 8 KiB pieces, 100 -> 2655 MiB/s
# with 2 MiB, network use 97% -> 14%), printed beside ours.
#
# Caveats, said in the output too: lo is one queue for both directions, so
# its 1 Gbit/s is shared by an emulated copy's reads and writes (a real link
# carries 1 Gbit/s each way); under TCG the target's controller is QEMU's
# model on a CPU the guest shares, so native figures say where the work
# happens, not what a drive does.  Needs NVMe/TCP (6.12 guest) and tc.
# lab/run.sh runs it only with LAB_BENCH=1.
. "$(dirname "${BASH_SOURCE[0]}")/benchlib.sh"

LINK_BPS=125000000	# 1 Gbit/s

wire_bytes() {
	cat /sys/class/net/lo/statistics/rx_bytes
}

# one_run ARGS...: "SECONDS WIRE-BYTES METHOD" of one blkcopy copy.
one_run() {
	local w0 t0 t1
	w0=$(wire_bytes)
	t0=$(cut -d' ' -f1 /proc/uptime)
	"$BLKCOPY" copy --json --no-progress "$@" >"$T_OUT" 2>"$T_ERR" || { WHY="blkcopy $*: $(cat "$T_ERR")"; return 1; }
	t1=$(cut -d' ' -f1 /proc/uptime)
	echo "$(awk -v a="$t0" -v b="$t1" 'BEGIN { printf "%.3f", b - a }') $(($(wire_bytes) - w0)) $(jq -r .method <"$T_OUT")"
}

# piece_bench LABEL PIECE COUNT SEED_EMU SEED_NATIVE
piece_bench() {
	local label=$1 piece=$2 count=$3 i n e total
	total=$((piece * count))
	: >"$T_DIR/ranges"
	# Every other piece: scattered, so that each is its own range.
	for ((i = 0; i < count; i++)); do
		echo "$((i * 2 * piece)):$piece" >>"$T_DIR/ranges"
	done
	# Within one namespace: format 0, which the target always has.
	n=$(one_run --ranges-from "$T_DIR/ranges" --dst-offset 40m "$NVME_TCP1" "$NVME_TCP1") || return 1
	[[ $n == *" nvme_copy" ]] || { WHY="$label: the native run used ${n##* }"; return 1; }
	e=$(one_run --no-offload --ranges-from "$T_DIR/ranges" --dst-offset 40m "$NVME_TCP1" "$NVME_TCP1") || return 1
	local nt nw et ew
	read -r nt nw _ <<<"$n"
	read -r et ew _ <<<"$e"
	info "bench nvme-tcp $label ($count x $((piece / 1024)) KiB, link 1 Gbit/s):" \
		"emulated $(awk -v b="$total" -v t="$et" 'BEGIN { printf "%.0f", b / t / 1048576 }') MiB/s," \
		"native $(awk -v b="$total" -v t="$nt" 'BEGIN { printf "%.0f", b / t / 1048576 }') MiB/s" \
		"($(awk -v a="$et" -v b="$nt" 'BEGIN { printf "%.1f", a / b }')x);" \
		"network use emulated $(awk -v w="$ew" -v t="$et" -v l=$LINK_BPS 'BEGIN { printf "%.0f", 100 * w / t / l }')%," \
		"native $(awk -v w="$nw" -v t="$nt" -v l=$LINK_BPS 'BEGIN { printf "%.0f", 100 * w / t / l }')%;" \
		"bytes on the wire $ew vs $nw. Seeds: $4 -> $5 MiB/s, network 97% -> 14%"
}

case_bench() {
	need NVME_TCP1 NVME_TCP2 || return 77
	command -v tc >/dev/null || { WHY="no tc in the guest"; return 77; }
	tc qdisc replace dev lo root tbf rate 1gbit burst 512kb latency 100ms ||
		{ WHY="cannot shape lo (sch_tbf)"; return 1; }
	fill_random "$NVME_TCP1" 0 32m || { WHY="fill failed"; tc qdisc del dev lo root; return 1; }
	info "bench nvme-tcp: lo shaped to 1 Gbit/s for both directions together (a real link has that each way); TCG: QEMU's controller copies on a CPU the guest shares"
	piece_bench "8 KiB pieces" 8192 1024 107 787 &&
		piece_bench "2 MiB pieces" $((2 * MiB)) 8 100 2655
	local rc=$?
	tc qdisc del dev lo root
	return $rc
}

run_case bench-nvme-tcp case_bench
finish
