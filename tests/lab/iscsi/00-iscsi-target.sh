#!/bin/bash
# SPDX-License-Identifier: MIT
# The lab's iSCSI target as the other tests assume it, checked with
# libiscsi's own tools (libiscsi-bin), not blkcopy: every LUN reachable from
# the host with its size, 512-byte blocks, unit serial and EXTENDED COPY
# (3PC); NAA designators all different; CHAP required where it should be;
# the host image and the guest's disk agree both ways; disabling a TPG
# drops its sessions and enabling it lets initiators back in.
. "$(dirname "${BASH_SOURCE[0]}")/lib.sh"

LUNS=(ALPHA0 ALPHA1 BETA0 CHAP0 RO0)

# chap_url NAME: the URL with the right credentials in it.
chap_url() {
	local u
	u=$(url "$1")
	echo "iscsi://$ISCSI_CHAP_USER%$ISCSI_CHAP_PASSWORD@${u#iscsi://}"
}

# inq NAME ARGS...: iscsi-inq on a LUN (with credentials for CHAP0), under a time limit.
inq() {
	local u
	u=$(url "$1")
	[[ $1 == CHAP0 ]] && u=$(chap_url "$1")
	timeout 20 iscsi-inq "${@:2}" "$u"
}

case_luns() {
	local n out size u
	for n in "${LUNS[@]}"; do
		size=ISCSI_${n}_SIZE
		u=$(url "$n")
		[[ $n == CHAP0 ]] && u=$(chap_url "$n")
		out=$(timeout 20 iscsi-readcapacity16 "$u" 2>&1) || { WHY="$n: iscsi-readcapacity16: $out"; return 1; }
		grep -q "^Total size:${!size}\$" <<<"$out" || { WHY="$n: not ${!size} bytes: $(tr '\n' ' ' <<<"$out")"; return 1; }
		grep -q "^LOGICAL BLOCK LENGTH IN BYTES:512\$" <<<"$out" || { WHY="$n: blocks are not 512 bytes"; return 1; }
		out=$(inq "$n" 2>&1) || { WHY="$n: iscsi-inq: $out"; return 1; }
		grep -q '^3PC:1$' <<<"$out" || { WHY="$n: INQUIRY has no 3PC (EXTENDED COPY)"; return 1; }
	done
}

case_serials() {
	local n out serial
	for n in "${LUNS[@]}"; do
		serial=ISCSI_${n}_SERIAL
		out=$(inq "$n" -e 1 -c 128 2>&1) || { WHY="$n: iscsi-inq VPD 0x80: $out"; return 1; }
		grep -qF "Unit Serial Number:[${!serial}]" <<<"$out" || { WHY="$n: unit serial is not ${!serial}: $out"; return 1; }
	done
}

# blkcopy refuses native copy between two LUs with one designator, and LIO
# makes it from the serial's hex digits only.
case_designators() {
	local n d
	local -A seen=()
	for n in "${LUNS[@]}"; do
		d=$(inq "$n" -e 1 -c 131 2>/dev/null | sed -n '/^Designator Type:(3) NAA/{n;p}' | od -An -tx1 | tr -d ' \n')
		[[ -n $d ]] || { WHY="$n: no NAA designator in VPD 0x83"; return 1; }
		[[ -z ${seen[$d]:-} ]] || { WHY="$n and ${seen[$d]} share the NAA designator $d"; return 1; }
		seen[$d]=$n
	done
	info "$T_NAME: ${#seen[@]} distinct NAA designators"
}

case_chap_required() {
	local out
	if out=$(timeout 20 iscsi-inq "$ISCSI_CHAP0" 2>&1); then
		WHY="logged in to $ISCSI_CHAP0 without credentials"
		return 1
	fi
	if out=$(LIBISCSI_CHAP_USERNAME=$ISCSI_CHAP_USER LIBISCSI_CHAP_PASSWORD=wrong-password timeout 20 iscsi-inq "$ISCSI_CHAP0" 2>&1); then
		WHY="logged in to $ISCSI_CHAP0 with a wrong password"
		return 1
	fi
	out=$(LIBISCSI_CHAP_USERNAME=$ISCSI_CHAP_USER LIBISCSI_CHAP_PASSWORD=$ISCSI_CHAP_PASSWORD timeout 20 iscsi-inq "$ISCSI_CHAP0" 2>&1) ||
		{ WHY="no login with the right credentials in LIBISCSI_CHAP_*: $out"; return 1; }
	# And the other targets do not ask for any.
	out=$(timeout 20 iscsi-inq "$ISCSI_ALPHA0" 2>&1) || { WHY="$ISCSI_ALPHA0 without credentials: $out"; return 1; }
}

