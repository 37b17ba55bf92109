# SPDX-License-Identifier: MIT
# The iSCSI phase of the lab (sourced by lab/run.sh): a second guest, booted
# from the same kernel, module cache and initramfs with lab.role=iscsi-target
# (lab/guest/iscsi-target.sh), serves LIO iSCSI targets through QEMU user
# networking on 127.0.0.1:$LAB_ISCSI_PORT; the scripts tests/lab/iscsi/
# [0-9]*.sh (and bench-*.sh with LAB_BENCH=1) run on the host against it,
# each under LAB_SCRIPT_TIMEOUT, their PASS/FAIL/SKIP lines counted with the
# guest's.  --only applies to their file names as to the guest's; every one
# has "iscsi" in its name, so that --only iscsi is this phase alone.
#
# Also a command, for iterating on the host scripts against a target that
# stays up (as root; LAB_RUN and LAB_BUILD as for lab/run.sh):
#   bash lab/host/iscsi.sh start      boot the target, write $LAB_RUN/iscsi.env, leave it running
#   bash tests/lab/iscsi/10-iscsi.sh  any host script (it reads $LAB_RUN/iscsi.env)
#   bash lab/host/iscsi.sh sh 'CMD'   run CMD in the target guest (tpg_enable alpha 0, sessions)
#   bash lab/host/iscsi.sh stop       power it off
# (lab/run.sh --iscsi-keep leaves the target running after its scripts.)
#
# Files in $LAB_RUN: iscsi-*.img (one raw image per LUN: what the tests read
# to check a copy), iscsi-console.log, iscsi-results.log (the guest's
# PASS/FAIL/INFO lines and its ready marker), iscsi-ctl.sock (the guest's
# control port, lab/host/guest-ctl.py), iscsi-tests.log (everything the host
# scripts printed), iscsi.env (what the host scripts get), iscsi-qemu.pid.

# The targets (name, mode: - demo mode read-write, chap CHAP required, ro
# write-protected) and their LUNs (env name, target, LUN, MiB, unit serial).
# Serials: LIO makes the NAA designator from their hex digits only, and these
# (abca, abca1, abcb, abcc, abcd) all differ.
ISCSI_IQN_PREFIX=iqn.2026-11.org.blkcopy.lab
ISCSI_TARGETS=("alpha -" "beta -" "chap chap" "ro ro")
ISCSI_LUNS=(
	"ALPHA0 alpha 0 128 lab-iscsi-a0"
	"ALPHA1 alpha 1 128 lab-iscsi-a1"
	"BETA0 beta 0 128 lab-iscsi-b0"
	"CHAP0 chap 0 16 lab-iscsi-c0"
	"RO0 ro 0 16 lab-iscsi-d0"
)
ISCSI_CHAP_USER=labuser
ISCSI_CHAP_PASSWORD=lab-secret-1234
ISCSI_READY_MARKER="READY iscsi-target"
# What the target guest loads (dependencies come from modules.dep).
ISCSI_MODULES=(crc32c_generic crc32c-intel crct10dif_generic virtio_pci virtio_net virtio_blk
	configfs target_core_mod target_core_iblock iscsi_target_mod)

LAB_ISCSI_PORT=${LAB_ISCSI_PORT:-3260}
LAB_ISCSI_BOOT_TIMEOUT=${LAB_ISCSI_BOOT_TIMEOUT:-180}
ISCSI_PID_FILE=$LAB_RUN/iscsi-qemu.pid
ISCSI_SOCK=$LAB_RUN/iscsi-ctl.sock
ISCSI_ENV_FILE=$LAB_RUN/iscsi.env
ISCSI_QPID=""
ISCSI_SCRIPT_PID=""

