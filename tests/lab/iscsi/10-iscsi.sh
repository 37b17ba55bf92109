#!/bin/bash
# SPDX-License-Identifier: MIT
# blkcopy on iSCSI LUNs by URL (libiscsi), from the host against the lab's
# LIO target guest (lab/host/iscsi.sh): limits, EXTENDED COPY within a LUN
# and between two LUNs of one target, emulation to and from host files,
# across targets and when forced, and the failures: no emulation allowed,
# a closed port, a portal that never answers, a wrong IQN or LUN, CHAP
# (environment, URL, wrong password; the password never printed), a
# write-protected LUN, a connection cut in the middle of a copy (by the
# target or by the host).  Every
# copy is checked in the LUNs' images on the host.
. "$(dirname "${BASH_SOURCE[0]}")/lib.sh"

# faster_than SECONDS T0: less than SECONDS have passed since T0, or WHY.
faster_than() {
	local e
	e=$(elapsed_since "$2")
	awk -v e="$e" -v l="$1" 'BEGIN { exit !(e < l) }' && return 0
	WHY="took ${e} s, not under $1 s ($(bcp_what))"
	return 1
}

# failed_clearly WHAT: the last blkcopy run failed, with a message, and
# never printed the CHAP password.
failed_clearly() {
	if [[ $RC -eq 0 ]]; then
		WHY="$1: blkcopy succeeded"
		return 1
	fi
	if [[ $RC -eq 124 || $RC -eq 137 ]]; then
		WHY="$1: $(bcp_what)"
		return 1
	fi
	[[ -s $T_ERR ]] || { WHY="$1: exit $RC without a message"; return 1; }
	! secret_leaked || { WHY="$1: the CHAP password is in blkcopy's output"; return 1; }
}

# free_port: a local TCP port nobody listens on (bound and released).
free_port() {
	python3 -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])'
}

# ---------------------------------------------------------------------------
# Limits

case_limits() {
	bcp limits "$ISCSI_ALPHA0"
	[[ $RC -eq 0 ]] || { WHY="limits: $(bcp_what)"; return 1; }
	grep -q 'iscsi' "$T_OUT" || { WHY="limits does not say iscsi: $(head -c 200 "$T_OUT")"; return 1; }
	bcp limits --json "$ISCSI_ALPHA0" "$ISCSI_RO0"
	[[ $RC -eq 0 ]] || { WHY="limits --json: $(bcp_what)"; return 1; }
	info "limits $ISCSI_ALPHA0: $(jq -c '.[0] | {kind, backend, logical_block_size, capacity, copy_offload, max_copy_sectors, max_copy_nr_ranges, max_copy_range_sectors}' <"$T_OUT")"
	json_check "$T_OUT" "length == 2 and .[0].device == \"$ISCSI_ALPHA0\" and .[0].kind == \"iscsi\" and
		.[0].backend == \"iscsi\" and .[0].logical_block_size == 512 and
		.[0].capacity == $ISCSI_ALPHA0_SIZE and .[0].copy_offload == 1 and .[0].read_only == false and
		.[0].max_copy_sectors > 0" "limits of ALPHA0" || return 1
	json_check "$T_OUT" ".[1].kind == \"iscsi\" and .[1].capacity == $ISCSI_RO0_SIZE and .[1].read_only == true" \
		"RO0 is not reported read-only"
}

# ---------------------------------------------------------------------------
# Native: EXTENDED COPY, one target

case_same_lun() {
	lun_copy_verify ALPHA0 ALPHA0 64m 0:4k 1m:64k 2m+512:1536 5m:1m 20m:3m && native_only
}

# 64 ranges of 4 to 64 KiB, scattered over 32 MiB, in a scrambled order.
case_cross_lun_scattered() {
	local i r=() off len
	for ((i = 0; i < 64; i++)); do
		off=$(((i * 37 % 64) * 512 * 1024 + (i % 7) * 8192))
		len=$((((i * 11) % 16 + 1) * 4096))
		r+=("$off:$len")
	done
	# Every piece native: the queue is tested here, the piece policy below.
	lun_copy_verify --opt --native-min=0 ALPHA0 ALPHA1 40m "${r[@]}" && native_only
}

