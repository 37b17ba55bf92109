#!/bin/bash
# SPDX-License-Identifier: MIT
# The resume journal (copy --journal / --resume, blkcopy journal): a 512 MiB
# copy killed with SIGKILL at 20 random moments (some resumes killed too),
# each time resumed to a destination equal to the source byte for byte,
# emulated and native (the file backend); a resume refused, with nothing
# written, when the ranges, the offset or a device differ; a torn journal
# read safely and resumed; an existing journal never overwritten.
set -uo pipefail
. "$(dirname "${BASH_SOURCE[0]}")/lib.sh"

command -v jq >/dev/null || { echo "FAIL $T_NAME: jq is required"; exit 1; }

D=$T_DIR
MiB=1048576
N=$((512 * MiB))

rand_file "$D/a" "$N" && rand_file "$D/b" "$N" && cp "$D/b" "$D/dst" ||
	{ echo "FAIL $T_NAME: cannot create the files in $D (space?)"; exit 1; }

# killed_copy MS ARGS...: blkcopy copy ARGS, SIGKILLed after MS milliseconds (or done before).
killed_copy() {
	local ms=$1 pid
	shift
	"$BLKCOPY" copy --no-progress "$@" >"$T_OUT" 2>"$T_ERR" &
	pid=$!
	sleep "$(awk -v m="$ms" 'BEGIN { printf "%.3f", m / 1000 }')"
	kill -9 "$pid" 2>/dev/null
	wait "$pid" 2>/dev/null
	return 0
}

# 20 rounds, copying a and b onto dst in turn (dst always holds the other one
# first), killed at a random moment; every fourth resume is killed as well.
case_kill_resume() {
	local k src mode ms committed mid=0
	for ((k = 0; k < 20; k++)); do
		src=$D/a
		((k % 2)) && src=$D/b
		mode=()
		((k % 4 < 2)) && mode=(--no-offload)	# else the file backend's copy_file_range
		rm -f "$D/j"
		ms=$((20 + RANDOM % 600))
		# The rate keeps the copy about 0.7 s long, so that the kill comes before its end.
		killed_copy "$ms" "${mode[@]}" --rate 768m --journal "$D/j" "$src" "$D/dst"
		[[ -s $D/j ]] || { WHY="round $k: no journal after ${ms} ms"; return 1; }
		committed=$("$BLKCOPY" journal --json "$D/j" | jq -r .committed)
		((committed < N)) && mid=$((mid + 1))
		if ((k % 4 == 3)); then
			killed_copy $((RANDOM % 300)) "${mode[@]}" --resume --journal "$D/j" "$src" "$D/dst"
		fi
		bcp_ok copy --no-progress "${mode[@]}" --resume --journal "$D/j" "$src" "$D/dst" || return 1
		t_ok "round $k (killed after $ms ms, $committed bytes recorded): the destination differs" \
			cmp -s "$src" "$D/dst" || return 1
		json_check <("$BLKCOPY" journal --json "$D/j") ".complete and .committed == $N" \
			"round $k: the journal is not complete" || return 1
	done
	echo "INFO $T_NAME: $mid of 20 copies were killed before their end"
	t_ok "only $mid of 20 kills came before the copy ended: nothing was resumed" test "$mid" -ge 10
}

