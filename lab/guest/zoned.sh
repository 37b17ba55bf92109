# SPDX-License-Identifier: MIT
# Zoned devices of the lab guest (sourced by lab/guest/setup.sh, whose
# helpers it uses).  Every zoned device is named in /run/lab/env with what
# the kernel says about its zones, and starts with every zone reset (empty,
# write pointer at the zone start).
#
# Each zoned device NAME gets, besides NAME and NAME_KIND:
#   NAME_ZONED        the queue's zoned model (host-managed)
#   NAME_SIZE         bytes
#   NAME_ZONE_SIZE    bytes (queue/chunk_sectors)
#   NAME_ZONE_CAP     bytes writable in each sequential zone (blkzone report)
#   NAME_NR_ZONES     queue/nr_zones
#   NAME_NR_CONV      conventional zones (at the start of the device)
#   NAME_MAX_OPEN NAME_MAX_ACTIVE   queue/max_open_zones, max_active_zones (0: no limit)
#   NAME_ZONE_APPEND_MAX            queue/zone_append_max_bytes
# and is listed in LAB_ZONED_DEVICES (not in LAB_DEVICES: tests that walk
# every device write anywhere, which a zoned device refuses).

ZNS_SERIAL=lab-zns
# nsid, env name, then what lab/host/guest.sh asks QEMU for: size, zone size
# and zone capacity in MiB, max open and max active zones (0: no limit).
ZNS_LAYOUT=(
	"1 ZNS       64  4  4  0 0"
	"2 ZNS_CAP   64  4  3  0 0"
	"3 ZNS_DM    64  4  4  0 0"
	"4 ZNS_BENCH 512 32 32 4 6"
)
# The conventional namespace on the same controller.
ZNS_CONV_NSID=5 ZNS_CONV_MIB=128
# DM_ZONED: dm-linear over zones 4..11 of ZNS_DM.  A zoned table must start
# and end on zone boundaries (dm refuses it otherwise).  dm then holds ZNS_DM:
# blkzone refuses to open it (reset its zones through DM_ZONED, or outside
# the mapping with blkzone -f); plain reads and writes still work.
DM_ZONED_NAME=lab-zoned-linear DM_ZONED_FIRST_ZONE=4 DM_ZONED_ZONES=8
# null_blk devices made through configfs: env name, configfs directory (also
# the disk's name: Debian's 6.1 and 6.12 name it so; older kernels call it
# nullbINDEX), size, zone size and
# zone capacity in MiB (0: no zone_capacity attribute, capacity = size),
# conventional zones.  Memory backed: they hold what is written.
NULLB_LAYOUT=(
	"NULLB_ZONED     nullb-zoned     64 4 0 2"
	"NULLB_ZONED_CAP nullb-zoned-cap 64 4 3 2"
)
NULLB_BLOCKSIZE=4096
LAB_ZONED_DEVICES=""

# step_name NAME: the setup step of a device (ZNS_CAP -> zns-cap).
step_name() {
	local s=${1,,}
	echo "${s//_/-}"
}

# The functions below say why they failed in ZERR (not on stdout: their
# callers need the Z_* and Q_* they set, so they run in the setup's shell).

