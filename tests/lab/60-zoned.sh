#!/bin/bash
# SPDX-License-Identifier: MIT
# Zoned destinations: QEMU ZNS namespaces (capacity = size, and less), a
# dm-linear table over one, and null_blk host-managed with conventional
# zones.  Zone discovery in `limits`, refusals before any write (not at the
# write pointer, past the capacity), native GC copies into zones (NVMe
# Copy at the write pointer, across zone boundaries, from sources that
# cross zones), emulated copies written in order, the write pointer after a
# failure and after a kill, and a regular write after native copies (the
# kernel's cached write pointers, Linux 6.10+).
. "$(dirname "${BASH_SOURCE[0]}")/lib.sh"

# zone_wp DEV OFF: where the zone holding OFF is written up to (a full zone: its capacity's end).
zone_wp() {
	zone_at "$1" "$2" || return 1
	if [[ $ZN_COND == fu ]]; then
		echo $((ZN_START + ZN_CAP))
	else
		echo "$ZN_WP"
	fi
}
zreset() { zones_reset "$@"; }
# zfill DEV OFF LEN: fresh random bytes at OFF, which must be its zone's write pointer.
zfill() {
	dd if=/dev/urandom of="$1" bs=1M iflag=count_bytes,fullblock count="$3" \
		oflag=direct,seek_bytes seek="$2" status=none
}
# wp_is DEV OFF WANT WHAT
wp_is() {
	local wp
	wp=$(zone_wp "$1" "$2") || { WHY="$4: no zone report for $1 at $2"; return 1; }
	[[ $wp -eq $3 ]] || { WHY="$4: write pointer of the zone at $2 is $wp, not $3"; return 1; }
}

# zcopy SRC DST DSTOFF [--opt OPTION]... OFF:LEN...: copy with --json, then
# check the destination holds the ranges in order and, on a zoned
# destination, that its write pointer is at DSTOFF + total.
zcopy() {
	local src=$1 dst=$2 dstoff total=0 opts=() args=() i
	local -a CV_OFFS=() CV_LENS=()
	size_var dstoff "$3"
	shift 3
	while [[ ${1:-} == --opt ]]; do opts+=("$2"); shift 2; done
	parse_ranges "$@"
	read_ranges "$src" >"$T_DIR/expected" || { WHY="reading $src failed"; return 1; }
	args=(copy --json --no-progress "${opts[@]}" --dst-offset "$dstoff")
	for i in "${!CV_OFFS[@]}"; do args+=(--range "${CV_OFFS[i]}:${CV_LENS[i]}"); done
	bcp "${args[@]}" "$src" "$dst"
	[[ $RC -eq 0 ]] || { WHY="blkcopy ${args[*]:0:10}... $src $dst: $(bcp_what)"; return 1; }
	read_region "$dst" "$dstoff" "$total" >"$T_DIR/got" || { WHY="reading $dst failed"; return 1; }
	same_as_expected "$T_DIR/got" "$dst at $dstoff" || return 1
	json_check "$T_OUT" ".total == $total and .committed == $total" "not every byte reported" || return 1
	ZC_TOTAL=$total
}

# wp_after DST DSTOFF: the copy's dst_write_pointer is DSTOFF + the copy's total, and so is the zone's.
wp_after() {
	local want=$(($2 + ZC_TOTAL)) last=$(($2 + ZC_TOTAL - 1))
	json_check "$T_OUT" ".dst_write_pointer == $want" "dst_write_pointer is not $want" || return 1
	wp_is "$1" "$last" "$want" "after the copy"
}

native_only() {
	json_check "$T_OUT" '.native_bytes == .total and .emulated_bytes == 0 and .method == "nvme_copy"' \
		"expected every byte through NVMe Copy"
}
emulated_only() {
	json_check "$T_OUT" '.emulated_bytes == .total and .native_bytes == 0' "expected every byte emulated"
}

