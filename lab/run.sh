#!/usr/bin/env bash
# SPDX-License-Identifier: MIT
# The blkcopy lab: boot Debian's kernel in QEMU (TCG) with real copy-capable
# devices (QEMU NVMe namespaces with Simple Copy, LIO SCSI LUNs with EXTENDED
# COPY over tcm_loop, device-mapper, virtio-blk and brd without native copy),
# run tests/lab/*.sh in the guest, then boot a second guest as an iSCSI
# target (lab/host/iscsi.sh) and run tests/lab/iscsi/*.sh on the host against
# it, then cut the power of a journalled copy and resume it in another boot
# (lab/host/powercut.sh), then boot a kernel of the lab's own with PCI
# peer-to-peer memory and run tests/lab/p2p/*.sh in it (lab/host/p2p.sh);
# report one PASS/FAIL/SKIP line per check, ending with "N passed, N failed".
#
#   sudo bash lab/run.sh [--keep] [--only REGEX] [--timeout SECONDS] [--env KEY=VALUE]...
#                        [--iscsi-keep] [--iscsi-start] [--p2p-kernel]
#
# --only REGEX picks scripts of every phase by file name, the power-cut
# phase by the name "powercut" and the P2P phase by "p2p"; a phase with nothing picked does not boot
# (--only iscsi: the iSCSI phase alone; --only powercut: the power cut alone).
# --iscsi-keep leaves the iSCSI target running after its scripts (and the run
# directory in place) for running tests/lab/iscsi/*.sh by hand; --iscsi-start
# only boots it (no script runs); bash lab/host/iscsi.sh stop ends it.
# --p2p-kernel only builds the P2P guest's kernel into the cache (or finds
# it there): CI starts it early, beside the host tests.
#
# Runs as root on Debian 12: installs the host packages it needs, downloads
# Debian's current kernel package into a cache (it is never installed on the
# host), builds blkcopy (release) in build-lab/, packs an initramfs, boots.
# Exit status 0 only if nothing failed, something passed and the guest
# reported the end of its run.
#
# Environment:
#   LAB_TIMEOUT=900          whole guest run, in seconds (also --timeout)
#   LAB_SCRIPT_TIMEOUT=300   each tests/lab script, in seconds (in the guest)
#   LAB_RUN=/tmp/blkcopy-lab run directory: disk images, logs (recreated each run)
#   LAB_BUILD=build-lab      blkcopy build directory (two labs at once need two)
#   LAB_SANITIZE=1           build blkcopy and the lab programs with ASan+UBSan
#                            (in build-lab-asan unless LAB_BUILD says otherwise);
#                            a sanitizer report fails the check that ran into it
#   BLKCOPY_LAB_CACHE=/var/cache/blkcopy-lab  kernel and module archive cache
#   LAB_APT_UPDATE=1         run apt-get update before installing packages
#   LAB_KERNEL=PKG           use this linux-image package instead of the current one: a
#                            real package or a metapackage, resolved like linux-image-amd64;
#                            LAB_KERNEL=linux-image-6.12-amd64 boots Debian's 6.12 (from
#                            bookworm-security).  The cache keeps one kernel per series
#                            (6.1, 6.12), so alternating runs download nothing.
#   LAB_QEMU=system          Debian 12's QEMU (7.2); backports: bookworm-backports' (10.x),
#                            unpacked into the cache, never installed (lab/host/qemu.sh):
#                            NVMe Copy across namespaces (formats 2h/3h), MCL enforced
#   LAB_BENCH=1              also run tests/lab/bench-*.sh and tests/lab/iscsi/bench-*.sh
#   LAB_ISCSI_PORT=3260      host port (127.0.0.1) forwarded to the iSCSI target guest
#   LAB_*                    every LAB_ variable is passed to the guest (/etc/lab/config)
set -uo pipefail

top=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
cd "$top" || exit 1
export LC_ALL=C DEBIAN_FRONTEND=noninteractive

. "$top/lab/host/kernel.sh"
. "$top/lab/host/initramfs.sh"
. "$top/lab/host/guest.sh"

LAB_TIMEOUT=${LAB_TIMEOUT:-900}
LAB_SCRIPT_TIMEOUT=${LAB_SCRIPT_TIMEOUT:-300}
LAB_RUN=${LAB_RUN:-/tmp/blkcopy-lab}
LAB_CACHE=${BLKCOPY_LAB_CACHE:-/var/cache/blkcopy-lab}
LAB_SANITIZE=${LAB_SANITIZE:-0}
if [[ $LAB_SANITIZE == 1 ]]; then
	LAB_BUILD=${LAB_BUILD:-$top/build-lab-asan}
	# A report ends the program with an error, so the check that ran it fails and says why.
	export ASAN_OPTIONS=${ASAN_OPTIONS:-abort_on_error=0:detect_leaks=1:exitcode=86}
	export UBSAN_OPTIONS=${UBSAN_OPTIONS:-halt_on_error=1:print_stacktrace=1:exitcode=86}
	export LAB_ASAN_OPTIONS=$ASAN_OPTIONS LAB_UBSAN_OPTIONS=$UBSAN_OPTIONS
