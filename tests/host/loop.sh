#!/bin/bash
# SPDX-License-Identifier: MIT
# blkcopy on loop devices (root): a direct-I/O loop device and a buffered one
# over files in /dev/shm; whole and scattered copies both ways, same-device
# copies, limits, 4096-byte sectors, and partitions (added with partx, as the
# host kernel may have no partition table parsers).  Every copy is checked
# through the loop device and through its backing file.
set -uo pipefail
. "$(dirname "${BASH_SOURCE[0]}")/lib.sh"

need_loop
command -v jq >/dev/null || { echo "FAIL $T_NAME: jq is required"; exit 1; }

D=$T_DIR
MiB=1048576
SZ=$((32 * MiB))
LA="" LB=""

# fresh_pair: new random images A and B (saved as *.orig) and loop devices
# LA (direct I/O) and LB (buffered) over them.
fresh_pair() {
	[[ -n $LA ]] && loop_detach "$LA"
	[[ -n $LB ]] && loop_detach "$LB"
	LA="" LB=""
	rand_file "$D/a.img" "$SZ"
	rand_file "$D/b.img" "$SZ"
	cp "$D/a.img" "$D/a.orig"
	cp "$D/b.img" "$D/b.orig"
	loop_attach LA --direct-io=on "$D/a.img" || { WHY="losetup --direct-io=on failed"; return 1; }
	loop_attach LB --direct-io=off "$D/b.img" || { WHY="losetup failed"; return 1; }
	return 0
}

# check_both DEV IMG ORIG SRC DSTOFF RANGES...: verify through the device and
# through its backing file.
check_both() {
	local dev=$1 img=$2 orig=$3 src=$4 off=$5
	shift 5
	if ! verify_copy "$src" "$img" "$orig" "$off" "$@"; then
		WHY="backing file $img: $WHY"
		return 1
	fi
	if ! verify_copy "$src" "$dev" "$orig" "$off" "$@"; then
		WHY="device $dev: $WHY"
		return 1
	fi
	return 0
}

case_limits() {
	fresh_pair || return 1
	bcp_ok limits --json "$LA" "$LB" || return 1
	cp "$T_OUT" "$D/lim.json"
	json_check "$D/lim.json" 'type == "array" and length == 2' "not an array of 2" || return 1
	json_check "$D/lim.json" ".[0].device == \"$LA\" and .[1].device == \"$LB\"" "device paths" || return 1
	json_check "$D/lim.json" 'all(.[]; .kind == "loop")' "kind is not loop" || return 1
	json_check "$D/lim.json" 'all(.[]; .logical_block_size == 512)' "logical_block_size is not 512" || return 1
	json_check "$D/lim.json" "all(.[]; .capacity == $SZ)" "capacity is not $SZ" || return 1
	json_check "$D/lim.json" 'all(.[]; .read_only == false)' "read_only is not false" || return 1
	# Loop devices resolve to their backing files: the file backend, one range per command.
	json_check "$D/lim.json" 'all(.[]; .copy_offload == 1 and .max_copy_sectors > 0 and .max_copy_nr_ranges == 1 and .max_copy_range_sectors > 0)' \
		"a loop device over a file does not report file copy limits" || return 1
	json_check "$D/lim.json" 'all(.[]; .backend == "file" and (.native_reason | test("backing file")))' \
		"backend is not file / native_reason does not name the backing file" || return 1
	# A read-only loop device.
	local R
	loop_attach R -r "$D/b.orig" || { WHY="losetup -r failed"; return 1; }
	bcp_ok limits --json "$R" || return 1
	cp "$T_OUT" "$D/limr.json"
	json_check "$D/limr.json" '.[0].read_only == true' "read-only loop device: read_only is not true" || return 1
	loop_detach "$R"
}

case_whole() {
	fresh_pair || return 1
	bcp_ok copy "$LA" "$LB" || return 1
	t_ok "backing file of $LB differs from $LA's after a whole copy" cmp -s "$D/a.orig" "$D/b.img" || return 1
	t_ok "$LB differs from $LA's image after a whole copy" cmp -s "$D/a.orig" "$LB" || return 1
	t_ok "source image changed" cmp -s "$D/a.orig" "$D/a.img"
}

RANGES=(
	$((5 * MiB)):65536
	0:4096
	4096:512
	4608:3584
	$((20 * MiB)):$((3 * MiB + 512))
	$((12 * MiB)):512
	$((12 * MiB - 512)):512
	$((SZ - 8192)):8192
	$((7 * MiB + 1536)):$((MiB + 1024))
)

case_scattered_a_to_b() {
	fresh_pair || return 1
	local off=$((3 * MiB + 512))
	# shellcheck disable=SC2046
	bcp_ok copy $(range_args "${RANGES[@]}") --dst-offset "$off" "$LA" "$LB" || return 1
	check_both "$LB" "$D/b.img" "$D/b.orig" "$D/a.orig" "$off" "${RANGES[@]}" || return 1
	t_ok "source image changed" cmp -s "$D/a.orig" "$D/a.img"
}

