#!/bin/bash
# SPDX-License-Identifier: MIT
# Interrupted copies (root + loop devices): a copy killed with SIGKILL in the
# middle leaves the source intact and nothing outside the destination span
# changed; a `copy --json` interrupted with SIGINT cancels, exits non-zero,
# says so, reports how much is committed (and that prefix holds the data),
# and changes nothing outside the destination span.
set -uo pipefail
. "$(dirname "${BASH_SOURCE[0]}")/lib.sh"

need_loop
command -v jq >/dev/null || { echo "FAIL $T_NAME: jq is required"; exit 1; }

D=$T_DIR
MiB=1048576
DST_OFF=$MiB
N=$((64 * MiB))		# bytes copied (grown by calibrate if too fast)
MAX_N=$((512 * MiB))
SLOW=()			# options that make the copy slow
MS=0			# duration of a full copy with SLOW, ms
LS="" LD=""

now_ms() { echo $(($(date +%s%N) / 1000000)); }

# setup: source image of N random bytes (direct-I/O loop device LS) and a
# destination image of N + 2 MiB (buffered loop device LD); saved copies.
setup() {
	[[ -n $LS ]] && loop_detach "$LS"
	[[ -n $LD ]] && loop_detach "$LD"
	LS="" LD=""
	rand_file "$D/s.img" "$N" && rand_file "$D/d.img" $((N + 2 * MiB)) ||
		{ WHY="cannot create the images in $D (space?)"; return 1; }
	SRC_SUM=$(sum_file "$D/s.img")
	HEAD_SUM=$(sum_region "$D/d.img" 0 "$DST_OFF")
	TAIL_SUM=$(sum_region "$D/d.img" $((DST_OFF + N)) $((2 * MiB - DST_OFF)))
	loop_attach LS --direct-io=on "$D/s.img" || { WHY="losetup failed"; return 1; }
	loop_attach LD --direct-io=off "$D/d.img" || { WHY="losetup failed"; return 1; }
}

# check_after WHAT: source intact, nothing outside the destination span changed.
check_after() {
	# Let any I/O still owned by the dead process's ring drain.
	sleep 0.3
	blockdev --flushbufs "$LD" 2>/dev/null
	if [[ $(sum_file "$D/s.img") != "$SRC_SUM" ]]; then
		WHY="$1: the source changed"
		return 1
	fi
	if [[ $(sum_region "$D/d.img" 0 "$DST_OFF") != "$HEAD_SUM" ]]; then
		WHY="$1: the destination changed before the destination span"
		return 1
	fi
	if [[ $(sum_region "$D/d.img" $((DST_OFF + N)) $((2 * MiB - DST_OFF))) != "$TAIL_SUM" ]]; then
		WHY="$1: the destination changed after the destination span"
		return 1
	fi
	if [[ $(stat -c %s "$D/d.img") -ne $((N + 2 * MiB)) ]]; then
		WHY="$1: the destination image changed size"
		return 1
	fi
	return 0
}

copy_args() {
	printf '%s\n' copy "${SLOW[@]}" --range "0:$N" --dst-offset "$DST_OFF" "$LS" "$LD"
}

# calibrate: find slow options blkcopy accepts, and a size that takes at
# least ~1 s; the full copy is also checked.
calibrate() {
	local opts t0 t1 ok=0
	# Emulation: a native copy between loop devices over one file system is too fast to catch.
	for opts in "--no-offload --queue-depth 1 --chunk-size 4k --max-inflight 4k" \
		"--no-offload --queue-depth 1 --chunk-size 64k --max-inflight 64k" \
		"--no-offload --queue-depth 1 --chunk-size 64k --max-inflight 1m"; do
		read -r -a SLOW <<<"$opts"
		bcp copy "${SLOW[@]}" --range 0:4096 --dst-offset "$DST_OFF" "$LS" "$LD"
		if [[ $RC -eq 0 ]]; then
			ok=1
			break
		fi
	done
	if [[ $ok -ne 1 ]]; then
		WHY="blkcopy refused every set of slow options, last: ${SLOW[*]}: $(bcp_what)"
		return 1
	fi
	while :; do
		setup || return 1
		t0=$(now_ms)
		# shellcheck disable=SC2046
		bcp $(copy_args)
		t1=$(now_ms)
		MS=$((t1 - t0))
		if [[ $RC -ne 0 ]]; then
			WHY="full copy with ${SLOW[*]} failed: $(bcp_what)"
			return 1
		fi
		if ! cmp -s "$D/s.img" <(read_region "$D/d.img" "$DST_OFF" "$N"); then
			WHY="full copy with ${SLOW[*]}: destination span differs from the source"
			return 1
		fi
		check_after "full copy" || return 1
		echo "# calibrate: $((N / MiB)) MiB with ${SLOW[*]}: $MS ms"
		if [[ $MS -ge 1000 || $N -ge $MAX_N ]]; then
			break
		fi
		N=$((N * 2))
	done
	if [[ $MS -lt 300 ]]; then
		WHY="a $((N / MiB)) MiB copy takes only $MS ms; cannot interrupt it reliably"
		return 1
	fi
	return 0
}