# iscsi_scripts: the host scripts to run, by --only (an extended regex on the
# file name, like the guest's) and LAB_BENCH.
iscsi_scripts() {
	local s name
	for s in "$top"/tests/lab/iscsi/[0-9]*.sh "$top"/tests/lab/iscsi/bench-*.sh; do
		[[ -f $s ]] || continue
		name=${s##*/}
		[[ -n ${LAB_ONLY_RE:-} && ! $name =~ $LAB_ONLY_RE ]] && continue
		echo "$s"
	done
}

iscsi_url() {
	local env tgt lun
	read -r env tgt lun _ <<<"$1"
	echo "iscsi://127.0.0.1:$LAB_ISCSI_PORT/$ISCSI_IQN_PREFIX:$tgt/$lun"
}

# iscsi_initrd: the shared module machinery with the target's own modules,
# the project archive of this run, and an overlay with the layout.
iscsi_initrd() {
	local main_cpio=$MODULES_CPIO root=$LAB_RUN/iscsi-overlay rc
	modules_cpio "${ISCSI_MODULES[@]}" || return 1
	rm -rf "$root"
	mkdir -p "$root/etc/lab" || return 1
	{
		echo "# written by lab/host/iscsi.sh"
		# Global: the guest sources it in a function.
		declare -p ISCSI_IQN_PREFIX ISCSI_TARGETS ISCSI_LUNS ISCSI_CHAP_USER ISCSI_CHAP_PASSWORD |
			sed 's/^declare -/declare -g -/'
	} >"$root/etc/lab/iscsi.conf" || return 1
	cpio_pack "$root" "$LAB_RUN/iscsi-overlay.cpio.gz" &&
		cat "$MODULES_CPIO" "$LAB_RUN/project.cpio.gz" "$LAB_RUN/iscsi-overlay.cpio.gz" >"$LAB_RUN/iscsi-initrd.img"
	rc=$?
	MODULES_CPIO=$main_cpio
	return "$rc"
}

iscsi_make_disks() {
	local l env tgt lun mib
	for l in "${ISCSI_LUNS[@]}"; do
		read -r env tgt lun mib _ <<<"$l"
		rm -f "$LAB_RUN/iscsi-${env,,}.img"
		truncate -s "${mib}M" "$LAB_RUN/iscsi-${env,,}.img" || return 1
	done
}

iscsi_qemu_command() {
	local l env
	# LAB_ISCSI_CPUS: the host has two cores, and blkcopy runs beside QEMU.
	QEMU_ISCSI=("$QEMU_BIN" "${QEMU_FW[@]}" -machine q35 -accel tcg -cpu max -smp "${LAB_ISCSI_CPUS:-2}" -m 768
		-nodefaults -nographic -no-reboot -monitor none
		-serial "file:$LAB_RUN/iscsi-console.log" -serial "file:$LAB_RUN/iscsi-results.log"
		-chardev "socket,id=ctl,path=$ISCSI_SOCK,server=on,wait=off" -serial chardev:ctl
		-kernel "$KROOT/boot/vmlinuz-$KVER" -initrd "$LAB_RUN/iscsi-initrd.img"
		-append "console=ttyS0 panic=-1 quiet lab.role=iscsi-target${QEMU_APPEND:+ $QEMU_APPEND}"
		-netdev "user,id=n0,hostfwd=tcp:127.0.0.1:$LAB_ISCSI_PORT-:3260"
		-device virtio-net-pci,netdev=n0)
	for l in "${ISCSI_LUNS[@]}"; do
		env=${l%% *}
		env=${env,,}
		# cache=unsafe: no fsync per guest flush; the host still reads what
		# QEMU wrote (no cache of its own in between).
		QEMU_ISCSI+=(-drive "file=$LAB_RUN/iscsi-$env.img,if=none,id=$env,format=raw,cache=unsafe"
			-device "virtio-blk-pci,drive=$env,serial=lab-iscsi-$env")
	done
}

# iscsi_port_free: nothing listens on the port already (QEMU's forward would
# fail, or worse, the tests would talk to someone else's target).
iscsi_port_free() {
	[[ -z $(ss -Hltn "sport = :$LAB_ISCSI_PORT" 2>/dev/null) ]]
}

# iscsi_boot KEEP: start QEMU in the background; with KEEP=0 under
# LAB_TIMEOUT, so that a lost run.sh does not leave it behind.
iscsi_boot() {
	local keep=$1
	iscsi_qemu_command
	printf '%q ' "${QEMU_ISCSI[@]}" >"$LAB_RUN/iscsi-qemu-command.txt"
	: >"$LAB_RUN/iscsi-results.log"
	: >"$LAB_RUN/iscsi-console.log"
	rm -f "$ISCSI_SOCK"
	# Not with the kernel cache's lock (lab/host/kernel.sh): a target left
	# running would hold it, and the next lab would wait for it.
	if [[ $keep == 1 ]]; then
		setsid "${QEMU_ISCSI[@]}" </dev/null >"$LAB_RUN/iscsi-qemu.log" 2>&1 {LAB_LOCK_FD}>&- &
	else
		timeout -k 10 "$LAB_TIMEOUT" "${QEMU_ISCSI[@]}" </dev/null >"$LAB_RUN/iscsi-qemu.log" 2>&1 {LAB_LOCK_FD}>&- &
	fi
	ISCSI_QPID=$!
	echo "$ISCSI_QPID" >"$ISCSI_PID_FILE"
}

# iscsi_wait_ready [RETRY]: the guest's result lines until its ready marker,
# within LAB_ISCSI_BOOT_TIMEOUT; a guest that dies or never gets there is one
# counted failure, except that with RETRY=1 a kernel that panicked before
# /init (panicked_before_init, lab/host/guest.sh) returns 2, not counted.
iscsi_wait_ready() {
	local fd start=$SECONDS why="" retry=${1:-0}
	exec {fd}<"$LAB_RUN/iscsi-results.log"
	while true; do
		read_results "$fd"
		grep -aq "^$ISCSI_READY_MARKER" "$LAB_RUN/iscsi-results.log" && break
		if ! kill -0 "$ISCSI_QPID" 2>/dev/null; then
			why="exited before it was ready"
			break
		fi
		if ((SECONDS - start > LAB_ISCSI_BOOT_TIMEOUT)); then
			why="not ready after $LAB_ISCSI_BOOT_TIMEOUT s (LAB_ISCSI_BOOT_TIMEOUT)"
			break
		fi
		sleep 0.5
	done
	read_results "$fd"
	exec {fd}<&-
	[[ -z $why ]] && return 0
	if [[ $retry == 1 ]] && ! kill -0 "$ISCSI_QPID" 2>/dev/null &&
		panicked_before_init "$LAB_RUN/iscsi-console.log" "$LAB_RUN/iscsi-results.log"; then
		return 2
	fi
	echo "FAIL lab-iscsi: target guest $why; last console lines ($LAB_RUN/iscsi-console.log):"
	console_tail "$LAB_RUN/iscsi-console.log" 20
	[[ -s $LAB_RUN/iscsi-qemu.log ]] && { echo "  qemu said:"; console_tail "$LAB_RUN/iscsi-qemu.log" 5; }
	R_FAILED=$((R_FAILED + 1))
	return 1
}

# iscsi_env: what the host scripts get (tests/lab/iscsi/lib.sh reads it).
# KEY=value lines, shell-quoted where needed.
iscsi_env() {
	local l env tgt lun mib serial t names=""
	{
		echo "# written by lab/host/iscsi.sh for tests/lab/iscsi/*.sh"
		printf '%s=%q\n' LAB_BLKCOPY "$LAB_BUILD/tools/blkcopy" ISCSI_RUN "$LAB_RUN" \
			ISCSI_PORT "$LAB_ISCSI_PORT" ISCSI_PORTAL "127.0.0.1:$LAB_ISCSI_PORT" \
			ISCSI_CHAP_USER "$ISCSI_CHAP_USER" ISCSI_CHAP_PASSWORD "$ISCSI_CHAP_PASSWORD" \
			ISCSI_CTL_SOCK "$ISCSI_SOCK" ISCSI_GUEST_CTL "$top/lab/host/guest-ctl.py" \
			ISCSI_QEMU_PID "$ISCSI_QPID"
		for t in "${ISCSI_TARGETS[@]}"; do
			t=${t%% *}
			printf 'ISCSI_IQN_%s=%q\n' "${t^^}" "$ISCSI_IQN_PREFIX:$t"
		done
		for l in "${ISCSI_LUNS[@]}"; do
			read -r env tgt lun mib serial <<<"$l"
			printf 'ISCSI_%s=%q\n' "$env" "$(iscsi_url "$l")"
			printf 'ISCSI_IMG_%s=%q\n' "$env" "$LAB_RUN/iscsi-${env,,}.img"
			printf 'ISCSI_%s_SIZE=%q\n' "$env" $((mib * 1048576))
			printf 'ISCSI_%s_SERIAL=%q\n' "$env" "$serial"
			names+="${names:+,}$env"
		done
		printf 'ISCSI_LUN_NAMES=%q\n' "$names"
	} >"$ISCSI_ENV_FILE"
}

# iscsi_run_script PATH: under LAB_SCRIPT_TIMEOUT, its result lines counted
# (and echoed), everything it prints in iscsi-tests.log; an expired limit, a
# non-zero exit without a FAIL line or no result at all is a failure of its
# own, as in the guest.
iscsi_run_script() {
	local s=$1 name line rc start=$SECONDS any=0 failed=0 fd
	name=$(basename "$s" .sh)
	echo "=== $name" >>"$LAB_RUN/iscsi-tests.log"
	# exec: $! is timeout itself, which passes a TERM on to the script (so
	# that its own cleanup runs: bench-iscsi.sh's iptables rules).
	exec {fd}< <(cd "$top" && ISCSI_ENV=$ISCSI_ENV_FILE exec timeout -k 10 "$LAB_SCRIPT_TIMEOUT" bash "$s" 2>&1 </dev/null)
	ISCSI_SCRIPT_PID=$!
	while IFS= read -r -u "$fd" line; do
		printf '%s\n' "$line" >>"$LAB_RUN/iscsi-tests.log"
		case $line in
		"FAIL "*) failed=1 any=1 ;;
		"PASS "* | "SKIP "*) any=1 ;;
		"INFO "*) ;;
		*) continue ;;
		esac
		result_line "$line"
	done
	exec {fd}<&-
	wait "$ISCSI_SCRIPT_PID"
	rc=$?
	ISCSI_SCRIPT_PID=""
	if [[ $rc -eq 124 || $rc -eq 137 ]]; then
		result_line "FAIL $name: timed out after $LAB_SCRIPT_TIMEOUT s"
	elif [[ $rc -ne 0 && $failed == 0 ]]; then
		result_line "FAIL $name: exit $rc"
	elif [[ $any == 0 ]]; then
		result_line "FAIL $name: reported no PASS, FAIL or SKIP line"
	fi
	result_line "INFO $name took $((SECONDS - start)) s"
}

