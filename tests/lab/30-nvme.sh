#!/bin/bash
# SPDX-License-Identifier: MIT
# Native NVMe Simple Copy against QEMU's NVMe controller: limits from
# Identify, copies split inside MSSRL / MCL / MSRC, partitions remapped to
# namespace LBAs, the passthrough char node, the synchronous ioctl path,
# forced emulation, refusal across namespaces, page-cache coherence, dm-linear
# remapped to the namespace (tests/lab/50-dm.sh covers dm stacks).
. "$(dirname "${BASH_SOURCE[0]}")/lib.sh"

# native_only: the last copy_verify went entirely through NVMe Copy.
native_only() {
	json_check "$T_OUT" '.native_bytes == .total and .emulated_bytes == 0 and .method == "nvme_copy"' \
		"expected every byte through NVMe Copy"
}

# limits_are DEV RANGES RANGE_SECTORS SECTORS
limits_are() {
	bcp limits --json "$1"
	[[ $RC -eq 0 ]] || { WHY="limits $1: $(bcp_what)"; return 1; }
	info "limits $1: $(jq -c '.[0] | {backend, copy_offload, max_copy_nr_ranges, max_copy_range_sectors, max_copy_sectors, native_reason}' <"$T_OUT")"
	json_check "$T_OUT" ".[0].backend == \"nvme\" and .[0].copy_offload == 1 and
		.[0].max_copy_nr_ranges == $2 and .[0].max_copy_range_sectors == $3 and
		.[0].max_copy_sectors == $4" "limits of $1 are not MSRC+1=$2, MSSRL=$3, MCL=$4 sectors"
}

case_limits_small() { need NVME_SMALL || return 77; limits_are "$NVME_SMALL" 4 16 64; }
case_limits_default() { need NVME_DEFAULT || return 77; limits_are "$NVME_DEFAULT" 128 128 128; }
# 4096-byte LBAs: MSSRL and MCL of 128 blocks are 1024 sectors.
case_limits_4k() { need NVME_4K || return 77; limits_are "$NVME_4K" 128 1024 1024; }
case_limits_partition() { need NVME_PART1 || return 77; limits_are "$NVME_PART1" 128 128 128; }
case_limits_ng() { need NVME_SMALL_NG || return 77; limits_are "$NVME_SMALL_NG" 4 16 64; }

case_single_range() {
	need NVME_SMALL || return 77
	copy_verify "$NVME_SMALL" "$NVME_SMALL" 8m 0:4k && native_only
}

# 11 ranges > MSRC+1, ranges up to 5x MSSRL, 196 KiB > 6x MCL.
case_multi_range_split() {
	need NVME_SMALL || return 77
	copy_verify "$NVME_SMALL" "$NVME_SMALL" 16m \
		1m:512 1m+4k:20k 2m:8k 2m+64k:512 3m:40k 3m+1m:1k 5m:4k 5m+8k:4k 6m:64k 7m:32k 7m+512k:23k &&
		native_only
}

case_large_default() {
	need NVME_DEFAULT || return 77
	copy_verify "$NVME_DEFAULT" "$NVME_DEFAULT" 40m 4m:8m && native_only
}

case_scattered_default() {
	need NVME_DEFAULT || return 77
	local r=() i
	for ((i = 0; i < 300; i++)); do
		r+=("$((MiB + (i * 37 % 300) * 65536)):$(((i % 7 + 1) * 512))")
	done
	copy_verify "$NVME_DEFAULT" "$NVME_DEFAULT" 100m "${r[@]}" && native_only
}

# --verify after NVMe Copy: the drive's copy read back and compared (the page cache dropped first).
case_verify_native() {
	need NVME_DEFAULT || return 77
	copy_verify --opt --verify "$NVME_DEFAULT" "$NVME_DEFAULT" 60m 2m:4m 7m:512 9m+4k:1m && native_only || return 1
	json_check "$T_OUT" '.verified == true and .verified_bytes == .total and .mismatch_offset == null' \
		"the native copy was not verified"
}

case_4k_namespace() {
	need NVME_4K || return 77
	copy_verify "$NVME_4K" "$NVME_4K" 64m 0:4k 1m:1m 8m:516k 12m+4k:8k && native_only
}

