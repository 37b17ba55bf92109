#!/bin/bash
# SPDX-License-Identifier: MIT
# Copies on device-mapper stacks (issue 7): blkcopy resolves linear and
# striped targets (recursively, over partitions and other dm devices) to
# their leaves, cuts a copy at target and stripe boundaries and sends each
# piece native when its source and destination leaves can copy together
# (one NVMe namespace: NVMe Copy; LUNs of one LIO target with one block size:
# EXTENDED COPY), emulating the rest through the dm nodes (other namespaces,
# NVMe <-> SCSI, zero/error/crypt targets).  Checked through the leaves; plus
# "limits" with the mapping, read-only, suspended and error devices, forced
# emulation, --no-emulation, and a table swapped in the middle of a copy.
# The devices and their regions: lab/guest/setup.sh.
. "$(dirname "${BASH_SOURCE[0]}")/lib.sh"


dms() {
	DM_DISABLE_UDEV=1 dmsetup "$@"
}

# --- what the last copy (blkcopy copy --json) did ----------------------------
# Parsed in bash: one jq start costs about 0.4 s under TCG.

# load_result: the JSON line in $T_OUT into R_BYTES R_NATIVE R_EMULATED
# R_COMMITTED R_TOTAL R_METHOD R_ERROR ("" for null) and R_METHODS[name].
declare -A R_METHODS=()
load_result() {
	local m re
	R_BYTES="" R_NATIVE="" R_EMULATED="" R_COMMITTED="" R_TOTAL="" R_METHOD="" R_ERROR=""
	R_METHODS=()
	R_LINE=""
	IFS= read -r R_LINE <"$T_OUT"
	re='"bytes":([0-9]+)' && [[ $R_LINE =~ $re ]] && R_BYTES=${BASH_REMATCH[1]}
	re='"native_bytes":([0-9]+)' && [[ $R_LINE =~ $re ]] && R_NATIVE=${BASH_REMATCH[1]}
	re='"emulated_bytes":([0-9]+)' && [[ $R_LINE =~ $re ]] && R_EMULATED=${BASH_REMATCH[1]}
	re='"committed":([0-9]+)' && [[ $R_LINE =~ $re ]] && R_COMMITTED=${BASH_REMATCH[1]}
	re='"total":([0-9]+)' && [[ $R_LINE =~ $re ]] && R_TOTAL=${BASH_REMATCH[1]}
	re='"method":"([a-z_]*)"' && [[ $R_LINE =~ $re ]] && R_METHOD=${BASH_REMATCH[1]}
	re='"error":"([^"]*)"' && [[ $R_LINE =~ $re ]] && R_ERROR=${BASH_REMATCH[1]}
	re='"methods":\{([^}]*)\}'
	if [[ $R_LINE =~ $re ]]; then
		m=${BASH_REMATCH[1]}
		re='"([a-z_]+)":([0-9]+)'
		while [[ $m =~ $re ]]; do
			R_METHODS[${BASH_REMATCH[1]}]=${BASH_REMATCH[2]}
			m=${m#*"${BASH_REMATCH[0]}"}
		done
	fi
	if [[ -z $R_BYTES || -z $R_NATIVE || -z $R_EMULATED || -z $R_TOTAL || -z $R_METHOD ]]; then
		WHY="no blkcopy JSON result: '$(head -c 300 "$T_OUT" | tr '\n' ' ')' $(bcp_what)"
		return 1
	fi
}

# expect COND WHY: COND (a shell test on the R_* values) holds, else WHY with the JSON.
expect() {
	eval "$1" && return 0
	WHY="$2 ($R_LINE)"
	return 1
}

method_bytes() {
	echo "${R_METHODS[$1]:-0}"
}

nvme_only() {
	load_result && expect '((R_NATIVE == R_TOTAL && R_EMULATED == 0)) && [[ $R_METHOD == nvme_copy ]]' \
		"expected every byte through NVMe Copy"
}

xcopy_only() {
	load_result && expect '((R_NATIVE == R_TOTAL && R_EMULATED == 0)) && [[ $R_METHOD == scsi_xcopy ]]' \
		"expected every byte through EXTENDED COPY"
}

emulated_only() {
	load_result && expect '((R_NATIVE == 0 && R_EMULATED == R_TOTAL)) && [[ $R_METHOD == emulate ]]' \
		"expected every byte emulated"
}

# nvme_and_emulated: part NVMe Copy, part emulation, nothing else.
nvme_and_emulated() {
	load_result && expect '((${R_METHODS[nvme_copy]:-0} > 0 && ${R_METHODS[emulate]:-0} > 0 &&
		${R_METHODS[nvme_copy]:-0} + ${R_METHODS[emulate]:-0} == R_TOTAL)) && [[ $R_METHOD == mixed ]]' \
		"expected some bytes through NVMe Copy and some emulated"
}

