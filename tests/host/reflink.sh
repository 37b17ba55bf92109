#!/usr/bin/env bash
# SPDX-License-Identifier: MIT
# Native copy through file systems: real XFS (reflink=1) and btrfs on loop
# devices, files on them, loop devices over those files (direct I/O on and
# off), and partitions of such a loop device.  Every copy is read back; a
# reflink copy must leave the destination's extents shared (FIEMAP).
T_NAME=reflink
. "$(dirname "${BASH_SOURCE[0]}")/lib.sh"
need_loop
command -v mkfs.xfs >/dev/null || t_skip_script "mkfs.xfs not found (xfsprogs)"
command -v mkfs.btrfs >/dev/null || t_skip_script "mkfs.btrfs not found (btrfs-progs)"
command -v filefrag >/dev/null || t_skip_script "filefrag not found (e2fsprogs)"

D=$T_DIR
MiB=1048576

# mkfs_mount NAME TYPE SIZE: a fresh file system on a loop device, mounted at $D/NAME.
mkfs_mount() {
	local name=$1 type=$2 size=$3 dev
	truncate -s "$size" "$D/$name.fs"
	loop_attach dev "$D/$name.fs" || return 1
	case $type in
	xfs) mkfs.xfs -q -f -m reflink=1 "$dev" || return 1 ;;
	btrfs) mkfs.btrfs -q -f "$dev" >/dev/null || return 1 ;;
	esac
	mkdir -p "$D/$name"
	mount "$dev" "$D/$name" || return 1
	T_MOUNTS+=("$D/$name")
}

mkfs_mount xfs xfs 512M || t_skip_script "cannot make and mount XFS"
mkfs_mount btrfs btrfs 512M || t_skip_script "cannot make and mount btrfs"
X=$D/xfs B=$D/btrfs

