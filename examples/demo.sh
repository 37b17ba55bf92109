#!/usr/bin/env bash
# blkcopy's main job on a built-in example: a garbage collector's copy.
# Two 64 MiB devices (loop devices over files when run as root, plain image
# files otherwise); 2,000 scattered live 4 KiB blocks plus a few larger
# extents are gathered, in the order given, into one contiguous region of
# the destination.  Then every range is verified and the bytes around the
# destination region are checked untouched.
set -euo pipefail
top=$(cd "$(dirname "$0")/.." && pwd)
cd "$top"

# BLKCOPY=/usr/bin/blkcopy: the installed one (the packages), nothing built.
if [ -n "${BLKCOPY:-}" ]; then
	blkcopy=$BLKCOPY
else
	bash scripts/deps.sh
	bash scripts/build.sh build
	blkcopy=$top/build/tools/blkcopy
fi

work=$(mktemp -d /tmp/blkcopy-demo.XXXXXX)
loops=()
cleanup() {
	for l in "${loops[@]}"; do losetup -d "$l" 2>/dev/null || true; done
	rm -rf "$work"
}
trap cleanup EXIT

head -c 64M /dev/urandom >"$work/src.img"
head -c 64M /dev/urandom >"$work/dst.img"
src=$work/src.img dst=$work/dst.img
if [ "$(id -u)" -eq 0 ] && src_loop=$(losetup -f --show --direct-io=on "$src" 2>/dev/null); then
	loops+=("$src_loop")
	dst_loop=$(losetup -f --show --direct-io=on "$dst")
	loops+=("$dst_loop")
	src=$src_loop dst=$dst_loop
fi
cp "$work/dst.img" "$work/dst.before"

# Live blocks the "collector" keeps: 2,000 random 4 KiB blocks of the first
# 48 MiB, in random order, then three larger extents.
shuf -i 0-12287 -n 2000 --random-source=<(yes blkcopy) |
	awk '{ printf "%d:4k\n", $1 * 4096 }' >"$work/ranges"
printf '%s\n' 48m:1m 50m:256k 60m:2m >>"$work/ranges"
dst_off=$((8 << 20))

echo "== devices"
"$blkcopy" limits "$src" "$dst"
echo
echo "== copy: $(wc -l <"$work/ranges") ranges from $src to $dst at offset $dst_off"
"$blkcopy" copy --json --ranges-from "$work/ranges" --dst-offset "$dst_off" "$src" "$dst" >"$work/result.json"
echo "blkcopy copy --json: $(cat "$work/result.json")"
jq -r '"copied \(.bytes) bytes in \(.seconds) s: native \(.native_bytes), emulated \(.emulated_bytes) (\(.method))"' "$work/result.json"

echo
echo "== verify"
at=$dst_off bad=0 n=0
while IFS=: read -r off len; do
	case $off in *k) o=$(( ${off%k} << 10 )) ;; *m) o=$(( ${off%m} << 20 )) ;; *) o=$off ;; esac
	case $len in *k) l=$(( ${len%k} << 10 )) ;; *m) l=$(( ${len%m} << 20 )) ;; *) l=$len ;; esac
	cmp -s -n "$l" -i "$o:$at" "$src" "$dst" || { echo "range $off:$len differs at $at"; bad=1; }
	at=$((at + l)) n=$((n + 1))
done <"$work/ranges"
total=$((at - dst_off))
cmp -s -n "$dst_off" "$work/dst.before" "$dst" || { echo "bytes before the destination region changed"; bad=1; }
cmp -s -i "$at:$at" "$work/dst.before" "$dst" || { echo "bytes after the destination region changed"; bad=1; }
if [ $bad -ne 0 ]; then
	echo "demo: FAILED"
	exit 1
fi
echo "all $n ranges ($total bytes) landed at $dst_off..$at in order; nothing else changed"