# 4096 ranges of 4 KiB, one EXTENDED COPY each: emulation is faster, and blkcopy learns it.
case_policy_learns() {
	local i r=()
	for ((i = 0; i < 4096; i++)); do r+=("$((i * 8192)):4096"); done
	lun_copy_verify ALPHA0 ALPHA1 32m "${r[@]}" || return 1
	info "policy: $(jq -c '{native_bytes, emulated, native_min, native_min_learnt, native_commands}' <"$T_OUT")"
	json_check "$T_OUT" '.native_min_learnt and .native_min > 4096 and .native_bytes >= 8 * 4096 and
		.emulated.slower > 8 * 1048576 and .emulated.probe <= 4194304 and
		.emulated_bytes == (.emulated.slower + .emulated.probe)' \
		"small pieces were not learnt to be emulated"
}

# More than one segment's 65535 blocks: split into several commands.
case_cross_lun_64m() {
	lun_copy_verify ALPHA0 ALPHA1 32m 16m:64m && native_only
}

# ---------------------------------------------------------------------------
# Emulation

case_lun_to_file() {
	truncate -s 64M "$T_DIR/file.img" || return 1
	lun_copy_verify ALPHA0 "$T_DIR/file.img" 0 3m:1m 9m:64k && emulated_only || return 1
	lun_copy_verify ALPHA0 "$T_DIR/file.img" 5m+4608 0:512 1m:2m 100m:64k && emulated_only
}

case_file_to_lun() {
	truncate -s 64M "$T_DIR/file.img" || return 1
	lun_copy_verify "$T_DIR/file.img" ALPHA1 7m 0:1m 2m+512:8k 40m:4m && emulated_only
}

case_no_offload() {
	lun_copy_verify --opt --no-offload ALPHA0 ALPHA1 80m 0:64k 1m:1m 50m:4k && emulated_only
}

# Two targets: no copy manager sees both LUNs.
case_other_target() {
	lun_copy_verify ALPHA0 BETA0 12m 0:1m 30m:256k && emulated_only
}

case_other_target_no_emulation() {
	local before
	before=$(img_sum BETA0)
	bcp copy --json --no-progress --no-emulation --range 0:1m --range 8m:64k --dst-offset 16m "$ISCSI_ALPHA0" "$ISCSI_BETA0"
	failed_clearly "--no-emulation across targets" || return 1
	json_check "$T_OUT" '.error != null and .bytes == 0 and .committed == 0' "no error reported in the JSON" || return 1
	[[ $(img_sum BETA0) == "$before" ]] || { WHY="BETA0 changed"; return 1; }
	info "$T_NAME: --no-emulation across targets: $(head -c 200 "$T_ERR" | tr '\n' ' ')"
}

# ---------------------------------------------------------------------------
# Portals and names that do not work: a clear message, soon

case_closed_port() {
	local t0 port
	port=$(free_port) || { WHY="no free port"; return 1; }
	t0=$EPOCHREALTIME
	bcp limits "iscsi://127.0.0.1:$port/$ISCSI_IQN_ALPHA/0"
	failed_clearly "closed port $port" && faster_than 5 "$t0" &&
		err_mentions "connect|refused" "closed port"
}

# Accepts the connection, never answers: the login must time out.
case_silent_portal() {
	local t0 port lpid i
	port=$(free_port) || { WHY="no free port"; return 1; }
	python3 -c '
import socket, sys, time
s = socket.socket()
s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
s.bind(("127.0.0.1", int(sys.argv[1])))
s.listen(8)
print("listening", flush=True)
held = []
end = time.time() + 60
while time.time() < end:
    s.settimeout(1)
    try:
        held.append(s.accept()[0])
    except socket.timeout:
        pass
' "$port" >"$T_DIR/listener" 2>&1 &
	lpid=$!
	for ((i = 0; i < 50; i++)); do
		grep -q listening "$T_DIR/listener" && break
		sleep 0.1
	done
	t0=$EPOCHREALTIME
	BLKCOPY_ISCSI_TIMEOUT=3 bcp limits "iscsi://127.0.0.1:$port/$ISCSI_IQN_ALPHA/0"
	kill "$lpid" 2>/dev/null
	wait "$lpid" 2>/dev/null
	grep -q listening "$T_DIR/listener" || { WHY="the silent listener did not start: $(cat "$T_DIR/listener")"; return 1; }
	failed_clearly "silent portal" && faster_than 15 "$t0" &&
		err_mentions "no answer|time" "silent portal"
}

