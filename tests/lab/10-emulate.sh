#!/bin/bash
# SPDX-License-Identifier: MIT
# Emulated copies (--no-offload) on every kind of device in the lab: each
# NVMe namespace (512 and 4096-byte blocks), NVMe and SCSI partitions, each
# LIO LUN (fileio, rd_mcp, iblock, 4096-byte), dm-linear and dm-striped, a
# virtio disk and brd; same-device copies of scattered ranges and copies
# across devices.  Each copy is checked by reading the destination back
# against the source bytes, and the bytes just before and after the
# destination span (and through the disk under a partition or dm device)
# must not change.  Native backends are forced off here: this file is about
# the emulation path, whatever the devices could do natively.
. "$(dirname "${BASH_SOURCE[0]}")/lib.sh"

# emu NAME SRC DST DSTOFF [--via VAR:OFFVAR | --opt OPTION]... RANGE...: one
# verified copy.  SRC, DST and the --via device and offset are env names.
emu() {
	local name=$1 src=$2 dst=$3 dstoff=$4 more=() v
	shift 4
	while [[ ${1:-} == --via || ${1:-} == --opt ]]; do
		v=$2
		if [[ $1 == --via ]]; then
			need "${v%%:*}" || { skip "$name" "$WHY"; return; }
			v="$(env_get "${v%%:*}"):$(env_get "${v#*:}")"
		fi
		more+=("$1" "$v")
		shift 2
	done
	need "$src" "$dst" || { skip "$name" "$WHY"; return; }
	run_case "$name" copy_verify "${more[@]}" --opt --no-offload \
		"$(env_get "$src")" "$(env_get "$dst")" "$dstoff" "$@"
}

# For --via where the destination starts at byte 0 of the other node.
ZERO_OFFSET=0

# --- one device, scattered ranges ------------------------------------------
emu emulate-nvme-small-scattered NVME_SMALL NVME_SMALL 40m 0:64k 1m+512:7k 5m:1m 2m:256k
emu emulate-nvme-default-scattered NVME_DEFAULT NVME_DEFAULT 64m \
	0:32k 3m+512:40k 6m+1024:48k 9m+1536:56k 12m+2048:64k 15m+2560:72k 18m+3072:80k 21m+3584:88k
# Several chunks of emulated I/O at once.
emu emulate-nvme-default-4m-chunked NVME_DEFAULT NVME_DEFAULT 100m --opt --chunk-size=256k 0:4m
emu emulate-nvme-4k-scattered NVME_4K NVME_4K 20m 8k:4k 1m:64k 3m+4k:512k
emu emulate-nvme-part1-scattered NVME_PART1 NVME_PART1 10m --via NVME_PART:NVME_PART1_OFFSET \
	0:128k 2m+512:64k
emu emulate-lun-fileio-scattered LUN_FILEIO LUN_FILEIO 40m 0:32k 7m+512:1536 20m:1m
emu emulate-lun-rdmcp-scattered LUN_RDMCP LUN_RDMCP 50m 1m:512k 3m+512:64k 9m:8k
emu emulate-lun-iblock-scattered LUN_IBLOCK LUN_IBLOCK 30m --via BRD_IBLOCK:ZERO_OFFSET \
	0:4k 2m+1024:300k 5m:64k
emu emulate-lun-4k-scattered LUN_4K LUN_4K 30m 0:4k 2m:128k 5m+8k:64k
emu emulate-dm-linear-scattered DM_LINEAR DM_LINEAR 20m --via DM_LINEAR_BASE:DM_LINEAR_OFFSET \
	0:64k 3m+512:3k 8m:512k
# Ranges across the 4 KiB stripe chunks, so both legs serve each range.
emu emulate-dm-striped-scattered DM_STRIPED DM_STRIPED 60m 3584:1k 1m+1536:9k 7m:1m
emu emulate-nocopy-scattered NOCOPY NOCOPY 30m 0:4k 1m+512:64k 10m:1m
emu emulate-brd-scattered BRD BRD 30m 0:4k 1m+512:64k 10m:1m

# --- partitions: two of one disk, and a copy ending at the partition's end --
if need NVME_PART2; then
	part2_end=$(($(blockdev --getsize64 "$NVME_PART2") - 1052160))
else
	part2_end=0
fi
emu emulate-nvme-part1-to-part2-end NVME_PART1 NVME_PART2 "$part2_end" \
	--via NVME_PART:NVME_PART2_OFFSET 4m:1m 9m+512:3584
emu emulate-lun-part1-to-part2 LUN_PART1 LUN_PART2 1m --via LUN_PART:LUN_PART2_OFFSET \
	0:256k 10m+512:512

# --- across devices ----------------------------------------------------------
emu emulate-nvme-small-to-lun-fileio NVME_SMALL LUN_FILEIO 10m 2m:1m 50m+512:4k
emu emulate-lun-rdmcp-to-dm-striped LUN_RDMCP DM_STRIPED 100m 0:1m 8m+2048:12k
emu emulate-nvme-4k-to-lun-fileio NVME_4K LUN_FILEIO 44m 4k:8k 1m:256k
emu emulate-lun-fileio-to-nvme-4k LUN_FILEIO NVME_4K 60m 8k:4k 3m:64k
emu emulate-dm-linear-to-nocopy DM_LINEAR NOCOPY 50m 1m:1m 30m+512:1k
emu emulate-nocopy-to-brd NOCOPY BRD 40m 0:512k 5m+512:2560
emu emulate-brd-to-lun-iblock BRD LUN_IBLOCK 10m --via BRD_IBLOCK:ZERO_OFFSET 3m:768k
emu emulate-lun-4k-to-nvme-default LUN_4K NVME_DEFAULT 110m 0:64k 10m:1m
emu emulate-nvme-part2-to-lun-part1 NVME_PART2 LUN_PART1 30m --via LUN_PART:LUN_PART1_OFFSET \
	0:1m 20m+4k:8k
emu emulate-dm-striped-to-dm-linear DM_STRIPED DM_LINEAR 25m 2m+512:700k
# Disks held by device-mapper can still be read: NVME_DM 40..64 MiB is
# outside both dm tables; LUN_DM is the second leg of lab-striped.
emu emulate-nvme-dm-to-lun-rdmcp NVME_DM LUN_RDMCP 20m 45m:1m 50m+512:4k
emu emulate-lun-dm-to-nvme-small LUN_DM NVME_SMALL 90m 1m:1m

# --- requests that must be refused, changing nothing -------------------------

# refused NAME DST DSTOFF SPANLEN ARGS...: blkcopy fails and DST's bytes
# [DSTOFF, DSTOFF+SPANLEN) stay the same.
refused() {
	local dst=$1 off=$2 len=$3 sum
	shift 3
	sum=$(md5_region "$dst" "$off" "$len")
	bcp copy --no-progress --no-offload "$@"
	if [[ $RC -eq 0 ]]; then
		WHY="blkcopy copy $* succeeded"
		return 1
	fi
	drop_caches "$dst"
	[[ $(md5_region "$dst" "$off" "$len") == "$sum" ]] || { WHY="the destination changed"; return 1; }
	info "$T_NAME: refused as expected: $(head -c 200 "$T_ERR" | tr '\n' ' ')"
}

case_held_by_dm() {
	need NOCOPY NVME_DM || return 77
	# NVME_DM is open exclusively by the dm targets: O_EXCL must fail.
	refused "$NVME_DM" $((45 * MiB)) 4096 --range 0:4k --dst-offset 45m "$NOCOPY" "$NVME_DM"
}
case_misaligned_4k() {
	need NVME_SMALL NVME_4K || return 77
	refused "$NVME_4K" 0 8192 --range 512:512 --dst-offset 0 "$NVME_SMALL" "$NVME_4K"
}
case_past_end() {
	need NOCOPY BRD || return 77
	local end
	end=$(dev_size "$BRD")
	refused "$BRD" $((end - 524288)) 524288 --range 0:1m --dst-offset $((end - 524288)) "$NOCOPY" "$BRD"
}
run_case refuse-dst-held-by-dm case_held_by_dm
run_case refuse-misaligned-for-4k case_misaligned_4k
run_case refuse-past-device-end case_past_end

finish