# nvme_and_xcopy: NVMe Copy and EXTENDED COPY, nothing emulated.
nvme_and_xcopy() {
	load_result && expect '((${R_METHODS[nvme_copy]:-0} > 0 && ${R_METHODS[scsi_xcopy]:-0} > 0 &&
		${R_METHODS[emulate]:-0} == 0 && R_NATIVE == R_TOTAL))' \
		"expected NVMe Copy and EXTENDED COPY, nothing emulated"
}

# --- reading through the leaves ----------------------------------------------

# striped_read NAME OFF LEN: LEN bytes at OFF of the striped dm device NAME
# (an env name with NAME_CHUNK, NAME_STRIPES (default 2), NAME_DEVi and
# NAME_DEVi_OFFSET), read from its legs: each leg's span once, cut into
# chunks, put back in stripe order (a few processes, not one per chunk).
striped_read() {
	local name=$1 off=$2 len=$3 chunk stripes c0 c1 j k i0 i1 dev doff skip
	local -a i0s=() parts=()
	chunk=$(env_get "${name}_CHUNK")
	stripes=$(env_get "${name}_STRIPES")
	stripes=${stripes:-2}
	c0=$((off / chunk)) c1=$(((off + len - 1) / chunk))
	rm -rf "$T_DIR/stripes" && mkdir -p "$T_DIR/stripes" || return 1
	for ((j = 0; j < stripes; j++)); do
		k=$((c0 + (j - c0 % stripes + stripes) % stripes))	# first chunk of leg j
		((k <= c1)) || continue
		i0=$((k / stripes))
		i1=$(((c1 - (c1 % stripes - j + stripes) % stripes) / stripes))
		i0s[j]=$i0
		dev=$(env_get "${name}_DEV$j")
		doff=$(env_get "${name}_DEV${j}_OFFSET")
		read_region "$dev" $((doff + i0 * chunk)) $(((i1 - i0 + 1) * chunk)) >"$T_DIR/stripes/leg$j" || return 1
		split -a 6 -d -b "$chunk" "$T_DIR/stripes/leg$j" "$T_DIR/stripes/$j." || return 1
	done
	for ((k = c0; k <= c1; k++)); do
		j=$((k % stripes))
		printf -v i '%06d' $((k / stripes - i0s[j]))
		parts+=("$T_DIR/stripes/$j.$i")
	done
	skip=$((off - c0 * chunk))
	cat "${parts[@]}" | tail -c +$((skip + 1)) | head -c "$len"
}

# span_read OFF LEN: LEN bytes at OFF of DM_SPAN, from its two namespaces.
span_read() {
	local off=$1 len=$2 n
	if ((off < DM_SPAN_DEV0_SIZE)); then
		n=$((DM_SPAN_DEV0_SIZE - off))
		((n > len)) && n=$len
		read_region "$DM_SPAN_DEV0" $((DM_SPAN_DEV0_OFFSET + off)) "$n" || return 1
		off=$((off + n)) len=$((len - n))
	fi
	((len > 0)) || return 0
	read_region "$DM_SPAN_DEV1" $((DM_SPAN_DEV1_OFFSET + off - DM_SPAN_DEV0_SIZE)) "$len"
}

# leaf_read NAME OFF LEN: bytes OFF..OFF+LEN of the device NAME (an env
# name) read where they are stored: from a striped device's legs, DM_SPAN's
# two namespaces, the namespace under a linear device (NAME_DISK, else
# NAME_BASE); a device without readable leaves (crypt) or a plain one
# through its own node.
leaf_read() {
	local name=$1 off=$2 len=$3 v o
	case $name in
	DM_SPAN) span_read "$off" "$len"; return ;;
	DM_STRIPED | DM_STRIPED_LUNS) striped_read "$name" "$off" "$len"; return ;;
	DM_CRYPT) read_region "$DM_CRYPT" "$off" "$len"; return ;;
	esac
	v=${name}_DISK o=${name}_DISK_OFFSET
	[[ -n ${!v:-} ]] || v=${name}_BASE o=${name}_OFFSET
	if [[ -n ${!v:-} ]]; then
		read_region "${!v}" $((${!o} + off)) "$len"
	else
		read_region "${!name}" "$off" "$len"
	fi
}