case_wrong_iqn() {
	local t0
	t0=$EPOCHREALTIME
	bcp limits "iscsi://$ISCSI_PORTAL/$ISCSI_IQN_ALPHA-nonexistent/0"
	failed_clearly "wrong IQN" && faster_than 15 "$t0" &&
		err_mentions "alpha-nonexistent" "wrong IQN"
}

case_missing_lun() {
	local t0
	t0=$EPOCHREALTIME
	bcp limits "iscsi://$ISCSI_PORTAL/$ISCSI_IQN_ALPHA/7"
	failed_clearly "missing LUN 7" && faster_than 15 "$t0" &&
		err_mentions "lun 7|lun.*7" "missing LUN"
}

# ---------------------------------------------------------------------------
# CHAP

case_chap_none() {
	bcp limits "$ISCSI_CHAP0"
	failed_clearly "CHAP target without credentials" && err_mentions "auth|login" "no credentials"
}

case_chap_env() {
	LIBISCSI_CHAP_USERNAME=$ISCSI_CHAP_USER LIBISCSI_CHAP_PASSWORD=$ISCSI_CHAP_PASSWORD bcp limits --json "$ISCSI_CHAP0"
	[[ $RC -eq 0 ]] || { WHY="limits with LIBISCSI_CHAP_*: $(bcp_what)"; return 1; }
	! secret_leaked || { WHY="the password is in blkcopy's output"; return 1; }
	json_check "$T_OUT" ".[0].kind == \"iscsi\" and .[0].capacity == $ISCSI_CHAP0_SIZE" "limits of CHAP0"
}

case_chap_url() {
	local u=iscsi://$ISCSI_CHAP_USER%$ISCSI_CHAP_PASSWORD@${ISCSI_CHAP0#iscsi://}
	bcp limits --json "$u"
	[[ $RC -eq 0 ]] || { WHY="limits with user%password@: $(bcp_what | sed "s/$ISCSI_CHAP_PASSWORD/<password>/g")"; return 1; }
	! secret_leaked || { WHY="the password is in blkcopy's output"; return 1; }
	json_check "$T_OUT" ".[0].kind == \"iscsi\" and .[0].capacity == $ISCSI_CHAP0_SIZE" "limits of CHAP0" || return 1
	bcp limits "$u"
	[[ $RC -eq 0 ]] && ! secret_leaked || { WHY="plain limits: rc $RC or the password printed"; return 1; }
}

# A copy through an authenticated session.
case_chap_copy() {
	export LIBISCSI_CHAP_USERNAME=$ISCSI_CHAP_USER LIBISCSI_CHAP_PASSWORD=$ISCSI_CHAP_PASSWORD
	lun_copy_verify CHAP0 CHAP0 8m 0:64k 1m:512k && native_only
	local rc=$?
	unset LIBISCSI_CHAP_USERNAME LIBISCSI_CHAP_PASSWORD
	! secret_leaked || { WHY="the password is in blkcopy's output"; return 1; }
	return "$rc"
}

case_chap_wrong() {
	local bad=wrong-pass-5678
	bcp limits "iscsi://$ISCSI_CHAP_USER%$bad@${ISCSI_CHAP0#iscsi://}"
	failed_clearly "wrong password in the URL" && err_mentions "auth" "wrong password in the URL" || return 1
	! grep -qF -- "$bad" "$T_OUT" "$T_ERR" || { WHY="the wrong password is printed"; return 1; }
	LIBISCSI_CHAP_USERNAME=$ISCSI_CHAP_USER LIBISCSI_CHAP_PASSWORD=$bad bcp limits "$ISCSI_CHAP0"
	failed_clearly "wrong password in LIBISCSI_CHAP_PASSWORD" && err_mentions "auth" "wrong password in the environment" || return 1
	! grep -qF -- "$bad" "$T_OUT" "$T_ERR" || { WHY="the wrong password is printed"; return 1; }
}

# ---------------------------------------------------------------------------
# A write-protected LUN

case_write_protected() {
	local before
	before=$(img_sum RO0)
	bcp copy --json --no-progress --range 0:64k --dst-offset 1m "$ISCSI_ALPHA0" "$ISCSI_RO0"
	failed_clearly "native copy to RO0" && err_mentions "read-only|write.protect" "native copy to RO0" || return 1
	truncate -s 1M "$T_DIR/src.img" || return 1
	fill_random "$T_DIR/src.img" 0 1m || return 1
	bcp copy --json --no-progress --range 0:64k --dst-offset 1m "$T_DIR/src.img" "$ISCSI_RO0"
	failed_clearly "emulated copy to RO0" && err_mentions "read-only|write.protect" "emulated copy to RO0" || return 1
	[[ $(img_sum RO0) == "$before" ]] || { WHY="RO0 changed"; return 1; }
	info "$T_NAME: write-protected: $(head -c 200 "$T_ERR" | tr '\n' ' ')"
}

