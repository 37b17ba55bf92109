#!/bin/bash
# SPDX-License-Identifier: MIT
# Native copy through device-mapper against forced emulation through the dm
# node: 16 MiB on dm-linear over an NVMe namespace (one range, and 4 KiB
# scattered ranges), and 16 MiB on dm-striped over two LIO LUNs with 4 KiB
# chunks (every chunk a separate EXTENDED COPY).
# lab/run.sh runs it only with LAB_BENCH=1: sudo LAB_BENCH=1 bash lab/run.sh --only bench-dm
. "$(dirname "${BASH_SOURCE[0]}")/benchlib.sh"

case_linear() {
	need DM_LINEAR || return 77
	local size=$((16 * MiB))
	fill_random "$DM_LINEAR" 0 $size || { WHY="fill failed"; return 1; }
	echo "0:$size" >"$T_DIR/one"
	scattered_ranges $size 0 >"$T_DIR/scattered"
	bench_pair "dm-linear/nvme 16MiB one range" nvme_copy "$DM_LINEAR" "$DM_LINEAR" $size $size "$T_DIR/one" &&
		bench_pair "dm-linear/nvme 16MiB 4KiB scattered" nvme_copy "$DM_LINEAR" "$DM_LINEAR" $size $size "$T_DIR/scattered"
}

case_striped_luns() {
	need DM_STRIPED_LUNS || return 77
	local size=$((16 * MiB))
	fill_random "$DM_STRIPED_LUNS" 0 $size || { WHY="fill failed"; return 1; }
	echo "0:$size" >"$T_DIR/one"
	bench_pair "dm-striped/2 LUNs 4KiB chunks 16MiB" scsi_xcopy "$DM_STRIPED_LUNS" "$DM_STRIPED_LUNS" $((32 * MiB)) $size "$T_DIR/one"
}

run_case bench-dm-linear case_linear
run_case bench-dm-striped-luns case_striped_luns
finish