# dm_copy SRC DST DSTOFF [--opt OPTION]... OFF:LEN...: a verified copy
# between the devices named SRC and DST (env names), lighter than
# copy_verify (processes are dear under TCG): the destination span and
# GUARD bytes on each side get fresh random bytes, the source ranges too;
# after "blkcopy copy --json" reported every byte, the destination's leaves
# (leaf_read) must hold the guards unchanged and the source bytes between
# them, and the source must be unchanged.  $T_OUT keeps blkcopy's JSON.
dm_copy() {
	local sname=$1 dname=$2 src dst dstoff total=0 r v span g=$GUARD out pos
	local -a opts=() CV_OFFS=() CV_LENS=()
	src=${!sname} dst=${!dname}
	size_var dstoff "$3"
	shift 3
	while [[ ${1:-} == --opt ]]; do
		opts+=("$2")
		shift 2
	done
	parse_ranges "$@"
	span=$((total + 2 * g))
	v=${dname}_SIZE
	if ((dstoff < g || dstoff + total + g > ${!v:-0})); then
		WHY="test bug: $dname span $dstoff+$total and its guards do not fit in ${!v:-?} bytes"
		return 1
	fi
	lbs_remember "$src" "$dst"
	dd if=/dev/urandom of="$T_DIR/before" bs=1M iflag=count_bytes,fullblock count="$span" status=none &&
		dd if="$T_DIR/before" of="$dst" bs=1M seek=$((dstoff - g)) oflag=seek_bytes,direct conv=notrunc,fsync status=none ||
		{ WHY="filling $dst failed"; return 1; }
	fill_ranges "$src" || { WHY="filling $src failed"; return 1; }
	read_ranges "$src" >"$T_DIR/expected" || { WHY="reading $src failed"; return 1; }

	local args=(copy --json --no-progress "${opts[@]}" --dst-offset "$dstoff")
	for r in "${!CV_OFFS[@]}"; do
		args+=(--range "${CV_OFFS[r]}:${CV_LENS[r]}")
	done
	bcp "${args[@]}" "$src" "$dst"
	[[ $RC -eq 0 ]] || { WHY="blkcopy ${args[*]:0:12}... $src $dst: $(bcp_what)"; return 1; }
	load_result || return 1
	info "$T_NAME: $sname -> $dname: $R_LINE"
	expect '((R_BYTES == total)) && [[ -z $R_ERROR ]]' "blkcopy did not report $total bytes copied" || return 1

	leaf_read "$dname" $((dstoff - g)) "$span" >"$T_DIR/after" || { WHY="reading the leaves of $dname failed"; return 1; }
	cp "$T_DIR/before" "$T_DIR/want" &&
		dd if="$T_DIR/expected" of="$T_DIR/want" bs=1M seek="$g" oflag=seek_bytes conv=notrunc status=none ||
		{ WHY="test bug: building the expected image failed"; return 1; }
	if ! out=$(cmp "$T_DIR/want" "$T_DIR/after" 2>&1); then
		pos=$(sed -n 's/.* \(byte\|char\) \([0-9]*\).*/\2/p' <<<"$out")
		pos=$((${pos:-1} - 1 - g))
		if ((pos < 0)); then
			WHY="$dname changed just before the destination span (read through its leaves)"
		elif ((pos >= total)); then
			WHY="$dname changed just after the destination span (read through its leaves)"
		else
			WHY="$dname does not hold the copy at $dstoff+$pos (read through its leaves): $out"
		fi
		return 1
	fi
	read_ranges "$src" | cmp -s - "$T_DIR/expected" || { WHY="the source $src changed"; return 1; }
}

# --- dm-linear over one namespace ------------------------------------------

case_linear_native() {
	need DM_LINEAR || return 77
	dm_copy DM_LINEAR DM_LINEAR 28m 22m:1m 23m+4k:64k 24m+512:3k && nvme_only
}

# Namespace -> dm over it: one leaf, native (NVME_DM is held by dm, so it can
# only be the source: a destination is opened O_EXCL).
case_namespace_to_linear() {
	need DM_LINEAR NVME_DM || return 77
	dm_copy NVME_DM DM_LINEAR 26m 1m:1m 2m:64k && nvme_only
}

case_linear_no_offload() {
	need DM_LINEAR || return 77
	dm_copy DM_LINEAR DM_LINEAR 30m --opt --no-offload 22m:256k 23m+4k:4k && emulated_only
}

case_linear_no_emulation() {
	need DM_LINEAR || return 77
	dm_copy DM_LINEAR DM_LINEAR 31m --opt --no-emulation 22m:256k 23m+4k:4k && nvme_only
}

# --- dm-linear across two namespaces (boundary at DM_SPAN_DEV0_SIZE) ---------

case_span_part1() {
	need DM_SPAN || return 77
	dm_copy DM_SPAN DM_SPAN 24m 20m:1m 21m+4k:60k && nvme_only
}

case_span_part2() {
	need DM_SPAN || return 77
	dm_copy DM_SPAN DM_SPAN 38m 33m:1m 34m+8k:32k && nvme_only
}

case_span_part1_to_part2() {
	need DM_SPAN || return 77
	dm_copy DM_SPAN DM_SPAN 36m 28m:1m 29m+4k:4k && emulated_only
}