# ---------------------------------------------------------------------------
# The connection cut mid-copy, about DROP_AFTER s into a 64 MiB emulated
# copy, two ways: the target disables the TPG (its sessions end, new logins
# are refused) and enables it again once blkcopy has ended; or the host
# kernel aborts blkcopy's socket (ss -K, needs CONFIG_INET_DIAG_DESTROY).
DROP_AFTER=${DROP_AFTER:-0.7}

# A third way, stall: the network goes silent (iptables drops the port both
# ways on lo); the command timeout must end the copy.
STALL_TAG=blkcopy-lab-stall-$$
stall_rules() {
	local op=$1 spec
	for spec in "--dport $ISCSI_PORT" "--sport $ISCSI_PORT"; do
		# shellcheck disable=SC2086
		iptables -w 10 "$op" INPUT -i lo -p tcp $spec -m comment --comment "$STALL_TAG" -j DROP || return 1
	done
}
trap 'stall_rules -D 2>/dev/null; rm -rf "$T_DIR"' EXIT

# cut_connection HOW: tpg, host or stall.  77 (skip) when the host cannot.
cut_connection() {
	case $1 in
	tpg) guest_sh 'tpg_enable alpha 0' >/dev/null || { WHY="could not disable alpha's TPG"; return 1; } ;;
	host)
		ss -K dst 127.0.0.1 dport = "$ISCSI_PORT" >"$T_DIR/ss" 2>&1
		grep -q ESTAB "$T_DIR/ss" || { WHY="ss -K killed no socket: $(tr '\n' ' ' <"$T_DIR/ss")"; return 77; }
		;;
	stall)
		command -v iptables >/dev/null || { WHY="no iptables"; return 77; }
		stall_rules -I || { WHY="could not add the DROP rules"; return 1; }
		;;
	esac
}

# restore_connection HOW: the target reachable again for the next case.
restore_connection() {
	case $1 in
	tpg) guest_sh 'tpg_enable alpha 1' >/dev/null || { WHY="could not enable alpha's TPG again"; return 1; } ;;
	stall) stall_rules -D || { WHY="could not remove the DROP rules"; return 1; } ;;
	esac
	return 0
}

# target_back: ALPHA0 answers again (a cut session may linger on the target for a moment).
target_back() {
	local i
	for ((i = 0; i < 20; i++)); do
		bcp limits "$ISCSI_ALPHA0"
		[[ $RC -eq 0 ]] && return 0
		sleep 0.5
	done
	WHY="ALPHA0 unreachable after the cut: $(bcp_what)"
	return 1
}

# copy_and_cut HOW ARGS...: "blkcopy copy --json ARGS" (command timeout 5 s)
# with its connection cut DROP_AFTER s in, then restored; RC is its status,
# TOOK its seconds.  Fails unless the copy was still running at the cut and
# failed clearly.
copy_and_cut() {
	local how=$1 pid t0 running cut
	shift
	t0=$EPOCHREALTIME
	BLKCOPY_ISCSI_TIMEOUT=5 timeout -k 5 60 "$BLKCOPY" copy --json --no-progress "$@" \
		>"$T_OUT" 2>"$T_ERR" </dev/null &
	pid=$!
	sleep "$DROP_AFTER"
	kill -0 "$pid" 2>/dev/null && running=1 || running=0
	cut_connection "$how"
	cut=$?
	wait "$pid"
	RC=$?
	TOOK=$(elapsed_since "$t0")
	restore_connection "$how" || return 1
	[[ $cut -eq 0 ]] || return "$cut"
	info "$T_NAME: cut ($how) after $DROP_AFTER s: exit $RC after $TOOK s: $(head -c 300 "$T_ERR" | tr '\n' ' ')"
	[[ $running == 1 ]] || { WHY="the copy ended before the drop (rc $RC): a larger copy or an earlier DROP_AFTER"; return 1; }
	failed_clearly "copy with its connection cut"
}

