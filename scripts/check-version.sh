#!/usr/bin/env bash
# SPDX-License-Identifier: MIT
# One version source: meson's project version is what the generated header,
# the library, the CLI and pkg-config say, and the version script's newest
# node is its MAJOR.MINOR; the Debian changelog's newest entry is that
# version, and the symbols file names every symbol of the version script.
#   check-version.sh VERSION MAP HEADER BLKCOPY PCFILE CHANGELOG SYMBOLS
set -euo pipefail
version=$1 map=$2 header=$3 cli=$4 pc=$5 changelog=$6 symbols=$7
fail() { echo "check-version: $*" >&2; exit 1; }

IFS=. read -r major minor patch <<<"$version"
newest=$(grep -oE '^BLKCOPY_[0-9]+\.[0-9]+' "$map" | tail -1)
[ "$newest" = "BLKCOPY_$major.$minor" ] || fail "newest node in $map is $newest, the project is $version"
for part in MAJOR:$major MINOR:$minor PATCH:$patch; do
	grep -qE "^#define BLKCOPY_VERSION_${part%%:*} ${part#*:}\$" "$header" ||
		fail "$header: BLKCOPY_VERSION_${part%%:*} is not ${part#*:}"
done
[ "$("$cli" --version)" = "blkcopy $version" ] || fail "blkcopy --version says '$("$cli" --version)'"
grep -qx "Version: $version" "$pc" || fail "$pc does not say Version: $version"
deb=$(sed -n '1s/^blkcopy (\([^)]*\)).*/\1/p' "$changelog")
[ "$deb" = "$version" ] || fail "$changelog: newest entry is $deb, the project is $version"
for sym in $(grep -oE '^\s*blkcopy_[a-z0-9_]+;' "$map" | tr -d ' \t;'); do
	grep -qE "^ $sym@BLKCOPY_[0-9.]+ " "$symbols" || fail "$symbols lacks $sym"
done
echo "check-version: $version everywhere"
