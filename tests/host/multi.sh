#!/bin/bash
# SPDX-License-Identifier: MIT
# One copy to several destinations (copy SRC DST DST...): methods mixed in
# one job (a file on XFS by reflink, loop devices emulated from one read of
# the source, counted on the source's loop device), --dst-offset once or per
# DST, every destination checked before anything is written (overlaps among
# destinations, with the source, too many), one destination failing while
# the others finish, --verify and the journal over several destinations.
set -uo pipefail
T_NAME=multi
. "$(dirname "${BASH_SOURCE[0]}")/lib.sh"
need_loop
command -v jq >/dev/null || { echo "FAIL $T_NAME: jq is required"; exit 1; }
command -v mkfs.xfs >/dev/null || t_skip_script "mkfs.xfs not found (xfsprogs)"

D=$T_DIR
MiB=1048576
N=$((48 * MiB))

truncate -s 400M "$D/xfs.fs"
loop_attach XDEV "$D/xfs.fs" || t_skip_script "cannot attach a loop device"
mkfs.xfs -q -f -m reflink=1 "$XDEV" && mkdir -p "$D/xfs" && mount "$XDEV" "$D/xfs" ||
	t_skip_script "cannot make and mount XFS"
T_MOUNTS+=("$D/xfs")
X=$D/xfs

rand_file "$X/a" "$N" && rand_file "$D/old" "$((64 * MiB))" ||
	{ echo "FAIL $T_NAME: cannot create the files (space?)"; exit 1; }

# fresh NAME...: each $D/NAME a copy of $D/old (what "unchanged" is checked against).
fresh() {
	local n
	for n in "$@"; do
		cp "$D/old" "$D/$n" || return 1
	done
}

# sectors_read DEV: 512-byte sectors read from a block device so far.
sectors_read() {
	awk '{ print $3 }' "/sys/block/$(basename "$1")/stat"
}

# Reflink to one, emulation to two more: those two from one read of the source.
case_mixed_methods() {
	local src e1 e2 before after read
	cp "$D/old" "$X/r" && fresh e1 e2 || return 1
	loop_attach src --direct-io=on "$X/a" || return 1
	loop_attach e1 --direct-io=on "$D/e1" || return 1
	loop_attach e2 --direct-io=on "$D/e2" || return 1
	before=$(sectors_read "$src")
	bcp_ok copy --no-progress --json "$src" "$X/r" "$e1" "$e2" -d 1m -d 0 -d 8m || return 1
	after=$(sectors_read "$src")
	read=$(((after - before) * 512))
	ERRS=""
	acc json_check "$T_OUT" '.destinations | length == 3' "three destinations"
	acc json_check "$T_OUT" '.destinations[0].method == "reflink"' "the file on XFS by reflink"
	acc json_check "$T_OUT" '.destinations[1].method == "emulate" and .destinations[2].method == "emulate"' \
		"the loop devices over tmpfs emulated"
	acc json_check "$T_OUT" ".bytes == $((3 * N)) and .error == null and .destinations[2].committed == $N" \
		"every byte to every destination"
	acc json_check "$T_OUT" '.destinations[2].dst_offset == 8388608' "the third at its own offset"
	# Reflink reads nothing through the loop device; the two emulated ones share each read.
	acc t_ok "the source was read $read bytes for a $N-byte copy to two emulated destinations" \
		test "$read" -ge "$N" -a "$read" -lt $((N + N / 2))
	loop_detach "$src"
	loop_detach "$e1"
	loop_detach "$e2"
	acc verify_copy "$X/a" "$X/r" "$D/old" "$MiB" "0:$N"
	acc verify_copy "$X/a" "$D/e1" "$D/old" 0 "0:$N"
	acc verify_copy "$X/a" "$D/e2" "$D/old" "$((8 * MiB))" "0:$N"
	acc_done
}

