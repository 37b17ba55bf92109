# SPDX-License-Identifier: MIT
# Device setup of the blkcopy lab guest (sourced by /init).  Builds the
# devices the tests use and names every one of them in /run/lab/env (shell
# KEY=value lines), so tests never guess a device name.  Each step reports
# "PASS lab-setup-WHAT" or "FAIL lab-setup-WHAT: why"; a failed step leaves
# its variables out of the env file and the tests that need them skip.
#
# Devices (sizes in the host's lab/host/guest.sh):
#   NVME_SMALL NVME_DEFAULT NVME_4K NVME_PART NVME_DM   namespaces 1..5 of
#       the QEMU NVMe controller with serial lab-nvme-1 (NVME_*_NG: their
#       passthrough char nodes); NVME_PART1/2 are GPT partitions
#   NOCOPY  virtio-blk disk; BRD /dev/ram1; BRD_IBLOCK /dev/ram0 (under LUN_IBLOCK)
#   LUN_FILEIO LUN_RDMCP LUN_IBLOCK LUN_4K LUN_PART LUN_DM   LIO over tcm_loop
#       (LUN_PART1/2: GPT partitions; NAME_SG: the sg node)
#   DM_LINEAR DM_STRIPED   device-mapper over NVME_DM (and LUN_DM)
#   NVME_DM2  namespace 6, with a GPT: NVME_DM2_PART1/2 (only ever used under dm)
#   LUN_STRIPE1 LUN_STRIPE2   two 32 MiB rd_mcp LUNs (LUNs 6, 7) under DM_STRIPED_LUNS
#   LUN_FREEZE   iblock LUN 8 over dm lab-freeze (LUN_FREEZE_DM) over /dev/ram2, for hangs
#   DM_SPAN DM_PARTLIN DM_OVER_DM DM_STRIPED_LUNS DM_MIXED DM_ERROR DM_CRYPT
#   DM_RO DM_SUSP DM_RELOAD   device-mapper stacks for tests/lab/50-dm.sh
#       (DM_OVER_DM_BASE, lab-under, is a dm device held by DM_OVER_DM: only
#       read, never a blkcopy destination, since dm holds it exclusively)
#   Zoned (host-managed; lab/guest/zoned.sh, listed in LAB_ZONED_DEVICES,
#   not in LAB_DEVICES; every zone reset at setup):
#   ZNS ZNS_CAP ZNS_DM ZNS_BENCH   namespaces 1..4 of the QEMU NVMe
#       controller with serial lab-zns (ZNS_CTRL; NAME_NG as above): 64 MiB
#       in 4 MiB zones (ZNS_CAP: 3 MiB writable in each), ZNS_BENCH 512 MiB
#       in 32 MiB zones with at most 4 open and 6 active
#   NVME_TCP1 NVME_TCP2  namespaces of controller lab-tcp over NVMe/TCP (the
#       kernel's target, passthru, on 127.0.0.1; 6.12 only: lab/guest/nvme-tcp.sh)
#   ZNS_CONV  namespace 5 of lab-zns, 128 MiB, conventional (in LAB_DEVICES)
#   DM_ZONED  dm-linear over zones 4..11 of ZNS_DM (which it holds: blkzone
#       opens ZNS_DM only with -f)
#   NULLB_ZONED NULLB_ZONED_CAP   null_blk (configfs, memory backed): 64 MiB,
#       4 KiB blocks, 4 MiB zones of which the first 2 are conventional;
#       NULLB_ZONED_CAP has 3 MiB of capacity in each (where the kernel can)
#
# Who owns which sectors (512-byte) of the disks under device-mapper.  The
# tests write to these regions only through the dm devices named here (and
# read them through the leaves to check); nothing else writes there.
#   NVME_DM (128 MiB, whole disk held by dm):
#       0..16383           free; 50-dm fills 1..2.1 MiB and copies it to DM_LINEAR
#       16384..81919       lab-linear (DM_LINEAR)
#       81920..106495      free; 10-emulate fills and copies NVME_DM 45..46 MiB and
#                          50 MiB (sectors 92160..94207, 102401..102408) as a source
#       106496..131071     lab-span, second part (DM_SPAN 32..44 MiB)
#       131072..262143     lab-striped, stripe 0 (DM_STRIPED)
#   LUN_DM (64 MiB): lab-striped, stripe 1, all of it
#   LUN_STRIPE1, LUN_STRIPE2 (32 MiB each): lab-striped-luns, stripes 0 and 1, all
#   NVME_DM2 (128 MiB): GPT; dm holds its partitions, so the whole disk can
#   not be claimed by dm as well (the kernel refuses a whole-disk claim next
#   to a partition claim): every dm device on it is over a partition.
#       0..2047            GPT
#       2048..67583        NVME_DM2_PART1 (32 MiB):
#                            part. sectors 0..2047 free, 2048..34815 lab-partlin
#                            (DM_PARTLIN), 34816..65535 free
#       67584..260095      NVME_DM2_PART2 (94 MiB), in partition sectors:
#                            0..65535        lab-span, first part (DM_SPAN 0..32 MiB)
#                            65536..81919    lab-mixed, linear part (then 8 MiB of zero)
#                            81920..90111    lab-ro (DM_RO, read-only)
#                            90112..98303    lab-susp (DM_SUSP, suspended by tests)
#                            98304..114687   lab-crypt (DM_CRYPT, aes-xts-plain64)
#                            114688..131071  lab-reload (DM_RELOAD)
#                            131072..147455  DM_RELOAD's other place (DM_RELOAD_ALT_TABLE)
#                            147456..180223  lab-under (DM_OVER_DM_BASE); lab-over-dm
#                                            (DM_OVER_DM) maps its sectors 4096..20479
#                            180224..192511  free
#       260096..262143     free, GPT backup
#   DM_ERROR is one "error" target, over no disk.

