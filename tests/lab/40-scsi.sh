#!/bin/bash
# SPDX-License-Identifier: MIT
# Native SCSI EXTENDED COPY against LIO over tcm_loop: limits from RECEIVE
# COPY OPERATING PARAMETERS, same-LU and cross-LU copies between fileio,
# rd_mcp and iblock backstores, segments split at the 16-bit block count,
# partitions remapped to the LU, block-size mismatch, forced emulation and
# a clean refusal with --no-emulation.
. "$(dirname "${BASH_SOURCE[0]}")/lib.sh"

xcopy_only() {
	json_check "$T_OUT" '.native_bytes == .total and .emulated_bytes == 0 and .method == "scsi_xcopy"' \
		"expected every byte through EXTENDED COPY"
}

emulated_only() {
	json_check "$T_OUT" '.native_bytes == 0 and .emulated_bytes == .total' "expected emulation"
}

# limits_are DEV RANGES RANGE_SECTORS SECTORS
limits_are() {
	bcp limits --json "$1"
	[[ $RC -eq 0 ]] || { WHY="limits $1: $(bcp_what)"; return 1; }
	info "limits $1: $(jq -c '.[0] | {backend, copy_offload, max_copy_nr_ranges, max_copy_range_sectors, max_copy_sectors, native_reason}' <"$T_OUT")"
	json_check "$T_OUT" ".[0].backend == \"scsi\" and .[0].copy_offload == 1 and
		.[0].max_copy_nr_ranges == $2 and .[0].max_copy_range_sectors == $3 and
		.[0].max_copy_sectors == $4" "limits of $1 are not $2 range(s) of $3 sectors, $4 per command"
}

# LIO: one segment per command; a segment counts at most 65535 blocks.
case_limits() {
	local l
	for l in LUN_FILEIO LUN_RDMCP LUN_IBLOCK LUN_PART1; do
		need $l || return 77
		limits_are "${!l}" 1 65535 65535 || return 1
	done
}

# 4096-byte blocks: 65535 blocks is 524280 sectors, under LIO's 256 MiB segment.
case_limits_4k() { need LUN_4K || return 77; limits_are "$LUN_4K" 1 524280 524280; }

case_same_lun() {
	need LUN_FILEIO || return 77
	copy_verify "$LUN_FILEIO" "$LUN_FILEIO" 32m 0:4k 1m:64k 2m+512:1536 5m:1m && xcopy_only
}

case_fileio_to_rdmcp() {
	need LUN_FILEIO LUN_RDMCP || return 77
	copy_verify "$LUN_FILEIO" "$LUN_RDMCP" 8m 0:64k 3m:512 4m:2m && xcopy_only
}

case_rdmcp_to_iblock() {
	need LUN_RDMCP LUN_IBLOCK || return 77
	copy_verify --via "$BRD_IBLOCK:0" "$LUN_RDMCP" "$LUN_IBLOCK" 20m 1m:1m 10m:8k && xcopy_only
}

case_iblock_to_fileio() {
	need LUN_IBLOCK LUN_FILEIO || return 77
	copy_verify "$LUN_IBLOCK" "$LUN_FILEIO" 40m 2m:256k 6m:4k && xcopy_only
}

# 40 MiB in one range: more than one segment's 65535 blocks, so split.
case_split_long_range() {
	need LUN_FILEIO LUN_RDMCP || return 77
	copy_verify "$LUN_FILEIO" "$LUN_RDMCP" 20m 0:40m && xcopy_only
}

case_partitions() {
	need LUN_PART1 LUN_PART2 LUN_PART || return 77
	copy_verify --via "$LUN_PART:$LUN_PART2_OFFSET" "$LUN_PART1" "$LUN_PART2" 2m 0:64k 1m:4k 7m:1m &&
		xcopy_only
}

case_4k_same_lun() {
	need LUN_4K || return 77
	copy_verify "$LUN_4K" "$LUN_4K" 32m 0:4k 1m:1m 9m:12k && xcopy_only
}

# Different block sizes: the copy manager cannot, emulation can.
case_4k_to_512_emulated() {
	need LUN_4K LUN_FILEIO || return 77
	copy_verify "$LUN_4K" "$LUN_FILEIO" 48m 0:4k 1m:64k && emulated_only
}

case_no_offload() {
	need LUN_FILEIO LUN_RDMCP || return 77
	copy_verify --opt --no-offload "$LUN_FILEIO" "$LUN_RDMCP" 50m 0:64k 1m:4k && emulated_only
}

case_scsi_to_nvme_emulated() {
	need LUN_RDMCP NVME_DEFAULT || return 77
	copy_verify "$LUN_RDMCP" "$NVME_DEFAULT" 80m 0:64k 1m:4k && emulated_only
}

# A pair no copy manager can take: refused before anything is written.
case_no_emulation_refused() {
	need LUN_4K LUN_FILEIO || return 77
	fill_random "$LUN_FILEIO" 56m 1m || { WHY="fill failed"; return 1; }
	local before
	before=$(md5_region "$LUN_FILEIO" 56m 1m)
	bcp copy --json --no-progress --no-emulation --range 0:64k --dst-offset $((56 * MiB + 65536)) "$LUN_4K" "$LUN_FILEIO"
	[[ $RC -ne 0 ]] || { WHY="--no-emulation between block sizes succeeded"; return 1; }
	json_check "$T_OUT" '.bytes == 0 and (.error | test("native copy not available"))' "expected a clean refusal" || return 1
	json_check "$T_OUT" '.device_error | test("scsi: different block sizes")' \
		"the refusal does not name its reason" || return 1
	[[ $(md5_region "$LUN_FILEIO" 56m 1m) == "$before" ]] || { WHY="the refused copy wrote"; return 1; }
}