case_scattered_b_to_a() {
	fresh_pair || return 1
	local off=$((MiB - 512))
	# shellcheck disable=SC2046
	bcp_ok copy $(range_args "${RANGES[@]}") --dst-offset "$off" "$LB" "$LA" || return 1
	check_both "$LA" "$D/a.img" "$D/a.orig" "$D/b.orig" "$off" "${RANGES[@]}" || return 1
	t_ok "source image changed" cmp -s "$D/b.orig" "$D/b.img"
}

case_buffered_small_chunks() {
	fresh_pair || return 1
	local off=$((10 * MiB))
	# shellcheck disable=SC2046
	bcp_ok copy --buffered --chunk-size 64k --max-inflight 256k --queue-depth 2 \
		$(range_args "${RANGES[@]}") --dst-offset "$off" "$LA" "$LB" || return 1
	check_both "$LB" "$D/b.img" "$D/b.orig" "$D/a.orig" "$off" "${RANGES[@]}"
}

case_same_device() {
	fresh_pair || return 1
	local r=(0:$((MiB)) $((2 * MiB)):$((MiB + 512)) 4096:4096)
	# shellcheck disable=SC2046
	bcp_ok copy $(range_args "${r[@]}") --dst-offset $((8 * MiB)) "$LA" "$LA" || return 1
	check_both "$LA" "$D/a.img" "$D/a.orig" "$D/a.orig" $((8 * MiB)) "${r[@]}" || return 1
	# Overlapping on the same device is refused and writes nothing.
	local s
	s=$(sum_file "$D/a.img")
	bcp copy --range 0:8192 --dst-offset 4096 "$LA" "$LA"
	t_ok "overlapping same-device copy: expected exit 1, got $(bcp_what)" test "$RC" -eq 1 || return 1
	t_ok "overlapping same-device copy: expected 'source range overlaps the destination': $(bcp_what)" \
		grep -qF "source range overlaps the destination" "$T_ERR" || return 1
	t_ok "refused overlapping copy changed the device" test "$(sum_file "$D/a.img")" = "$s"
}

case_file_loop() {
	fresh_pair || return 1
	rand_file "$D/f.src" $((4 * MiB))
	# file -> loop and loop -> file: offsets aligned to 512, the larger of
	# the two logical block sizes.
	bcp_ok copy --range 1m:1m --range 512:1024 --dst-offset 2048 "$D/f.src" "$LB" || return 1
	check_both "$LB" "$D/b.img" "$D/b.orig" "$D/f.src" 2048 $((MiB)):$((MiB)) 512:1024 || return 1
	rand_file "$D/f.dst" $((4 * MiB))
	cp "$D/f.dst" "$D/f.orig"
	bcp_ok copy --range 3m:512 --range 0:1m --dst-offset 12800 "$LA" "$D/f.dst" || return 1
	verify_copy "$D/a.orig" "$D/f.dst" "$D/f.orig" 12800 $((3 * MiB)):512 0:$((MiB))
}

case_sector_4096() {
	fresh_pair || return 1
	local LC
	rand_file "$D/c.img" $((8 * MiB))
	cp "$D/c.img" "$D/c.orig"
	loop_attach LC --sector-size 4096 "$D/c.img" || { WHY="losetup --sector-size 4096 failed"; return 1; }
	bcp_ok limits --json "$LC" || return 1
	cp "$T_OUT" "$D/limc.json"
	json_check "$D/limc.json" ".[0].logical_block_size == 4096 and .[0].capacity == $((8 * MiB)) and .[0].kind == \"loop\"" \
		"--sector-size 4096 loop: limits" || return 1
	local r=($((MiB)):65536 0:4096 $((5 * MiB)):$((MiB + 4096)) 8192:4096)
	# shellcheck disable=SC2046
	bcp_ok copy $(range_args "${r[@]}") --dst-offset 8192 "$LA" "$LC" || return 1
	check_both "$LC" "$D/c.img" "$D/c.orig" "$D/a.orig" 8192 "${r[@]}" || return 1
	# And back, 4096-byte device as the source.
	# shellcheck disable=SC2046
	bcp_ok copy $(range_args "${r[@]}") --dst-offset $((16 * MiB)) "$LC" "$LB" || return 1
	check_both "$LB" "$D/b.img" "$D/b.orig" "$D/c.img" $((16 * MiB)) "${r[@]}" || return 1
	loop_detach "$LC"
}