# The source crosses the boundary: its first half goes to another namespace
# (emulated), its second half stays on the second one (native).
case_span_source_crosses() {
	need DM_SPAN || return 77
	local b=$DM_SPAN_DEV0_SIZE
	dm_copy DM_SPAN DM_SPAN $((b + 8 * MiB)) $((b - MiB)):2m && nvme_and_emulated
}

# The destination crosses the boundary: the first half lands on the source's
# namespace (native), the second on the other one (emulated).
case_span_destination_crosses() {
	need DM_SPAN || return 77
	local b=$DM_SPAN_DEV0_SIZE
	dm_copy DM_SPAN DM_SPAN $((b - MiB)) 24m:2m && nvme_and_emulated
}

case_span_no_emulation_refused() {
	need DM_SPAN || return 77
	local before
	fill_random "$DM_SPAN" 41m 1m || { WHY="fill failed"; return 1; }
	before=$(md5_region "$DM_SPAN" 41m 1m)
	bcp copy --json --no-progress --no-emulation --range 26m:64k --dst-offset $((41 * MiB + 65536)) "$DM_SPAN" "$DM_SPAN"
	[[ $RC -ne 0 ]] || { WHY="--no-emulation across namespaces succeeded"; return 1; }
	load_result && expect '((R_BYTES == 0)) && [[ $R_ERROR == *"native copy not available"* ]]' \
		"expected a clean refusal" || return 1
	# QEMU 7.2 offers no copy across namespaces; QEMU 10 does (format 2h),
	# which Linux 6.12 keeps user space from enabling: either reason.
	json_check "$T_OUT" '.device_error | test("nvme: different namespaces|nvme: Copy descriptor format 2h is not enabled")' \
		"the refusal does not name its reason" || return 1
	drop_caches "$DM_SPAN"
	[[ $(md5_region "$DM_SPAN" 41m 1m) == "$before" ]] || { WHY="the refused copy wrote"; return 1; }
}

# --- dm-striped ----------------------------------------------------------------

# Two LUNs of one target, 4 KiB chunks: every piece LUN -> LUN by EXTENDED COPY.
case_striped_luns() {
	need DM_STRIPED_LUNS || return 77
	dm_copy DM_STRIPED_LUNS DM_STRIPED_LUNS 20m+4k 1m+4k:1m 3m+12k:1m 6m+28k:256k && xcopy_only
}

# NVMe + LUN stripes.  An odd number of chunks between source and
# destination pairs every NVMe chunk with a LUN chunk: all emulated.
case_striped_shift_one() {
	need DM_STRIPED || return 77
	local c=$DM_STRIPED_CHUNK
	dm_copy DM_STRIPED DM_STRIPED $((70 * MiB + 512 * 1024 + c)) 70m:256k && emulated_only
}

# An even number: NVMe -> NVMe and LUN -> LUN, both native.
case_striped_shift_two() {
	need DM_STRIPED || return 77
	local c=$DM_STRIPED_CHUNK
	dm_copy DM_STRIPED DM_STRIPED $((74 * MiB + 2 * c)) 73m:256k && nvme_and_xcopy
}

# --- over a partition, dm over dm ---------------------------------------------

case_partlin() {
	need DM_PARTLIN || return 77
	dm_copy DM_PARTLIN DM_PARTLIN 5m 1m:1m 2m+4k:12k && nvme_only
}

case_over_dm() {
	need DM_OVER_DM || return 77
	dm_copy DM_OVER_DM DM_OVER_DM 4m 1m:1m 3m+8k:8k && nvme_only
}

# --- targets blkcopy does not resolve -----------------------------------------

# From the zero part into the linear part: emulated, and the destination
# (read on the namespace) holds zeros.  Writing random bytes to the source
# ranges is a no-op on a zero target, so dm_copy expects zeros.
case_mixed_zero_to_linear() {
	need DM_MIXED || return 77
	dm_copy DM_MIXED DM_MIXED 4m $((DM_MIXED_ZERO_OFFSET + MiB)):256k || return 1
	cmp -s -n 262144 "$T_DIR/expected" /dev/zero || { WHY="test bug: the zero target did not read as zeros"; return 1; }
	emulated_only
}

case_mixed_linear() {
	need DM_MIXED || return 77
	dm_copy DM_MIXED DM_MIXED 6m 1m:256k 2m:4k && nvme_only
}

# Reading an error target fails the copy; nothing around the destination changes.
case_error_source() {
	need DM_ERROR DM_LINEAR || return 77
	local guards
	fill_random "$DM_LINEAR" $((30 * MiB - GUARD)) $((65536 + 2 * GUARD)) || { WHY="fill failed"; return 1; }
	guards=$(guard_sums "$DM_LINEAR" $((30 * MiB)) 65536)
	bcp copy --json --no-progress --range 0:64k --dst-offset 30m "$DM_ERROR" "$DM_LINEAR"
	[[ $RC -ne 0 && $RC -ne 124 && $RC -ne 137 ]] || { WHY="copy from an error target: $(bcp_what)"; return 1; }
	load_result && expect '[[ $R_ERROR == *"Input/output"* ]]' "expected an I/O error" || return 1
	drop_caches "$DM_LINEAR"
	[[ $(guard_sums "$DM_LINEAR" $((30 * MiB)) 65536) == "$guards" ]] ||
		{ WHY="bytes around the destination changed"; return 1; }
}

