#!/bin/bash
# SPDX-License-Identifier: MIT
# SCSI EXTENDED COPY against forced emulation, LIO fileio LU to rd_mcp LU:
# 64 MiB as one range, and 16 MiB as 4,096 scattered 4 KiB ranges (LIO takes
# one segment per command, so each range is one command); and the scattered
# case through the sg queue against SG_IO one command at a time.
# lab/run.sh runs it only with LAB_BENCH=1: sudo LAB_BENCH=1 bash lab/run.sh --only bench-scsi
. "$(dirname "${BASH_SOURCE[0]}")/benchlib.sh"

case_bench() {
	need LUN_FILEIO LUN_RDMCP || return 77
	local size=$((64 * MiB)) small=$((16 * MiB))
	fill_random "$LUN_FILEIO" 0 $size || { WHY="fill failed"; return 1; }
	echo "0:$size" >"$T_DIR/one"
	scattered_ranges $small 0 >"$T_DIR/scattered"
	bench_pair "scsi 64MiB one range fileio->rd_mcp" scsi_xcopy "$LUN_FILEIO" "$LUN_RDMCP" 0 $size "$T_DIR/one" &&
		bench_pair "scsi 16MiB 4KiB scattered fileio->rd_mcp" scsi_xcopy "$LUN_FILEIO" "$LUN_RDMCP" 0 $small "$T_DIR/scattered" ||
		return 1
	# The sg queue (commands in flight together) against SG_IO one at a time.
	local q s
	B_SRC=$LUN_FILEIO B_DST=$LUN_RDMCP
	q=$(timed copy --json --no-progress --ranges-from "$T_DIR/scattered" "$LUN_FILEIO" "$LUN_RDMCP") || return 1
	s=$(BLKCOPY_SCSI_SYNC=1 timed copy --json --no-progress --ranges-from "$T_DIR/scattered" \
		"$LUN_FILEIO" "$LUN_RDMCP") || return 1
	info "bench scsi 16MiB 4KiB scattered: sg queue ${q%% *}s (cpu $(cut -d' ' -f2 <<<"$q")s)" \
		"vs SG_IO one at a time ${s%% *}s (cpu $(cut -d' ' -f2 <<<"$s")s):" \
		"$(awk "BEGIN{printf \"%.2f\", ${s%% *} / ${q%% *}}")x"
}

run_case bench-scsi case_bench
finish
