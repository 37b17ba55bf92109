# SPDX-License-Identifier: MIT
# The iscsi-target role of the lab guest (sourced by /init when the kernel
# command line says lab.role=iscsi-target, after lab/guest/setup.sh, whose
# helpers it uses).  LIO's iSCSI target in demo mode, reached from the host
# through QEMU user networking; the host's tests (tests/lab/iscsi/) are the
# initiators.
#
# The layout comes from the host (lab/host/iscsi.sh writes /etc/lab/iscsi.conf
# into an initramfs overlay): ISCSI_TARGETS ("name mode", mode - | chap | ro),
# ISCSI_LUNS ("ENV target lun MiB serial"), the IQN prefix and the CHAP
# credentials.  Every LUN is an iblock backstore over a virtio-blk disk whose
# serial is lab-iscsi-<env in lower case>: iblock sends bios straight to the
# disk, so nothing stays in this guest's page cache and the host reads the
# image files to check what a copy wrote.
#
# Serial ports: ttyS0 console, ttyS1 result stream (PASS/FAIL/INFO lines,
# then the ready marker), ttyS2 the control channel (iscsi_control_loop).

ISCSI_READY_MARKER="READY iscsi-target"
ISCSI_CONF=/etc/lab/iscsi.conf
ISCSI_GUEST_PORT=3260
ISCSI_CTL_TTY=/dev/ttyS2

iscsi_pass() {
	result "PASS lab-iscsi-$1"
}

iscsi_fail() {
	result "FAIL lab-iscsi-$1: $2"
	return 1
}

# iscsi_modules: load what the target needs.  crc32c-intel may refuse on a
# CPU model without SSE4.2; crc32c_generic is enough (without any crc32c
# every login fails in iscsi_login_setup_crypto()).
iscsi_modules() {
	local m missing=""
	load_modules
	for m in "${MODULES_MISSING[@]}"; do
		[ "$m" = crc32c-intel ] || missing+=" $m"
	done
	[ -z "$missing" ] || { iscsi_fail modules "not loaded:$missing"; return 1; }
	grep -q " $CFS " /proc/mounts || mount -t configfs configfs "$CFS"
	iscsi_pass modules
}

# iscsi_net: eth0 as QEMU's user network expects it (the host forwards its
# port to 10.0.2.15:3260).
iscsi_net() {
	wait_until 30 test -e /sys/class/net/eth0 || { iscsi_fail net "no eth0: $(ls /sys/class/net | tr '\n' ' ')"; return 1; }
	ip link set lo up &&
		ip link set eth0 up &&
		ip addr add 10.0.2.15/24 dev eth0 &&
		ip route add default via 10.0.2.2 || { iscsi_fail net "could not configure eth0"; return 1; }
	iscsi_pass net
}

iscsi_disks_there() {
	local l env tgt lun mib serial
	for l in "${ISCSI_LUNS[@]}"; do
		read -r env tgt lun mib serial <<<"$l"
		virtio_disk "lab-iscsi-${env,,}" >/dev/null || return 1
	done
}

# iscsi_tpg TARGET: the configfs directory of TARGET's TPG 1.
iscsi_tpg() {
	echo "$TGT/iscsi/$ISCSI_IQN_PREFIX:$1/tpgt_1"
}

# iscsi_setup_target NAME MODE: the TPG, its LUNs (ISCSI_LUNS), a portal on
# every address, demo mode (any initiator, no ACL); MODE chap requires CHAP
# with the TPG's credentials, ro exports every LUN write-protected.
iscsi_setup_target() {
	local name=$1 mode=$2 t l env tgt lun mib serial dev store n=0 ro=0 auth=0
	t=$(iscsi_tpg "$name")
	mkdir -p "$t" || { echo "mkdir $t failed"; return 1; }
	for l in "${ISCSI_LUNS[@]}"; do
		read -r env tgt lun mib serial <<<"$l"
		[ "$tgt" = "$name" ] || continue
		dev=$(virtio_disk "lab-iscsi-${env,,}") || { echo "no disk for $env"; return 1; }
		[ "$(blockdev --getsize64 "$dev")" = $((mib * MiB)) ] ||
			{ echo "$dev ($env) is $(blockdev --getsize64 "$dev") bytes, expected $mib MiB"; return 1; }
		store=iblock_0/${env,,}
		lio_backstore "$store" "udev_path=$dev" - "$serial" || { echo "backstore $store over $dev failed"; return 1; }
		mkdir -p "$t/lun/lun_$lun" && ln -s "$TGT/core/$store" "$t/lun/lun_$lun/${store#*/}" ||
			{ echo "LUN $lun of $name"; return 1; }
		env_set "ISCSI_${env}_DISK" "$dev"
		n=$((n + 1))
	done
	[ "$n" -gt 0 ] || { echo "target $name has no LUN"; return 1; }
	# The portal after the LUNs: a login never sees a target without them.
	mkdir -p "$t/np/0.0.0.0:$ISCSI_GUEST_PORT" || { echo "portal of $name"; return 1; }
	case $mode in
	ro) ro=1 ;;
	chap)
		auth=1
		# Without a newline: LIO keeps it, and "labuser\n" is not labuser.
		printf '%s' "$ISCSI_CHAP_USER" >"$t/auth/userid" &&
			printf '%s' "$ISCSI_CHAP_PASSWORD" >"$t/auth/password" || { echo "CHAP credentials of $name"; return 1; }
		;;
	-) ;;
	*) echo "unknown mode '$mode' of $name"; return 1 ;;
	esac
	# demo_mode_write_protect is 1 by default: the writable targets say 0.
	echo 1 >"$t/attrib/generate_node_acls" &&
		echo 1 >"$t/attrib/cache_dynamic_acls" &&
		echo "$ro" >"$t/attrib/demo_mode_write_protect" &&
		echo "$auth" >"$t/attrib/authentication" &&
		echo 1 >"$t/enable" || { echo "TPG attributes of $name"; return 1; }
	result "INFO iscsi target $ISCSI_IQN_PREFIX:$name: $n LUN(s), mode $mode, auth $(cat "$t/attrib/authentication"), write-protect $(cat "$t/attrib/demo_mode_write_protect"), AuthMethod $(cat "$t/param/AuthMethod")"
}

