#!/bin/bash
# SPDX-License-Identifier: MIT
#
# journal.sh - what --journal costs: a 1 GiB emulated copy between two loop
# devices (direct I/O, files in /dev/shm) with and without a resume journal
# (which flushes the destination and fdatasyncs a record every 64 MiB or
# second), alternating, best of N.  The baseline is the same blkcopy copy
# without --journal, run in the same script.  Target: at most 3% slower.
# This is a measurement, not a test: a missed target does not fail.
#
#   bench/journal.sh [--build DIR] [--repeat N]
set -euo pipefail
export LC_ALL=C

build=build repeat=5
while [[ $# -gt 0 ]]; do
	case $1 in
	--build) build=$2; shift 2 ;;
	--repeat) repeat=$2; shift 2 ;;
	*) echo "usage: $0 [--build DIR] [--repeat N]" >&2; exit 2 ;;
	esac
done
bc=$build/tools/blkcopy
[[ -x $bc ]] || { echo "journal.sh: no $bc (build first)" >&2; exit 1; }
dir=$(mktemp -d /dev/shm/blkcopy-bench-journal.XXXXXX)
ls="" ld=""
cleanup() {
	[[ -n $ls ]] && losetup -d "$ls"
	[[ -n $ld ]] && losetup -d "$ld"
	rm -rf "$dir"
}
trap cleanup EXIT
head -c 1G /dev/urandom >"$dir/s"
truncate -s 1G "$dir/d"
ls=$(losetup --direct-io=on -f --show "$dir/s")
ld=$(losetup --direct-io=on -f --show "$dir/d")

# once [ARGS...]: seconds of one copy.
once() {
	rm -f "$dir/j"
	local t0=$EPOCHREALTIME
	"$bc" copy --no-offload --no-progress "$@" "$ls" "$ld" >/dev/null
	awk -v a="$t0" -v b="$EPOCHREALTIME" 'BEGIN { printf "%.4f\n", b - a }'
}

plain=() journal=()
for ((k = 0; k < repeat; k++)); do
	plain+=("$(once)")
	journal+=("$(once --journal "$dir/j")")
done
cmp -s "$dir/s" "$dir/d" || { echo "journal.sh: the destination differs" >&2; exit 1; }
p=$(printf '%s\n' "${plain[@]}" | sort -g | head -1)
j=$(printf '%s\n' "${journal[@]}" | sort -g | head -1)
records=$("$bc" journal --json "$dir/j" | sed 's/.*"records":\([0-9]*\).*/\1/')
echo "1 GiB emulated, loop -> loop: without --journal ${p}s, with ${j}s ($records records):" \
	"$(awk -v p="$p" -v j="$j" 'BEGIN { printf "%+.1f%%", (j / p - 1) * 100 }') (target <= +3%; best of $repeat, alternating)"
