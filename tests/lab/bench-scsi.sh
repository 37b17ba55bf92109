#!/bin/bash
# SPDX-License-Identifier: MIT
# Local SCSI, LIO fileio LU to rd_mcp LU over tcm_loop: 64 MiB as one range,
# and 16 MiB as 4,096 scattered 4 KiB ranges (LIO takes one segment per
# command, so each range is one EXTENDED COPY).  Each three ways: blkcopy's
# default (the piece policy emulates pieces whose commands cost more than
# emulating them), every piece native (--native-min 0, through the sg
# queue), and --no-offload; and the scattered case once more all native one
# command at a time over SG_IO.  Wall time and CPU (user + system of the
# blkcopy process; the target's work is in the guest kernel, not counted).
# lab/run.sh runs it only with LAB_BENCH=1 (it takes about 6 minutes under TCG):
#   sudo LAB_BENCH=1 LAB_SCRIPT_TIMEOUT=900 bash lab/run.sh --only bench-scsi
. "$(dirname "${BASH_SOURCE[0]}")/benchlib.sh"

# once LABEL ARGS...: one verified run of blkcopy ARGS; appends "wall cpu method" to $T_DIR/LABEL.
once() {
	local label=$1 r
	shift
	fill_random "$B_DST" 0 "$B_SIZE" || { WHY="fill failed"; return 1; }
	r=$(REPEAT=1 timed "$@") || return 1
	verify "$B_RANGES" || { WHY="$label: $WHY"; return 1; }
	echo "$r" >>"$T_DIR/$label"
	[[ $label != *default ]] || jq -c '{native_bytes, emulated, native_min, native_min_learnt, native_commands}' \
		<"$T_OUT" >"$T_DIR/$label.policy"
}

# best LABEL: "wall cpu method" of the fastest run.
best() {
	sort -g -k1,1 "$T_DIR/$1" | head -n 1
}

# three LABEL RANGES-FILE SIZE: the three ways, alternating, REPEAT times each, verified; the
# ratios of the best runs as INFO lines.
three() {
	local label=$1 d n e rep args
	B_SRC=$LUN_FILEIO B_DST=$LUN_RDMCP B_DST_OFF=0 B_RANGES=$2 B_SIZE=$3
	args=(copy --json --no-progress --ranges-from "$B_RANGES" "$LUN_FILEIO" "$LUN_RDMCP")
	rm -f "$T_DIR/$label".*
	for ((rep = 0; rep < REPEAT; rep++)); do
		once "$label.default" "${args[@]}" || return 1
		once "$label.native" copy --native-min=0 "${args[@]:1}" || return 1
		once "$label.emulated" copy --no-offload "${args[@]:1}" || return 1
	done
	d=$(best "$label.default") n=$(best "$label.native") e=$(best "$label.emulated")
	[[ $n == *" scsi_xcopy" ]] || { WHY="$label: the --native-min 0 runs used ${n##* }"; return 1; }
	[[ $e == *" emulate" ]] || { WHY="$label: the --no-offload runs used ${e##* }"; return 1; }
	info "bench scsi $label: default ${d%% *}s (cpu $(cut -d' ' -f2 <<<"$d")s, ${d##* }) $(cat "$T_DIR/$label.default.policy")"
	info "bench scsi $label: every piece native ${n%% *}s (cpu $(cut -d' ' -f2 <<<"$n")s)," \
		"--no-offload ${e%% *}s (cpu $(cut -d' ' -f2 <<<"$e")s) (best of $REPEAT, alternating)"
	info "bench scsi $label: default $(awk "BEGIN{printf \"%.2f\", ${e%% *} / ${d%% *}}")x the speed of" \
		"--no-offload with $(awk "BEGIN{c = $(cut -d' ' -f2 <<<"$d"); printf \"%.2f\", $(cut -d' ' -f2 <<<"$e") / (c > 0.001 ? c : 0.001)}")x less cpu;" \
		"every piece native $(awk "BEGIN{printf \"%.2f\", ${e%% *} / ${n%% *}}")x"
	S_LAST=$n
}

case_bench() {
	need LUN_FILEIO LUN_RDMCP || return 77
	local size=$((64 * MiB)) small=$((16 * MiB)) s
	fill_random "$LUN_FILEIO" 0 $size || { WHY="fill failed"; return 1; }
	echo "0:$size" >"$T_DIR/one"
	scattered_ranges $small 0 >"$T_DIR/scattered"
	three "64MiB one range" "$T_DIR/one" $size || return 1
	three "16MiB 4KiB scattered" "$T_DIR/scattered" $small || return 1
	# The sg queue (commands in flight together) against SG_IO one at a time, every piece native.
	s=$(BLKCOPY_SCSI_SYNC=1 timed copy --json --no-progress --native-min=0 \
		--ranges-from "$T_DIR/scattered" "$LUN_FILEIO" "$LUN_RDMCP") || return 1
	info "bench scsi 16MiB 4KiB scattered, every piece native: sg queue ${S_LAST%% *}s" \
		"(cpu $(cut -d' ' -f2 <<<"$S_LAST")s) vs SG_IO one at a time ${s%% *}s (cpu $(cut -d' ' -f2 <<<"$s")s):" \
		"$(awk "BEGIN{printf \"%.2f\", ${s%% *} / ${S_LAST%% *}}")x"
}

run_case bench-scsi case_bench
finish