# Partition offsets are added before the LBAs reach the drive: check through the namespace.
case_partition_to_partition() {
	need NVME_PART1 NVME_PART2 NVME_PART || return 77
	copy_verify --via "$NVME_PART:$NVME_PART2_OFFSET" "$NVME_PART1" "$NVME_PART2" 3m 0:64k 1m:4k 5m:100k &&
		native_only
}

case_within_partition() {
	need NVME_PART2 NVME_PART || return 77
	copy_verify --via "$NVME_PART:$NVME_PART2_OFFSET" "$NVME_PART2" "$NVME_PART2" 20m 4k:12k 10m:1m &&
		native_only
}

case_sync_ioctl() {
	need NVME_SMALL || return 77
	BLKCOPY_NVME_SYNC=1 copy_verify "$NVME_SMALL" "$NVME_SMALL" 24m 1m:20k 2m:4k 3m:100k && native_only
}

# The job API's promises on the real controller: a caller that polls only
# blkcopy_job_fd() finishes the copy, through the io_uring queue and through
# the synchronous ioctl; blkcopy_job_wait(-1) returns once, finished.
case_job_fd_queued() {
	need NVME_SMALL || return 77
	job_drive_verify fd "$NVME_SMALL" "$NVME_SMALL" 256k 40m
}

case_job_fd_sync_ioctl() {
	need NVME_SMALL || return 77
	job_drive_verify fd "$NVME_SMALL" "$NVME_SMALL" 256k 41m BLKCOPY_NVME_SYNC=1
}

case_job_wait_queued() {
	need NVME_SMALL || return 77
	job_drive_verify wait "$NVME_SMALL" "$NVME_SMALL" 256k 42m
}

case_no_offload() {
	need NVME_SMALL || return 77
	copy_verify --opt --no-offload "$NVME_SMALL" "$NVME_SMALL" 32m 1m:20k 2m:4k || return 1
	json_check "$T_OUT" '.native_bytes == 0 and .emulated_bytes == .total' "--no-offload still went native"
}

# Different namespaces: QEMU 7.2 has no cross-namespace formats, so emulation.
# Across namespaces of different LBA sizes no Copy format applies (QEMU 7.2
# offers no copy across namespaces at all; 10 does, for the same format:
# tests/lab/35-nvme-xns.sh).
case_cross_namespace_emulated() {
	need NVME_SMALL NVME_4K || return 77
	copy_verify "$NVME_SMALL" "$NVME_4K" 48m 1m:20k 2m:4k || return 1
	json_check "$T_OUT" '.native_bytes == 0 and .emulated_bytes == .total' "expected emulation across namespaces"
}

case_cross_namespace_no_emulation() {
	need NVME_SMALL NVME_4K || return 77
	fill_random "$NVME_4K" 50m 1m || { WHY="fill failed"; return 1; }
	local before
	before=$(md5_region "$NVME_4K" 50m 1m)
	bcp copy --json --no-progress --no-emulation --range 1m:64k --dst-offset $((50 * MiB + 4096)) "$NVME_SMALL" "$NVME_4K"
	[[ $RC -ne 0 ]] || { WHY="--no-emulation across namespaces succeeded"; return 1; }
	json_check "$T_OUT" '.bytes == 0 and (.error | test("native copy not available"))' \
		"expected a clean refusal" || return 1
	json_check "$T_OUT" '.device_error | test("nvme: (different namespaces|namespaces 1 and 3 have different LBA sizes)")' \
		"the refusal does not name its reason" || return 1
	[[ $(md5_region "$NVME_4K" 50m 1m) == "$before" ]] || { WHY="the refused copy wrote to the destination"; return 1; }
}

# The passthrough node names the namespace: as source and destination.
case_ng_node() {
	need NVME_SMALL NVME_SMALL_NG || return 77
	local sum
	fill_random "$NVME_SMALL" 40m 64k || { WHY="fill failed"; return 1; }
	sum=$(md5_region "$NVME_SMALL" 40m 64k)
	bcp copy --json --no-progress --range 40m:64k --dst-offset 44m "$NVME_SMALL_NG" "$NVME_SMALL_NG"
	[[ $RC -eq 0 ]] || { WHY="copy between ng nodes: $(bcp_what)"; return 1; }
	native_only || return 1
	[[ $(md5_region "$NVME_SMALL" 44m 64k) == "$sum" ]] || { WHY="data not at the destination"; return 1; }
}