# refused DEV DSTOFF TEXT OFF:LEN...: blkcopy refuses, naming TEXT, and the zone's write pointer does not move.
refused() {
	local dst=$1 dstoff=$2 text=$3 before args=(copy --no-progress --dst-offset "$2")
	shift 3
	for r in "$@"; do args+=(--range "$r"); done
	before=$(zone_wp "$dst" "$dstoff") || { WHY="no zone report"; return 1; }
	bcp "${args[@]}" "$ZREF_SRC" "$dst"
	[[ $RC -ne 0 ]] || { WHY="blkcopy accepted it"; return 1; }
	grep -q "$text" "$T_ERR" || { WHY="no '$text' in: $(bcp_what)"; return 1; }
	wp_is "$dst" "$dstoff" "$before" "refused copy moved it"
}

# ---------------------------------------------------------------------------

case_limits_zns() {
	need ZNS || return 77
	bcp limits --json "$ZNS"
	[[ $RC -eq 0 ]] || { WHY="$(bcp_what)"; return 1; }
	info "limits $ZNS: $(jq -c '.[0] | {zoned, zone_size, zone_capacity, nr_zones, max_open_zones, max_active_zones, backend, copy_offload}' <"$T_OUT")"
	json_check "$T_OUT" '.[0].zoned == "host-managed" and .[0].zone_size == 4194304 and
		.[0].zone_capacity == 4194304 and .[0].nr_zones == 16 and .[0].backend == "nvme" and
		.[0].copy_offload == 1' "not a 16-zone ZNS namespace with native copy"
}

case_limits_zns_capacity() {
	need ZNS_CAP || return 77
	bcp limits --json "$ZNS_CAP"
	json_check "$T_OUT" '.[0].zone_size == 4194304 and .[0].zone_capacity == 3145728' \
		"zone capacity is not 3 MiB" || return 1
	bcp limits "$ZNS_CAP"
	grep -q 'zone_capacity  *3.00 MiB (less than the zone size' "$T_OUT" ||
		{ WHY="text output: $(grep zone "$T_OUT" | tr '\n' ' ')"; return 1; }
}

case_limits_nullb() {
	need NULLB_ZONED || return 77
	bcp limits --json "$NULLB_ZONED"
	info "limits $NULLB_ZONED: $(jq -c '.[0] | {zoned, zone_size, zone_capacity, nr_zones, conventional_zones, backend}' <"$T_OUT")"
	json_check "$T_OUT" '.[0].zoned == "host-managed" and .[0].conventional_zones == 2 and
		.[0].zone_size == 4194304' "not host-managed with 2 conventional zones"
}

# GC: scattered 4 KiB blocks of two source zones into an empty zone, at its write pointer.
case_native_gc() {
	need ZNS || return 77
	local r=() i
	zreset "$ZNS" 0 "$((64 * MiB))" && zfill "$ZNS" 0 $((8 * MiB)) || { WHY="setting up zones failed"; return 1; }
	# (Each range costs the check one dd under TCG; bench-zoned.sh copies 16,384.)
	for ((i = 0; i < 120; i++)); do r+=("$(((i * 769 % 2048) * 4096)):4k"); done
	zcopy "$ZNS" "$ZNS" 16m "${r[@]}" && native_only && wp_after "$ZNS" $((16 * MiB))
}

# Into a zone written part way, on across its end into the next, empty zone.
case_native_across_zones() {
	need ZNS || return 77
	zreset "$ZNS" $((20 * MiB)) $((8 * MiB)) && zfill "$ZNS" $((20 * MiB)) "$MiB" || { WHY="setup failed"; return 1; }
	zcopy "$ZNS" "$ZNS" 21m 0:5m && native_only && wp_after "$ZNS" $((21 * MiB))
}

# Source ranges across a zone boundary: a device refuses reads across zones, so blkcopy cuts them.
case_native_source_across_zones() {
	need ZNS || return 77
	zreset "$ZNS" $((28 * MiB)) $((4 * MiB))
	zcopy "$ZNS" "$ZNS" 28m 3m+512k:1m 7m+768k:256k 1m:4k && native_only && wp_after "$ZNS" $((28 * MiB))
}

