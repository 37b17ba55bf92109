#!/bin/bash
# SPDX-License-Identifier: MIT
# The Python module (import blkcopy, built beside the lab's blkcopy) against
# the lab's iSCSI target: a copy between two LUNs by URL, done by the
# target (EXTENDED COPY: every byte native), checked in the LUNs' images; a
# job driven by iteration; a LUN that does not exist as OSError with its
# errno, nothing written.
. "$(dirname "${BASH_SOURCE[0]}")/lib.sh"

PY_MODULE_DIR=$(cd "$(dirname "$BLKCOPY")/../python" 2>/dev/null && pwd)

py() {
	PYTHONPATH=$PY_MODULE_DIR timeout -k 5 120 /usr/bin/python3 - "$@" >"$T_OUT" 2>"$T_ERR"
	RC=$?
}

have_module() {
	if [[ ${LAB_SANITIZE:-0} == 1 ]]; then
		WHY="a sanitizer build's module needs its runtime loaded first; the plain lab runs this"
		return 1
	fi
	if [[ -z $PY_MODULE_DIR ]] || ! ls "$PY_MODULE_DIR"/blkcopy.*.so >/dev/null 2>&1; then
		WHY="no Python module beside $BLKCOPY (python3-dev missing when it was built?)"
		return 1
	fi
}

case_python_cross_lun() {
	have_module || return 77
	local src=$(img ALPHA0) dst=$(img ALPHA1)
	fill_random "$src" 3m 2m && fill_random "$dst" 10m 4m || { WHY="fill failed"; return 1; }
	py "$ISCSI_ALPHA0" "$ISCSI_ALPHA1" <<'PY'
import sys, blkcopy
src, dst = sys.argv[1], sys.argv[2]
MiB = 1 << 20
with blkcopy.open(src) as s, blkcopy.open(dst, write=True) as d:
    assert s.info()["kind"] == "iscsi", s.info()
    n = blkcopy.copy(s, d, [(3 * MiB, MiB), (4 * MiB, MiB)], dst_offset=11 * MiB, native_min=0)
    assert n == 2 * MiB, n
    job = blkcopy.submit(s, d, [(3 * MiB, 512 << 10)], dst_offset=13 * MiB, native_min=0)
    last = [p for p in job][-1]
    assert job.finish() == 512 << 10
    assert last.methods == {"scsi_xcopy": 512 << 10}, last
    print("methods", last.methods)
PY
	[[ $RC -eq 0 ]] || { WHY="python: rc $RC: $(tail -c 400 "$T_ERR")"; return 1; }
	cmp -s <(dd if="$src" bs=1M skip=3 count=2 status=none) <(dd if="$dst" bs=1M skip=11 count=2 status=none) ||
		{ WHY="LUN 1 does not hold the copy at 11 MiB"; return 1; }
	cmp -s <(dd if="$src" bs=512k skip=6 count=1 status=none) <(dd if="$dst" bs=512k skip=26 count=1 status=none) ||
		{ WHY="LUN 1 does not hold the job's copy at 13 MiB"; return 1; }
	info "$T_NAME: $(cat "$T_OUT")"
}

case_python_missing_lun() {
	have_module || return 77
	local before
	before=$(img_sum ALPHA1)
	py "${ISCSI_ALPHA0%/*}/99" "$ISCSI_ALPHA1" <<'PY'
import errno, sys, blkcopy
try:
    blkcopy.copy(sys.argv[1], sys.argv[2], [(0, 4096)])
except OSError as e:
    print(e.errno, e.strerror)
    sys.exit(0 if e.errno and e.strerror else 1)
sys.exit(1)
PY
	[[ $RC -eq 0 ]] || { WHY="python: no OSError for a missing LUN: rc $RC: $(tail -c 300 "$T_OUT" "$T_ERR")"; return 1; }
	[[ $(img_sum ALPHA1) == "$before" ]] || { WHY="LUN 1 changed"; return 1; }
	info "$T_NAME: missing LUN: OSError $(cat "$T_OUT")"
}

run_case python-cross-lun case_python_cross_lun
run_case python-missing-lun case_python_missing_lun
finish