case_crypt() {
	need DM_CRYPT || return 77
	dm_copy DM_CRYPT DM_CRYPT 4m 0:64k 1m+4k:256k && emulated_only
}

# --- refusals -------------------------------------------------------------------

case_read_only() {
	need DM_RO DM_LINEAR || return 77
	local before
	before=$(md5_region "$DM_RO" 0 2m)
	bcp copy --json --no-progress --range 22m:64k --dst-offset 1m "$DM_LINEAR" "$DM_RO"
	[[ $RC -ne 0 ]] || { WHY="a copy to a read-only dm device succeeded"; return 1; }
	grep -q "destination is read-only" "$T_ERR" "$T_OUT" ||
		{ WHY="no 'destination is read-only': $(bcp_what)"; return 1; }
	drop_caches "$DM_RO"
	[[ $(md5_region "$DM_RO" 0 2m) == "$before" ]] || { WHY="the read-only device changed"; return 1; }
}

# case_suspended src|dst: a copy from or to DM_SUSP while it is suspended fails
# within 20 s saying so, and writes nothing.  The device is always resumed,
# by a watchdog too should blkcopy hang in I/O to it.
SUSP_HUNG=0
case_suspended() {
	need DM_SUSP DM_LINEAR || return 77
	local role=$1 name=$DM_SUSP_NAME wd t0 el dev off before
	if [[ $SUSP_HUNG == 1 ]]; then
		WHY="not tried: blkcopy hung on the suspended device in the previous case"
		return 1
	fi
	if [[ $role == src ]]; then
		dev=$DM_LINEAR off=$((29 * MiB))
	else
		dev=$DM_SUSP_DISK off=$((DM_SUSP_DISK_OFFSET + MiB))
	fi
	fill_random "$DM_SUSP" 1m 256k && fill_random "$DM_LINEAR" 29m 256k || { WHY="fill failed"; return 1; }
	before=$(md5_region "$dev" "$off" 262144)
	dms suspend "$name" || { WHY="dmsetup suspend $name failed"; return 1; }
	(sleep 25 && DM_DISABLE_UDEV=1 dmsetup resume "$name") >/dev/null 2>&1 &
	wd=$!
	t0=$SECONDS
	if [[ $role == src ]]; then
		set -- --range 1m:256k --dst-offset 29m "$DM_SUSP" "$DM_LINEAR"
	else
		set -- --range 29m:256k --dst-offset 1m "$DM_LINEAR" "$DM_SUSP"
	fi
	timeout -k 2 20 "$BLKCOPY" copy --json --no-progress "$@" >"$T_OUT" 2>"$T_ERR" </dev/null
	RC=$?
	el=$((SECONDS - t0))
	kill "$wd" 2>/dev/null
	wait "$wd" 2>/dev/null
	dms resume "$name" || { WHY="dmsetup resume $name failed"; return 1; }
	info "$T_NAME: suspended $role: rc $RC after $el s: $(head -c 200 "$T_ERR" | tr '\n' ' ')"
	if [[ $RC -eq 124 || $RC -eq 137 ]]; then
		SUSP_HUNG=1
		WHY="blkcopy did not fail within 20 s on a suspended device (rc $RC; stderr: $(head -c 200 "$T_ERR" | tr '\n' ' '))"
		return 1
	fi
	[[ $RC -ne 0 ]] || { WHY="a copy on a suspended device succeeded"; return 1; }
	grep -qi "suspended" "$T_ERR" "$T_OUT" || { WHY="the failure does not say 'suspended': $(bcp_what)"; return 1; }
	drop_caches "$dev"
	[[ $(md5_region "$dev" "$off" 262144) == "$before" ]] || { WHY="the destination changed"; return 1; }
}

# --- limits with the mapping -------------------------------------------------

# limits_of DEV: blkcopy limits --json DEV into $T_DIR/limits.json
limits_of() {
	local j
	bcp limits --json "$1"
	[[ $RC -eq 0 ]] || { WHY="limits $1: $(bcp_what)"; return 1; }
	cp "$T_OUT" "$T_DIR/limits.json"
	j=$(<"$T_OUT")
	info "limits $1: ${j//$'\n'/ }"
}

