#!/usr/bin/env bash
# SPDX-License-Identifier: MIT
# run.sh TARGET SEEDS: fuzz TARGET for FUZZ_SECONDS (default 30) from the seed
# corpus SEEDS (read only: new inputs go to a scratch directory).  Exit 0 when
# nothing broke; otherwise the input that broke it is kept in FUZZ_ARTIFACTS
# (default /tmp/blkcopy-fuzz) to be fixed and added to SEEDS.
set -uo pipefail
target=$1 seeds=$2
secs=${FUZZ_SECONDS:-30}
art=${FUZZ_ARTIFACTS:-/tmp/blkcopy-fuzz}/$(basename "$target")
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
mkdir -p "$art"
"$target" -max_total_time="$secs" -error_exitcode=1 -timeout=10 -rss_limit_mb=2048 -max_len=16384 \
	-print_final_stats=1 -artifact_prefix="$art/" "$work" "$seeds" 2>"$work.log"
rc=$?
runs=$(sed -n 's/^stat::number_of_executed_units: *//p' "$work.log")
cov=$(grep -o 'cov: [0-9]*' "$work.log" | tail -1)
echo "$(basename "$target"): ${runs:-?} executions in $secs s, $cov, exit $rc"
[ $rc -eq 0 ] || { tail -40 "$work.log"; echo "inputs that broke it: $art"; }
rm -f "$work.log"
exit $rc
