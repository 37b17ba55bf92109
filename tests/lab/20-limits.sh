#!/bin/bash
# SPDX-License-Identifier: MIT
# "blkcopy limits" on every device of the lab: it succeeds, in text and in
# JSON; the logical block size and capacity match blockdev; the kind is the
# one the lab built (nvme, scsi, dm, block), partitions say so with their
# start; devices without any native copy (virtio, brd, dm devices over an
# error or crypt target) report all-zero native limits with a reason.  Other
# dm devices stack their leaves' limits (tests/lab/50-dm.sh looks closer).  NVMe and SCSI native limits are reported as
# INFO lines; when they are non-zero they must be consistent and, for NVMe,
# within what the namespace allows (MSSRL, MCL, MSRC).
. "$(dirname "${BASH_SOURCE[0]}")/lib.sh"

# The devices that have no native copy at all in this lab.
no_native() {
	case $1 in
	NOCOPY | BRD | BRD_IBLOCK | DM_ERROR | DM_CRYPT) return 0 ;;
	esac
	return 1
}

# ok WHY CMD...: run CMD (a test); if false, set WHY and return 1.
ok() {
	local why=$1
	shift
	"$@" && return 0
	WHY=$why
	return 1
}

is_uint() {
	[[ $1 =~ ^[0-9]+$ ]]
}