case_limits_linear() {
	need DM_LINEAR || return 77
	local ns re='"max_copy_sectors":([0-9]+)'
	limits_of "$DM_LINEAR_BASE" || return 1
	[[ $(<"$T_DIR/limits.json") =~ $re ]] || { WHY="no max_copy_sectors for $DM_LINEAR_BASE"; return 1; }
	ns=${BASH_REMATCH[1]}
	limits_of "$DM_LINEAR" || return 1
	json_check "$T_DIR/limits.json" ".[0].mapping[0] | .depth == 0 and .start == 0 and
		.length == $DM_LINEAR_SIZE and .target == \"linear\" and .device == \"$DM_LINEAR_BASE\" and
		.offset == $DM_LINEAR_OFFSET" "mapping[0] is not linear over $DM_LINEAR_BASE at $DM_LINEAR_OFFSET" || return 1
	json_check "$T_DIR/limits.json" ".[0].copy_offload == 1 and .[0].max_copy_sectors == $ns" \
		"the dm device's max_copy_sectors is not its namespace's ($ns)"
}

case_limits_striped_luns() {
	need DM_STRIPED_LUNS || return 77
	limits_of "$DM_STRIPED_LUNS" || return 1
	json_check "$T_DIR/limits.json" "[.[0].mapping[] | select(.target == \"striped\")] |
		length == 2 and all(.chunk == $DM_STRIPED_LUNS_CHUNK and .stripes == 2) and
		map(.device) == [\"$DM_STRIPED_LUNS_DEV0\", \"$DM_STRIPED_LUNS_DEV1\"] and
		map(.stripe) == [0, 1]" "expected two striped legs over LUN_STRIPE1 and LUN_STRIPE2 with a $DM_STRIPED_LUNS_CHUNK-byte chunk"
}

# The device under it may be named /dev/mapper/NAME or /dev/dm-N.
case_limits_over_dm() {
	need DM_OVER_DM NVME_DM2_PART2 || return 77
	local dmn
	dmn=$(dms info -c --noheadings -o blkdevname "${DM_OVER_DM_BASE##*/}" 2>/dev/null | tr -d ' ')
	limits_of "$DM_OVER_DM" || return 1
	json_check "$T_DIR/limits.json" ".[0].mapping | .[0].depth == 0 and .[0].target == \"linear\" and
		(.[0].device == \"$DM_OVER_DM_BASE\" or .[0].device == \"/dev/$dmn\") and
		.[0].offset == $DM_OVER_DM_OFFSET and
		any(.[]; .depth == 1 and .target == \"linear\" and
			(.device == \"$NVME_DM2_PART2\" or .device == \"$NVME_DM2\"))" \
		"expected linear over $DM_OVER_DM_BASE and, at depth 1, linear over $NVME_DM2_PART2"
}

case_limits_mixed() {
	need DM_MIXED || return 77
	limits_of "$DM_MIXED" || return 1
	json_check "$T_DIR/limits.json" '.[0].mapping | any(.[]; .target == "zero") and any(.[]; .target == "linear")' \
		"expected a linear and a zero entry"
}

# --- the table changes under a running copy ----------------------------------

dm_events() {
	dms info -c --noheadings -o events "$1" 2>/dev/null | tr -d ' '
}

# dm_set_table NAME TABLE: load and swap in TABLE.
dm_set_table() {
	dms reload "$1" --table "$2" && dms resume "$1"
}

# What this guest's dm does with event numbers (logged for the library's
# table-change detection) and that the table swap the next case uses works.
case_reload_facts() {
	need DM_RELOAD || return 77
	local n=$DM_RELOAD_NAME e0 e1 e2 e3 t
	e0=$(dm_events "$n")
	dm_set_table "$n" "$DM_RELOAD_ALT_TABLE" || { WHY="reload to the other place failed"; dm_set_table "$n" "$DM_RELOAD_TABLE"; return 1; }
	e1=$(dm_events "$n")
	t=$(dms table "$n")
	dm_set_table "$n" "$DM_RELOAD_TABLE" || { WHY="restoring the table failed"; return 1; }
	e2=$(dm_events "$n")
	dms suspend "$n" && dms resume "$n" || { WHY="suspend/resume failed"; return 1; }
	e3=$(dm_events "$n")
	info "$T_NAME: $n event number: $e0 at start, $e1 after reload+resume (table now '$t'), $e2 after restoring, $e3 after a plain suspend+resume"
	[[ $(dms table "$n") == *" ${DM_RELOAD_TABLE##* }" ]] || { WHY="the table was not restored: $(dms table "$n")"; return 1; }
	[[ $t == *" ${DM_RELOAD_ALT_TABLE##* }" ]] || { WHY="the reload did not take: '$t'"; return 1; }
}

# dm_table_change copies 4 MiB on DM_RELOAD one native piece per poll and
# swaps the table after the first: the copy must end with -ESTALE.  In the
# old place, the bytes natively copied before the swap hold the source and
# nothing past them changed; nothing landed in the new place.  The table is
# restored.
case_reload_during_copy() {
	need DM_RELOAD || return 77
	local n=$DM_RELOAD_NAME prog=$LAB_BIN/dm_table_change out rc at e0 e1 cmd re
	local old=$((DM_RELOAD_DISK_OFFSET + 4 * MiB)) new=$((DM_RELOAD_ALT_DISK_OFFSET + 4 * MiB))
	[[ -x $prog ]] || { WHY="$prog is missing"; return 1; }
	fill_random "$DM_RELOAD" 0 8m || { WHY="fill failed"; return 1; }
	read_region "$DM_RELOAD_DISK" "$old" 4m >"$T_DIR/old-before" &&
		read_region "$DM_RELOAD_DISK" "$new" 4m >"$T_DIR/new-before" || { WHY="reading the namespace failed"; return 1; }
	e0=$(dm_events "$n")
	cmd="DM_DISABLE_UDEV=1 dmsetup reload $n --table '$DM_RELOAD_ALT_TABLE' && DM_DISABLE_UDEV=1 dmsetup resume $n"
	out=$(BLKCOPY_NVME_SYNC=1 timeout -k 5 60 "$prog" "$DM_RELOAD" "$DM_RELOAD" 0 $((4 * MiB)) $((4 * MiB)) "$cmd" 2>&1)
	rc=$?
	e1=$(dm_events "$n")
	dm_set_table "$n" "$DM_RELOAD_TABLE" || { WHY="restoring the table of $n failed"; return 1; }
	info "$T_NAME: dm_table_change: rc $rc; event number $e0 -> $e1; ${out//$'\n'/ }"
	[[ $rc -eq 0 ]] || { WHY="dm_table_change exited $rc: $(tail -c 300 <<<"$out" | tr '\n' ' ')"; return 1; }
	re='native_at_change=([0-9]+)'
	[[ $out =~ $re ]] || { WHY="no native_at_change= in '$out'"; return 1; }
	at=${BASH_REMATCH[1]}
	read_region "$DM_RELOAD_DISK" "$old" 4m >"$T_DIR/old-after" &&
		read_region "$DM_RELOAD_DISK" "$new" 4m >"$T_DIR/new-after" &&
		read_region "$DM_RELOAD_DISK" "$DM_RELOAD_DISK_OFFSET" "$at" >"$T_DIR/src-old" ||
		{ WHY="reading the namespace failed"; return 1; }
	cmp -s -i "$at:$at" "$T_DIR/old-before" "$T_DIR/old-after" ||
		{ WHY="the old place changed past the $at bytes copied before the swap"; return 1; }
	head -c "$at" "$T_DIR/old-after" | cmp -s - "$T_DIR/src-old" ||
		{ WHY="the $at bytes copied before the swap are not the source's"; return 1; }
	cmp -s "$T_DIR/new-before" "$T_DIR/new-after" ||
		{ WHY="something was written to the new place after the swap"; return 1; }
}

# A table under an unchanged one changes between two requests on one handle
# (dm_handle_reuse): the second request must re-read it and land in the new
# place, natively.  lab-under's first 4 MiB move to the free sectors
# 180224..188415 of NVME_DM2_PART2 (16 MiB past where they were, on the
# namespace); DM_OVER_DM's first 2 MiB lie in them.  The table is restored.
case_lower_table_between_requests() {
	need DM_OVER_DM DM_OVER_DM_DISK || return 77
	local prog=$LAB_BIN/dm_handle_reuse under=${DM_OVER_DM_BASE##*/} table leg cmd out rc
	local old=$DM_OVER_DM_DISK_OFFSET new=$((DM_OVER_DM_DISK_OFFSET + 16 * MiB))
	[[ -x $prog ]] || { WHY="$prog is missing"; return 1; }
	table=$(dms table "$under") || { WHY="no table for $under"; return 1; }
	read -r _ _ _ leg _ <<<"$table"
	fill_random "$DM_OVER_DM_DISK" "$old" 2m && fill_random "$DM_OVER_DM_DISK" "$new" 2m ||
		{ WHY="fill failed"; return 1; }
	read_region "$DM_OVER_DM_DISK" "$old" 512k >"$T_DIR/old-src" &&
		read_region "$DM_OVER_DM_DISK" "$new" 512k >"$T_DIR/new-src" || { WHY="reading failed"; return 1; }
	cmd="printf '0 8192 linear $leg 180224\\n8192 24576 linear $leg 155648\\n' | DM_DISABLE_UDEV=1 dmsetup reload $under && DM_DISABLE_UDEV=1 dmsetup resume $under"
	out=$(timeout -k 5 60 "$prog" "$DM_OVER_DM" 0 $((512 * 1024)) $((1 * MiB)) "$cmd" 2>&1)
	rc=$?
	dm_set_table "$under" "$table" || { WHY="restoring the table of $under failed"; return 1; }
	info "$T_NAME: dm_handle_reuse: rc $rc; ${out//$'\n'/ }"
	[[ $rc -eq 0 ]] || { WHY="dm_handle_reuse exited $rc: $(tail -c 300 <<<"$out" | tr '\n' ' ')"; return 1; }
	read_region "$DM_OVER_DM_DISK" $((old + MiB)) 512k | cmp -s - "$T_DIR/old-src" ||
		{ WHY="the first copy did not land in the old place"; return 1; }
	read_region "$DM_OVER_DM_DISK" $((new + MiB)) 512k | cmp -s - "$T_DIR/new-src" ||
		{ WHY="the second copy did not land in the new place"; return 1; }
}

# --- facts about dm in this guest, for the log --------------------------------

info "$T_NAME: /dev/dm-* nodes: $(ls /dev/dm-* 2>/dev/null | tr '\n' ' ')"
for d in lab-striped lab-striped-luns lab-span lab-mixed lab-crypt; do
	info "$T_NAME: dmsetup table $d: $(dms table "$d" 2>&1 | tr '\n' ';')"
done

# --verify against a device that corrupts what it is given: dm-flakey over
# BRD replacing byte N of every write with 0 (a source of 0xab bytes, so
# every corruption shows).  The copy fails, names the first corrupted byte,
# and commits exactly the bytes before it.
case_verify_corruption() {
	need BRD || return 77
	local n=777 off=$((3 * MiB)) len=$((2 * MiB)) want mis dm=lab-flakey-verify
	dmsetup create "$dm" --table "0 $((32 * MiB / 512)) flakey $BRD 0 0 1 5 corrupt_bio_byte $n w 0 0" ||
		{ WHY="dmsetup create $dm (dm-flakey) failed"; return 1; }
	dd if=/dev/zero bs=1M count=4 status=none | tr '\0' '\253' >"$T_DIR/src.img"
	bcp copy --json --no-progress --verify --range 1m:$len --dst-offset $off "$T_DIR/src.img" "/dev/mapper/$dm"
	local rc=$RC
	cp "$T_OUT" "$T_DIR/verify.json"
	bcp copy --no-progress --verify --range 1m:$len --dst-offset $off "$T_DIR/src.img" "/dev/mapper/$dm"
	dmsetup remove --retry "$dm"
	[[ $rc -eq 1 ]] || { WHY="a corrupted copy exited $rc"; return 1; }
	want=$((off + n - 1))
	info "$T_NAME: $(jq -c '{error, verified, verified_bytes, mismatch_offset, committed}' <"$T_DIR/verify.json")"
	json_check "$T_DIR/verify.json" ".verified == false and .mismatch_offset == $want and .committed == $((n - 1)) and
		(.error | test(\"differs\"))" "the corruption at byte $want is not what --verify reports" || return 1
	grep -q "differs from the source at byte $want of /dev/mapper/$dm" "$T_ERR" ||
		{ WHY="the message does not name byte $want: $(bcp_what)"; return 1; }
}

run_case dm-verify-corruption case_verify_corruption
run_case dm-linear-native case_linear_native
run_case dm-namespace-to-linear-native case_namespace_to_linear
run_case dm-linear-no-offload case_linear_no_offload
run_case dm-linear-no-emulation-native case_linear_no_emulation
run_case dm-span-part1-native case_span_part1
run_case dm-span-part2-native case_span_part2
run_case dm-span-part1-to-part2-emulated case_span_part1_to_part2
run_case dm-span-source-crosses case_span_source_crosses
run_case dm-span-destination-crosses case_span_destination_crosses
run_case dm-span-no-emulation-refused case_span_no_emulation_refused
run_case dm-striped-luns-xcopy case_striped_luns
run_case dm-striped-shift-one-chunk-emulated case_striped_shift_one
run_case dm-striped-shift-two-chunks-native case_striped_shift_two
run_case dm-partlin-native case_partlin
run_case dm-over-dm-native case_over_dm
run_case dm-mixed-zero-to-linear case_mixed_zero_to_linear
run_case dm-mixed-linear-native case_mixed_linear
run_case dm-error-source case_error_source
run_case dm-crypt-emulated case_crypt
run_case dm-read-only-refused case_read_only
run_case dm-suspended-source case_suspended src
run_case dm-suspended-destination case_suspended dst
run_case dm-limits-linear case_limits_linear
run_case dm-limits-striped-luns case_limits_striped_luns
run_case dm-limits-over-dm case_limits_over_dm
run_case dm-limits-mixed case_limits_mixed
run_case dm-reload-facts case_reload_facts
run_case dm-reload-during-copy case_reload_during_copy
run_case dm-lower-table-between-requests case_lower_table_between_requests
finish