LAB_ENV_FILE=/run/lab/env
CFS=/sys/kernel/config
TGT=$CFS/target
LAB_DEVICES=""
MiB=1048576

NVME_SERIAL=lab-nvme-1
NOCOPY_SERIAL=lab-nocopy
# nsid, env name: the QEMU command line in lab/host/guest.sh gives the limits.
NVME_LAYOUT="1:NVME_SMALL 2:NVME_DEFAULT 3:NVME_4K 4:NVME_PART 5:NVME_DM 6:NVME_DM2"
# The GPT of NVME_PART and LUN_PART, in 512-byte sectors: 1..64 MiB, 64..127 MiB.
# first-lba: LIO advertises a 4 MiB optimal transfer length, which sfdisk
# would otherwise take as the first usable sector.
PART_STARTS="2048 131072"
PART_TABLE='label: gpt
first-lba: 34
start=2048, size=129024, name=lab-part1
start=131072, size=129024, name=lab-part2'
# dm: lab-linear is NVME_DM sectors 16384..81919; lab-striped takes 2 stripes
# of 8-sector chunks, over NVME_DM from sector 131072 and LUN_DM from 0.
DM_LINEAR_START=16384 DM_LINEAR_SECTORS=65536
DM_STRIPED_CHUNK=8 DM_STRIPED_NVME_START=131072 DM_STRIPED_SECTORS=262144
# NVME_DM2's GPT: 1..33 MiB and 33..127 MiB.
DM2_PART_STARTS="2048 67584"
DM2_PART_TABLE='label: gpt
first-lba: 34
start=2048, size=65536, name=lab-dm2-part1
start=67584, size=192512, name=lab-dm2-part2'
# The stacks of 50-dm.sh, in sectors (see the map above).  START: on the
# device the table names (a partition, a disk or another dm device).
DM_SPAN_P1_START=0 DM_SPAN_P1_SECTORS=65536		# on NVME_DM2_PART2
DM_SPAN_P2_START=106496 DM_SPAN_P2_SECTORS=24576	# on NVME_DM
DM_PARTLIN_START=2048 DM_PARTLIN_SECTORS=32768		# on NVME_DM2_PART1
DM_UNDER_START=147456 DM_UNDER_SECTORS=32768		# on NVME_DM2_PART2
DM_OVER_DM_START=4096 DM_OVER_DM_SECTORS=16384		# on lab-under
DM_MIXED_START=65536 DM_MIXED_LINEAR=16384 DM_MIXED_ZERO=16384	# on NVME_DM2_PART2
DM_ERROR_SECTORS=2048
DM_RO_START=81920 DM_RO_SECTORS=8192			# on NVME_DM2_PART2
DM_SUSP_START=90112 DM_SUSP_SECTORS=8192		# on NVME_DM2_PART2
DM_CRYPT_START=98304 DM_CRYPT_SECTORS=16384		# on NVME_DM2_PART2
DM_CRYPT_KEY=000102030405060708090a0b0c0d0e0f101112131415161718191a1b1c1d1e1f
DM_RELOAD_START=114688 DM_RELOAD_ALT_START=131072 DM_RELOAD_SECTORS=16384	# on NVME_DM2_PART2
DM_STRIPED_LUNS_CHUNK=8 DM_STRIPED_LUNS_SECTORS=131072	# 2 x LUN_STRIPE1/2
# Modules the guest may do without: only the device that needs them is lost.
LAB_OPTIONAL_MODULES=" ecb.ko xts.ko dm-crypt.ko null_blk.ko sch_tbf.ko "

# The zoned devices (ZNS, DM_ZONED, NULLB_ZONED*): setup_zoned.
. "${BASH_SOURCE[0]%/*}/zoned.sh"
# NVMe over TCP (NVME_TCP*): setup_nvme_tcp.
. "${BASH_SOURCE[0]%/*}/nvme-tcp.sh"

# ---------------------------------------------------------------------------
# Reporting and the env file

setup_pass() {
	result "PASS lab-setup-$1"
}

setup_fail() {
	result "FAIL lab-setup-$1: $2"
	return 1
}

setup_skip() {
	result "SKIP lab-setup-$1: $2"
	return 1
}

# env_set KEY VALUE: into the env file and this shell.  Values are plain
# (paths, numbers, comma lists) so that the file reads as well with a
# KEY=value parser as with the shell; anything else is shell-quoted.
env_set() {
	if [[ $2 =~ ^[A-Za-z0-9_,./:+-]*$ ]]; then
		printf '%s=%s\n' "$1" "$2" >>"$LAB_ENV_FILE"
	else
		printf '%s=%q\n' "$1" "$2" >>"$LAB_ENV_FILE"
	fi
	printf -v "$1" '%s' "$2"
}

# env_device NAME PATH KIND: a block device the tests cover.
env_device() {
	env_set "$1" "$2"
	env_set "$1_KIND" "$3"
	LAB_DEVICES+="${LAB_DEVICES:+,}$1"
}

# wait_until SECONDS CMD...: poll CMD every 0.1 s.
wait_until() {
	local tries=$(($1 * 10))
	shift
	while ! "$@"; do
		tries=$((tries - 1))
		[ "$tries" -gt 0 ] || return 1
		sleep 0.1
	done
}

