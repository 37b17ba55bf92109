#!/bin/bash
# SPDX-License-Identifier: MIT
# With LAB_SANITIZE=1 the lab's blkcopy and its programs are built with
# ASan+UBSan: check that the runtime is really there in the guest (its
# options reach the programs), so that a silent run means a clean one.
. "$(dirname "${BASH_SOURCE[0]}")/lib.sh"

case_sanitizer_active() {
	[[ ${LAB_SANITIZE:-0} == 1 ]] || { WHY="not a sanitizer run (LAB_SANITIZE=1)"; return 77; }
	local out p
	for p in "$BLKCOPY" "$LAB_BIN/job_drive"; do
		out=$(ASAN_OPTIONS=help=1 "$p" --version 2>&1)
		[[ $out == *"Available flags for AddressSanitizer"* ]] ||
			{ WHY="$p: no AddressSanitizer runtime answered"; return 1; }
	done
	[[ ${ASAN_OPTIONS:-} == *detect_leaks=1* && ${UBSAN_OPTIONS:-} == *halt_on_error=1* ]] ||
		{ WHY="sanitizer options did not reach the guest: '${ASAN_OPTIONS:-}' '${UBSAN_OPTIONS:-}'"; return 1; }
}

run_case sanitizer-active case_sanitizer_active
finish
