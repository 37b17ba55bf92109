#!/usr/bin/env bash
# SPDX-License-Identifier: MIT
# Native file-system copy against forced emulation, same run, on real XFS
# (reflink=1) over a loop device in /dev/shm:
#   1. 1 GiB between two files:                 blkcopy copy   vs  --no-offload
#   2. 1 GiB between two loop devices on XFS files (direct I/O): the same
# Prints wall times and ratios; fails only on wrong data.  Run as root.
#   bench/reflink.sh [--build DIR] [--size SIZE]
set -euo pipefail
top=$(cd "$(dirname "$0")/.." && pwd)
build=$top/build size=1G
while [ $# -gt 0 ]; do
	case $1 in
	--build) build=$(cd "$2" && pwd); shift 2 ;;
	--size) size=$2; shift 2 ;;
	*) echo "usage: $0 [--build DIR] [--size SIZE]" >&2; exit 2 ;;
	esac
done
blkcopy=$build/tools/blkcopy
[ -x "$blkcopy" ] || { echo "reflink.sh: no $blkcopy; build first" >&2; exit 1; }

work=$(mktemp -d /dev/shm/blkcopy-rbench.XXXXXX)
loops=() mnt=$work/xfs
cleanup() {
	for l in "${loops[@]}"; do losetup -d "$l" 2>/dev/null || true; done
	umount "$mnt" 2>/dev/null || true
	for l in "${fsloop[@]:-}"; do [ -n "$l" ] && losetup -d "$l" 2>/dev/null || true; done
	rm -rf "$work"
}
trap cleanup EXIT

truncate -s 4G "$work/fs.img"
fsloop=("$(losetup -f --show "$work/fs.img")")
mkfs.xfs -q -f -m reflink=1 "${fsloop[0]}"
mkdir -p "$mnt"
mount "${fsloop[0]}" "$mnt"
dd if=/dev/urandom of="$mnt/a" bs=1M count=$(( $(numfmt --from=iec "$size") >> 20 )) status=none
truncate -s "$(stat -c %s "$mnt/a")" "$mnt/b"

secs() { jq -r .seconds "$1"; }
ratio() { awk -v a="$1" -v b="$2" 'BEGIN { printf "%.0f", a / b }'; }

run() { # LABEL SRC DST
	local label=$1 src=$2 dst=$3
	"$blkcopy" copy --json --no-offload "$src" "$dst" >"$work/emu.json"
	cmp -s "$src" "$dst" || { echo "reflink.sh: emulated copy differs" >&2; exit 1; }
	dd if=/dev/zero of="$dst" bs=1M count=1 conv=notrunc status=none	# make a stale copy detectable
	"$blkcopy" copy --json "$src" "$dst" >"$work/native.json"
	cmp -s "$src" "$dst" || { echo "reflink.sh: native copy differs" >&2; exit 1; }
	local e n
	e=$(secs "$work/emu.json") n=$(secs "$work/native.json")
	printf '%-28s emulate %8.4f s   native %8.4f s (%s)   ratio %sx (target >= 100x)\n' \
		"$label" "$e" "$n" "$(jq -c .methods "$work/native.json")" "$(ratio "$e" "$n")"
}

echo "XFS reflink=1 on /dev/shm, $size, $(uname -r)"
run "files on XFS" "$mnt/a" "$mnt/b"
loops+=("$(losetup -f --show --direct-io=on "$mnt/a")")
loops+=("$(losetup -f --show --direct-io=on "$mnt/b")")
run "loop devices on XFS files" "${loops[0]}" "${loops[1]}"