trim() {
	local s
	s=$(cat "$1" 2>/dev/null) || return 1
	s=${s#"${s%%[![:space:]]*}"}
	printf '%s' "${s%"${s##*[![:space:]]}"}"
}

# ---------------------------------------------------------------------------
# Modules

# brd: ram0 goes under LUN_IBLOCK (iblock holds it exclusively), ram1 is
# for the tests, ram2 under the dm device under LUN_FREEZE; 64 MiB each.
# load_modules: insmod the archive's modules in their order (every guest
# role); MODULES_MISSING: the wanted ones not loaded afterwards.
load_modules() {
	local m args err name w
	while read -r m; do
		args=""
		# What modprobe would take from the kernel command line (NAME.PARAM=VALUE):
		# insmod does not (nvme_core.multipath=N with QEMU 10).
		name=${m%.ko}
		name=${name//-/_}
		for w in $(cat /proc/cmdline); do
			[[ $w == "$name".*=* ]] && args+=" ${w#"$name".}"
		done
		[ "$m" = brd.ko ] && args="rd_nr=3 rd_size=65536"
		# null_blk would make a 250 GB nullb0 without memory; ours come from configfs.
		[ "$m" = null_blk.ko ] && args="nr_devices=0"
		# A CPU-specific module (crct10dif-pclmul) may refuse to load; what
		# counts is that every wanted module is there afterwards.
		err=$(insmod "/lab-modules/$m" $args 2>&1) || echo "insmod $m: $err"
	done </lab-modules/load-order
	MODULES_MISSING=()
	while read -r m; do
		[ -d "/sys/module/${m//-/_}" ] || MODULES_MISSING+=("$m")
	done </lab-modules/want
}

# virtio_disk SERIAL: the virtio-blk disk with that serial.
virtio_disk() {
	local b
	for b in /sys/block/vd*; do
		[ "$(trim "$b/serial")" = "$1" ] && { echo "/dev/${b##*/}"; return 0; }
	done
	return 1
}

setup_modules() {
	local m f missing=""
	load_modules
	for m in "${MODULES_MISSING[@]}"; do
		if [[ $LAB_OPTIONAL_MODULES == *" $m.ko "* ]]; then
			result "INFO optional module $m is not loaded"
			continue
		fi
		missing+=" $m"
	done
	# What the host found built in, or optional and not in this kernel.
	for f in builtin absent; do
		m=$(tr '\n' ' ' <"/lab-modules/$f" 2>/dev/null)
		[ -n "${m// /}" ] && result "INFO modules $f in $(uname -r): $m"
	done
	[ -z "$missing" ] || { setup_fail modules "not loaded:$missing"; return 1; }
	grep -q " $CFS " /proc/mounts || mount -t configfs configfs "$CFS"
	setup_pass modules
}

# ---------------------------------------------------------------------------
# NVMe

# nvme_ns_disk NSID [SERIAL [TRANSPORT]]: the block device of namespace NSID of the
# controller with serial SERIAL (default: NVME_SERIAL's), reached over
# TRANSPORT when one is named (a controller exported over NVMe/TCP is seen
# twice, over pcie and over tcp).
nvme_ns_disk() {
	local b serial=${2:-$NVME_SERIAL} transport=${3:-}
	for b in /sys/block/nvme*n*; do
		[[ ${b##*/} =~ ^nvme[0-9]+n[0-9]+$ ]] || continue
		[ "$(trim "$b/nsid")" = "$1" ] || continue
		[ "$(trim "$b/device/serial")" = "$serial" ] || continue
		[ -z "$transport" ] || [ "$(trim "$b/device/transport" 2>/dev/null)" = "$transport" ] || continue
		echo "/dev/${b##*/}"
		return 0
	done
	return 1
}

nvme_all_there() {
	local e
	for e in $NVME_LAYOUT; do
		nvme_ns_disk "${e%%:*}" >/dev/null || return 1
		[ -b "$(nvme_ns_disk "${e%%:*}")" ] || return 1
	done
}

# nvme_ctrl_of DISK: the controller node of a namespace's block node: its
# sysfs parent, or under a multipath head node (whose parent is the NVM
# subsystem) the subsystem's first controller.
nvme_ctrl_of() {
	local dev c
	dev=$(basename "$(readlink -f "/sys/block/${1#/dev/}/device")")
	if [[ $dev == nvme-subsys* ]]; then
		for c in /sys/class/nvme-subsystem/"$dev"/nvme[0-9]*; do
			[ -e "$c" ] && { echo "/dev/${c##*/}"; return 0; }
		done
		return 1
	fi
	echo "/dev/$dev"
}

# nvme_ng_node DISK NSID: its passthrough char node (same controller and
# namespace instance), checked by asking it for its nsid.
nvme_ng_node() {
	local ng=/dev/ng${1#/dev/nvme} id
	[ -c "$ng" ] || return 1
	id=$(nvme get-ns-id "$ng" 2>/dev/null | sed -n 's/.*namespace-id: *\([0-9]*\).*/\1/p')
	[ "$id" = "$2" ] && echo "$ng"
}

# nvme_export NSID NAME: env entries of one namespace of controller 1.
nvme_export() {
	local dev
	dev=$(nvme_ns_disk "$1")
	env_device "$2" "$dev" nvme
	nvme_export_ns "$1" "$2" "$dev"
}

# nvme_export_ns NSID NAME DEV [STEP]: the NVMe entries of namespace DEV:
# NAME_NSID, its copy limits as the namespace reports them (MSRC is 0-based:
# ranges = MSRC + 1) and NAME_NG; a failure fails setup step STEP (nvme).
nvme_export_ns() {
	local nsid=$1 name=$2 dev=$3 step=${4:-nvme} ng js mssrl mcl msrc
	env_set "${name}_NSID" "$nsid"
	js=$(nvme id-ns "$dev" -o json 2>/dev/null) || { setup_fail "$step" "nvme id-ns $dev failed"; return 1; }
	# One jq for the three: each start costs about 0.4 s under TCG.
	read -r mssrl mcl msrc < <(jq -r '"\(.mssrl // 0) \(.mcl // 0) \(.msrc // 0)"' <<<"$js")
	env_set "${name}_MSSRL" "$mssrl"
	env_set "${name}_MCL" "$mcl"
	env_set "${name}_MSRC" "$msrc"
	ng=$(nvme_ng_node "$dev" "$nsid") ||
		{ setup_fail "$step" "no passthrough node answering nsid $nsid for $dev"; return 1; }
	env_set "${name}_NG" "$ng"
}

# nvme_expect NAME FIELD VALUE: the namespace has what the host asked for.
nvme_expect() {
	local v="${1}_$2"
	[ "${!v:-}" = "$3" ] || setup_fail nvme "$1: $2 is '${!v:-}', expected $3"
}

setup_nvme() {
	local e ctrl oncs ok=0
	wait_until 60 nvme_all_there ||
		{ setup_fail nvme "namespaces $NVME_LAYOUT of controller $NVME_SERIAL did not all appear: $(ls /sys/block | tr '\n' ' ')"; return 1; }
	# QEMU 7.2's controller is not multi-controller capable (CMIC 0): no
	# multipath head.  QEMU 10's is, so with LAB_NVME_MULTIPATH=Y the
	# namespaces are head nodes (lab/host/qemu.sh).
	ctrl=$(nvme_ns_disk 1)
	ctrl=$(nvme_ctrl_of "$ctrl")
	[ -c "$ctrl" ] || { setup_fail nvme "controller node $ctrl of $NVME_SERIAL not found"; return 1; }
	env_set NVME_CTRL "$ctrl"
	oncs=$(nvme id-ctrl "$ctrl" -o json 2>/dev/null | jq -r '.oncs // 0')
	env_set NVME_ONCS "$oncs"
	[ $((oncs & 0x100)) -ne 0 ] ||
		{ setup_fail nvme "controller $ctrl does not report Copy (ONCS bit 8): oncs=$oncs"; ok=1; }
	for e in $NVME_LAYOUT; do
		nvme_export "${e%%:*}" "${e#*:}" || ok=1
	done
	nvme_expect NVME_SMALL MSSRL 16 || ok=1
	nvme_expect NVME_SMALL MCL 64 || ok=1
	nvme_expect NVME_SMALL MSRC 3 || ok=1
	[ "$(blockdev --getss "$NVME_4K")" = 4096 ] || { setup_fail nvme "$NVME_4K: logical block size is not 4096"; ok=1; }
	[ $ok = 0 ] && setup_pass nvme
}

# ---------------------------------------------------------------------------
# Disks without native copy

setup_nocopy() {
	local dev
	wait_until 30 eval 'ls /sys/block/vd* >/dev/null 2>&1'
	if dev=$(virtio_disk "$NOCOPY_SERIAL"); then
		env_device NOCOPY "$dev" block
		setup_pass nocopy
		return 0
	fi
	setup_fail nocopy "no virtio-blk disk with serial $NOCOPY_SERIAL: $(ls /sys/block | tr '\n' ' ')"
}

setup_brd() {
	[ -b /dev/ram0 ] && [ -b /dev/ram1 ] || { setup_fail brd "no /dev/ram0 and /dev/ram1"; return 1; }
	[ "$(blockdev --getsize64 /dev/ram1)" = $((64 * MiB)) ] || { setup_fail brd "/dev/ram1 is not 64 MiB"; return 1; }
	env_device BRD /dev/ram1 block
	env_device BRD_IBLOCK /dev/ram0 block
	setup_pass brd
}

# ---------------------------------------------------------------------------
# SCSI: LIO backstores exported through tcm_loop

# LUN number, env name, backstore (hba/name), control string, extra
# attribute, size in MiB.  Unit serials are lab-lun-fileio, lab-lun-rdmcp,
# ...  LUN_PART is 128 MiB to carry the same GPT as NVME_PART; fileio files
# live in the guest's tmpfs (sparse until written).
LIO_LUNS=(
	"0 LUN_FILEIO fileio_0/lab_fileio fd_dev_name=/tmp/lun-fileio.img,fd_dev_size=$((64 * MiB)) - 64"
	"1 LUN_RDMCP rd_mcp_0/lab_rdmcp rd_pages=16384 - 64"
	"2 LUN_IBLOCK iblock_0/lab_iblock udev_path=/dev/ram0 - 64"
	"3 LUN_4K fileio_1/lab_4k fd_dev_name=/tmp/lun-4k.img,fd_dev_size=$((64 * MiB)) block_size=4096 64"
	"4 LUN_PART fileio_2/lab_part fd_dev_name=/tmp/lun-part.img,fd_dev_size=$((128 * MiB)) - 128"
	"5 LUN_DM rd_mcp_1/lab_rddm rd_pages=16384 - 64"
	"6 LUN_STRIPE1 rd_mcp_2/lab_stripe1 rd_pages=8192 - 32"
	"7 LUN_STRIPE2 rd_mcp_3/lab_stripe2 rd_pages=8192 - 32"
	"8 LUN_FREEZE iblock_1/lab_freeze udev_path=/dev/mapper/lab-freeze - 64"
)
# LUN_FREEZE's backing device: dm linear over /dev/ram2, which a test
# suspends so that the target's I/O, and so an EXTENDED COPY, hangs.
FREEZE_DM=lab-freeze
TCM_WWN=naa.5001405000000001
TCM_NEXUS=naa.5001405000000002

lun_serial() {
	local n=${1#LUN_}
	echo "lab-lun-${n,,}"
}

# naa_key SERIAL: what of a unit serial reaches the NAA designator LIO makes
# from it (target_core_spc.c: the serial's hex digits only, 25 at most, the
# rest zeros).  Two LUNs with one key share a designator, and an EXTENDED
# COPY naming one may land on the other: "lab-lun-dm" and "lab-lun-dms0"
# would (a, b, d, then zeros).
naa_key() {
	local h=${1//[^0-9a-fA-F]/}
	h=${h,,}
	h=${h:0:25}
	while [[ $h == *0 ]]; do h=${h%0}; done
	echo "$h"
}

# lio_backstore STORE CONTROL ATTR SERIAL: create and enable a backstore.
lio_backstore() {
	local d=$TGT/core/$1 a
	mkdir -p "$d" &&
		echo "$2" >"$d/control" &&
		echo "$4" >"$d/wwn/vpd_unit_serial" &&
		echo 1 >"$d/enable" || return 1
	# Enabling (configuring) the device resets block_size to the backing
	# store's; it can change until the device is exported through a LUN.
	if [ "$3" != - ]; then
		a=$d/attrib/${3%%=*}
		echo "${3#*=}" >"$a" || return 1
		[ "$(cat "$a")" = "${3#*=}" ] || { echo "${3%%=*} stays $(cat "$a")"; return 1; }
	fi
	[ "$(cat "$d/attrib/emulate_3pc")" = 1 ] || { echo "emulate_3pc is not 1"; return 1; }
}

# scsi_disk_of_lun N: /dev/sdX of LUN N on the tcm_loop host.
scsi_disk_of_lun() {
	local b hctl
	for b in /sys/block/sd*; do
		[ -e "$b/device" ] || continue
		hctl=$(basename "$(readlink -f "$b/device")")
		[ "${hctl##*:}" = "$1" ] || continue
		[ "$(trim "/sys/class/scsi_host/host${hctl%%:*}/proc_name")" = tcm_loopback ] || continue
		echo "/dev/${b##*/}"
		return 0
	done
	return 1
}

lio_all_there() {
	local l lun
	for l in "${LIO_LUNS[@]}"; do
		lun=${l%% *}
		[ -b "$(scsi_disk_of_lun "$lun")" ] || return 1
	done
}

# lio_export LINE: env entries for one LUN after checking what the initiator sees.
lio_export() {
	local lun name store control attr mib dev sg serial bs=512 what
	read -r lun name store control attr mib <<<"$1"
	what=lio-${name,,}
	what=${what//_/-}
	[ "$attr" = block_size=4096 ] && bs=4096
	dev=$(scsi_disk_of_lun "$lun")
	sg=$(ls "/sys/block/${dev#/dev/}/device/scsi_generic" 2>/dev/null)
	serial=$(lun_serial "$name")
	# The first commands get unit attentions (new LUNs): eat them.
	sg_turs "$dev" >/dev/null 2>&1
	sg_turs "$dev" >/dev/null 2>&1
	[ -c "/dev/$sg" ] || { setup_fail "$what" "no sg node for $dev"; return 1; }
	sg_vpd --page=sn "$dev" 2>/dev/null | grep -qw "$serial" ||
		{ setup_fail "$what" "$dev does not report unit serial $serial"; return 1; }
	[ "$(blockdev --getss "$dev")" = "$bs" ] ||
		{ setup_fail "$what" "$dev has $(blockdev --getss "$dev")-byte blocks, expected $bs"; return 1; }
	[ "$(blockdev --getsize64 "$dev")" = $((mib * MiB)) ] ||
		{ setup_fail "$what" "$dev is $(blockdev --getsize64 "$dev") bytes, expected $mib MiB"; return 1; }
	env_device "$name" "$dev" scsi
	env_set "${name}_SG" "/dev/$sg"
	env_set "${name}_LUN" "$lun"
	env_set "${name}_SERIAL" "$serial"
	env_set "${name}_BACKSTORE" "${store%%_[0-9]*}"
}

setup_lio() {
	local l lun name store control attr mib err t=$TGT/loopback/$TCM_WWN/tpgt_1 ok=0 k
	local -A keys=()
	for l in "${LIO_LUNS[@]}"; do
		read -r lun name store control attr mib <<<"$l"
		k=$(naa_key "$(lun_serial "$name")")
		[ -z "${keys[$k]:-}" ] ||
			{ setup_fail lio "$name and ${keys[$k]} would share one NAA designator (serial hex digits '$k')"; return 1; }
		keys[$k]=$name
	done
	[ -b /dev/ram2 ] && dmsetup create "$FREEZE_DM" --table "0 $((64 * MiB / 512)) linear /dev/ram2 0" ||
		{ setup_fail lio "dm device $FREEZE_DM over /dev/ram2"; return 1; }
	env_set LUN_FREEZE_DM "$FREEZE_DM"
	for l in "${LIO_LUNS[@]}"; do
		read -r lun name store control attr mib <<<"$l"
		err=$(lio_backstore "$store" "$control" "$attr" "$(lun_serial "$name")" 2>&1) ||
			{ setup_fail lio "backstore $store: ${err:-failed}"; return 1; }
	done
	# The nexus must exist before any LUN, or the LUN scan finds no I_T nexus.
	mkdir -p "$t" && echo "$TCM_NEXUS" >"$t/nexus" ||
		{ setup_fail lio "tcm_loop target $t"; return 1; }
	for l in "${LIO_LUNS[@]}"; do
		read -r lun name store control attr mib <<<"$l"
		mkdir -p "$t/lun/lun_$lun" && ln -s "$TGT/core/$store" "$t/lun/lun_$lun/${store#*/}" ||
			{ setup_fail lio "LUN $lun ($store)"; return 1; }
	done
	wait_until 60 lio_all_there ||
		{ setup_fail lio "LUNs did not all appear as SCSI disks: $(ls /sys/block | tr '\n' ' ')"; return 1; }
	for l in "${LIO_LUNS[@]}"; do
		lio_export "$l" || ok=1
	done
	[ $ok = 0 ] && setup_pass lio
}

# ---------------------------------------------------------------------------
# Partitions (the kernel parses GPT itself; no udev to wait for)

# part_node DISK N: /dev node of partition N of DISK.
part_node() {
	local disk=${1#/dev/} p
	for p in /sys/block/"$disk"/"$disk"*; do
		[ "$(cat "$p/partition" 2>/dev/null)" = "$2" ] && [ -b "/dev/${p##*/}" ] &&
			{ echo "/dev/${p##*/}"; return 0; }
	done
	return 1
}

# setup_gpt NAME [SUFFIX TABLE STARTS]: partition ${NAME} with TABLE (default
# PART_TABLE, partitions starting at the sectors STARTS) and export
# ${NAME}${SUFFIX}1 and ${NAME}${SUFFIX}2.
setup_gpt() {
	local name=$1 disk=${!1:-} kind=${1%%_*} sfx=${2:-} table=${3:-$PART_TABLE} starts=${4:-$PART_STARTS}
	local n p what start
	what=part-${name,,}
	what=${what//_/-}
	[ -n "$disk" ] || { setup_fail "$what" "$name is not set up"; return 1; }
	kind=$([ "$kind" = NVME ] && echo nvme || echo scsi)
	printf '%s\n' "$table" | sfdisk -q "$disk" >/tmp/sfdisk.out 2>&1 ||
		{ setup_fail "$what" "sfdisk $disk: $(tr '\n' ' ' </tmp/sfdisk.out)"; return 1; }
	wait_until 10 part_node "$disk" 2 >/dev/null || partx -a "$disk" 2>/dev/null
	name=$name$sfx
	set -- $starts
	for n in 1 2; do
		p=$(wait_until 10 part_node "$disk" "$n" >/dev/null && part_node "$disk" "$n") ||
			{ setup_fail "$what" "no partition $n on $disk"; return 1; }
		start=$(cat "/sys/class/block/${p#/dev/}/start")
		[ "$start" = "$1" ] || { setup_fail "$what" "$p starts at sector $start, not $1"; return 1; }
		shift
		env_device "$name$n" "$p" "$kind"
		env_set "$name${n}_PARENT" "$disk"
		env_set "$name${n}_OFFSET" $((start * 512))
	done
	setup_pass "$what"
}

# ---------------------------------------------------------------------------
# device-mapper (no udev: libdevmapper makes the /dev/mapper nodes itself)

# dm_create NAME TABLE [OPTION...]: a table of several lines goes through
# stdin (--table takes one line).
dm_create() {
	local err name=$1 table=$2
	shift 2
	if [[ $table == *$'\n'* ]]; then
		err=$(printf '%s\n' "$table" | DM_DISABLE_UDEV=1 dmsetup create "$@" "$name" 2>&1) ||
			{ echo "$err"; return 1; }
	else
		err=$(DM_DISABLE_UDEV=1 dmsetup create "$@" "$name" --table "$table" 2>&1) ||
			{ echo "$err"; return 1; }
	fi
	wait_until 10 test -b "/dev/mapper/$name" || { echo "no /dev/mapper/$name"; return 1; }
}

setup_dm() {
	local err
	[ -n "${NVME_DM:-}" ] && [ -n "${LUN_DM:-}" ] || { setup_fail dm "NVME_DM or LUN_DM is not set up"; return 1; }
	err=$(dm_create lab-linear "0 $DM_LINEAR_SECTORS linear $NVME_DM $DM_LINEAR_START") ||
		{ setup_fail dm "lab-linear: $err"; return 1; }
	env_device DM_LINEAR /dev/mapper/lab-linear dm
	env_set DM_LINEAR_BASE "$NVME_DM"
	env_set DM_LINEAR_OFFSET $((DM_LINEAR_START * 512))
	env_set DM_LINEAR_SIZE $((DM_LINEAR_SECTORS * 512))
	err=$(dm_create lab-striped "0 $DM_STRIPED_SECTORS striped 2 $DM_STRIPED_CHUNK $NVME_DM $DM_STRIPED_NVME_START $LUN_DM 0") ||
		{ setup_fail dm "lab-striped: $err"; return 1; }
	env_device DM_STRIPED /dev/mapper/lab-striped dm
	env_set DM_STRIPED_CHUNK $((DM_STRIPED_CHUNK * 512))
	env_set DM_STRIPED_DEV0 "$NVME_DM"
	env_set DM_STRIPED_DEV0_OFFSET $((DM_STRIPED_NVME_START * 512))
	env_set DM_STRIPED_DEV1 "$LUN_DM"
	env_set DM_STRIPED_DEV1_OFFSET 0
	env_set DM_STRIPED_SIZE $((DM_STRIPED_SECTORS * 512))
	setup_pass dm
}

# dm_linear_over_part NAME PART START SECTORS: the env entries of a dm
# device that is one linear target over partition PART (an env name) at
# sector START: NAME_BASE/_OFFSET (what the table names), NAME_SIZE, and
# NAME_DISK/_DISK_OFFSET (the same bytes on the whole namespace).
dm_linear_over_part() {
	local name=$1 part=$2 start=$3 sectors=$4 po=${2}_OFFSET pp=${2}_PARENT
	env_set "${name}_BASE" "${!part}"
	env_set "${name}_OFFSET" $((start * 512))
	env_set "${name}_SIZE" $((sectors * 512))
	env_set "${name}_DISK" "${!pp}"
	env_set "${name}_DISK_OFFSET" $((${!po} + start * 512))
}

# The stacks of tests/lab/50-dm.sh.  One setup step each; a failed step
# leaves its device out and the tests that need it skip.
setup_dm_stacks() {
	local err p2 p1 tbl
	if [ -z "${NVME_DM:-}" ] || [ -z "${NVME_DM2_PART1:-}" ] || [ -z "${NVME_DM2_PART2:-}" ]; then
		setup_fail dm-stacks "NVME_DM or NVME_DM2's partitions are not set up"
		return 1
	fi
	p1=$NVME_DM2_PART1 p2=$NVME_DM2_PART2

	# Two namespaces end to end.
	tbl="0 $DM_SPAN_P1_SECTORS linear $p2 $DM_SPAN_P1_START
$DM_SPAN_P1_SECTORS $DM_SPAN_P2_SECTORS linear $NVME_DM $DM_SPAN_P2_START"
	if err=$(dm_create lab-span "$tbl"); then
		env_device DM_SPAN /dev/mapper/lab-span dm
		env_set DM_SPAN_SIZE $(((DM_SPAN_P1_SECTORS + DM_SPAN_P2_SECTORS) * 512))
		# Leaves as whole namespaces (where native copies land) ...
		env_set DM_SPAN_DEV0 "$NVME_DM2"
		env_set DM_SPAN_DEV0_OFFSET $((NVME_DM2_PART2_OFFSET + DM_SPAN_P1_START * 512))
		env_set DM_SPAN_DEV0_SIZE $((DM_SPAN_P1_SECTORS * 512))
		env_set DM_SPAN_DEV1 "$NVME_DM"
		env_set DM_SPAN_DEV1_OFFSET $((DM_SPAN_P2_START * 512))
		env_set DM_SPAN_DEV1_SIZE $((DM_SPAN_P2_SECTORS * 512))
		# ... and as the table names them (the first is a partition).
		env_set DM_SPAN_DEV0_TABLE "$p2"
		env_set DM_SPAN_DEV0_TABLE_OFFSET $((DM_SPAN_P1_START * 512))
		setup_pass dm-span
	else
		setup_fail dm-span "lab-span: $err"
	fi

	if err=$(dm_create lab-partlin "0 $DM_PARTLIN_SECTORS linear $p1 $DM_PARTLIN_START"); then
		env_device DM_PARTLIN /dev/mapper/lab-partlin dm
		dm_linear_over_part DM_PARTLIN NVME_DM2_PART1 "$DM_PARTLIN_START" "$DM_PARTLIN_SECTORS"
		setup_pass dm-partlin
	else
		setup_fail dm-partlin "lab-partlin: $err"
	fi

	# dm over dm: lab-under is linear over NVME_DM2_PART2, lab-over-dm linear
	# over lab-under (which it then holds: lab-under is never written directly).
	if err=$(dm_create lab-under "0 $DM_UNDER_SECTORS linear $p2 $DM_UNDER_START") &&
		err=$(dm_create lab-over-dm "0 $DM_OVER_DM_SECTORS linear /dev/mapper/lab-under $DM_OVER_DM_START"); then
		env_device DM_OVER_DM /dev/mapper/lab-over-dm dm
		env_set DM_OVER_DM_BASE /dev/mapper/lab-under
		env_set DM_OVER_DM_OFFSET $((DM_OVER_DM_START * 512))
		env_set DM_OVER_DM_SIZE $((DM_OVER_DM_SECTORS * 512))
		env_set DM_OVER_DM_DISK "$NVME_DM2"
		env_set DM_OVER_DM_DISK_OFFSET $((NVME_DM2_PART2_OFFSET + (DM_UNDER_START + DM_OVER_DM_START) * 512))
		setup_pass dm-over-dm
	else
		setup_fail dm-over-dm "$err"
	fi

	if [ -z "${LUN_STRIPE1:-}" ] || [ -z "${LUN_STRIPE2:-}" ]; then
		setup_fail dm-striped-luns "LUN_STRIPE1 or LUN_STRIPE2 is not set up"
	elif err=$(dm_create lab-striped-luns "0 $DM_STRIPED_LUNS_SECTORS striped 2 $DM_STRIPED_LUNS_CHUNK $LUN_STRIPE1 0 $LUN_STRIPE2 0"); then
		env_device DM_STRIPED_LUNS /dev/mapper/lab-striped-luns dm
		env_set DM_STRIPED_LUNS_STRIPES 2
		env_set DM_STRIPED_LUNS_CHUNK $((DM_STRIPED_LUNS_CHUNK * 512))
		env_set DM_STRIPED_LUNS_DEV0 "$LUN_STRIPE1"
		env_set DM_STRIPED_LUNS_DEV0_OFFSET 0
		env_set DM_STRIPED_LUNS_DEV1 "$LUN_STRIPE2"
		env_set DM_STRIPED_LUNS_DEV1_OFFSET 0
		env_set DM_STRIPED_LUNS_SIZE $((DM_STRIPED_LUNS_SECTORS * 512))
		setup_pass dm-striped-luns
	else
		setup_fail dm-striped-luns "lab-striped-luns: $err"
	fi

	# A linear part, then a part of a type blkcopy does not resolve.
	tbl="0 $DM_MIXED_LINEAR linear $p2 $DM_MIXED_START
$DM_MIXED_LINEAR $DM_MIXED_ZERO zero"
	if err=$(dm_create lab-mixed "$tbl"); then
		env_device DM_MIXED /dev/mapper/lab-mixed dm
		dm_linear_over_part DM_MIXED NVME_DM2_PART2 "$DM_MIXED_START" "$DM_MIXED_LINEAR"
		env_set DM_MIXED_LINEAR_SIZE $((DM_MIXED_LINEAR * 512))
		env_set DM_MIXED_ZERO_OFFSET $((DM_MIXED_LINEAR * 512))
		env_set DM_MIXED_ZERO_SIZE $((DM_MIXED_ZERO * 512))
		env_set DM_MIXED_SIZE $(((DM_MIXED_LINEAR + DM_MIXED_ZERO) * 512))
		setup_pass dm-mixed
	else
		setup_fail dm-mixed "lab-mixed: $err"
	fi

	if err=$(dm_create lab-error "0 $DM_ERROR_SECTORS error"); then
		env_device DM_ERROR /dev/mapper/lab-error dm
		env_set DM_ERROR_SIZE $((DM_ERROR_SECTORS * 512))
		setup_pass dm-error
	else
		setup_fail dm-error "lab-error: $err"
	fi

	if ! [ -d /sys/module/dm_crypt ]; then
		setup_skip dm-crypt "the dm-crypt module is not loaded"
	elif err=$(dm_create lab-crypt "0 $DM_CRYPT_SECTORS crypt aes-xts-plain64 $DM_CRYPT_KEY 0 $p2 $DM_CRYPT_START"); then
		env_device DM_CRYPT /dev/mapper/lab-crypt dm
		dm_linear_over_part DM_CRYPT NVME_DM2_PART2 "$DM_CRYPT_START" "$DM_CRYPT_SECTORS"
		setup_pass dm-crypt
	else
		setup_fail dm-crypt "lab-crypt: $err"
	fi

	if err=$(dm_create lab-ro "0 $DM_RO_SECTORS linear $p2 $DM_RO_START" --readonly) &&
		[ "$(blockdev --getro /dev/mapper/lab-ro)" = 1 ]; then
		env_device DM_RO /dev/mapper/lab-ro dm
		env_set DM_RO_READ_ONLY 1
		dm_linear_over_part DM_RO NVME_DM2_PART2 "$DM_RO_START" "$DM_RO_SECTORS"
		setup_pass dm-ro
	else
		setup_fail dm-ro "lab-ro: ${err:-not read-only}"
	fi

	if err=$(dm_create lab-susp "0 $DM_SUSP_SECTORS linear $p2 $DM_SUSP_START"); then
		env_device DM_SUSP /dev/mapper/lab-susp dm
		env_set DM_SUSP_NAME lab-susp
		dm_linear_over_part DM_SUSP NVME_DM2_PART2 "$DM_SUSP_START" "$DM_SUSP_SECTORS"
		setup_pass dm-susp
	else
		setup_fail dm-susp "lab-susp: $err"
	fi

	# Tests swap its table for DM_RELOAD_ALT_TABLE and back to DM_RELOAD_TABLE.
	if err=$(dm_create lab-reload "0 $DM_RELOAD_SECTORS linear $p2 $DM_RELOAD_START"); then
		env_device DM_RELOAD /dev/mapper/lab-reload dm
		env_set DM_RELOAD_NAME lab-reload
		dm_linear_over_part DM_RELOAD NVME_DM2_PART2 "$DM_RELOAD_START" "$DM_RELOAD_SECTORS"
		env_set DM_RELOAD_TABLE "0 $DM_RELOAD_SECTORS linear $p2 $DM_RELOAD_START"
		env_set DM_RELOAD_ALT_TABLE "0 $DM_RELOAD_SECTORS linear $p2 $DM_RELOAD_ALT_START"
		env_set DM_RELOAD_ALT_DISK_OFFSET $((NVME_DM2_PART2_OFFSET + DM_RELOAD_ALT_START * 512))
		setup_pass dm-reload
	else
		setup_fail dm-reload "lab-reload: $err"
	fi
}

# udev's /dev/block/MAJ:MIN and /dev/char/MAJ:MIN links (sg_xcopy and
# others look devices up that way).
make_dev_links() {
	local d
	mkdir -p /dev/block /dev/char
	for d in /sys/class/block/*; do
		ln -sfn "../${d##*/}" "/dev/block/$(cat "$d/dev")"
	done
	for d in /sys/class/scsi_generic/* /sys/class/nvme/* /sys/class/nvme-generic/*; do
		[ -e "$d/dev" ] && ln -sfn "../${d##*/}" "/dev/char/$(cat "$d/dev")"
	done
	return 0
}

lab_setup() {
	local l
	mkdir -p "${LAB_ENV_FILE%/*}"
	: >"$LAB_ENV_FILE"
	setup_modules || return 1
	setup_nvme
	setup_nvme_tcp
	setup_nocopy
	setup_brd
	setup_lio
	setup_gpt NVME_PART
	setup_gpt LUN_PART
	setup_gpt NVME_DM2 _PART "$DM2_PART_TABLE" "$DM2_PART_STARTS"
	setup_dm
	setup_dm_stacks
	setup_zoned
	make_dev_links
	env_set LAB_DEVICES "$LAB_DEVICES"
	while IFS= read -r l; do
		result "INFO env $l"
	done <"$LAB_ENV_FILE"
	lsblk 2>/dev/null
}
