#!/bin/bash
# SPDX-License-Identifier: MIT
#
# multi.sh - one job to N destinations against N separate copies: a 512 MiB
# emulated copy from a loop device (direct I/O, its file in /dev/shm) to N
# loop devices, as one "blkcopy copy SRC DST1 ... DSTN" (the destinations
# emulated whole share every read of the source) and, as the baseline in
# the same script, N "blkcopy copy SRC DSTi" one after another, and N dd
# runs (bs=1M, O_DIRECT).  It prints the time and the bytes read from the
# source (the source loop device's block statistics) of each, best of R,
# alternating.  A measurement, not a test: nothing here fails on a slow
# machine.
#
#   bench/multi.sh [--build DIR] [--repeat R] [--dests N] [--size SIZE]
set -euo pipefail
export LC_ALL=C

build=build repeat=3 n=4 size=512M
while [[ $# -gt 0 ]]; do
	case $1 in
	--build) build=$2; shift 2 ;;
	--repeat) repeat=$2; shift 2 ;;
	--dests) n=$2; shift 2 ;;
	--size) size=$2; shift 2 ;;
	*) echo "usage: $0 [--build DIR] [--repeat R] [--dests N] [--size SIZE]" >&2; exit 2 ;;
	esac
done
bc=$build/tools/blkcopy
[[ -x $bc ]] || { echo "multi.sh: no $bc (build first)" >&2; exit 1; }
dir=$(mktemp -d /dev/shm/blkcopy-bench-multi.XXXXXX)
src="" dsts=()
cleanup() {
	local d
	[[ -n $src ]] && losetup -d "$src"
	for d in "${dsts[@]}"; do losetup -d "$d"; done
	rm -rf "$dir"
}
trap cleanup EXIT
head -c "$size" /dev/urandom >"$dir/s"
src=$(losetup --direct-io=on -f --show "$dir/s")
for ((k = 0; k < n; k++)); do
	truncate -s "$size" "$dir/d$k"
	dsts+=("$(losetup --direct-io=on -f --show "$dir/d$k")")
done
bytes=$(blockdev --getsize64 "$src")

# sectors_read: what the source's loop device has read so far.
sectors_read() {
	awk '{ print $3 }' "/sys/block/$(basename "$src")/stat"
}

# timed WHAT: run the way WHAT copies to every destination; "SECONDS BYTES_READ".
timed() {
	local r0 t0 d
	r0=$(sectors_read)
	t0=$EPOCHREALTIME
	case $1 in
	multi) "$bc" copy --no-offload --no-progress "$src" "${dsts[@]}" >/dev/null ;;
	separate) for d in "${dsts[@]}"; do "$bc" copy --no-offload --no-progress "$src" "$d" >/dev/null; done ;;
	dd) for d in "${dsts[@]}"; do dd if="$src" of="$d" bs=1M iflag=direct oflag=direct conv=fsync status=none; done ;;
	esac
	awk -v a="$t0" -v b="$EPOCHREALTIME" -v r="$(($(sectors_read) - r0))" \
		'BEGIN { printf "%.4f %d\n", b - a, r * 512 }'
}

declare -A best=() read=()
for ((k = 0; k < repeat; k++)); do
	for w in multi separate dd; do
		out=$(timed "$w")
		if [[ -z ${best[$w]:-} ]] || awk -v a="${out% *}" -v b="${best[$w]}" 'BEGIN { exit !(a < b) }'; then
			best[$w]=${out% *}
		fi
		read[$w]=${out#* }
	done
done
for d in "${dsts[@]}"; do
	cmp -s "$src" "$d" || { echo "multi.sh: $d differs from the source" >&2; exit 1; }
done
mib=$((bytes >> 20))
echo "$mib MiB to $n loop devices (emulated), best of $repeat, alternating:"
for w in multi separate dd; do
	awk -v w="$w" -v t="${best[$w]}" -v r="${read[$w]}" -v m="$mib" -v n="$n" -v s="${best[separate]}" \
		'BEGIN { printf "  %-9s %7.3f s  %8.1f MiB/s per destination  source read %6d MiB (%.2fx the data)  %.2fx the separate copies'"'"' speed\n",
			w, t, m / t * 1, r / 1048576, r / (m * 1048576), s / t }'
done