case_no_emulation_native_ok() {
	need LUN_FILEIO LUN_RDMCP || return 77
	copy_verify --opt --no-emulation "$LUN_FILEIO" "$LUN_RDMCP" 60m 0:64k 1m:4k && xcopy_only
}

# The target writes behind the initiator's page cache: a buffered read must see the copy.
case_buffered_read_after_copy() {
	need LUN_RDMCP || return 77
	local want got
	fill_random "$LUN_RDMCP" 30m 256k || { WHY="fill failed"; return 1; }
	want=$(md5_region "$LUN_RDMCP" 30m 256k)
	dd if="$LUN_RDMCP" bs=64k skip=$((34 * 16)) count=4 status=none >/dev/null
	bcp copy --json --no-progress --range 30m:256k --dst-offset 34m "$LUN_RDMCP" "$LUN_RDMCP"
	[[ $RC -eq 0 ]] || { WHY="copy: $(bcp_what)"; return 1; }
	xcopy_only || return 1
	got=$(dd if="$LUN_RDMCP" bs=64k skip=$((34 * 16)) count=4 status=none | md5sum | cut -d' ' -f1)
	[[ $got == "$want" ]] || { WHY="a buffered read after the copy saw stale data"; return 1; }
}

# A caller that polls only blkcopy_job_fd() finishes a copy whose native
# commands are synchronous (SG_IO): the library signals the descriptor.
case_job_fd_sg_io() {
	need LUN_FILEIO || return 77
	BLKCOPY_SCSI_SYNC=1 job_drive_verify fd "$LUN_FILEIO" "$LUN_FILEIO" 256k 40m
}

# The same through the sg queue (commands in flight together, polled through the job's descriptor).
case_job_fd_sg_queue() {
	need LUN_FILEIO || return 77
	job_drive_verify fd "$LUN_FILEIO" "$LUN_FILEIO" 256k 40m
}

# scattered_args N BASE: N ranges of 4..64 KiB spread over 16 MiB from BASE.
scattered_args() {
	local i
	for ((i = 0; i < $1; i++)); do
		echo "$(($2 + (i * 7919 % 4096) * 4096)):$(((i % 16 + 1) * 4096))"
	done
}

# Many pieces (LIO takes one segment per command) in flight together, across LUs and in one LU.
case_queue_scattered() {
	need LUN_FILEIO LUN_RDMCP || return 77
	local r
	mapfile -t r < <(scattered_args 100 0)
	copy_verify "$LUN_FILEIO" "$LUN_RDMCP" 24m "${r[@]}" && xcopy_only || return 1
	copy_verify "$LUN_FILEIO" "$LUN_FILEIO" 40m "${r[@]}" && xcopy_only
}

# The one-at-a-time SG_IO path, kept for LUs without an sg node.
case_sync_sg_io() {
	need LUN_FILEIO LUN_RDMCP || return 77
	local r
	mapfile -t r < <(scattered_args 40 0)
	BLKCOPY_SCSI_SYNC=1 copy_verify "$LUN_FILEIO" "$LUN_RDMCP" 24m "${r[@]}" && xcopy_only
}

# Without CAP_SYS_RAWIO the kernel refuses EXTENDED COPY: the copy is emulated, and says why.
case_no_rawio() {
	need LUN_FILEIO LUN_RDMCP || return 77
	printf '#!/bin/bash\nexec setpriv --inh-caps=-sys_rawio --bounding-set=-sys_rawio %q "$@"\n' \
		"$BLKCOPY" >"$T_DIR/blkcopy-no-rawio"
	chmod +x "$T_DIR/blkcopy-no-rawio"
	BLKCOPY=$T_DIR/blkcopy-no-rawio copy_verify "$LUN_FILEIO" "$LUN_RDMCP" 8m 0:64k 1m:1m &&
		emulated_only
}

run_case scsi-limits case_limits
run_case scsi-limits-4k case_limits_4k
run_case scsi-xcopy-same-lun case_same_lun
run_case scsi-xcopy-fileio-to-rdmcp case_fileio_to_rdmcp
run_case scsi-xcopy-rdmcp-to-iblock case_rdmcp_to_iblock
run_case scsi-xcopy-iblock-to-fileio case_iblock_to_fileio
run_case scsi-xcopy-split-40m case_split_long_range
run_case scsi-xcopy-partitions case_partitions
run_case scsi-xcopy-4k-same-lun case_4k_same_lun
run_case scsi-4k-to-512-emulated case_4k_to_512_emulated
run_case scsi-job-fd-sg-io case_job_fd_sg_io
run_case scsi-job-fd-sg-queue case_job_fd_sg_queue
run_case scsi-queue-scattered case_queue_scattered
run_case scsi-sync-sg-io case_sync_sg_io
run_case scsi-no-rawio-emulates case_no_rawio
run_case scsi-no-offload case_no_offload
run_case scsi-to-nvme-emulated case_scsi_to_nvme_emulated
run_case scsi-no-emulation-refused case_no_emulation_refused
run_case scsi-no-emulation-native case_no_emulation_native_ok
run_case scsi-buffered-read-after-copy case_buffered_read_after_copy
finish