# iscsi_ctl COMMAND: run COMMAND in the target guest.
iscsi_ctl() {
	python3 "$top/lab/host/guest-ctl.py" --timeout "${ISCSI_CTL_TIMEOUT:-30}" "$ISCSI_SOCK" "$@"
}

# iscsi_stop: power the guest off (it owns nothing worth syncing: the images
# are written through), then make sure QEMU is gone.
iscsi_stop() {
	if [[ -n $ISCSI_QPID ]]; then
		iscsi_stop_pid "$ISCSI_QPID"
		wait "$ISCSI_QPID" 2>/dev/null
	fi
	rm -f "$ISCSI_PID_FILE" "$ISCSI_SOCK"
	ISCSI_QPID=""
}

# iscsi_stop_pid PID: poweroff through the control port, else TERM, else KILL
# (PID: QEMU, or the timeout running it, which passes the TERM on).
iscsi_stop_pid() {
	local pid=$1 i sig
	kill -0 "$pid" 2>/dev/null || return 0
	ISCSI_CTL_TIMEOUT=3 iscsi_ctl 'poweroff -f' >/dev/null 2>&1
	for sig in TERM KILL; do
		for ((i = 0; i < 50; i++)); do
			kill -0 "$pid" 2>/dev/null || return 0
			sleep 0.1
		done
		kill -"$sig" "$pid" 2>/dev/null
	done
}