# drop_during_copy HOW
drop_during_copy() {
	local how=$1 size=$((64 * MiB)) c
	truncate -s 0 "$T_DIR/drop.img" && truncate -s $size "$T_DIR/drop.img" || return 1
	fill_random "$ISCSI_IMG_ALPHA0" 0 $size || { WHY="fill failed"; return 1; }
	copy_and_cut "$how" --no-offload --range 0:$size --dst-offset 0 "$ISCSI_ALPHA0" \
		"$T_DIR/drop.img" || return 1
	# A silent network is noticed by the command timeout (5 s), not by TCP minutes later.
	awk -v t="$TOOK" 'BEGIN { exit !(t < 20) }' || { WHY="the copy took $TOOK s to give up (timeout 5 s)"; return 1; }
	json_check "$T_OUT" '(.committed | type) == "number" and .committed >= 0 and .committed < .total and .error != null' \
		"the JSON does not report a partial copy" || return 1
	c=$(jq -r .committed <"$T_OUT")
	[[ $(md5_region "$T_DIR/drop.img" 0 "$c") == $(md5_region "$ISCSI_IMG_ALPHA0" 0 "$c") ]] ||
		{ WHY="the first $c (committed) bytes of the destination are not the source's"; return 1; }
	info "$T_NAME: $c of $size bytes committed and correct"
	target_back
}

# The TPG disabled during a native copy of 8192 scattered 4 KiB ranges (one
# EXTENDED COPY each, many in flight): committed counts only what the target
# acknowledged, in destination order.
drop_during_native_copy() {
	local ranges=$T_DIR/native-drop.txt c i
	for ((i = 0; i < 8192; i++)); do
		echo "$((i * 16384)):4096"
	done >"$ranges"
	fill_random "$ISCSI_IMG_ALPHA0" 0 $((128 * MiB)) || { WHY="fill failed"; return 1; }
	fill_random "$ISCSI_IMG_ALPHA1" 0 $((32 * MiB)) || { WHY="fill failed"; return 1; }
	copy_and_cut tpg --native-min=0 --ranges-from "$ranges" "$ISCSI_ALPHA0" "$ISCSI_ALPHA1" || return 1
	json_check "$T_OUT" '(.committed | type) == "number" and .committed < .total and .native_bytes > 0 and .emulated_bytes == 0' \
		"the JSON does not report a partial native copy" || return 1
	c=$(jq -r .committed <"$T_OUT")
	python3 - "$ISCSI_IMG_ALPHA0" "$ISCSI_IMG_ALPHA1" "$c" <<-'PY' || { WHY="the first $c (committed) bytes of ALPHA1 are not the source ranges"; return 1; }
		import sys
		src, dst, n = open(sys.argv[1], "rb"), open(sys.argv[2], "rb"), int(sys.argv[3])
		want = b""
		for i in range((n + 4095) // 4096):
		    src.seek(i * 16384)
		    want += src.read(4096)
		sys.exit(0 if dst.read(n) == want[:n] else 1)
	PY
	info "$T_NAME: $c of $((32 * MiB)) bytes committed and correct"
	target_back
}

[[ -x $BLKCOPY ]] || { fail iscsi "no blkcopy binary at '$BLKCOPY'"; finish; }
run_case iscsi-limits case_limits
run_case iscsi-same-lun case_same_lun
run_case iscsi-cross-lun-scattered case_cross_lun_scattered
run_case iscsi-cross-lun-64m case_cross_lun_64m
run_case iscsi-policy-learns case_policy_learns
run_case iscsi-lun-to-file case_lun_to_file
run_case iscsi-file-to-lun case_file_to_lun
run_case iscsi-no-offload case_no_offload
run_case iscsi-other-target case_other_target
run_case iscsi-other-target-no-emulation case_other_target_no_emulation
run_case iscsi-closed-port case_closed_port
run_case iscsi-silent-portal case_silent_portal
run_case iscsi-wrong-iqn case_wrong_iqn
run_case iscsi-missing-lun case_missing_lun
run_case iscsi-chap-none case_chap_none
run_case iscsi-chap-env case_chap_env
run_case iscsi-chap-url case_chap_url
run_case iscsi-chap-copy case_chap_copy
run_case iscsi-chap-wrong case_chap_wrong
run_case iscsi-write-protected case_write_protected
run_case iscsi-dropped-connection-target drop_during_copy tpg
run_case iscsi-dropped-connection-host drop_during_copy host
run_case iscsi-stalled-network drop_during_copy stall
run_case iscsi-dropped-connection-native drop_during_native_copy
finish