# The drive writes behind the page cache: a buffered read right after must see the copy.
case_buffered_read_after_copy() {
	need NVME_DEFAULT || return 77
	local want got
	fill_random "$NVME_DEFAULT" 60m 256k || { WHY="fill failed"; return 1; }
	want=$(md5_region "$NVME_DEFAULT" 60m 256k)
	dd if="$NVME_DEFAULT" bs=64k skip=$((64 * 16)) count=4 status=none >/dev/null	# cache the old bytes at 64m
	bcp copy --json --no-progress --range 60m:256k --dst-offset 64m "$NVME_DEFAULT" "$NVME_DEFAULT"
	[[ $RC -eq 0 ]] || { WHY="copy: $(bcp_what)"; return 1; }
	native_only || return 1
	got=$(dd if="$NVME_DEFAULT" bs=64k skip=$((64 * 16)) count=4 status=none | md5sum | cut -d' ' -f1)
	[[ $got == "$want" ]] || { WHY="a buffered read after the copy saw stale data"; return 1; }
}

# Dirty pages of the source reach the drive before it copies.
case_dirty_source_flushed() {
	need NVME_DEFAULT || return 77
	local want
	head -c 131072 /dev/urandom >"$T_DIR/new"
	want=$(md5sum <"$T_DIR/new" | cut -d' ' -f1)
	dd if="$T_DIR/new" of="$NVME_DEFAULT" bs=64k seek=$((68 * 16)) conv=notrunc status=none	# buffered, no sync
	bcp copy --json --no-progress --range 68m:128k --dst-offset 72m "$NVME_DEFAULT" "$NVME_DEFAULT"
	[[ $RC -eq 0 ]] || { WHY="copy: $(bcp_what)"; return 1; }
	native_only || return 1
	[[ $(md5_region "$NVME_DEFAULT" 72m 128k) == "$want" ]] || { WHY="the copy missed dirty source pages"; return 1; }
}

# Passthrough on a dm device is not remapped by the kernel: blkcopy sends the
# namespace's own LBAs (dm-linear at an offset; checked through the namespace).
case_dm_remapped() {
	need DM_LINEAR || return 77
	copy_verify --via "$DM_LINEAR_BASE:$DM_LINEAR_OFFSET" "$DM_LINEAR" "$DM_LINEAR" 16m 0:64k 1m:4k && native_only
}

# Bad input is refused before the drive sees anything.
case_misaligned_refused() {
	need NVME_4K || return 77
	bcp copy --json --no-progress --range 512:4k --dst-offset 1m "$NVME_4K" "$NVME_4K"
	[[ $RC -ne 0 ]] && json_check "$T_OUT" '.bytes == 0' "misaligned copy not refused"
}

run_case nvme-limits-small case_limits_small
run_case nvme-limits-default case_limits_default
run_case nvme-limits-4k case_limits_4k
run_case nvme-limits-partition case_limits_partition
run_case nvme-limits-ng-node case_limits_ng
run_case nvme-copy-single-range case_single_range
run_case nvme-copy-multi-range-split case_multi_range_split
run_case nvme-copy-8m-default case_large_default
run_case nvme-copy-300-scattered case_scattered_default
run_case nvme-verify-native case_verify_native
run_case nvme-copy-4k-lba case_4k_namespace
run_case nvme-copy-partition-to-partition case_partition_to_partition
run_case nvme-copy-within-partition case_within_partition
run_case nvme-copy-sync-ioctl case_sync_ioctl
run_case nvme-job-fd-queued case_job_fd_queued
run_case nvme-job-fd-sync-ioctl case_job_fd_sync_ioctl
run_case nvme-job-wait-queued case_job_wait_queued
run_case nvme-no-offload case_no_offload
run_case nvme-cross-namespace-emulated case_cross_namespace_emulated
run_case nvme-cross-namespace-no-emulation case_cross_namespace_no_emulation
run_case nvme-ng-node-copy case_ng_node
run_case nvme-buffered-read-after-copy case_buffered_read_after_copy
run_case nvme-dirty-source-flushed case_dirty_source_flushed
run_case nvme-dm-linear-remapped case_dm_remapped
run_case nvme-misaligned-refused case_misaligned_refused
finish