# iscsi_stop_stale: a target left running (--iscsi-keep) by an earlier run
# with this run directory goes before the directory is wiped.  Only a QEMU
# whose command line names this directory counts.
iscsi_stop_stale() {
	local pid
	pid=$(cat "$ISCSI_PID_FILE" 2>/dev/null) || return 0
	[[ $pid =~ ^[0-9]+$ ]] || return 0
	if tr '\0' ' ' <"/proc/$pid/cmdline" 2>/dev/null | grep -q "qemu-system.*$LAB_RUN/iscsi-"; then
		say "stopping the iSCSI target guest left running (pid $pid)"
		iscsi_stop_pid "$pid"
	fi
	rm -f "$ISCSI_PID_FILE"
}

# iscsi_interrupted: the script running gets a TERM and a moment for its
# cleanup, then the target goes.
iscsi_interrupted() {
	local i
	if [[ -n $ISCSI_SCRIPT_PID ]] && kill -TERM "$ISCSI_SCRIPT_PID" 2>/dev/null; then
		for ((i = 0; i < 100; i++)); do
			kill -0 "$ISCSI_SCRIPT_PID" 2>/dev/null || break
			sleep 0.1
		done
	fi
	iscsi_stop
	echo "FAIL lab: interrupted"
	R_FAILED=$((R_FAILED + 1))
	print_summary
	exit 130
}