# load_limits JSON: the one entry of a "limits --json" answer into L_*
# variables, with a single jq (processes are slow under TCG).
load_limits() {
	local sh
	sh=$(jq -r 'length as $n | .[0] | @sh "L_N=\($n) L_DEVICE=\(.device) L_KIND=\(.kind) L_BACKEND=\(.backend)
		L_REASON=\(.native_reason) L_LBS=\(.logical_block_size) L_CAP=\(.capacity)
		L_RO=\(.read_only) L_PART=\(.partition) L_PSTART=\(.partition_start)
		L_OFFLOAD=\(.copy_offload) L_MAXS=\(.max_copy_sectors) L_NR=\(.max_copy_nr_ranges)
		L_RS=\(.max_copy_range_sectors)"' <"$1" 2>&1) || { WHY="not JSON: $(head -c 300 "$1")"; return 1; }
	eval "$sh"
}

# expect_geometry NAME DEV: lbs, capacity, kind, partition, read_only.
expect_geometry() {
	local name=$1 dev=$2 kind parent start=0 part=false ss sz
	kind=$(env_get "${name}_KIND")
	parent=$(env_get "${name}_PARENT")
	if [[ -n $parent ]]; then
		part=true
		start=$(env_get "${name}_OFFSET")
	fi
	{ read -r ss && read -r sz; } < <(blockdev --getss --getsize64 "$dev")
	ok "$L_N entries, not one for $dev" [ "$L_N" = 1 ] || return 1
	ok "device is '$L_DEVICE', not $dev" [ "$L_DEVICE" = "$dev" ] || return 1
	ok "logical_block_size $L_LBS is not blockdev --getss ($ss)" [ "$L_LBS" = "$ss" ] || return 1
	ok "capacity $L_CAP is not blockdev --getsize64 ($sz)" [ "$L_CAP" = "$sz" ] || return 1
	ok "kind is '$L_KIND', not $kind" [ "$L_KIND" = "$kind" ] || return 1
	ok "partition/partition_start is $L_PART/$L_PSTART, not $part/$start" \
		[ "$L_PART/$L_PSTART" = "$part/$start" ] || return 1
	# Devices the lab made read-only say so in NAME_READ_ONLY=1.
	local ro=false
	[[ $(env_get "${name}_READ_ONLY") == 1 ]] && ro=true
	ok "read_only is $L_RO, not $ro" [ "$L_RO" = "$ro" ] || return 1
}

# expect_native NAME: the native fields agree with each other and with what
# the lab knows about the device.
expect_native() {
	local name=$1 mssrl mcl msrc f
	for f in "$L_OFFLOAD" "$L_MAXS" "$L_NR" "$L_RS"; do
		ok "native limits are not numbers: $L_OFFLOAD $L_MAXS $L_NR $L_RS" is_uint "$f" || return 1
	done
	ok "copy_offload is $L_OFFLOAD, not 0 or 1" eval '((L_OFFLOAD == 0 || L_OFFLOAD == 1))' || return 1
	if ((L_MAXS == 0)); then
		ok "max_copy_sectors is 0 but copy_offload/max_copy_nr_ranges/max_copy_range_sectors are $L_OFFLOAD/$L_NR/$L_RS" \
			[ "$L_OFFLOAD/$L_NR/$L_RS" = 0/0/0 ] || return 1
	else
		ok "inconsistent native limits: nr_ranges $L_NR, range_sectors $L_RS, sectors $L_MAXS" \
			eval '((L_NR >= 1 && L_RS >= 1 && L_RS <= L_MAXS))' || return 1
	fi
	if no_native "$name"; then
		ok "a device without native copy reports limits $L_OFFLOAD/$L_MAXS/$L_NR/$L_RS" \
			[ "$L_OFFLOAD/$L_MAXS/$L_NR/$L_RS" = 0/0/0/0 ] || return 1
		ok "no native_reason" [ -n "$L_REASON" ] || return 1
	fi
	# An NVMe namespace's Copy limits bound whatever blkcopy reports.
	mssrl=$(env_get "${name}_MSSRL")
	if [[ $(env_get "${name}_KIND") == nvme && -n $mssrl && $L_MAXS != 0 ]]; then
		mcl=$(env_get "${name}_MCL") msrc=$(env_get "${name}_MSRC")
		ok "native limits $L_NR/$L_RS/$L_MAXS exceed the namespace's MSRC+1=$((msrc + 1)) MSSRL=$mssrl MCL=$mcl (in $L_LBS-byte blocks)" \
			eval '((L_RS <= mssrl * L_LBS / 512 && L_MAXS <= mcl * L_LBS / 512 && L_NR <= msrc + 1))' || return 1
	fi
	return 0
}

case_limits() {
	local name=$1 dev js kind
	dev=$(env_get "$name")
	kind=$(env_get "${name}_KIND")
	js=$T_DIR/$name.json
	bcp limits --json "$dev"
	[[ $RC -eq 0 ]] || { WHY="blkcopy limits --json $dev: $(bcp_what)"; return 1; }
	cp "$T_OUT" "$js"
	load_limits "$js" || return 1
	info "$name $dev: kind $L_KIND, backend $L_BACKEND, lbs $L_LBS, capacity $L_CAP," \
		"copy_offload $L_OFFLOAD, max_copy_sectors $L_MAXS, max_copy_nr_ranges $L_NR," \
		"max_copy_range_sectors $L_RS; $L_REASON"
	expect_geometry "$name" "$dev" || return 1
	expect_native "$name" || return 1
	bcp limits "$dev"
	[[ $RC -eq 0 ]] || { WHY="blkcopy limits $dev (text): $(bcp_what)"; return 1; }
	local first
	IFS= read -r first <"$T_OUT"
	ok "text output does not start with '$dev: $kind,': $first" [ "${first#"$dev: $kind,"}" != "$first" ]
}

# Every device in one call: one entry each, in order.
case_all_at_once() {
	local devs=() n
	while read -r n; do
		[[ -n $n ]] && devs+=("$(env_get "$n")")
	done < <(lab_devices)
	[[ ${#devs[@]} -gt 0 ]] || { WHY="no devices in LAB_DEVICES"; return 77; }
	bcp limits --json "${devs[@]}"
	[[ $RC -eq 0 ]] || { WHY="blkcopy limits --json (${#devs[@]} devices): $(bcp_what)"; return 1; }
	local got want
	got=$(jq -r '.[].device' <"$T_OUT" | tr '\n' ' ')
	want=$(printf '%s ' "${devs[@]}")
	ok "devices in the answer are '$got', not '$want'" [ "$got" = "$want" ]
}

for name in $(lab_devices); do
	n=${name,,}
	run_case "limits-${n//_/-}" case_limits "$name"
done
run_case limits-all-devices-at-once case_all_at_once

# The NVMe passthrough nodes are not block devices; whatever blkcopy says
# about them is only logged for now.
for name in NVME_SMALL_NG NVME_DEFAULT_NG; do
	dev=$(env_get "$name")
	[[ -n $dev ]] || continue
	bcp limits --json "$dev"
	info "limits $name ($dev): rc $RC $(tr -d '\n' <"$T_OUT" | head -c 300) $(head -c 200 "$T_ERR" | tr '\n' ' ')"
done

finish