else
	LAB_BUILD=${LAB_BUILD:-$top/build-lab}
fi
LAB_BENCH=${LAB_BENCH:-0}
KEEP=0
ISCSI_MODE=run	# run | keep (--iscsi-keep) | start (--iscsi-start)
LAB_ONLY_RE=""	# --only, for the host's choice of phases and of iSCSI scripts
P2P_KERNEL_ONLY=0	# --p2p-kernel: build (or find) the P2P guest's kernel, nothing else

. "$top/lab/host/iscsi.sh"
. "$top/lab/host/powercut.sh"
. "$top/lab/host/p2p.sh"
. "$top/lab/host/qemu.sh"
GUEST_ENV=()	# KEY=VALUE pairs for the guest besides the LAB_* environment

usage() {
	sed -n '3,/^set -uo/{/^set -uo/d;s/^# \{0,1\}//;p}' "${BASH_SOURCE[0]}"
}

# die WHAT: the lab could not even start; one counted failure, exit 1.
die() {
	echo "FAIL lab: $*"
	echo "0 passed, 1 failed"
	exit 1
}

say() {
	echo "lab: $*" >&2
}

# elapsed SINCE: seconds since a $SECONDS value, for the phase timings.
elapsed() {
	echo "$((SECONDS - $1)) s"
}

parse_args() {
	while [[ $# -gt 0 ]]; do
		case $1 in
		--keep) KEEP=1 ;;
		--only) [[ $# -ge 2 ]] || die "--only needs a pattern"; GUEST_ENV+=("LAB_ONLY=$2"); LAB_ONLY_RE=$2; shift ;;
		--only=*) GUEST_ENV+=("LAB_ONLY=${1#*=}"); LAB_ONLY_RE=${1#*=} ;;
		--iscsi-keep) ISCSI_MODE=keep ;;
		--iscsi-start) ISCSI_MODE=start ;;
		--p2p-kernel) P2P_KERNEL_ONLY=1 ;;
		--timeout) [[ ${2:-} =~ ^[0-9]+$ ]] || die "--timeout needs a number of seconds"; LAB_TIMEOUT=$2; shift ;;
		--timeout=*) LAB_TIMEOUT=${1#*=}; [[ $LAB_TIMEOUT =~ ^[0-9]+$ ]] || die "bad --timeout" ;;
		--env) [[ ${2:-} == *=* ]] || die "--env needs KEY=VALUE"; GUEST_ENV+=("$2"); shift ;;
		-h | --help) usage; exit 0 ;;
		*) die "unknown option '$1' (see --help)" ;;
		esac
		shift
	done
	[[ $LAB_TIMEOUT =~ ^[1-9][0-9]*$ ]] || die "LAB_TIMEOUT must be a number of seconds, not '$LAB_TIMEOUT'"
}

# Host packages.  apt-get update runs only when an install fails (or when
# LAB_APT_UPDATE=1): .ci/run has already updated the lists.
HOST_PKGS=(qemu-system-x86 busybox-static kmod cpio nvme-cli sg3-utils dmsetup util-linux
	fdisk gzip xz-utils jq bash coreutils diffutils python3 iproute2 iptables libiscsi-bin)