# --dst-offset: once for every destination, once per destination, or refused.
case_offsets() {
	fresh d1 d2 || return 1
	bcp_ok copy --no-progress --range 4096:1m --range 4m:64k -d 2m "$X/a" "$D/d1" "$D/d2" || return 1
	ERRS=""
	acc verify_copy "$X/a" "$D/d1" "$D/old" $((2 * MiB)) 4096:1048576 4194304:65536
	acc verify_copy "$X/a" "$D/d2" "$D/old" $((2 * MiB)) 4096:1048576 4194304:65536
	fresh d1 d2 d3 || return 1
	bcp copy --no-progress -d 0 -d 1m "$X/a" "$D/d1" "$D/d2" "$D/d3"
	acc t_ok "two offsets for three destinations: $(bcp_what)" \
		test "$RC" -eq 2 -a -n "$(grep -- '--dst-offset given 2 times for 3' "$T_ERR")"
	acc verify_outside "$D/d1" "$D/old" 0 0
	acc_done
}

# Nothing is written anywhere when one destination is refused.
case_refused_before_writes() {
	local args=() i l
	fresh d1 d2 d3 || return 1
	ERRS=""
	# The same file twice, overlapping.
	bcp copy --no-progress --range 0:4m "$X/a" "$D/d1" "$D/d2" "$D/d2" -d 0 -d 0 -d 2m
	acc t_ok "overlapping destinations accepted: $(bcp_what)" \
		test "$RC" -eq 1 -a -n "$(grep 'destination 3 overlaps destination 2' "$T_ERR")"
	# A loop device over a destination file, overlapping it.
	loop_attach l "$D/d3" || return 1
	bcp copy --no-progress --range 0:4m "$X/a" "$D/d1" "$D/d3" "$l" -d 0 -d 8m -d 10m
	acc t_ok "a loop device over a destination overlapping it accepted: $(bcp_what)" \
		test "$RC" -eq 1 -a -n "$(grep 'overlaps destination 2' "$T_ERR")"
	loop_detach "$l"
	# A destination over the source's own bytes.
	bcp copy --no-progress --range 0:4m "$X/a" "$D/d1" "$X/a" -d 0 -d 2m
	acc t_ok "a destination over the source accepted: $(bcp_what)" \
		test "$RC" -eq 1 -a -n "$(grep 'destination 2' "$T_ERR")"
	# One destination too small.
	truncate -s 1m "$D/tiny"
	bcp copy --no-progress --range 0:4m "$X/a" "$D/d1" "$D/tiny"
	acc t_ok "a destination too small accepted: $(bcp_what)" \
		test "$RC" -eq 1 -a -n "$(grep 'destination 2 (.*tiny)' "$T_ERR")"
	for n in d1 d2 d3; do
		acc verify_outside "$D/$n" "$D/old" 0 0
	done
	# More destinations than a job takes.
	for ((i = 0; i < 17; i++)); do
		args+=("$D/d1")
	done
	bcp copy --no-progress --range 0:4k "$X/a" "${args[@]}"
	acc t_ok "17 destinations accepted: $(bcp_what)" \
		test "$RC" -eq 2 -a -n "$(grep 'at most 16 destinations' "$T_ERR")"
	acc verify_outside "$D/d1" "$D/old" 0 0
	acc_done
}

# A destination whose writes fail (its file system fills up) stops alone; it
# holds exactly the committed prefix it reports.
case_one_fails() {
	local c
	fresh d1 d2 || return 1
	mkdir -p "$D/small" && mount -t tmpfs -o size=20m tmpfs "$D/small" || return 1
	T_MOUNTS+=("$D/small")
	truncate -s 64M "$D/small/full"
	bcp copy --no-progress --no-offload --json "$X/a" "$D/d1" "$D/small/full" "$D/d2" -d 0 -d 0 -d 1m
	ERRS=""
	acc t_ok "a failing destination: exit 1 expected, $(bcp_what)" test "$RC" -eq 1
	acc json_check "$T_OUT" '.destinations[1].error != null and .destinations[1].committed <= 20971520' \
		"the full one failed"
	acc json_check "$T_OUT" ".destinations[0].error == null and .destinations[2].error == null and .destinations[2].committed == $N" \
		"the others finished"
	c=$(jq '.destinations[1].committed' <"$T_OUT")
	acc t_ok "nothing committed on the full one" test "${c:-0}" -gt 0
	acc same_region "$X/a" 0 "$D/small/full" 0 "${c:-0}"
	acc verify_copy "$X/a" "$D/d1" "$D/old" 0 "0:$N"
	acc verify_copy "$X/a" "$D/d2" "$D/old" "$MiB" "0:$N"
	acc_done
}