case_not_at_write_pointer() {
	need ZNS || return 77
	zreset "$ZNS" $((32 * MiB)) $((4 * MiB)) && zfill "$ZNS" $((32 * MiB)) "$MiB" || { WHY="setup failed"; return 1; }
	ZREF_SRC=$ZNS refused "$ZNS" $((33 * MiB + 4096)) "is not at the write pointer of its zone (33 MiB)" 0:64k ||
		return 1
	# A full zone has no write pointer to start at.
	zreset "$ZNS" $((36 * MiB)) $((4 * MiB)) && zfill "$ZNS" $((36 * MiB)) $((4 * MiB))
	ZREF_SRC=$ZNS refused "$ZNS" $((36 * MiB)) "full zone" 0:64k
}

case_past_capacity() {
	need ZNS_CAP || return 77
	zreset "$ZNS_CAP" 0 $((64 * MiB)) && zfill "$ZNS_CAP" 0 $((3 * MiB)) || { WHY="setup failed"; return 1; }
	# 3 MiB + 4 KiB into a zone of 3 MiB capacity, and on into the next zone.
	ZREF_SRC=$ZNS_CAP refused "$ZNS_CAP" $((4 * MiB)) "past the capacity of the zone at 4 MiB" 0:$((3 * MiB + 4096)) ||
		return 1
	ZREF_SRC=$ZNS_CAP refused "$ZNS_CAP" $((6 * MiB)) "not at the write pointer" 0:1m
}

# Exactly the capacity: the zone ends full.
case_capacity_fill() {
	need ZNS_CAP || return 77
	zreset "$ZNS_CAP" $((8 * MiB)) $((4 * MiB))
	zcopy "$ZNS_CAP" "$ZNS_CAP" 8m 0:3m && native_only || return 1
	zone_at "$ZNS_CAP" 8m && [[ $ZN_COND == fu ]] || { WHY="zone at 8 MiB is not full (${ZN_COND:-?})"; return 1; }
	json_check "$T_OUT" ".dst_write_pointer == $((11 * MiB))" "dst_write_pointer is not the capacity's end"
}

# Emulated, large, at the default queue depth: writes must reach each zone in order.
case_emulated_large() {
	need ZNS NVME_DEFAULT || return 77
	zreset "$ZNS" $((40 * MiB)) $((16 * MiB))
	fill_random "$NVME_DEFAULT" 0 16m
	zcopy "$NVME_DEFAULT" "$ZNS" 40m 0:16m && emulated_only && wp_after "$ZNS" $((40 * MiB))
}

case_emulated_scattered() {
	need ZNS NVME_DEFAULT || return 77
	local r=() i
	zreset "$ZNS" $((56 * MiB)) $((8 * MiB))
	fill_random "$NVME_DEFAULT" 16m 32m
	for ((i = 0; i < 160; i++)); do r+=("$((16 * MiB + (i * 2731 % 8192) * 4096)):4k"); done
	zcopy "$NVME_DEFAULT" "$ZNS" 56m "${r[@]}" && emulated_only && wp_after "$ZNS" $((56 * MiB))
}

# Forced emulation between zones of one namespace.
case_emulated_no_offload() {
	need ZNS || return 77
	zreset "$ZNS" $((16 * MiB)) $((4 * MiB))
	zcopy "$ZNS" "$ZNS" 16m --opt --no-offload 0:2m 4m:1m+512k && emulated_only &&
		wp_after "$ZNS" $((16 * MiB))
}