install_host_packages() {
	local p missing=()
	for p in "${HOST_PKGS[@]}"; do
		dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" ||
			missing+=("$p")
	done
	[[ ${#missing[@]} -eq 0 ]] && return 0
	say "installing ${missing[*]}"
	[[ ${LAB_APT_UPDATE:-0} == 1 ]] && apt-get update -q >/dev/null
	apt-get install -y -q --no-install-recommends "${missing[@]}" >/dev/null && return 0
	say "apt-get install failed; updating the package lists and retrying"
	apt-get update -q >/dev/null &&
		apt-get install -y -q --no-install-recommends "${missing[@]}" >/dev/null
}

build_blkcopy() {
	bash scripts/deps.sh >&2 || return 1
	if [[ $LAB_SANITIZE == 1 ]]; then
		bash scripts/build.sh "$LAB_BUILD" -Dbuildtype=debugoptimized \
			-Db_sanitize=address,undefined -Db_lundef=false >&2
	else
		bash scripts/build.sh "$LAB_BUILD" -Dbuildtype=release >&2
	fi
}

# The run directory is wiped each run; refuse to wipe something that is not ours.
prepare_run_dir() {
	[[ $LAB_RUN == /* && $LAB_RUN != / ]] || die "LAB_RUN must be an absolute path, not '$LAB_RUN'"
	if [[ -d $LAB_RUN && ! -e $LAB_RUN/.blkcopy-lab ]] && [[ -n $(ls -A "$LAB_RUN") ]]; then
		die "$LAB_RUN exists, is not empty and was not made by the lab; not wiping it"
	fi
	iscsi_stop_stale
	rm -rf "$LAB_RUN"
	mkdir -p "$LAB_RUN" && : >"$LAB_RUN/.blkcopy-lab"
}

# Keep logs after a failure (the images go unless --keep): they are what
# explains it.
cleanup_run_dir() {
	local ok=$1
	if [[ $KEEP == 1 || $ISCSI_MODE != run ]]; then
		say "run directory kept: $LAB_RUN"
	elif [[ $ok == 1 ]]; then
		rm -rf "$LAB_RUN"
	else
		rm -f "$LAB_RUN"/*.img
		say "logs kept in $LAB_RUN (console.log, results.log, iscsi-*.log)"
	fi
}

# guest_scripts_match: some tests/lab script would run in the device guest
# (the guest itself applies --only; benchmarks count, they report SKIP).
guest_scripts_match() {
	local s
	for s in "$top"/tests/lab/[0-9]*.sh "$top"/tests/lab/bench-*.sh; do
		[[ -f $s ]] || continue
		[[ -z $LAB_ONLY_RE || ${s##*/} =~ $LAB_ONLY_RE ]] && return 0
	done
	return 1
}

main() {
	local t0=$SECONDS t run_guest=1 run_iscsi=1 run_powercut=1 run_p2p=1 rc=0

	parse_args "$@"
	[[ $EUID -eq 0 ]] || die "run as root (sudo bash lab/run.sh): it installs packages and caches the kernel in $LAB_CACHE"
	if [[ $P2P_KERNEL_ONLY == 1 ]]; then
		mkdir -p "$LAB_CACHE" && p2p_kernel_prepare || die "could not prepare the P2P guest kernel"
		say "P2P guest kernel: $P2P_KERNEL ($(elapsed "$t0"))"
		return 0
	fi
	guest_scripts_match || run_guest=0
	[[ -n $(iscsi_scripts) ]] || run_iscsi=0
	powercut_wanted || run_powercut=0
	p2p_wanted || run_p2p=0
	[[ $ISCSI_MODE == run ]] || run_guest=0 run_iscsi=1 run_powercut=0 run_p2p=0
	[[ $run_guest == 1 || $run_iscsi == 1 || $run_powercut == 1 || $run_p2p == 1 ]] ||
		die "no test script in tests/lab, tests/lab/iscsi or tests/lab/p2p matches '$LAB_ONLY_RE' (nor does powercut)"

	t=$SECONDS
	install_host_packages || die "could not install the host packages (${HOST_PKGS[*]})"
	build_blkcopy || die "building blkcopy in $LAB_BUILD failed"
	say "host packages and blkcopy build: $(elapsed "$t")"

	t=$SECONDS
	kernel_prepare || die "could not prepare the guest kernel (see the messages above)"
	say "kernel $KVER ($KPKG $KPKGVER): $(elapsed "$t")"
	qemu_prepare || die "could not prepare QEMU (LAB_QEMU=$LAB_QEMU)"
	say "QEMU $QEMU_VERSION ($LAB_QEMU)"

	t=$SECONDS
	prepare_run_dir
	modules_cpio || die "could not build the kernel-module archive"
	project_cpio "$LAB_RUN/project.cpio.gz" || die "could not build the initramfs"
	cat "$MODULES_CPIO" "$LAB_RUN/project.cpio.gz" >"$LAB_RUN/initrd.img" || die "could not write $LAB_RUN/initrd.img"
	say "initramfs $(du -h "$LAB_RUN/initrd.img" | cut -f1): $(elapsed "$t")"

	if [[ $run_guest == 1 ]]; then
		t=$SECONDS
		make_disks || die "could not create the disk images in $LAB_RUN"
		boot_and_collect || rc=1
		say "guest run: $(elapsed "$t")"
	else
		say "no tests/lab script matches '$LAB_ONLY_RE': the device guest does not boot"
	fi
	if [[ $run_iscsi == 1 ]]; then
		iscsi_phase "$ISCSI_MODE" || rc=1
	fi
	if [[ $run_powercut == 1 ]]; then
		powercut_phase || rc=1
	fi
	if [[ $run_p2p == 1 ]]; then
		p2p_phase || rc=1
	fi
	# A run that checked nothing did not pass (--iscsi-start checks the target).
	[[ $R_FAILED -eq 0 && $R_PASSED -gt 0 ]] || rc=1
	say "total: $(elapsed "$t0")"
	cleanup_run_dir "$((rc == 0))"
	print_summary
	return "$rc"
}

main "$@"