# shared PATH: every extent of PATH is shared (FIEMAP_EXTENT_SHARED).
shared() {
	local out
	sync -f "$1"
	out=$(filefrag -v "$1" | awk '/^ *[0-9]+:/ { n++; if ($0 !~ /shared/) bad++ } END { print n + 0, bad + 0 }')
	[[ ${out%% *} -gt 0 && ${out##* } -eq 0 ]]
}

# method_bytes NAME: bytes the last --json copy did by method NAME.
method_bytes() {
	jq -r --arg m "$1" '.methods[$m] // 0' "$T_OUT"
}

# pair DIR SIZE: DIR/a random, DIR/b random and its saved copy DIR/b.orig.
pair() {
	rand_file "$1/a" "$2"
	rand_file "$1/b" "$2"
	cp "$1/b" "$D/b.orig"
}

case_whole_file() { # DIR
	local dir=$1
	pair "$dir" $((32 * MiB))
	bcp_ok copy --json --verify "$dir/a" "$dir/b" || return 1
	t_ok "not all reflinked: $(cat "$T_OUT")" test "$(method_bytes reflink)" -eq $((32 * MiB)) || return 1
	t_ok "reflink copy not verified: $(cat "$T_OUT")" \
		jq -e ".verified == true and .verified_bytes == $((32 * MiB))" "$T_OUT" >/dev/null || return 1
	t_ok "copy differs" cmp -s "$dir/a" "$dir/b" || return 1
	t_ok "destination extents are not shared after a reflink copy" shared "$dir/b"
}

# Heads and tails that are not block-aligned go through copy_file_range; the middle is cloned.
case_unaligned() { # DIR
	local dir=$1 r=(1000:$((10 * MiB + 5000)) 20971520:4096 $((24 * MiB + 7)):100)
	pair "$dir" $((32 * MiB))
	# shellcheck disable=SC2046
	bcp_ok copy --json $(range_args "${r[@]}") --dst-offset 1000 "$dir/a" "$dir/b" || return 1
	t_ok "middle not cloned: $(cat "$T_OUT")" test "$(method_bytes reflink)" -ge $((10 * MiB)) || return 1
	t_ok "unaligned head/tail not by copy_file_range: $(cat "$T_OUT")" \
		test "$(method_bytes copy_file_range)" -gt 0 || return 1
	t_ok "not all native: $(cat "$T_OUT")" jq -e '.emulated_bytes == 0 and .native_bytes == .bytes' "$T_OUT" >/dev/null || return 1
	verify_copy "$dir/a" "$dir/b" "$D/b.orig" 1000 "${r[@]}"
}

# Source and destination at different offsets within a block: nothing can be shared.
case_skewed() {
	pair "$X" $((8 * MiB))
	bcp_ok copy --json --range 4096:$((4 * MiB)) --dst-offset 512 "$X/a" "$X/b" || return 1
	t_ok "skewed copy claims reflink: $(cat "$T_OUT")" test "$(method_bytes reflink)" -eq 0 || return 1
	t_ok "skewed copy not by copy_file_range" test "$(method_bytes copy_file_range)" -eq $((4 * MiB)) || return 1
	verify_copy "$X/a" "$X/b" "$D/b.orig" 512 4096:$((4 * MiB))
}

case_cross_fs() {
	rand_file "$X/a" $((8 * MiB))
	rand_file "$B/b" $((8 * MiB))
	cp "$B/b" "$D/b.orig"
	bcp_ok copy --json --range 1m:3m --dst-offset 2m "$X/a" "$B/b" || return 1
	t_ok "cross-file-system copy not emulated, or not for want of native copy: $(cat "$T_OUT")" \
		jq -e '.emulated_bytes == .bytes and .native_bytes == 0 and .emulated == {"no_native": 3145728}' \
		"$T_OUT" >/dev/null || return 1
	verify_copy "$X/a" "$B/b" "$D/b.orig" $((2 * MiB)) $((MiB)):$((3 * MiB)) || return 1
	cp "$B/b" "$D/b.mid"
	bcp copy --no-emulation --range 0:1m "$X/a" "$B/b"
	t_ok "--no-emulation across file systems: expected exit 1, got $(bcp_what)" test "$RC" -eq 1 || return 1
	t_ok "--no-emulation across file systems changed the destination" cmp -s "$B/b" "$D/b.mid"
}

case_no_offload() {
	pair "$X" $((8 * MiB))
	bcp_ok copy --json --no-offload "$X/a" "$X/b" || return 1
	t_ok "--no-offload went native: $(cat "$T_OUT")" \
		jq -e '.native_bytes == 0 and .emulated_bytes == .bytes and .emulated == {"no_offload": .bytes}' \
		"$T_OUT" >/dev/null || return 1
	t_ok "copy differs" cmp -s "$X/a" "$X/b"
}

# --native-min: reflink pieces shorter than it are emulated (and say so), longer ones still
# cloned; 0 or auto: every piece native (the file backend has no costly commands to learn).
case_native_min() {
	local r=(0:65536 1048576:4096 2097152:1048576 4194304:8192)
	pair "$X" $((8 * MiB))
	# shellcheck disable=SC2046
	bcp_ok copy --json --native-min 64k $(range_args "${r[@]}") --dst-offset 5m "$X/a" "$X/b" || return 1
	t_ok "--native-min 64k: $(cat "$T_OUT")" jq -e '.emulated == {"native_min": 12288} and
		.native_min == 65536 and (.native_min_learnt | not) and .methods.reflink == 65536 + 1048576' \
		"$T_OUT" >/dev/null || return 1
	verify_copy "$X/a" "$X/b" "$D/b.orig" $((5 * MiB)) "${r[@]}" || return 1
	for m in 0 auto; do
		cp "$D/b.orig" "$X/b"
		# shellcheck disable=SC2046
		bcp_ok copy --json --native-min $m $(range_args "${r[@]}") --dst-offset 5m "$X/a" "$X/b" || return 1
		t_ok "--native-min $m emulated: $(cat "$T_OUT")" jq -e '.emulated == {} and .native_min <= 1 and
			.native_bytes == .bytes' "$T_OUT" >/dev/null || return 1
	done
	verify_copy "$X/a" "$X/b" "$D/b.orig" $((5 * MiB)) "${r[@]}"
}

case_readonly_fs() {
	pair "$B" $((4 * MiB))
	mount -o remount,ro "$B" || { WHY="cannot remount read-only"; return 1; }
	bcp copy "$B/a" "$B/b"
	local rc=$RC err
	err=$(cat "$T_ERR")
	mount -o remount,rw "$B"
	t_ok "copy to a read-only file system: expected exit 1, got $rc: $err" test "$rc" -eq 1 || return 1
	t_ok "no read-only message: $err" grep -q "read-only" <<<"$err" || return 1
	t_ok "read-only destination changed" cmp -s "$B/b" "$D/b.orig"
}

case_limits() {
	bcp_ok limits --json "$X/a" || return 1
	t_ok "limits of an XFS file: $(cat "$T_OUT")" jq -e '.[0].backend == "file" and .[0].copy_offload == 1 and .[0].max_copy_nr_ranges == 1 and (.[0].native_reason | test("xfs"))' "$T_OUT" >/dev/null
}

# Loop devices over XFS files: the copy is a reflink of the backing files, at
# the loop offsets, and buffered reads through the loop devices see it at once.
case_loops() { # DIO(on|off)
	local dio=$1 LA LB
	pair "$X" $((32 * MiB))
	loop_attach LA --direct-io="$dio" "$X/a" || return 1
	loop_attach LB --direct-io="$dio" --offset $MiB "$X/b" || return 1
	# Hold both open: the last close of a block device writes back and drops its page cache,
	# which would hide exactly what this case is about.
	local fa fb
	exec {fa}<>"$LA" {fb}<>"$LB"
	# Dirty the source's page cache: the copy must include what is not yet written back.
	rand_file "$D/fresh" $((2 * MiB))
	dd if="$D/fresh" of="$LA" bs=1M seek=4 conv=notrunc status=none
	# Fill the destination's page cache: it must not be served stale afterwards.
	cat "$LB" >/dev/null
	bcp_ok copy --json --range 4m:8m --range 16m:4m --dst-offset 2m "$LA" "$LB" || return 1
	t_ok "loop copy not reflinked: $(cat "$T_OUT")" test "$(method_bytes reflink)" -eq $((12 * MiB)) || return 1
	# Checked in the backing file, where the copy landed, apart from any cache of LB.
	t_ok "dirty source data missing from the copy" \
		cmp -s <(read_region "$X/b" $((3 * MiB)) $((2 * MiB))) "$D/fresh" || return 1
	t_ok "buffered read through the destination loop device is stale" \
		cmp -s <(read_region "$LB" $((2 * MiB)) $((12 * MiB))) \
		<(read_region "$LA" $((4 * MiB)) $((8 * MiB)); read_region "$LA" $((16 * MiB)) $((4 * MiB))) || return 1
	# In the backing file, the data sits at the loop offset; nothing else moved.
	verify_outside "$X/b" "$D/b.orig" $((3 * MiB)) $((12 * MiB)) || return 1
	t_ok "backing file extents not shared" \
		bash -c "filefrag -v '$X/b' | grep -q shared" || return 1
	exec {fa}<&- {fb}<&-
	loop_detach "$LA"
	loop_detach "$LB"
}

# A partitioned loop device over an XFS file: partition-relative copies land
# at the partition's offsets in the backing file, and nowhere else.
case_partitions() {
	local L p1 p2
	rand_file "$X/disk" $((64 * MiB))
	loop_attach L "$X/disk" || return 1
	printf 'label: dos\nstart=2048, size=40960\nstart=45056, size=40960\n' | sfdisk -q "$L" >/dev/null 2>&1 || { WHY="sfdisk failed"; return 1; }
	partx -a "$L" 2>/dev/null
	T_PARTED+=("$L")
	p1=${L}p1 p2=${L}p2
	wait_blockdev "$p1" && wait_blockdev "$p2" || { WHY="no partition nodes after partx -a"; return 1; }
	cp "$X/disk" "$D/disk.orig"
	bcp_ok copy --json --range 1m:4m --range 8m:1m --dst-offset 3m "$p1" "$p2" || return 1
	t_ok "partition copy not native: $(cat "$T_OUT")" jq -e '.native_bytes == .bytes' "$T_OUT" >/dev/null || return 1
	local s1=$((2048 * 512)) s2=$((45056 * 512))
	sync
	verify_copy "$X/disk" "$X/disk" "$D/disk.orig" $((s2 + 3 * MiB)) \
		$((s1 + MiB)):$((4 * MiB)) $((s1 + 8 * MiB)):$MiB || return 1
	# Overlap in disk terms: the whole disk's range that is partition 2's destination.
	bcp copy --range $((s2 + 3 * MiB)):1m --dst-offset 3m "$L" "$p2"
	t_ok "overlap between the whole disk and a partition not refused: $(bcp_what)" grep -q "overlaps" "$T_ERR" || return 1
	partx -d "$L" 2>/dev/null
	loop_detach "$L"
}

# A loop device and its own backing file are one medium.
case_loop_file_overlap() {
	local L
	rand_file "$X/self" $((8 * MiB))
	loop_attach L "$X/self" || return 1
	cp "$X/self" "$D/self.orig"
	bcp copy --range 0:2m --dst-offset 1m "$L" "$X/self"
	t_ok "loop over a file onto that file, overlapping, not refused: $(bcp_what)" grep -q "overlaps" "$T_ERR" || return 1
	t_ok "refused copy changed the file" cmp -s "$X/self" "$D/self.orig" || return 1
	bcp_ok copy --json --range 0:2m --dst-offset 4m "$L" "$X/self" || return 1
	verify_copy "$D/self.orig" "$X/self" "$D/self.orig" $((4 * MiB)) 0:$((2 * MiB)) || return 1
	loop_detach "$L"
}

t_case xfs-whole-file case_whole_file "$X"
t_case btrfs-whole-file case_whole_file "$B"
t_case xfs-unaligned case_unaligned "$X"
t_case btrfs-unaligned case_unaligned "$B"
t_case xfs-skewed case_skewed
t_case cross-filesystem case_cross_fs
t_case no-offload case_no_offload
t_case native-min case_native_min
t_case read-only-filesystem case_readonly_fs
t_case limits-xfs case_limits
t_case loops-dio-on case_loops on
t_case loops-dio-off case_loops off
t_case partitions-on-xfs case_partitions
t_case loop-and-its-file case_loop_file_overlap
t_finish
