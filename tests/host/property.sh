#!/bin/bash
# SPDX-License-Identifier: MIT
# The whole request path against a model (tests/host/property.c): random
# requests, valid and invalid, on regular files and (as root) on loop
# devices of 512- and 4096-byte blocks, with a second handle on the source's
# medium so that sources may overlap the destination.  PROPERTY_REQUESTS
# (default 2000) per case, PROPERTY_SEED (default: the time) to replay one.
set -uo pipefail
. "$(dirname "${BASH_SOURCE[0]}")/lib.sh"

PROP=${PROPERTY:-$(dirname "$BLKCOPY")/../tests/host/property}
N=${PROPERTY_REQUESTS:-2000}
SEED=${PROPERTY_SEED:-$(date +%s)}
D=$T_DIR
[[ -x $PROP ]] || { echo "FAIL $T_NAME: $PROP is missing"; exit 1; }

prop() {	# prop SRC DST SAME
	local out rc
	out=$(timeout -k 5 600 "$PROP" "$SEED" "$N" "$@" 2>&1)
	rc=$?
	echo "# ${out//$'\n'/$'\n'# }"
	[[ $rc -eq 0 ]] ||
		{ WHY="seed $SEED, rc $rc: $(grep -m1 '^FAIL' <<<"$out" || tail -c 300 <<<"$out")"; return 1; }
}

case_files() {
	rand_file "$D/fa" $((256 * 1024))
	rand_file "$D/fb" $((192 * 1024))
	prop "$D/fa" "$D/fb" "$D/fa"
}

case_loops() {
	[[ $EUID -eq 0 ]] && command -v losetup >/dev/null || { WHY="needs root and losetup"; return 77; }
	local la lb
	rand_file "$D/la.img" $((1024 * 1024))
	rand_file "$D/lb.img" $((768 * 1024))
	loop_attach la --direct-io=on "$D/la.img" || { WHY="losetup failed"; return 1; }
	loop_attach lb --direct-io=on -b 4096 "$D/lb.img" || { WHY="losetup -b 4096 failed"; return 1; }
	# 512-byte source, 4096-byte destination; the source's backing file is its medium.
	prop "$la" "$lb" "$D/la.img"
}

t_case property-files case_files
t_case property-loops case_loops
t_finish