# A resume that does not match the journal is refused and writes nothing.
case_refused() {
	local before
	rm -f "$D/jr"
	cp "$D/b" "$D/dst"
	killed_copy 150 --no-offload --rate 512m --range 0:256m --journal "$D/jr" "$D/a" "$D/dst"
	before=$(sum_file "$D/dst")
	bcp copy --resume --journal "$D/jr" --range 0:128m "$D/a" "$D/dst"
	t_ok "other ranges: expected a refusal, got $(bcp_what)" test "$RC" -eq 1 || return 1
	t_ok "other ranges: no reason: $(bcp_what)" grep -q "ranges or the destination offset differ" "$T_ERR" || return 1
	bcp copy --resume --journal "$D/jr" --range 0:256m --dst-offset 4096 "$D/a" "$D/dst"
	t_ok "another offset: expected a refusal, got $(bcp_what)" test "$RC" -eq 1 || return 1
	cp "$D/a" "$D/a2"
	bcp copy --resume --journal "$D/jr" --range 0:256m "$D/a2" "$D/dst"
	t_ok "another source file: expected a refusal, got $(bcp_what)" test "$RC" -eq 1 -a -n "$(grep 'the source is not the device' "$T_ERR")" || return 1
	truncate -s $((N + 4096)) "$D/a2"
	cp "$D/dst" "$D/dst2"
	bcp copy --resume --journal "$D/jr" --range 0:256m "$D/a" "$D/dst2"
	t_ok "another destination: expected a refusal, got $(bcp_what)" test "$RC" -eq 1 -a -n "$(grep 'the destination is not the device' "$T_ERR")" || return 1
	t_ok "a refused resume wrote" test "$(sum_file "$D/dst")" = "$before" || return 1
	rm -f "$D/a2" "$D/dst2"
	# The matching command goes on.
	bcp_ok copy --resume --journal "$D/jr" --range 0:256m "$D/a" "$D/dst" || return 1
	t_ok "the resumed copy differs" same_region "$D/a" 0 "$D/dst" 0 $((256 * MiB))
}

# A journal cut in the middle of a record: the last whole record counts, and resuming goes on from it.
case_torn() {
	local size
	rm -f "$D/jt"
	cp "$D/b" "$D/dst"
	killed_copy 300 --no-offload --rate 512m --journal "$D/jt" "$D/a" "$D/dst"
	size=$(stat -c %s "$D/jt")
	t_ok "too few records to tear: $("$BLKCOPY" journal "$D/jt")" test "$size" -gt 100 || return 1
	truncate -s $((size - 5)) "$D/jt"
	bcp_ok journal --json "$D/jt" || return 1
	json_check "$T_OUT" '.torn and (.complete | not) and .committed < .total' "the torn record was not ignored" || return 1
	bcp_ok copy --no-progress --resume --journal "$D/jt" "$D/a" "$D/dst" || return 1
	t_ok "resumed after a torn record: the destination differs" cmp -s "$D/a" "$D/dst" || return 1
	json_check <("$BLKCOPY" journal --json "$D/jt") '.complete and (.torn | not)' \
		"the torn tail was not replaced by whole records" || return 1
	head -c 100 /dev/urandom >"$D/junk"
	bcp journal "$D/junk"
	t_ok "garbage taken for a journal: $(bcp_what)" test "$RC" -eq 1 -a -n "$(grep 'not a blkcopy journal' "$T_ERR")"
}

# An existing journal is never started over; --resume needs one.
case_exists() {
	local before
	before=$(sum_file "$D/dst")
	bcp copy --journal "$D/jt" "$D/a" "$D/dst"
	t_ok "an existing journal overwritten: $(bcp_what)" test "$RC" -eq 1 -a -n "$(grep -- '--resume continues' "$T_ERR")" || return 1
	bcp copy --resume --journal "$D/none" "$D/a" "$D/dst"
	t_ok "--resume without a journal: $(bcp_what)" test "$RC" -eq 1 || return 1
	bcp copy --resume "$D/a" "$D/dst"
	t_ok "--resume without --journal: $(bcp_what)" test "$RC" -eq 2 || return 1
	t_ok "a refused copy wrote" test "$(sum_file "$D/dst")" = "$before" || return 1
	# A complete journal: nothing to do.
	bcp_ok copy --resume --journal "$D/jt" "$D/a" "$D/dst" || return 1
	t_ok "a complete copy resumed: $(cat "$T_OUT")" grep -q "complete; nothing to do" "$T_OUT"
}

t_case kill-resume-20 case_kill_resume
t_case resume-refused case_refused
t_case torn-journal case_torn
t_case journal-exists case_exists
t_finish
