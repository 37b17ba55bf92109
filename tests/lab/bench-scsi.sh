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
# lab/run.sh runs it only with LAB_BENCH=1: sudo LAB_BENCH=1 bash lab/run.sh --only bench-scsi
. "$(dirname "${BASH_SOURCE[0]}")/benchlib.sh"

# three LABEL RANGES-FILE SIZE: the three ways, verified, and the ratios as INFO lines.
three() {
	local label=$1 ranges=$2 size=$3 d n e s args
	args=(copy --json --no-progress --ranges-from "$ranges" "$LUN_FILEIO" "$LUN_RDMCP")
	B_SRC=$LUN_FILEIO B_DST=$LUN_RDMCP B_DST_OFF=0
	fill_random "$B_DST" 0 "$size" || { WHY="fill failed"; return 1; }
	d=$(timed "${args[@]}") || return 1
	verify "$ranges" || { WHY="$label default: $WHY"; return 1; }
	local policy
	policy=$(jq -c '{native_bytes, emulated, native_min, native_min_learnt, native_commands}' <"$T_OUT")
	fill_random "$B_DST" 0 "$size" || { WHY="fill failed"; return 1; }
	n=$(timed copy --native-min=0 "${args[@]:1}") || return 1
	[[ $n == *" scsi_xcopy" ]] || { WHY="$label: the --native-min 0 runs used ${n##* }"; return 1; }
	verify "$ranges" || { WHY="$label native: $WHY"; return 1; }
	fill_random "$B_DST" 0 "$size" || { WHY="fill failed"; return 1; }
	e=$(timed copy --no-offload "${args[@]:1}") || return 1
	[[ $e == *" emulate" ]] || { WHY="$label: the --no-offload runs used ${e##* }"; return 1; }
	verify "$ranges" || { WHY="$label emulated: $WHY"; return 1; }
	info "bench scsi $label: default ${d%% *}s (cpu $(cut -d' ' -f2 <<<"$d")s, ${d##* }) $policy"
	info "bench scsi $label: every piece native ${n%% *}s (cpu $(cut -d' ' -f2 <<<"$n")s)," \
		"--no-offload ${e%% *}s (cpu $(cut -d' ' -f2 <<<"$e")s)"
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
