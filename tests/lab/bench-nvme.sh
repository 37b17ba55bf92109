#!/bin/bash
# SPDX-License-Identifier: MIT
# NVMe Copy against forced emulation on one namespace (QEMU's default copy
# limits): 64 MiB as one range and as 16,384 scattered 4 KiB ranges.
# lab/run.sh runs it only with LAB_BENCH=1: sudo LAB_BENCH=1 bash lab/run.sh --only bench-nvme
. "$(dirname "${BASH_SOURCE[0]}")/benchlib.sh"

case_bench() {
	need NVME_DEFAULT || return 77
	local size=$((64 * MiB))
	fill_random "$NVME_DEFAULT" 0 $size || { WHY="fill failed"; return 1; }
	echo "0:$size" >"$T_DIR/one"
	scattered_ranges $size 0 >"$T_DIR/scattered"
	bench_pair "nvme 64MiB one range" nvme_copy "$NVME_DEFAULT" "$NVME_DEFAULT" $size $size "$T_DIR/one" &&
		bench_pair "nvme 64MiB 4KiB scattered" nvme_copy "$NVME_DEFAULT" "$NVME_DEFAULT" $size $size "$T_DIR/scattered"
}

run_case bench-nvme case_bench
finish