# What the host writes into an image the guest's disk reads, and the other
# way: no cache in between (the tests rely on it to check copies).
case_image_coherence() {
	local off=$((100 * MiB)) len=$MiB want got dev
	dev=$(guest_sh 'echo $ISCSI_ALPHA1_DISK' 2>/dev/null)
	[[ $dev == /dev/vd* ]] || { WHY="the guest does not name ALPHA1's disk: '$dev'"; return 1; }
	fill_random "$ISCSI_IMG_ALPHA1" $off $len || { WHY="filling the image failed"; return 1; }
	want=$(md5_region "$ISCSI_IMG_ALPHA1" $off $len)
	got=$(guest_sh "dd if=$dev bs=1M iflag=direct,skip_bytes skip=$off count=1 status=none | md5sum")
	[[ ${got%% *} == "$want" ]] || { WHY="the guest reads ${got%% *} where the host wrote $want"; return 1; }
	got=$(guest_sh "dd if=/dev/urandom bs=1M count=1 status=none | tee /tmp/coh | dd of=$dev bs=1M oflag=direct,seek_bytes seek=$off conv=notrunc status=none && md5sum </tmp/coh")
	[[ ${got%% *} =~ ^[0-9a-f]{32}$ ]] || { WHY="writing in the guest failed: $got"; return 1; }
	want=$(md5_region "$ISCSI_IMG_ALPHA1" $off $len)
	[[ ${got%% *} == "$want" ]] || { WHY="the host image has $want where the guest wrote ${got%% *}"; return 1; }
}

# The lever 10-iscsi.sh pulls to cut a copy's connection.
case_tpg_drop() {
	local pid out
	timeout 60 iscsi-perf -b 128 "$ISCSI_ALPHA0" >"$T_DIR/perf" 2>&1 &
	pid=$!
	if ! wait_for 10 session_of alpha iscsi-perf; then
		kill "$pid" 2>/dev/null; wait "$pid" 2>/dev/null
		WHY="no iscsi-perf session on alpha: $(guest_sh sessions alpha | tr '\n' ' ')"
		return 1
	fi
	guest_sh 'tpg_enable alpha 0' || { kill "$pid"; wait "$pid" 2>/dev/null; WHY="tpg_enable alpha 0 failed"; return 1; }
	out=$(guest_sh sessions alpha)
	if session_of alpha iscsi-perf; then
		guest_sh 'tpg_enable alpha 1'
		kill "$pid" 2>/dev/null; wait "$pid" 2>/dev/null
		WHY="the session is still there with the TPG disabled: $out"
		return 1
	fi
	if out=$(timeout 20 iscsi-inq "$ISCSI_ALPHA0" 2>&1); then
		guest_sh 'tpg_enable alpha 1'
		kill "$pid" 2>/dev/null; wait "$pid" 2>/dev/null
		WHY="a login succeeded with the TPG disabled"
		return 1
	fi
	guest_sh 'tpg_enable alpha 1' || { WHY="tpg_enable alpha 1 failed"; return 1; }
	kill "$pid" 2>/dev/null
	wait "$pid" 2>/dev/null
	out=$(timeout 20 iscsi-inq "$ISCSI_ALPHA0" 2>&1) || { WHY="no login after re-enabling the TPG: $out"; return 1; }
}

# session_of TARGET INITIATOR-PART: the target has a session whose initiator
# name contains INITIATOR-PART.
session_of() {
	guest_sh "sessions $1" 2>/dev/null | grep -q -- "$2"
}

# wait_for SECONDS CMD...: poll CMD every 0.5 s.
wait_for() {
	local tries=$(($1 * 2))
	shift
	until "$@"; do
		tries=$((tries - 1))
		((tries > 0)) || return 1
		sleep 0.5
	done
}

command -v iscsi-inq >/dev/null || { skip target "no iscsi-inq (apt-get install libiscsi-bin)"; finish; }
run_case iscsi-target-luns case_luns
run_case iscsi-target-serials case_serials
run_case iscsi-target-designators case_designators
run_case iscsi-target-chap-required case_chap_required
run_case iscsi-target-image-coherence case_image_coherence
run_case iscsi-target-tpg-drop case_tpg_drop
finish
