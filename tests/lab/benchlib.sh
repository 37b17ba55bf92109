# SPDX-License-Identifier: MIT
# Native copy against forced emulation, in the same guest run, for the
# bench-*.sh scripts: wall time and CPU time (user + system of the blkcopy
# process) of each, best of BENCH_REPEAT, and the ratios as INFO lines.
#
# Under TCG the guest's own instructions are emulated while QEMU's NVMe model
# (and, for LIO, the guest kernel) does the copy, so the ratios say where the
# work happens more than how fast a real device is.
. "$(dirname "${BASH_SOURCE[0]}")/lib.sh"
T_NAME=$(basename "$0" .sh)

REPEAT=${BENCH_REPEAT:-3}

# timed ARGS...: "best-wall cpu-of-that-run method" over REPEAT blkcopy runs.
timed() {
	local best="" cpu wall user sys t
	for ((k = 0; k < REPEAT; k++)); do
		drop_caches "$B_SRC" "$B_DST"
		local TIMEFORMAT='%R %U %S'
		t=$({ time "$BLKCOPY" "$@" >"$T_OUT" 2>"$T_ERR"; } 2>&1) || { WHY="blkcopy $*: $(cat "$T_ERR")"; return 1; }
		read -r wall user sys <<<"$t"
		if [[ -z $best ]] || awk "BEGIN{exit !($wall < $best)}"; then
			best=$wall cpu=$(awk "BEGIN{print $user + $sys}")
		fi
	done
	echo "$best $cpu $(jq -r .method <"$T_OUT")"
}

# verify RANGES-FILE: every range of a short list, 64 spread-out ranges of a long one.
verify() {
	local n step i=0 pos=$B_DST_OFF off len
	n=$(wc -l <"$1")
	step=$(((n + 63) / 64))
	while IFS=: read -r off len; do
		if ((i % step == 0)) && [[ $(md5_region "$B_SRC" "$off" "$len") != $(md5_region "$B_DST" $pos "$len") ]]; then
			WHY="range $i ($off:$len) is not at $pos"
			return 1
		fi
		pos=$((pos + len)) i=$((i + 1))
	done <"$1"
}

# bench_pair LABEL METHOD SRC DST DST_OFF SIZE RANGES-FILE
bench_pair() {
	local label=$1 method=$2 n e nw nc ew ec
	B_SRC=$3 B_DST=$4 B_DST_OFF=$5
	local size=$6 ranges=$7 args
	args=(copy --json --no-progress --ranges-from "$ranges" --dst-offset "$B_DST_OFF" "$B_SRC" "$B_DST")
	fill_random "$B_DST" "$B_DST_OFF" "$size" || { WHY="fill failed"; return 1; }
	n=$(timed "${args[@]}") || return 1
	[[ $n == *" $method" ]] || { WHY="$label: the native run used ${n##* }"; return 1; }
	verify "$ranges" || { WHY="$label native: $WHY"; return 1; }
	fill_random "$B_DST" "$B_DST_OFF" "$size" || { WHY="fill failed"; return 1; }
	e=$(timed copy --no-offload "${args[@]:1}") || return 1
	[[ $e == *" emulate" ]] || { WHY="$label: the emulated run used ${e##* }"; return 1; }
	verify "$ranges" || { WHY="$label emulated: $WHY"; return 1; }
	read -r nw nc _ <<<"$n"
	read -r ew ec _ <<<"$e"
	info "bench $label: $method ${nw}s (cpu ${nc}s) vs --no-offload ${ew}s (cpu ${ec}s):" \
		"native $(awk "BEGIN{printf \"%.2f\", $ew / $nw}")x faster," \
		"$(awk "BEGIN{printf \"%.1f\", $ec / ($nc > 0.001 ? $nc : 0.001)}")x less cpu"
}

# scattered_ranges SIZE OFFSET: every 4 KiB block of [OFFSET, OFFSET+SIZE) once, scrambled.
scattered_ranges() {
	awk -v n=$(($1 / 4096)) -v base="$2" \
		'BEGIN { for (i = 0; i < n; i++) printf "%d:4096\n", base + ((i * 7919) % n) * 4096 }'
}
