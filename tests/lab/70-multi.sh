#!/bin/bash
# SPDX-License-Identifier: MIT
# One job, several destinations, on the lab's real devices: NVMe Copy within
# the source namespace and emulation to a SCSI LUN and a RAM disk in one job
# (those two from one read of the source, counted by the namespace's block
# statistics); a destination whose writes fail (dm "error") stopping alone;
# --verify on every destination, one of them corrupted by dm-flakey;
# --no-emulation refusing a destination without a native path, nothing
# written anywhere.
. "$(dirname "${BASH_SOURCE[0]}")/lib.sh"

# sectors_read DEV: 512-byte sectors read from a block device (its disk for a partition).
sectors_read() {
	awk '{ print $3 }' "/sys/class/block/$(basename "$(readlink -f "$1")")/stat"
}

# multi_setup SRC SRCOFF LEN DST:OFF...: random bytes in the source region,
# the destination spans and their guards filled; the expected bytes in
# $T_DIR/expected, each destination's guards in GUARDS[].
multi_setup() {
	local src=$1 srcoff=$2 len=$3 d
	shift 3
	GUARDS=()
	for d in "$@"; do
		fill_random "${d%:*}" $((${d##*:} - GUARD)) $((len + 2 * GUARD)) || return 1
		GUARDS+=("$(guard_sums "${d%:*}" "${d##*:}" "$len")")
	done
	fill_random "$src" "$srcoff" "$len" || return 1
	read_region "$src" "$srcoff" "$len" >"$T_DIR/expected"
}

# multi_check LEN DST:OFF...: each destination holds the expected bytes at
# its offset and its guards are unchanged.
multi_check() {
	local len=$1 d i=0
	shift
	drop_caches "${@%:*}"
	for d in "$@"; do
		read_region "${d%:*}" "${d##*:}" "$len" >"$T_DIR/got"
		cmp -s "$T_DIR/expected" "$T_DIR/got" ||
			{ WHY="destination $((i + 1)) (${d%:*} at ${d##*:}) does not hold the copy"; return 1; }
		[[ $(guard_sums "${d%:*}" "${d##*:}" "$len") == "${GUARDS[i]}" ]] ||
			{ WHY="bytes around destination $((i + 1)) (${d%:*}) changed"; return 1; }
		i=$((i + 1))
	done
}

case_nvme_native_scsi_emulated() {
	need NVME_DEFAULT LUN_RDMCP BRD || return 77
	local len=$((8 * MiB)) before after read
	local dsts=("$NVME_DEFAULT:$((32 * MiB))" "$LUN_RDMCP:$MiB" "$BRD:$((2 * MiB))")
	multi_setup "$NVME_DEFAULT" $((4 * MiB)) "$len" "${dsts[@]}" || { WHY="setup failed"; return 1; }
	before=$(sectors_read "$NVME_DEFAULT")
	bcp copy --json --no-progress --range $((4 * MiB)):$len "$NVME_DEFAULT" "${dsts[@]%:*}" \
		-d $((32 * MiB)) -d "$MiB" -d $((2 * MiB))
	after=$(sectors_read "$NVME_DEFAULT")
	read=$(((after - before) * 512))
	[[ $RC -eq 0 ]] || { WHY="copy: $(bcp_what)"; return 1; }
	info "$T_NAME: $(jq -c '[.destinations[] | {path, method, bytes}]' <"$T_OUT"), source read $read bytes"
	json_check "$T_OUT" '[.destinations[].method] == ["nvme_copy", "emulate", "emulate"] and .error == null' \
		"expected NVMe Copy to the namespace, emulation to the LUN and the RAM disk" || return 1
	json_check "$T_OUT" ".bytes == $((3 * len)) and .destinations[0].native_bytes == $len" \
		"not every byte to every destination" || return 1
	# NVMe Copy reads nothing through the block layer; the LUN and the RAM disk share each read.
	((read >= len && read < len + len / 2)) ||
		{ WHY="the source was read $read bytes for one emulated $len-byte copy to two destinations"; return 1; }
	multi_check "$len" "${dsts[@]}"
}

# dm "error" fails every write: that destination stops, the others land.
case_one_destination_fails() {
	need NVME_DEFAULT LUN_RDMCP DM_ERROR || return 77
	local len=$((512 * 1024))
	local dsts=("$NVME_DEFAULT:$((48 * MiB))" "$LUN_RDMCP:$((4 * MiB))")
	multi_setup "$NVME_DEFAULT" $((20 * MiB)) "$len" "${dsts[@]}" || { WHY="setup failed"; return 1; }
	bcp copy --json --no-progress --range $((20 * MiB)):$len "$NVME_DEFAULT" "$NVME_DEFAULT" \
		"$DM_ERROR" "$LUN_RDMCP" -d $((48 * MiB)) -d 0 -d $((4 * MiB))
	info "$T_NAME: $(jq -c '[.destinations[] | {method, committed, error}]' <"$T_OUT")"
	[[ $RC -eq 1 ]] || { WHY="a failed destination exited $RC: $(bcp_what)"; return 1; }
	json_check "$T_OUT" ".destinations[1].error != null and .destinations[1].committed == 0 and
		.destinations[0].error == null and .destinations[2].error == null and
		.destinations[2].committed == $len" "the error target should fail alone" || return 1
	multi_check "$len" "${dsts[@]}"
}

# --verify reads every destination back; the corrupted one names its first bad byte.
case_verify_one_corrupted() {
	need BRD LUN_RDMCP || return 77
	local n=777 dm=lab-flakey-multi off=$((3 * MiB)) len=$((2 * MiB))
	dmsetup create "$dm" --table "0 $((32 * MiB / 512)) flakey $BRD 0 0 1 5 corrupt_bio_byte $n w 0 0" ||
		{ WHY="dmsetup create $dm (dm-flakey) failed"; return 1; }
	dd if=/dev/urandom of="$T_DIR/src.img" bs=1M count=4 status=none
	bcp copy --json --no-progress --verify --range 1m:$len "$T_DIR/src.img" "$LUN_RDMCP" \
		"/dev/mapper/$dm" -d "$off"
	dmsetup remove --retry "$dm"
	info "$T_NAME: $(jq -c '[.destinations[] | {path, verified, verified_bytes, mismatch_offset}]' <"$T_OUT")"
	[[ $RC -eq 1 ]] || { WHY="a corrupted destination exited $RC"; return 1; }
	json_check "$T_OUT" ".destinations[0].verified == true and .destinations[0].verified_bytes == $len and
		.destinations[1].verified == false and .destinations[1].mismatch_offset == $((off + n - 1))" \
		"expected the LUN verified and the flakey device to differ at byte $((off + n - 1))" || return 1
	grep -q "differs from the source at byte $((off + n - 1)) of /dev/mapper/$dm" "$T_ERR" ||
		{ WHY="the message does not name the byte: $(bcp_what)"; return 1; }
}

# --no-emulation: a destination without a native path refuses the whole job first.
case_no_emulation_refused() {
	need NVME_DEFAULT LUN_RDMCP || return 77
	local len=$MiB sums
	local dsts=("$NVME_DEFAULT:$((64 * MiB))" "$LUN_RDMCP:$((8 * MiB))")
	multi_setup "$NVME_DEFAULT" $((10 * MiB)) "$len" "${dsts[@]}" || { WHY="setup failed"; return 1; }
	sums="$(md5_region "$NVME_DEFAULT" $((64 * MiB)) "$len") $(md5_region "$LUN_RDMCP" $((8 * MiB)) "$len")"
	bcp copy --no-progress --no-emulation --range $((10 * MiB)):$len "$NVME_DEFAULT" "${dsts[@]%:*}" \
		-d $((64 * MiB)) -d $((8 * MiB))
	[[ $RC -eq 1 ]] && grep -q "destination 2" "$T_ERR" ||
		{ WHY="expected a refusal naming destination 2: $(bcp_what)"; return 1; }
	[[ "$(md5_region "$NVME_DEFAULT" $((64 * MiB)) "$len") $(md5_region "$LUN_RDMCP" $((8 * MiB)) "$len")" == "$sums" ]] ||
		{ WHY="a refused job wrote"; return 1; }
}

run_case multi-nvme-native-scsi-emulated case_nvme_native_scsi_emulated
run_case multi-one-destination-fails case_one_destination_fails
run_case multi-verify-one-corrupted case_verify_one_corrupted
run_case multi-no-emulation-refused case_no_emulation_refused
finish