# A read error 3 MiB into a 4 MiB zone: the copy fails, and the zone's write
# pointer is exactly dst + committed (emulation wrote nothing after the hole).
case_error_committed() {
	need ZNS NVME_DEFAULT || return 77
	local committed
	DM_DISABLE_UDEV=1 dmsetup remove lab-zerr 2>/dev/null
	printf '0 6144 linear %s 0\n6144 64 error\n6208 10240 linear %s 6208\n' \
		"$NVME_DEFAULT" "$NVME_DEFAULT" | DM_DISABLE_UDEV=1 dmsetup create lab-zerr ||
		{ WHY="dmsetup failed"; return 1; }
	zreset "$ZNS" $((48 * MiB)) $((8 * MiB))
	bcp copy --json --no-progress --dst-offset $((48 * MiB)) --range 0:8m /dev/mapper/lab-zerr "$ZNS"
	# io_uring lets go of its registered files after blkcopy has exited:
	# the dm device may be open a moment longer.
	DM_DISABLE_UDEV=1 dmsetup remove --retry lab-zerr || { WHY="lab-zerr stays: it would hold $NVME_DEFAULT"; return 1; }
	[[ $RC -ne 0 ]] || { WHY="the copy over an error target succeeded"; return 1; }
	committed=$(jq -r .committed <"$T_OUT")
	[[ $committed =~ ^[0-9]+$ && $committed -le $((3 * MiB)) ]] ||
		{ WHY="committed '$committed' is past the error at 3 MiB ($(bcp_what); $(head -c 300 "$T_OUT"))"; return 1; }
	wp_is "$ZNS" $((48 * MiB)) $((48 * MiB + committed)) "after the failed copy" || return 1
	json_check "$T_OUT" ".dst_write_pointer == $((48 * MiB + committed))" "dst_write_pointer"
	info "failed at 3 MiB: committed $committed, write pointer at dst + committed"
}

# SIGKILL half way: every zone holds a prefix of its part of the copy (never
# out of order).  Small chunks at a low queue depth make the copy slow
# enough to be caught: the kill lands once the first zone has data.
case_kill_prefix() {
	need ZNS_BENCH NVME_DEFAULT || return 77
	local pid z wp zs=$((32 * MiB)) total=$((128 * MiB)) written=0 tries
	fill_random "$NVME_DEFAULT" 0 128m
	zreset "$ZNS_BENCH" 0 $((128 * MiB))
	"$BLKCOPY" copy --no-progress --no-offload --chunk-size 64k --queue-depth 2 \
		--range 0:$total "$NVME_DEFAULT" "$ZNS_BENCH" >/dev/null 2>&1 &
	pid=$!
	for ((tries = 0; tries < 300; tries++)); do
		wp=$(zone_wp "$ZNS_BENCH" 0) || break
		((wp > 0)) && break
		sleep 0.05
	done
	kill -9 "$pid" 2>/dev/null
	wait "$pid" 2>/dev/null
	for ((z = 0; z < total; z += zs)); do
		wp=$(zone_wp "$ZNS_BENCH" "$z") || { WHY="no zone report"; return 1; }
		((wp > z)) || continue
		written=$((written + wp - z))
		cmp -s <(read_region "$NVME_DEFAULT" "$z" $((wp - z))) \
			<(read_region "$ZNS_BENCH" "$z" $((wp - z))) ||
			{ WHY="zone at $z: its first $((wp - z)) bytes are not the source's"; return 1; }
	done
	info "killed after $written of $total bytes written; every zone holds a prefix of its part"
	((written > 0 && written < total)) || { WHY="the kill did not land mid-copy ($written of $total)"; return 1; }
}

# dm-linear over a ZNS namespace: the rules apply on the leaf, the copy goes native.
case_dm_linear_zoned() {
	need DM_ZONED ZNS_DM || return 77
	zreset "$ZNS_DM" $((16 * MiB)) $((32 * MiB))
	zfill "$DM_ZONED" 0 "$MiB" || { WHY="writing through $DM_ZONED failed"; return 1; }
	zcopy "$DM_ZONED" "$DM_ZONED" 1m 0:512k 256k:64k && native_only || return 1
	wp_is "$ZNS_DM" $((16 * MiB)) $((16 * MiB + MiB + 576 * 1024)) "on the leaf" || return 1
	ZREF_SRC=$DM_ZONED refused "$DM_ZONED" $((8 * MiB + 4096)) "not at the write pointer" 0:4k
}