case_partitions() {
	command -v sfdisk >/dev/null || { WHY="sfdisk not found"; return 77; }
	command -v partx >/dev/null || { WHY="partx not found"; return 77; }
	local LP P1 P2 i
	local p1s=$((2048 * 512)) p1n=$((16384 * 512)) p2s=$((20480 * 512)) p2n=$((24576 * 512))
	rand_file "$D/p.img" "$SZ"
	loop_attach LP "$D/p.img" || { WHY="losetup failed"; return 1; }
	printf 'label: dos\nstart=2048, size=16384, type=83\nstart=20480, size=24576, type=83\n' |
		sfdisk -q "$LP" >/dev/null 2>&1
	# sfdisk fails to re-read the table when the kernel has no parser;
	# check the table itself, then add the partitions with partx.
	if ! sfdisk -d "$LP" 2>/dev/null | grep -q 'start= *20480'; then
		WHY="sfdisk did not write the partition table"
		return 1
	fi
	if [[ ! -b ${LP}p1 ]]; then
		partx -a "$LP" >/dev/null 2>&1 || { WHY="partx -a $LP failed"; return 77; }
	fi
	T_PARTED+=("$LP")
	P1=${LP}p1
	P2=${LP}p2
	wait_blockdev "$P1" && wait_blockdev "$P2" || { WHY="no $P1/$P2 nodes after partx -a"; return 1; }
	cp "$D/p.img" "$D/p.orig"

	bcp_ok limits --json "$P2" || return 1
	cp "$T_OUT" "$D/limp.json"
	json_check "$D/limp.json" ".[0].capacity == $p2n and .[0].logical_block_size == 512" \
		"partition 2 limits (capacity $p2n)" || return 1

	# Partition 1 -> partition 2, scattered, at an offset.
	local r=(0:65536 $((MiB)):512 $((4 * MiB + 512)):131072 $((p1n - 4096)):4096 $((2 * MiB)):$((MiB)))
	local dst_off=$((MiB + 512)) shifted=() x
	for x in "${r[@]}"; do
		shifted+=($((p1s + ${x%%:*})):${x#*:})
	done
	# shellcheck disable=SC2046
	bcp_ok copy $(range_args "${r[@]}") --dst-offset "$dst_off" "$P1" "$P2" || return 1
	# Checked on the WHOLE disk: the data is at p2 start + offset, and
	# nothing else in the disk changed.  (Drop the whole disk's page cache:
	# it is separate from the partitions'.)
	blockdev --flushbufs "$LP"
	if ! verify_copy "$D/p.orig" "$LP" "$D/p.orig" $((p2s + dst_off)) "${shifted[@]}"; then
		WHY="whole disk $LP: $WHY"
		return 1
	fi
	if ! verify_copy "$D/p.orig" "$D/p.img" "$D/p.orig" $((p2s + dst_off)) "${shifted[@]}"; then
		WHY="backing file: $WHY"
		return 1
	fi
	cp "$D/p.img" "$D/p.orig2"

	# The destination is bounded by the partition, not the disk.
	bcp copy --range 0:4096 --dst-offset $((p2n - 3584)) "$P1" "$P2"
	t_ok "copy past the end of partition 2: expected exit 1 'destination range past the end', got $(bcp_what)" \
		grep -qF "destination range past the end of the destination" "$T_ERR" || return 1
	bcp_ok copy --range 0:4096 --dst-offset $((p2n - 4096)) "$P1" "$P2" || return 1
	blockdev --flushbufs "$LP"
	if ! verify_copy "$D/p.orig2" "$LP" "$D/p.orig2" $((p2s + p2n - 4096)) "$p1s:4096"; then
		WHY="copy to the end of partition 2, whole disk: $WHY"
		return 1
	fi
	cp "$D/p.img" "$D/p.orig2"

	# Whole disk and its partition are the same medium: an overlap is refused.
	bcp copy --range $((p2s + 4096)):4096 --dst-offset 0 --range $((p2s + 65536)):4096 "$LP" "$P2"
	t_ok "whole disk -> its partition, overlapping: expected exit 1, got $(bcp_what)" test "$RC" -eq 1 || return 1
	t_ok "whole disk -> its partition, overlapping: expected 'source range overlaps the destination', got $(bcp_what)" \
		grep -qF "source range overlaps the destination" "$T_ERR" || return 1
	bcp copy --range 4096:4096 --dst-offset $((p1s + 4096)) "$P1" "$LP"
	t_ok "partition -> its whole disk, overlapping: expected 'source range overlaps the destination', got $(bcp_what)" \
		grep -qF "source range overlaps the destination" "$T_ERR" || return 1
	t_ok "refused overlapping copies changed the disk" cmp -s "$D/p.img" "$D/p.orig2" || return 1

	# Partition 2 -> whole disk, in the gap before partition 1.
	bcp_ok copy --range 0:4096 --range 8192:512 --dst-offset 4096 "$P2" "$LP" || return 1
	blockdev --flushbufs "$LP"
	verify_copy "$D/p.orig2" "$D/p.img" "$D/p.orig2" 4096 "$p2s:4096" $((p2s + 8192)):512 || return 1

	partx -d "$LP" >/dev/null 2>&1
	T_PARTED=()
	for i in $(seq 20); do
		[[ -b $P1 ]] || break
		sleep 0.1
	done
	loop_detach "$LP"
}

t_case limits-loop case_limits
t_case whole-copy case_whole
t_case scattered-direct-to-buffered case_scattered_a_to_b
t_case scattered-buffered-to-direct case_scattered_b_to_a
t_case buffered-small-chunks case_buffered_small_chunks
t_case same-device case_same_device
t_case file-and-loop case_file_loop
t_case sector-size-4096 case_sector_4096
t_case partitions case_partitions
t_finish