# iscsi_phase MODE: boot the target, run the host scripts, stop it.  MODE:
# run (the scripts, then stop), keep (the scripts, then leave it running),
# start (no scripts, leave it running).  0 when nothing in it failed.
iscsi_phase() {
	local mode=$1 failed_before=$R_FAILED s t=$SECONDS keep=0 rc
	[[ $mode != run ]] && keep=1
	: >"$LAB_RUN/iscsi-tests.log"
	iscsi_initrd || { result_line "FAIL lab-iscsi: could not build the target's initramfs"; return 1; }
	iscsi_make_disks || { result_line "FAIL lab-iscsi: could not create the disk images in $LAB_RUN"; return 1; }
	iscsi_port_free ||
		{ result_line "FAIL lab-iscsi: 127.0.0.1:$LAB_ISCSI_PORT is taken ($(ss -Hltnp "sport = :$LAB_ISCSI_PORT" | head -n 1)); set LAB_ISCSI_PORT"; return 1; }
	say "booting the iSCSI target guest (port $LAB_ISCSI_PORT; console: $LAB_RUN/iscsi-console.log)"
	iscsi_boot "$keep"
	trap 'iscsi_interrupted' INT TERM HUP
	iscsi_wait_ready 1
	rc=$?
	if [[ $rc == 2 ]]; then
		cp "$LAB_RUN/iscsi-console.log" "$LAB_RUN/iscsi-console-boot1.log"
		result_line "INFO lab-iscsi: the target's kernel panicked before /init ($(grep -a -m1 -o 'Oops:.*\|Kernel panic.*' "$LAB_RUN/iscsi-console.log" | tr -d '\r')); booting it once more (first console: $LAB_RUN/iscsi-console-boot1.log)"
		wait "$ISCSI_QPID" 2>/dev/null
		iscsi_boot "$keep"
		iscsi_wait_ready
		rc=$?
	fi
	if [[ $rc == 0 ]]; then
		say "iSCSI target ready after $((SECONDS - t)) s"
		iscsi_env
		if [[ $mode != start ]]; then
			while IFS= read -r s; do
				if [[ ${s##*/} == bench-* && $LAB_BENCH != 1 ]]; then
					result_line "SKIP $(basename "$s" .sh): benchmarks run only with LAB_BENCH=1"
					continue
				fi
				iscsi_run_script "$s"
			done < <(iscsi_scripts)
		fi
	fi
	trap - INT TERM HUP
	if [[ $keep == 1 ]] && kill -0 "$ISCSI_QPID" 2>/dev/null; then
		say "iSCSI target left running (pid $ISCSI_QPID): env $ISCSI_ENV_FILE; bash lab/host/iscsi.sh sh 'CMD' | stop"
	else
		iscsi_stop
	fi
	say "iSCSI phase: $((SECONDS - t)) s"
	[[ $R_FAILED -eq $failed_before ]]
}

# ---------------------------------------------------------------------------
# As a command (see the top).
if [[ ${BASH_SOURCE[0]} == "$0" ]]; then
	set -uo pipefail
	top=$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)
	LAB_RUN=${LAB_RUN:-/tmp/blkcopy-lab}
	ISCSI_PID_FILE=$LAB_RUN/iscsi-qemu.pid ISCSI_SOCK=$LAB_RUN/iscsi-ctl.sock
	say() { echo "lab: $*" >&2; }
	case ${1:-} in
	start) shift; exec bash "$top/lab/run.sh" --iscsi-start "$@" ;;
	stop) iscsi_stop_stale ;;
	sh)
		shift
		[[ $# -gt 0 ]] || { echo "usage: $0 sh 'COMMAND'" >&2; exit 2; }
		iscsi_ctl "$*"
		;;
	*) sed -n '/^# Also a command/,/^# (lab/p' "$0" | sed 's/^# \{0,1\}//'; exit 2 ;;
	esac
fi