# null_blk: conventional zones take writes anywhere, sequential ones at the write pointer only.
case_nullb_zoned() {
	need NULLB_ZONED NVME_DEFAULT || return 77
	local lbs
	lbs=$(blockdev --getss "$NULLB_ZONED")
	fill_random "$NVME_DEFAULT" 0 8m
	zcopy "$NVME_DEFAULT" "$NULLB_ZONED" 1m+256k 0:512k 1m:64k && emulated_only || return 1
	json_check "$T_OUT" '.dst_write_pointer == null' "a conventional zone has no write pointer" || return 1
	zreset "$NULLB_ZONED" $((8 * MiB)) $((8 * MiB))
	zcopy "$NVME_DEFAULT" "$NULLB_ZONED" 8m 0:6m && wp_after "$NULLB_ZONED" $((8 * MiB)) || return 1
	ZREF_SRC=$NVME_DEFAULT refused "$NULLB_ZONED" $((16 * MiB + lbs)) "not at the write pointer" 0:4k
}

case_nullb_capacity() {
	need NULLB_ZONED_CAP NVME_DEFAULT || return 77
	zreset "$NULLB_ZONED_CAP" $((8 * MiB)) $((4 * MiB))
	ZREF_SRC=$NVME_DEFAULT refused "$NULLB_ZONED_CAP" $((8 * MiB)) "past the capacity" 0:$((3 * MiB + 4096)) || return 1
	zcopy "$NVME_DEFAULT" "$NULLB_ZONED_CAP" 8m 0:3m
}

# After native copies into a zone that regular writes had started, a regular
# O_DIRECT write at the new write pointer succeeds (Linux 6.10+ caches zones'
# write pointers; blkcopy makes the kernel read them again).
case_regular_write_after_native() {
	need ZNS || return 77
	zreset "$ZNS" $((60 * MiB)) $((4 * MiB))
	zfill "$ZNS" $((60 * MiB)) "$MiB" || { WHY="first regular write failed"; return 1; }
	zcopy "$ZNS" "$ZNS" 61m 0:1m && native_only || return 1
	zfill "$ZNS" $((62 * MiB)) 64k ||
		{ WHY="regular write at the write pointer (62 MiB) after native copies failed ($(uname -r))"; return 1; }
	wp_is "$ZNS" $((62 * MiB)) $((62 * MiB + 65536)) "after the regular write"
}

# zcase NAME FUNCTION: run_case, and how long the case took (TCG makes zones slow to fill).
zcase() {
	local t=$SECONDS
	run_case "$@"
	info "$1 took $((SECONDS - t)) s"
}

zcase limits-zns case_limits_zns
zcase limits-zns-capacity case_limits_zns_capacity
zcase limits-nullb-zoned case_limits_nullb
zcase zoned-native-gc case_native_gc
zcase zoned-native-across-zones case_native_across_zones
zcase zoned-native-source-across-zones case_native_source_across_zones
zcase zoned-not-at-write-pointer case_not_at_write_pointer
zcase zoned-past-capacity case_past_capacity
zcase zoned-capacity-fill case_capacity_fill
zcase zoned-emulated-large case_emulated_large
zcase zoned-emulated-scattered case_emulated_scattered
zcase zoned-emulated-no-offload case_emulated_no_offload
zcase zoned-error-committed case_error_committed
zcase zoned-kill-prefix case_kill_prefix
zcase zoned-dm-linear case_dm_linear_zoned
zcase zoned-nullb case_nullb_zoned
zcase zoned-nullb-capacity case_nullb_capacity
zcase zoned-regular-write-after-native case_regular_write_after_native
finish