# zone_scan DEV: one "blkzone report" into Z_NR (zones), Z_CONV
# (conventional), Z_LEN and Z_CAP (sectors of the sequential zones, "mixed"
# if they differ), Z_USED (sequential zones not empty or with the write
# pointer off the zone start) and Z_FIRST (the report of the first
# sequential zone, for the log).  The line, from util-linux 2.38:
#   start: 0x000002000, len 0x002000, cap 0x001800, wptr 0x000000 reset:0 non-seq:0, zcond: 1(em) [type: 2(SEQ_WRITE_REQUIRED)]
# (no "cap" field from a kernel without zone capacity).
zone_scan() {
	local line len cap wp cond type out
	Z_NR=0 Z_CONV=0 Z_USED=0 Z_LEN="" Z_CAP="" Z_FIRST=""
	out=$(blkzone report "$1" 2>&1) || { ZERR="blkzone report $1: $out"; return 1; }
	local re='len 0x([0-9a-f]+),( cap 0x([0-9a-f]+),)? wptr 0x([0-9a-f]+) .*zcond: *([0-9]+)\(([a-z0-9]+)\) \[type: *([0-9]+)'
	while IFS= read -r line; do
		[[ $line =~ $re ]] || continue
		len=$((16#${BASH_REMATCH[1]}))
		cap=${BASH_REMATCH[3]:-${BASH_REMATCH[1]}}
		cap=$((16#$cap))
		wp=$((16#${BASH_REMATCH[4]}))
		cond=${BASH_REMATCH[6]} type=${BASH_REMATCH[7]}
		Z_NR=$((Z_NR + 1))
		if [ "$type" = 1 ]; then
			Z_CONV=$((Z_CONV + 1))
			continue
		fi
		[ -z "$Z_FIRST" ] && Z_FIRST=${line#"${line%%[![:space:]]*}"}
		[ -z "$Z_LEN" ] && Z_LEN=$len
		[ "$Z_LEN" = "$len" ] || Z_LEN=mixed
		[ -z "$Z_CAP" ] && Z_CAP=$cap
		[ "$Z_CAP" = "$cap" ] || Z_CAP=mixed
		[ "$cond" = em ] && [ "$wp" = 0 ] || Z_USED=$((Z_USED + 1))
	done <<<"$out"
	[ "$Z_NR" -gt 0 ] || { ZERR="blkzone report $1 listed no zones: $(head -c 200 <<<"$out")"; return 1; }
}

# zones_reset DEV: reset every zone and check that the sequential ones are
# empty afterwards (zone_scan's Z_* describe the result).
zones_reset() {
	local out
	out=$(blkzone reset "$1" 2>&1) || { ZERR="blkzone reset $1: $out"; return 1; }
	zone_scan "$1" || return 1
	[ "$Z_USED" = 0 ] || { ZERR="$Z_USED zones of $1 are not empty after a reset"; return 1; }
}

# zoned_probe DEV ZONE_MIB CAP_MIB NR_ZONES NR_CONV MAX_OPEN MAX_ACTIVE: reset
# DEV and check that it is host-managed with these zones; "-" skips a check.
# Sets Q_* (the sysfs facts) and Z_* (zone_scan).
zoned_probe() {
	local dev=$1
	zoned_check "$@" && return 0
	ZERR="$dev: $ZERR"
	return 1
}

zoned_check() {
	local dev=$1 q mm
	# By number: /dev/mapper nodes are not named after their sysfs entry.
	read -r -a mm < <(stat -L -c '%t %T' "$dev") || { ZERR="cannot stat $dev"; return 1; }
	q=/sys/dev/block/$((16#${mm[0]})):$((16#${mm[1]}))/queue
	Q_ZONED=$(trim "$q/zoned") Q_CHUNK=$(trim "$q/chunk_sectors") Q_NR=$(trim "$q/nr_zones")
	Q_MAX_OPEN=$(trim "$q/max_open_zones") Q_MAX_ACTIVE=$(trim "$q/max_active_zones")
	Q_APPEND=$(trim "$q/zone_append_max_bytes")
	[ "$Q_ZONED" = host-managed ] || { ZERR="queue/zoned is '$Q_ZONED', not host-managed"; return 1; }
	zones_reset "$dev" || return 1
	[ "$2" = - ] || [ "$Q_CHUNK" = $(($2 * 2048)) ] ||
		{ ZERR="zone size $Q_CHUNK sectors, expected $2 MiB"; return 1; }
	[ "$Z_LEN" = "$Q_CHUNK" ] || { ZERR="blkzone reports zones of $Z_LEN sectors, sysfs $Q_CHUNK"; return 1; }
	[ "$3" = - ] || [ "$Z_CAP" = $(($3 * 2048)) ] ||
		{ ZERR="zone capacity $Z_CAP sectors, expected $3 MiB"; return 1; }
	[ "$Z_NR" = "$Q_NR" ] || { ZERR="blkzone reports $Z_NR zones, sysfs $Q_NR"; return 1; }
	[ "$4" = - ] || [ "$Q_NR" = "$4" ] || { ZERR="$Q_NR zones, expected $4"; return 1; }
	[ "$5" = - ] || [ "$Z_CONV" = "$5" ] || { ZERR="$Z_CONV conventional zones, expected $5"; return 1; }
	[ "$6" = - ] || [ "$Q_MAX_OPEN" = "$6" ] || { ZERR="max_open_zones $Q_MAX_OPEN, expected $6"; return 1; }
	[ "$7" = - ] || [ "$Q_MAX_ACTIVE" = "$7" ] || { ZERR="max_active_zones $Q_MAX_ACTIVE, expected $7"; return 1; }
	return 0
}

# env_zoned NAME DEV KIND: the env entries of a zoned device zoned_probe has
# just looked at.
env_zoned() {
	local name=$1 dev=$2
	env_set "$name" "$dev"
	env_set "${name}_KIND" "$3"
	env_set "${name}_ZONED" "$Q_ZONED"
	env_set "${name}_SIZE" "$(blockdev --getsize64 "$dev")"
	env_set "${name}_ZONE_SIZE" $((Q_CHUNK * 512))
	env_set "${name}_ZONE_CAP" $((Z_CAP * 512))
	env_set "${name}_NR_ZONES" "$Q_NR"
	env_set "${name}_NR_CONV" "$Z_CONV"
	env_set "${name}_MAX_OPEN" "$Q_MAX_OPEN"
	env_set "${name}_MAX_ACTIVE" "$Q_MAX_ACTIVE"
	env_set "${name}_ZONE_APPEND_MAX" "$Q_APPEND"
	LAB_ZONED_DEVICES+="${LAB_ZONED_DEVICES:+,}$name"
	result "INFO zoned $name $dev: $Q_ZONED, $Q_NR zones of $((Q_CHUNK / 2048)) MiB ($Z_CONV conventional)," \
		"capacity $((Z_CAP * 512)) bytes, max open/active $Q_MAX_OPEN/$Q_MAX_ACTIVE," \
		"zone append max $Q_APPEND; first sequential zone: $Z_FIRST"
}

# ---------------------------------------------------------------------------
# ZNS: controller 2 (serial lab-zns)

zns_all_there() {
	local l nsid
	for l in "${ZNS_LAYOUT[@]}" "$ZNS_CONV_NSID"; do
		read -r nsid _ <<<"$l"
		[ -b "$(nvme_ns_disk "$nsid" "$ZNS_SERIAL")" ] || return 1
	done
}

setup_zns() {
	local l nsid name mib zmib cmib mo ma dev ctrl err ok=0
	wait_until 60 zns_all_there ||
		{ setup_fail zns-ctrl "namespaces of controller $ZNS_SERIAL did not all appear: $(ls /sys/block | tr '\n' ' ')"; return 1; }
	ctrl=$(nvme_ns_disk "$ZNS_CONV_NSID" "$ZNS_SERIAL")
	ctrl=$(nvme_ctrl_of "$ctrl")
	[ -c "$ctrl" ] || { setup_fail zns-ctrl "controller node $ctrl of $ZNS_SERIAL not found"; return 1; }
	env_set ZNS_CTRL "$ctrl"
	env_set ZNS_ONCS "$(nvme id-ctrl "$ctrl" -o json 2>/dev/null | jq -r '.oncs // 0')"
	setup_pass zns-ctrl

	# The conventional namespace is an ordinary device (in LAB_DEVICES).
	dev=$(nvme_ns_disk "$ZNS_CONV_NSID" "$ZNS_SERIAL")
	if [ "$(trim "/sys/block/${dev#/dev/}/queue/zoned")" != none ]; then
		setup_fail zns-conv "$dev is zoned"
	elif [ "$(blockdev --getsize64 "$dev")" != $((ZNS_CONV_MIB * MiB)) ]; then
		setup_fail zns-conv "$dev is $(blockdev --getsize64 "$dev") bytes, expected $ZNS_CONV_MIB MiB"
	else
		env_device ZNS_CONV "$dev" nvme
		env_set ZNS_CONV_ZONED none
		nvme_export_ns "$ZNS_CONV_NSID" ZNS_CONV "$dev" zns-conv && setup_pass zns-conv
	fi

	for l in "${ZNS_LAYOUT[@]}"; do
		read -r nsid name mib zmib cmib mo ma <<<"$l"
		dev=$(nvme_ns_disk "$nsid" "$ZNS_SERIAL")
		# A multipath head (LAB_NVME_MULTIPATH=Y) of Linux 6.1 reports no open
		# or active limit of its own: the paths' are not stacked onto it.
		if [[ $(basename "$(readlink -f "/sys/block/${dev#/dev/}/device")") == nvme-subsys* &&
			$mo$ma != 00 ]]; then
			result "INFO $name $dev is a multipath head: its open/active zone limits are not checked"
			mo=- ma=-
		fi
		if ! zoned_probe "$dev" "$zmib" "$cmib" $((mib / zmib)) 0 "$mo" "$ma"; then
			setup_fail "$(step_name "$name")" "$ZERR"
			ok=1
			continue
		fi
		env_zoned "$name" "$dev" nvme
		nvme_export_ns "$nsid" "$name" "$dev" "$(step_name "$name")" && setup_pass "$(step_name "$name")"
	done
	return $ok
}

# DM_ZONED over ZNS_DM (whose zones setup_zns has reset).
setup_dm_zoned() {
	local zs start sectors err dev=/dev/mapper/$DM_ZONED_NAME
	[ -n "${ZNS_DM:-}" ] || { setup_fail dm-zoned "ZNS_DM is not set up"; return 1; }
	zs=$((ZNS_DM_ZONE_SIZE / 512))
	start=$((DM_ZONED_FIRST_ZONE * zs)) sectors=$((DM_ZONED_ZONES * zs))
	err=$(dm_create "$DM_ZONED_NAME" "0 $sectors linear $ZNS_DM $start") ||
		{ setup_fail dm-zoned "$DM_ZONED_NAME: $err"; return 1; }
	zoned_probe "$dev" $((zs / 2048)) $((ZNS_DM_ZONE_CAP / MiB)) "$DM_ZONED_ZONES" 0 - - ||
		{ setup_fail dm-zoned "$ZERR"; return 1; }
	env_zoned DM_ZONED "$dev" dm
	env_set DM_ZONED_BASE "$ZNS_DM"
	env_set DM_ZONED_OFFSET $((start * 512))
	env_set DM_ZONED_FIRST_ZONE "$DM_ZONED_FIRST_ZONE"
	setup_pass dm-zoned
}

# ---------------------------------------------------------------------------
# null_blk, zoned, through configfs

# nullb_disk DIR: the disk of configfs device DIR (named after DIR, or
# nullbINDEX on older kernels).
nullb_disk() {
	local d=$CFS/nullb/$1 i
	[ -b "/dev/$1" ] && [ -e "/sys/block/$1" ] && { echo "/dev/$1"; return 0; }
	i=$(trim "$d/index") || return 1
	[ -b "/dev/nullb$i" ] && echo "/dev/nullb$i"
}

# nullb_make DIR MIB ZONE_MIB CAP_MIB NR_CONV: create and power on; the
# attributes must all be set before power=1 (a powered device takes none).
nullb_make() {
	local d=$CFS/nullb/$1 kv
	local -a attrs=(memory_backed=1 zoned=1 size="$2" zone_size="$3" zone_nr_conv="$5"
		blocksize="$NULLB_BLOCKSIZE")
	[ "$4" != 0 ] && attrs+=(zone_capacity="$4")
	mkdir "$d" || return 1
	for kv in "${attrs[@]}" power=1; do
		echo "${kv#*=}" >"$d/${kv%%=*}" 2>/dev/null ||
			{ echo "$d: ${kv%%=*}=${kv#*=} refused (dmesg: $(dmesg | tail -n 2 | tr '\n' ' '))"; return 1; }
	done
	wait_until 10 nullb_disk "$1" >/dev/null || { echo "no disk for $d"; return 1; }
}

setup_nullb() {
	local l name dir mib zmib cmib conv err dev features
	[ -d "$CFS/nullb" ] || { setup_fail nullb-zoned "no $CFS/nullb (null_blk not loaded?)"; return 1; }
	features=$(cat "$CFS/nullb/features" 2>/dev/null)
	env_set NULLB_FEATURES "${features// /,}"
	for l in "${NULLB_LAYOUT[@]}"; do
		read -r name dir mib zmib cmib conv <<<"$l"
		if [ "$cmib" != 0 ] && [[ ",${NULLB_FEATURES}," != *,zone_capacity,* ]]; then
			setup_skip "$(step_name "$name")" "null_blk of $(uname -r) has no zone_capacity"
			continue
		fi
		err=$(nullb_make "$dir" "$mib" "$zmib" "$cmib" "$conv") ||
			{ setup_fail "$(step_name "$name")" "$err"; continue; }
		dev=$(nullb_disk "$dir")
		[ "$cmib" = 0 ] && cmib=$zmib
		zoned_probe "$dev" "$zmib" "$cmib" $((mib / zmib)) "$conv" 0 0 ||
			{ setup_fail "$(step_name "$name")" "$ZERR"; continue; }
		[ "$(blockdev --getss "$dev")" = "$NULLB_BLOCKSIZE" ] ||
			{ setup_fail "$(step_name "$name")" "$dev has $(blockdev --getss "$dev")-byte blocks"; continue; }
		env_zoned "$name" "$dev" block
		env_set "${name}_CONFIGFS" "$CFS/nullb/$dir"
		setup_pass "$(step_name "$name")"
	done
}

setup_zoned() {
	setup_zns
	setup_dm_zoned
	setup_nullb
	env_set LAB_ZONED_DEVICES "$LAB_ZONED_DEVICES"
}
