#!/usr/bin/env bash
# Configure (once) and build blkcopy into DIR (default: build), with extra meson options.
set -euo pipefail
dir=${1:-build}
shift || true
top=$(cd "$(dirname "$0")/.." && pwd)
cd "$top"
[ -f "$dir/build.ninja" ] || meson setup "$dir" "$@" >/dev/null
ninja -C "$dir" >/dev/null
