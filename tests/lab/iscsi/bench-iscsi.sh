#!/bin/bash
# SPDX-License-Identifier: MIT
# iSCSI EXTENDED COPY against forced emulation, ALPHA0 -> ALPHA1 (two LUNs of
# one target): 64 MiB in one range, and 4096 scattered 4 KiB ranges (LIO takes
# one segment per command: one EXTENDED COPY per range, many in flight).
# Three ways each: the default (the piece policy: small pieces whose commands
# cost more than emulating them are emulated), every piece native
# (--native-min 0) and --no-offload.
# Runs alternating, best of BENCH_REPEAT each: wall
# time, CPU time of the blkcopy process (user + system) and bytes on the
# wire, counted by two iptables rules on lo for the target's port (one per
# direction, with a comment of their own, removed on every way out).
# Emulation moves every byte through the host twice (READ in, WRITE out);
# native copy sends a few EXTENDED COPY commands.  Under TCG the target's
# work is emulated too, so the time ratio says little about real hardware;
# the wire ratio does not depend on it.
# lab/run.sh runs it only with LAB_BENCH=1: sudo LAB_BENCH=1 bash lab/run.sh --only bench-iscsi
. "$(dirname "${BASH_SOURCE[0]}")/lib.sh"

REPEAT=${BENCH_REPEAT:-3}
SIZE=$((64 * MiB))
FW_TAG=blkcopy-lab-bench-$$
FW_RULES=()	# rule specs added, for the cleanup

iptables_cmd() {
	iptables -w 10 "$@"
}

# fw_add: count both directions of the target's port on lo (INPUT sees every
# loopback packet once).  Rules without a target only count.
fw_add() {
	local spec
	for spec in "--dport $ISCSI_PORT" "--sport $ISCSI_PORT"; do
		# shellcheck disable=SC2086
		iptables_cmd -I INPUT -i lo -p tcp $spec -m comment --comment "$FW_TAG" || return 1
		FW_RULES+=("$spec")
	done
}

fw_remove() {
	local spec
	for spec in "${FW_RULES[@]}"; do
		# shellcheck disable=SC2086
		iptables_cmd -D INPUT -i lo -p tcp $spec -m comment --comment "$FW_TAG" 2>/dev/null
	done
	FW_RULES=()
}

# fw_bytes: bytes counted so far by our rules (both directions).
fw_bytes() {
	iptables_cmd -L INPUT -v -x -n | awk -v tag="/* $FW_TAG */" 'index($0, tag) { n += $2 } END { print n + 0 }'
}

trap 'fw_remove; rm -rf "$T_DIR"' EXIT
trap 'exit 130' INT TERM HUP

# run_once LABEL LEN ARGS...: one copy of LEN bytes to ALPHA1 offset 0
# (destination refilled first, checked against $SRC_SUM after); appends
# "wall cpu bytes method" to $T_DIR/LABEL.
run_once() {
	local label=$1 len=$2 t wall user sys b0 b1 TIMEFORMAT='%R %U %S'
	shift 2
	fill_random "$ISCSI_IMG_ALPHA1" 0 "$len" || { WHY="fill failed"; return 1; }
	b0=$(fw_bytes)
	t=$({ time "$BLKCOPY" "$@" >"$T_OUT" 2>"$T_ERR"; } 2>&1) || { WHY="$label: blkcopy $*: $(head -c 300 "$T_ERR")"; return 1; }
	b1=$(fw_bytes)
	read -r wall user sys <<<"$t"
	[[ $(md5_region "$ISCSI_IMG_ALPHA1" 0 "$len") == "$SRC_SUM" ]] || { WHY="$label: ALPHA1 does not hold the copy"; return 1; }
	echo "$wall $(awk -v u="$user" -v s="$sys" 'BEGIN { print u + s }') $((b1 - b0)) $(jq -r .method <"$T_OUT")" >>"$T_DIR/$label"
}

# best LABEL: "wall cpu bytes method" of the fastest run.
best() {
	sort -g -k1,1 "$T_DIR/$1" | head -n 1
}

human() {
	awk -v b="$1" 'BEGIN { split("B KB MB GB", u); i = 1; while (b >= 1000 && i < 4) { b /= 1000; i++ } printf (i == 1 ? "%d %s" : "%.1f %s"), b, u[i] }'
}

