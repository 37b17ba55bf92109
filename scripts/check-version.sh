#!/usr/bin/env bash
# SPDX-License-Identifier: MIT
# One version source: meson's project version is what the generated header,
# the library, the CLI and pkg-config say, and the version script's newest
# node is its MAJOR.MINOR.
#   check-version.sh VERSION MAP HEADER BLKCOPY PCFILE
set -euo pipefail
version=$1 map=$2 header=$3 cli=$4 pc=$5
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
echo "check-version: $version everywhere"