# start_copy [EXTRA-ARGS...]: run the copy in the background; PID in $BG.
BG=0
start_copy() {
	# Background jobs of a non-interactive shell ignore SIGINT; give blkcopy
	# the default disposition back.
	# shellcheck disable=SC2046
	env --default-signal=INT "$BLKCOPY" $(copy_args) "$@" >"$T_OUT" 2>"$T_ERR" &
	BG=$!
	T_PIDS+=("$BG")
}

# wait_bg SECONDS: wait for $BG; RC = its status, or 255 if it is still
# running after SECONDS (then it is killed).
wait_bg() {
	local i
	for ((i = 0; i < $1 * 50; i++)); do
		if ! kill -0 "$BG" 2>/dev/null; then
			break
		fi
		# A zombie still answers kill -0: check its state.
		if [[ $(proc_state "$BG") == Z* ]]; then
			break
		fi
		sleep 0.02
	done
	if kill -0 "$BG" 2>/dev/null && [[ $(proc_state "$BG") != Z* ]]; then
		kill -KILL "$BG" 2>/dev/null
		{ wait "$BG"; } 2>/dev/null
		RC=255
	else
		wait "$BG"
		RC=$?
	fi
	T_PIDS=()
}

proc_state() {
	local s
	s=$(cat "/proc/$1/stat" 2>/dev/null) || return 0
	s=${s##*) }
	echo "${s%% *}"
}

alive() {
	kill -0 "$BG" 2>/dev/null && [[ $(proc_state "$BG") != Z* ]]
}

sleep_ms() {
	sleep "$(printf '%d.%03d' $(($1 / 1000)) $(($1 % 1000)))"
}

case_sigkill() {
	local delay=$((MS / 2)) try done_bytes
	for try in 1 2 3; do
		setup || return 1
		start_copy
		sleep_ms "$delay"
		if alive; then
			# (stderr: no "Killed" job notice from the shell)
			{ kill -KILL "$BG"; wait_bg 10; } 2>/dev/null
			if [[ $RC -eq 137 ]]; then
				# How far did it get?  (Informational.)
				done_bytes=$(cmp "$D/s.img" <(read_region "$D/d.img" "$DST_OFF" "$N") 2>/dev/null |
					awk '{ print $5 }' | tr -d ,)
				echo "# sigkill: killed after ${delay} ms; first difference at byte ${done_bytes:-none} of $N"
				check_after "SIGKILL mid-copy"
				return
			fi
		else
			wait_bg 10
		fi
		echo "# sigkill: try $try: the copy ended (rc $RC) before the kill at ${delay} ms; retrying earlier"
		delay=$((delay / 3))
	done
	WHY="could not kill the copy in the middle (it always finished first); not meaningful"
	return 1
}

# wait_started: wait (up to 10 s) until the first 4 KiB of the copy are at the
# destination, i.e. blkcopy is copying (and has its signal handling set up).
wait_started() {
	local i
	read_region "$D/s.img" 0 4096 >"$D/first.blk"
	for ((i = 0; i < 1000; i++)); do
		alive || return 1
		if read_region "$D/d.img" "$DST_OFF" 4096 | cmp -s - "$D/first.blk"; then
			return 0
		fi
		sleep 0.01
	done
	return 1
}

# Longest time blkcopy may take to stop after SIGINT.  What is in flight is at
# most --max-inflight (4 KiB here, one I/O): it should stop at once.
SIGINT_MAX_MS=${SIGINT_MAX_MS:-500}

# case_sigint early|mid: SIGINT right after the copy visibly started, or at a
# third of its calibrated duration.
case_sigint() {
	local mode=$1 delay=$((MS / 3)) try committed t0 t1 lat
	for try in 1 2 3; do
		setup || return 1
		start_copy --json
		if [[ $mode == early ]]; then
			if ! wait_started; then
				wait_bg 10
				WHY="the copy did not start within 10 s or ended at once (rc $RC)"
				return 1
			fi
		else
			sleep_ms "$delay"
		fi
		if ! alive; then
			wait_bg 10
			echo "# sigint-$mode: try $try: the copy ended (rc $RC) before SIGINT at ${delay} ms; retrying earlier"
			delay=$((delay / 3))
			continue
		fi
		t0=$(now_ms)
		kill -INT "$BG"
		wait_bg 20
		t1=$(now_ms)
		lat=$((t1 - t0))
		if [[ $RC -eq 255 ]]; then
			WHY="blkcopy did not exit within 20 s of SIGINT (killed)"
			return 1
		fi
		if [[ $RC -eq 0 ]]; then
			# Alive when signalled, but with nothing left to cancel (the last
			# writes or the final flush): success is the honest answer.  Only
			# a complete copy excuses it; try earlier.
			if json_check "$T_OUT" ".committed == $N and .total == $N" "" 2>/dev/null; then
				echo "# sigint-$mode: try $try: SIGINT at ${delay} ms landed as the copy finished (exit 0 after $lat ms); retrying earlier"
				delay=$((delay / 3))
				continue
			fi
			WHY="SIGINT while copying did not cancel: exit 0 after $lat ms ($(jq -c '{committed,total}' <"$T_OUT" 2>/dev/null))"
			return 1
		fi
		echo "# sigint-$mode: rc $RC after $lat ms; stderr: $(head -c 200 "$T_ERR" | tr '\n' ' ')"
		t_ok "no 'cancel' message on stderr after SIGINT: $(bcp_what)" grep -qi 'cancel' "$T_ERR" || return 1
		t_ok "stderr has no 'blkcopy: ' line after SIGINT: $(bcp_what)" grep -q '^blkcopy: ' "$T_ERR" || return 1
		cp "$T_OUT" "$D/int.json"
		json_check "$D/int.json" 'type == "object"' "copy --json printed no JSON object after SIGINT" || return 1
		json_check "$D/int.json" '(.error | type) == "string" and (.error | test("cancel"; "i"))' \
			"JSON error does not say the copy was cancelled" || return 1
		json_check "$D/int.json" ".total == $N and .committed < .total and .bytes < .total" \
			"JSON total/committed/bytes after a cancel" || return 1
		committed=$(jq -r .committed <"$D/int.json")
		echo "# sigint-$mode: committed $committed of $N"
		check_after "SIGINT" || return 1
		# committed: dst_off .. dst_off + committed holds the copied data.
		if ! same_region "$D/s.img" 0 "$D/d.img" "$DST_OFF" "$committed"; then
			WHY="the committed prefix ($committed bytes) does not hold the source data"
			return 1
		fi
		if [[ $lat -gt $SIGINT_MAX_MS ]]; then
			WHY="blkcopy took $lat ms to stop after SIGINT (limit $SIGINT_MAX_MS ms, 4 KiB in flight)"
			return 1
		fi
		return 0
	done
	WHY="the copy always ended before the SIGINT; not meaningful"
	return 1
}

if ! setup; then
	echo "FAIL setup: $WHY"
	exit 1
fi
t_case calibrate calibrate
if [[ $T_FAILS -ne 0 ]]; then
	echo "FAIL sigkill-mid-copy: no calibration"
	echo "FAIL sigint-early: no calibration"
	echo "FAIL sigint-mid: no calibration"
	exit 1
fi
t_case sigkill-mid-copy case_sigkill
t_case sigint-early case_sigint early
t_case sigint-mid case_sigint mid
t_finish