# line NAME LABEL RUNS: one INFO line for the best of RUNS.
line() {
	local w c b m
	read -r w c b m <<<"$(best "$1-$3")"
	info "bench iscsi $1 ALPHA0->ALPHA1 $2: ${w}s, cpu ${c}s, $(human "$b") on the wire ($m)"
}

# ratio NAME RUNS: RUNS against --no-offload, speed, cpu and wire.
ratio() {
	local nw nc nb ew ec eb
	read -r nw nc nb _ <<<"$(best "$1-$2")"
	read -r ew ec eb _ <<<"$(best "$1-emulated")"
	echo "$(awk -v e="$ew" -v n="$nw" 'BEGIN { printf "%.2f", e / n }')x the speed," \
		"$(awk -v e="$ec" -v n="$nc" 'BEGIN { printf "%.1f", e / (n > 0.001 ? n : 0.001) }')x less cpu," \
		"$(awk -v e="$eb" -v n="$nb" 'BEGIN { printf "%.0f", e / (n > 0 ? n : 1) }')x fewer bytes on the wire"
}

# compare NAME: the default (the piece policy) and every piece native against --no-offload.
compare() {
	local name=$1 dm nm em nb eb
	read -r _ _ _ dm <<<"$(best "$name-default")"
	read -r _ _ nb nm <<<"$(best "$name-native")"
	read -r _ _ eb em <<<"$(best "$name-emulated")"
	[[ $dm == scsi_xcopy || $dm == mixed ]] || { WHY="$name: the default runs used '$dm'"; return 1; }
	[[ $nm == scsi_xcopy ]] || { WHY="$name: the --native-min 0 runs used '$nm'"; return 1; }
	[[ $em == emulate ]] || { WHY="$name: the --no-offload runs used '$em'"; return 1; }
	((nb > 0 && eb > 0)) || { WHY="$name: no bytes counted on port $ISCSI_PORT (native $nb, emulated $eb)"; return 1; }
	line "$name" default default
	line "$name" "--native-min 0 (every piece native)" native
	line "$name" --no-offload emulated
	info "bench iscsi $name: default $(ratio "$name" default) than --no-offload (best of $REPEAT, alternating)"
	info "bench iscsi $name: every piece native $(ratio "$name" native) than --no-offload"
}

# bench NAME LEN ARGS...: REPEAT alternating default, all-native and --no-offload runs of "blkcopy copy ARGS".
bench() {
	local name=$1 len=$2 k
	shift 2
	for ((k = 0; k < REPEAT; k++)); do
		run_once "$name-default" "$len" copy "$@" || return 1
		run_once "$name-native" "$len" copy --native-min=0 "$@" || return 1
		run_once "$name-emulated" "$len" copy --no-offload "$@" || return 1
	done
	compare "$name"
}

case_bench() {
	local ranges=$T_DIR/scattered.txt i
	command -v iptables >/dev/null || { WHY="no iptables (apt-get install iptables)"; return 77; }
	fill_random "$ISCSI_IMG_ALPHA0" 0 $SIZE || { WHY="fill failed"; return 1; }
	fw_add || { WHY="could not add the iptables counting rules"; return 1; }

	SRC_SUM=$(md5_region "$ISCSI_IMG_ALPHA0" 0 $SIZE)
	bench 64MiB $SIZE --json --no-progress --range 0:$SIZE "$ISCSI_ALPHA0" "$ISCSI_ALPHA1" || return 1

	# Every fourth 4 KiB block of the first 64 MiB, in order: 16 MiB in 4096 ranges.
	for ((i = 0; i < 4096; i++)); do
		echo "$((i * 16384)):4096"
	done >"$ranges"
	SRC_SUM=$(python3 -c 'import hashlib, sys
f = open(sys.argv[1], "rb"); h = hashlib.md5()
for i in range(4096):
    f.seek(i * 16384); h.update(f.read(4096))
print(h.hexdigest())' "$ISCSI_IMG_ALPHA0")
	bench 4096x4KiB $((16 * MiB)) --json --no-progress --ranges-from "$ranges" "$ISCSI_ALPHA0" \
		"$ISCSI_ALPHA1" || return 1

	fw_remove
	! iptables_cmd -L INPUT -n | grep -qF "$FW_TAG" || { WHY="the counting rules are still there after their removal"; return 1; }
}

run_case bench-iscsi case_bench
finish