# --verify on every destination, emulated from one read and natively.
case_verify() {
	fresh d1 d2 || return 1
	cp "$D/old" "$X/r2" || return 1
	bcp_ok copy --no-progress --json --verify "$X/a" "$D/d1" "$D/d2" "$X/r2" -d 0 -d 4m -d 0 || return 1
	ERRS=""
	acc json_check "$T_OUT" ".verified == true and ([.destinations[].verified_bytes] == [$N, $N, $N])" \
		"every destination verified"
	acc json_check "$T_OUT" '.destinations[2].method == "reflink"' "the XFS one by reflink"
	acc_done
}

# A journal over two destinations: killed, resumed, complete; refused for another list.
case_journal() {
	local pid
	fresh d1 d2 || return 1
	rm -f "$D/j"
	"$BLKCOPY" copy --no-progress --no-offload --rate 64m --journal "$D/j" "$X/a" "$D/d1" "$D/d2" \
		-d 0 -d 2m >"$T_OUT" 2>"$T_ERR" &
	pid=$!
	sleep 0.5
	kill -9 "$pid" 2>/dev/null
	wait "$pid" 2>/dev/null
	ERRS=""
	bcp journal --json "$D/j"
	acc json_check "$T_OUT" '.complete == false and (.destinations | length) == 2' "an incomplete journal of two"
	bcp copy --no-progress --no-offload --resume --journal "$D/j" "$X/a" "$D/d2" "$D/d1" -d 2m -d 0
	acc t_ok "destinations swapped accepted: $(bcp_what)" \
		test "$RC" -eq 1 -a -n "$(grep 'destination 1 is not the device' "$T_ERR")"
	bcp copy --no-progress --no-offload --resume --journal "$D/j" "$X/a" "$D/d1"
	acc t_ok "one destination of two accepted: $(bcp_what)" \
		test "$RC" -eq 1 -a -n "$(grep 'names 2 destinations, the command 1' "$T_ERR")"
	bcp_ok copy --no-progress --no-offload --resume --journal "$D/j" "$X/a" "$D/d1" "$D/d2" -d 0 -d 2m ||
		return 1
	bcp journal --json "$D/j"
	acc json_check "$T_OUT" "[.destinations[].committed] == [$N, $N] and .complete" "complete for both"
	acc verify_copy "$X/a" "$D/d1" "$D/old" 0 "0:$N"
	acc verify_copy "$X/a" "$D/d2" "$D/old" $((2 * MiB)) "0:$N"
	acc_done
}

# --rate bounds the bytes written to all destinations together.
case_rate() {
	local t0 t1 ms
	fresh d1 d2 || return 1
	t0=$(date +%s%N)
	bcp_ok copy --no-progress --no-offload --rate 16m --range 0:12m "$X/a" "$D/d1" "$D/d2" -d 0 -d 16m ||
		return 1
	t1=$(date +%s%N)
	ms=$(((t1 - t0) / 1000000))
	# 24 MiB at 16 MiB/s: 1.5 s; the first twentieth of a second goes at once.
	t_ok "24 MiB at 16 MiB/s took $ms ms" test "$ms" -ge 1300 -a "$ms" -le 3000
}

t_case mixed-methods case_mixed_methods
t_case offsets case_offsets
t_case refused-before-writes case_refused_before_writes
t_case one-fails case_one_fails
t_case verify case_verify
t_case journal case_journal
t_case rate case_rate
t_finish