# iscsi_listening: something listens on the portal (/proc/net/tcp: local
# port in hex, state 0A).
iscsi_listening() {
	grep -qi ":$(printf '%04X' "$ISCSI_GUEST_PORT") 00000000:0000 0A" /proc/net/tcp
}

iscsi_setup() {
	local l env tgt lun mib serial k err
	local -A keys=()
	[ -r "$ISCSI_CONF" ] || { iscsi_fail config "no $ISCSI_CONF"; return 1; }
	. "$ISCSI_CONF"
	# LIO's NAA designator comes from the serial's hex digits only; blkcopy
	# refuses native copy between two LUs with one designator.
	for l in "${ISCSI_LUNS[@]}"; do
		read -r env tgt lun mib serial <<<"$l"
		k=$(naa_key "$serial")
		[ -z "${keys[$k]:-}" ] ||
			{ iscsi_fail config "$env and ${keys[$k]} would share one NAA designator (serial hex digits '$k')"; return 1; }
		keys[$k]=$env
	done
	iscsi_modules || return 1
	iscsi_net || return 1
	wait_until 60 iscsi_disks_there ||
		{ iscsi_fail disks "the virtio disks lab-iscsi-* did not all appear: $(ls /sys/block | tr '\n' ' ')"; return 1; }
	iscsi_pass disks
	for l in "${ISCSI_TARGETS[@]}"; do
		err=$(iscsi_setup_target $l 2>&1) || { iscsi_fail "target-${l%% *}" "${err:-failed}"; return 1; }
		[ -n "$err" ] && printf '%s\n' "$err"
		iscsi_pass "target-${l%% *}"
	done
	wait_until 10 iscsi_listening || { iscsi_fail portal "nothing listens on port $ISCSI_GUEST_PORT"; return 1; }
	iscsi_pass portal
	# The targets were set up in subshells: their env entries (the disk of
	# each LUN, ISCSI_ALPHA0_DISK ...) for the control channel's commands.
	. "$LAB_ENV_FILE"
}

# ---------------------------------------------------------------------------
# The control channel: the host's lab/host/guest-ctl.py writes one line
# "ID BASE64-COMMAND"; the command runs in a subshell of this one (so the
# helpers below are there) and one line "OUT ID STATUS BASE64-OUTPUT"
# answers.  Raw mode: no echo, no CR/LF translation.  One command at a time.

# tpg_enable TARGET 0|1: disable (every session of the TPG is released, its
# connections closed, new logins refused) or enable it again.
tpg_enable() {
	echo "$2" >"$(iscsi_tpg "$1")/enable"
}

# sessions [TARGET...]: the sessions LIO has, per target.
sessions() {
	local n
	[ $# -gt 0 ] || set -- $(for l in "${ISCSI_TARGETS[@]}"; do echo "${l%% *}"; done)
	for n in "$@"; do
		echo "== $n"
		cat "$(iscsi_tpg "$n")/dynamic_sessions"
	done
}

iscsi_control_loop() {
	local id b64 cmd out rc
	stty -F "$ISCSI_CTL_TTY" raw -echo 2>/dev/null
	exec 4<>"$ISCSI_CTL_TTY"
	while IFS=' ' read -r id b64 <&4; do
		[[ $id =~ ^[A-Za-z0-9]+$ ]] || continue
		if cmd=$(base64 -d <<<"$b64" 2>/dev/null); then
			out=$( (eval "$cmd") 2>&1 </dev/null)
			rc=$?
		else
			out="guest: could not decode the command" rc=126
		fi
		printf 'OUT %s %s %s\n' "$id" "$rc" "$(printf '%s' "$out" | base64 -w 0)" >&4
	done
}

iscsi_target_main() {
	result "INFO iscsi-target guest: kernel $(uname -r), $(nproc) CPUs, uptime $(cut -d' ' -f1 /proc/uptime) s"
	mkdir -p "${LAB_ENV_FILE%/*}"
	: >"$LAB_ENV_FILE"
	if iscsi_setup; then
		result "INFO iscsi target ready, uptime $(cut -d' ' -f1 /proc/uptime) s"
		result "$ISCSI_READY_MARKER"
	fi
	# Also after a failed setup: the host may want to look around.
	while true; do
		iscsi_control_loop
		sleep 1
	done
}
