# SPDX-License-Identifier: MIT
# Helpers for the lab tests: bash scripts tests/lab/NN-name.sh that lab/run.sh
# runs inside the QEMU guest, in order, each under a time limit.
#
#   . "$(dirname "${BASH_SOURCE[0]}")/lib.sh"
#   case_foo() { need NVME_SMALL || return 77; ...; WHY="..."; return 1; }
#   run_case foo case_foo
#   check bar blockdev --getss "$NVME_SMALL"
#   finish
#
# Output: one "PASS name" / "FAIL name: why" / "SKIP name: why" line per
# check (the guest's /init sends these to the host), "INFO text" for the
# log, anything else for the console only.  Device names come from the
# guest's /run/lab/env (see lab/guest/setup.sh): never guess them.
set -uo pipefail
export LC_ALL=C

T_NAME=$(basename "${BASH_SOURCE[1]:-$0}" .sh)
T_PASSES=0 T_FAILS=0 T_SKIPS=0
WHY=""
RC=0
MiB=1048576
BLKCOPY=${BLKCOPY:-$(command -v blkcopy)}
BC_TIMEOUT=${BC_TIMEOUT:-120}
# Where the lab's test programs (tests/lab/*.c) are installed in the guest.
LAB_BIN=${LAB_BIN:-/usr/bin}
LAB_ENV=${LAB_ENV:-/run/lab/env}

T_DIR=$(mktemp -d "/tmp/lab-$T_NAME.XXXXXX") || exit 1
T_OUT=$T_DIR/.stdout
T_ERR=$T_DIR/.stderr
trap 'rm -rf "$T_DIR"' EXIT

# ---------------------------------------------------------------------------
# The environment: /run/lab/env, KEY=value lines written by the guest setup.

lab_load_env() {
	[[ -r $LAB_ENV ]] || { echo "FAIL $T_NAME: no $LAB_ENV (guest setup did not run)"; exit 1; }
	set -a
	. "$LAB_ENV"
	set +a
}
lab_load_env

# env_get NAME: the value of an env entry ("" when the device is missing).
env_get() {
	echo "${!1:-}"
}

# lab_devices: the names (NVME_SMALL, LUN_4K, ...) of every block device.
lab_devices() {
	tr ',' '\n' <<<"${LAB_DEVICES:-}"
}

# need NAME...: every named device was set up (else WHY is set, return 77).
need() {
	local n
	for n in "$@"; do
		if [[ -z ${!n:-} ]]; then
			WHY="$n is not set up (see the lab-setup lines)"
			return 77
		fi
	done
	return 0
}

# ---------------------------------------------------------------------------
# Results

pass() {
	echo "PASS $1"
	T_PASSES=$((T_PASSES + 1))
}

# fail NAME WHY (one line: the host reads results line by line)
fail() {
	local why=${2:-failed}
	echo "FAIL $1: ${why//$'\n'/ }"
	T_FAILS=$((T_FAILS + 1))
}

# skip NAME WHY
skip() {
	local why=${2:-skipped}
	echo "SKIP $1: ${why//$'\n'/ }"
	T_SKIPS=$((T_SKIPS + 1))
}

info() {
	echo "INFO $*"
}

# run_case NAME FUNC [ARGS...]: FUNC returns 0 (pass), 77 (skip, WHY) or
# anything else (fail, WHY).
run_case() {
	local name=$1 rc
	shift
	WHY=""
	"$@"
	rc=$?
	case $rc in
	0) pass "$name" ;;
	77) skip "$name" "${WHY:-skipped}" ;;
	*) fail "$name" "${WHY:-failed (rc $rc)}" ;;
	esac
}

# check NAME CMD...: pass if CMD succeeds; else fail with the end of its output.
check() {
	local name=$1 out rc
	shift
	out=$("$@" 2>&1)
	rc=$?
	if [[ $rc -eq 0 ]]; then
		pass "$name"
	else
		fail "$name" "'$*' exited $rc: $(tail -c 300 <<<"$out" | tr '\n' ' ')"
	fi
}

# finish: a summary for the console; exit 1 if anything failed.
finish() {
	echo "# $T_NAME: $T_PASSES passed, $T_FAILS failed, $T_SKIPS skipped"
	[[ $T_FAILS -eq 0 ]] && exit 0
	exit 1
}

# ---------------------------------------------------------------------------
# Devices and data

# Under TCG every process costs tens of milliseconds: the helpers below keep
# the number of processes per check small (no subshell per size, the logical
# block size of a device asked once).
declare -A T_LBS=()

# dev_lbs DEV: logical block size (remembered; lbs_remember DEV in the main
# shell so that command substitutions inherit it).
dev_lbs() {
	[[ -n ${T_LBS[$1]:-} ]] && { echo "${T_LBS[$1]}"; return 0; }
	blockdev --getss "$1"
}

lbs_remember() {
	local d
	for d in "$@"; do
		[[ -b $d && -z ${T_LBS[$d]:-} ]] && T_LBS[$d]=$(blockdev --getss "$d")
	done
	return 0
}

dev_size() {
	if [[ -b $1 ]]; then
		blockdev --getsize64 "$1"
	else
		stat -L -c %s "$1"
	fi
}

# drop_caches [DEV...]: write back and forget cached pages, so that a
# buffered read sees the device and not an old page.
drop_caches() {
	local d
	sync
	for d in "$@"; do
		[[ -b $d ]] && blockdev --flushbufs "$d" 2>/dev/null
	done
	echo 3 >/proc/sys/vm/drop_caches
}

# aligned DEV OFF LEN: both multiples of DEV's logical block size (direct I/O
# is possible); regular files count as unaligned.
aligned() {
	local lbs
	[[ -b $1 ]] || return 1
	lbs=${T_LBS[$1]:-$(blockdev --getss "$1")} || return 1
	((($2 % lbs) == 0 && ($3 % lbs) == 0))
}

# to_bytes SIZE: 512, 4k, 3m, 1g, 8s (sectors) -> bytes; sums like 1m+512 too.
to_bytes() {
	local t
	size_var t "$1"
	echo "$t"
}

# size_var VAR SIZE: to_bytes into VAR, without a subshell.
size_var() {
	local s=$2 t=0 p parts
	if [[ $s =~ ^[0-9]+$ ]]; then
		printf -v "$1" '%s' "$s"
		return
	fi
	IFS=+ read -ra parts <<<"$s"
	for p in "${parts[@]}"; do
		case $p in
		*s) t=$((t + ${p%s} * 512)) ;;
		*k) t=$((t + ${p%k} * 1024)) ;;
		*m) t=$((t + ${p%m} * MiB)) ;;
		*g) t=$((t + ${p%g} * 1024 * MiB)) ;;
		*) t=$((t + p)) ;;
		esac
	done
	printf -v "$1" '%s' "$t"
}

# fill_random DEV OFF LEN: random bytes into DEV at OFF; O_DIRECT when
# aligned.  OFF and LEN here and below: bytes or to_bytes forms (4k, 1m+512).
fill_random() {
	local dev=$1 off len oflag=seek_bytes
	size_var off "$2"
	size_var len "$3"
	[[ $len -gt 0 ]] || return 0
	aligned "$dev" "$off" "$len" && oflag+=,direct
	dd if=/dev/urandom of="$dev" bs=1M iflag=count_bytes,fullblock count="$len" \
		oflag="$oflag" seek="$off" conv=notrunc,fsync status=none
}

# read_region DEV OFF LEN: the bytes to stdout; O_DIRECT when aligned, else
# through the page cache after dropping it.
read_region() {
	local dev=$1 off len iflag=skip_bytes,count_bytes
	size_var off "$2"
	size_var len "$3"
	[[ $len -gt 0 ]] || return 0
	if aligned "$dev" "$off" "$len"; then
		iflag+=,direct
	else
		drop_caches "$dev"
	fi
	dd if="$dev" bs=1M iflag="$iflag" skip="$off" count="$len" status=none
}

# md5_region DEV OFF LEN: the md5 of a region (of nothing when LEN is 0).
md5_region() {
	local s
	s=$(read_region "$@" | md5sum)
	echo "${s%% *}"
}

# ---------------------------------------------------------------------------
# Zoned devices: LAB_ZONED_DEVICES, each NAME with NAME_ZONE_SIZE,
# NAME_ZONE_CAP, NAME_NR_ZONES, NAME_NR_CONV, NAME_MAX_OPEN, NAME_MAX_ACTIVE
# (lab/guest/zoned.sh); all their zones are empty when the tests start.

# lab_zoned_devices: the names (ZNS, ZNS_CAP, DM_ZONED, NULLB_ZONED, ...).
lab_zoned_devices() {
	tr ',' '\n' <<<"${LAB_ZONED_DEVICES:-}"
}

# zone_at DEV OFF: the zone of DEV that holds byte OFF (to_bytes forms), from
# one "blkzone report", into ZN_START ZN_LEN ZN_CAP ZN_WP (bytes from the
# start of DEV; ZN_WP is where the next write must land, for a zone that is
# not full: devices differ on a full zone's), ZN_COND (blkzone's words: nw, em, oi,
# oe, cl, fu, ro, of) and ZN_TYPE (conv or seq).  Returns 1, WHY set, if
# there is no such zone.
zone_at() {
	local off out line re
	size_var off "$2"
	out=$(blkzone report -o $((off / 512)) -c 1 "$1" 2>&1) || { WHY="blkzone report $1 at $off: $out"; return 1; }
	re='start: 0x([0-9a-f]+), len 0x([0-9a-f]+),( cap 0x([0-9a-f]+),)? wptr 0x([0-9a-f]+) .*zcond: *[0-9]+\(([a-z0-9]+)\) \[type: *([0-9]+)'
	while IFS= read -r line; do
		[[ $line =~ $re ]] || continue
		ZN_START=$((16#${BASH_REMATCH[1]} * 512))
		ZN_LEN=$((16#${BASH_REMATCH[2]} * 512))
		ZN_CAP=$((16#${BASH_REMATCH[4]:-${BASH_REMATCH[2]}} * 512))
		# blkzone gives the write pointer relative to the zone start.
		ZN_WP=$((ZN_START + 16#${BASH_REMATCH[5]} * 512))
		ZN_COND=${BASH_REMATCH[6]}
		ZN_TYPE=seq
		[[ ${BASH_REMATCH[7]} == 1 ]] && ZN_TYPE=conv ZN_WP=$ZN_START
		((off >= ZN_START && off < ZN_START + ZN_LEN)) && return 0
	done <<<"$out"
	WHY="no zone of $1 holds byte $off: $(head -c 200 <<<"$out")"
	return 1
}

# zones_reset DEV [OFF LEN]: reset every zone of DEV, or those of OFF..OFF+LEN
# (zone aligned, to_bytes forms).  Also on a disk that dm holds (ZNS_DM under
# DM_ZONED): --force opens it without O_EXCL, which blkzone asks for
# otherwise, and dm-linear keeps no state that a reset below it could upset.
zones_reset() {
	local off len out
	if [[ $# -ge 3 ]]; then
		size_var off "$2"
		size_var len "$3"
		out=$(blkzone reset --force -o $((off / 512)) -l $((len / 512)) "$1" 2>&1)
	else
		out=$(blkzone reset --force "$1" 2>&1)
	fi || { WHY="blkzone reset $1${2:+ $2 $3}: $out"; return 1; }
}

# ---------------------------------------------------------------------------
# Running blkcopy

# bcp ARGS...: run blkcopy; stdout in $T_OUT, stderr in $T_ERR, status in $RC.
bcp() {
	timeout -k 5 "$BC_TIMEOUT" "$BLKCOPY" "$@" >"$T_OUT" 2>"$T_ERR" </dev/null
	RC=$?
}

# elapsed_since T0: seconds (decimal) since an $EPOCHREALTIME value.
elapsed_since() {
	awk -v a="$1" -v b="$EPOCHREALTIME" 'BEGIN { printf "%.1f", b - a }'
}

# bcp_what: the last run in a few words, for a failure message.
bcp_what() {
	local e
	e=$(head -c 300 "$T_ERR" | tr '\n' ' ')
	if [[ $RC -eq 124 || $RC -eq 137 ]]; then
		echo "timed out after ${BC_TIMEOUT}s; stderr: $e"
	else
		echo "rc $RC; stderr: $e"
	fi
}

# json_check FILE JQ-EXPR WHY: jq -e on FILE, WHY (with the JSON) if false.
# An empty FILE is false too (jq 1.6 -e exits 0 on no input at all).
json_check() {
	if ! [[ -s $1 ]] || ! jq -e "$2" <"$1" >/dev/null 2>&1; then
		WHY="$3 (jq '$2' on: $(head -c 400 "$1" | tr '\n' ' '))"
		return 1
	fi
	return 0
}

# ---------------------------------------------------------------------------
# A verified copy
#
# copy_verify [--via DEV:OFF]... [--opt OPTION]... [--read-src FILE]
#             [--read-dst FILE] SRC DST DSTOFF OFF:LEN...
# (sizes in to_bytes form).  Fills the source ranges, the destination span and
# GUARD bytes on each side of it with fresh random data; copies with
# "blkcopy copy --json"; checks that it reported every byte, that each range
# landed in order from DSTOFF, that the guard bytes and the sources did not
# change.  --via DEV:OFF checks the destination again through DEV, where DST
# starts at byte OFF (a partition's disk, a dm device's underlying disk).
# --read-src/--read-dst: blkcopy gets SRC/DST, but the bytes are filled and
# checked in FILE (an iSCSI LUN's image on the host, tests/lab/iscsi).
# After it, $T_OUT still holds blkcopy's JSON.
GUARD=${GUARD:-65536}
# Source ranges closer than this are filled with one write, gap included.
FILL_MERGE_GAP=${FILL_MERGE_GAP:-262144}

# fill_ranges DEV: random bytes over every range of CV_OFFS/CV_LENS, nearby
# ranges in one write.
fill_ranges() {
	local dev=$1 i s e cs=-1 ce=-1
	while read -r s e; do
		if ((cs >= 0 && s <= ce + FILL_MERGE_GAP)); then
			((e > ce)) && ce=$e
			continue
		fi
		((cs >= 0)) && { fill_random "$dev" "$cs" $((ce - cs)) || return 1; }
		cs=$s ce=$e
	done < <(for i in "${!CV_OFFS[@]}"; do echo "${CV_OFFS[i]} $((CV_OFFS[i] + CV_LENS[i]))"; done | sort -n)
	((cs >= 0)) && { fill_random "$dev" "$cs" $((ce - cs)) || return 1; }
	return 0
}

# read_ranges DEV: the ranges of CV_OFFS/CV_LENS of DEV, concatenated.
read_ranges() {
	local i
	for i in "${!CV_OFFS[@]}"; do
		read_region "$1" "${CV_OFFS[i]}" "${CV_LENS[i]}" || return 1
	done
}

# range_at POS: which range of CV_LENS holds byte POS of the concatenation.
range_at() {
	local i p=0
	for i in "${!CV_LENS[@]}"; do
		p=$((p + CV_LENS[i]))
		((POS < p)) && { echo "$i"; return; }
	done
	echo "?"
}

# same_as_expected FILE WHAT: FILE equals $T_DIR/expected, or WHY names the
# first range that differs.
same_as_expected() {
	local out POS
	out=$(cmp "$T_DIR/expected" "$1" 2>&1) && return 0
	# "differ: byte N" (or "char N"), or "EOF on FILE after byte N".
	POS=$(($(sed -n 's/.* \(byte\|char\) \([0-9]*\).*/\2/p' <<<"$out") - 1))
	((POS >= 0)) 2>/dev/null || POS=0
	local i
	i=$(range_at)
	WHY="$2: range #$i (${CV_OFFS[i]:-?}:${CV_LENS[i]:-?}) differs ($(head -c 120 <<<"$out"))"
	return 1
}

# guard_sums DEV START TOTAL: md5s of up to GUARD bytes on each side of
# [START, START+TOTAL) of DEV, clipped to DEV (through a partition's disk
# this looks past the partition).
guard_sums() {
	local dev=$1 start=$2 total=$3 gb ga
	gb=$((start < GUARD ? start : GUARD))
	ga=$(($(dev_size "$dev") - start - total))
	((ga > GUARD)) && ga=$GUARD
	echo "$(md5_region "$dev" $((start - gb)) "$gb") $(md5_region "$dev" $((start + total)) "$ga")"
}

# parse_ranges OFF:LEN...: into the caller's CV_OFFS and CV_LENS arrays
# (bytes), adding the lengths to the caller's total.
parse_ranges() {
	local r v
	for r in "$@"; do
		size_var v "${r%%:*}"
		CV_OFFS+=("$v")
		size_var v "${r#*:}"
		CV_LENS+=("$v")
		total=$((total + v))
	done
}

copy_verify() {
	local vias=() opts=() src dst dstoff r total=0 i dsz gb ga guards v bsrc bdst
	local -a CV_OFFS=() CV_LENS=() via_guards=()
	local rsrc="" rdst=""
	while [[ $# -gt 0 ]]; do
		case $1 in
		--via) vias+=("$2"); shift 2 ;;
		--opt) opts+=("$2"); shift 2 ;;
		--read-src) rsrc=$2; shift 2 ;;
		--read-dst) rdst=$2; shift 2 ;;
		*) break ;;
		esac
	done
	# From here on src and dst are what is read and written; bsrc and bdst
	# what blkcopy gets.
	bsrc=$1 bdst=$2
	src=${rsrc:-$1} dst=${rdst:-$2}
	size_var dstoff "$3"
	shift 3
	parse_ranges "$@"
	lbs_remember "$src" "$dst"
	for r in "${vias[@]}"; do lbs_remember "${r%:*}"; done

	# The destination and its guards first, then the sources: a source next
	# to the destination keeps its own fresh bytes.
	dsz=$(dev_size "$dst")
	gb=$((dstoff < GUARD ? dstoff : GUARD))
	ga=$((dsz - dstoff - total))
	if ((ga < 0)); then
		WHY="test bug: destination span $dstoff+$total is past the end of $dst ($dsz)"
		return 1
	fi
	((ga > GUARD)) && ga=$GUARD
	fill_random "$dst" $((dstoff - gb)) $((gb + total + ga)) || { WHY="filling $dst failed"; return 1; }
	fill_ranges "$src" || { WHY="filling $src failed"; return 1; }
	read_ranges "$src" >"$T_DIR/expected" || { WHY="reading $src failed"; return 1; }
	guards=$(guard_sums "$dst" "$dstoff" "$total")
	for r in "${vias[@]}"; do
		via_guards+=("$(guard_sums "${r%:*}" $((${r##*:} + dstoff)) "$total")")
	done

	local args=(copy --json --no-progress "${opts[@]}" --dst-offset "$dstoff")
	for i in "${!CV_OFFS[@]}"; do
		args+=(--range "${CV_OFFS[i]}:${CV_LENS[i]}")
	done
	bcp "${args[@]}" "$bsrc" "$bdst"
	if [[ $RC -ne 0 ]]; then
		WHY="blkcopy ${args[*]:0:12}... $bsrc $bdst: $(bcp_what)"
		return 1
	fi
	json_check "$T_OUT" ".bytes == $total and .error == null" "blkcopy did not report $total bytes copied" || return 1
	info "$T_NAME: $(jq -c '{bytes, method, seconds}' <"$T_OUT") ${#CV_OFFS[@]} range(s) $bsrc -> $bdst"

	drop_caches "$src" "$dst"
	read_region "$dst" "$dstoff" "$total" >"$T_DIR/got"
	same_as_expected "$T_DIR/got" "$dst at $dstoff" || return 1
	read_ranges "$src" >"$T_DIR/got"
	same_as_expected "$T_DIR/got" "source $src changed" || return 1
	[[ $(guard_sums "$dst" "$dstoff" "$total") == "$guards" ]] ||
		{ WHY="bytes just before or after the destination span of $dst changed"; return 1; }
	for i in "${!vias[@]}"; do
		r=${vias[i]}
		read_region "${r%:*}" $((${r##*:} + dstoff)) "$total" >"$T_DIR/got"
		same_as_expected "$T_DIR/got" "${r%:*} (under $dst) at $((${r##*:} + dstoff))" || return 1
		[[ $(guard_sums "${r%:*}" $((${r##*:} + dstoff)) "$total") == "${via_guards[i]}" ]] ||
			{ WHY="bytes around the destination span changed on ${r%:*} (under $dst)"; return 1; }
	done
	return 0
}

# format2h_offered DEV: DEV's NVMe controller offers Copy across namespaces
# (descriptor format 2h), as blkcopy limits says; else WHY is set, 77.
format2h_offered() {
	bcp limits --json "$1"
	if jq -e '.[0].native_reason | test("across namespaces \\(format 2h\\): not offered")' <"$T_OUT" >/dev/null; then
		WHY="the controller of $1 offers no Copy across namespaces (format 2h): QEMU before 9.1 (LAB_QEMU=backports has it)"
		return 77
	fi
}

# ---------------------------------------------------------------------------
# The job API driven two ways on real devices
#
# job_drive_verify fd|wait SRC DST LEN DSTOFF [VAR=VALUE...]: job_drive (a
# program of tests/lab) copies LEN bytes as 4 KiB ranges every 8 KiB from
# the start of SRC to DSTOFF of DST, polling only the job's descriptor (fd)
# or through one blkcopy_job_wait(-1) (wait), with the VAR=VALUE settings
# in its environment; every byte must go native and land.
job_drive_verify() {
	local mode=$1 src=$2 dst=$3 len dstoff prog=$LAB_BIN/job_drive out rc total=0 i
	local -a CV_OFFS=() CV_LENS=()
	size_var len "$4"
	size_var dstoff "$5"
	shift 5
	[[ -x $prog ]] || { WHY="$prog is missing"; return 1; }
	for ((i = 0; i < len / 4096; i++)); do
		CV_OFFS+=($((i * 8192)))
		CV_LENS+=(4096)
	done
	fill_random "$dst" "$dstoff" "$len" && fill_ranges "$src" || { WHY="fill failed"; return 1; }
	read_ranges "$src" >"$T_DIR/expected" || { WHY="reading $src failed"; return 1; }
	out=$(env "$@" timeout -k 5 "$BC_TIMEOUT" "$prog" "$mode" "$src" "$dst" "$len" "$dstoff" 2>&1)
	rc=$?
	info "$T_NAME: job_drive $mode: rc $rc; ${out//$'\n'/ }"
	[[ $rc -eq 0 ]] || { WHY="job_drive $mode exited $rc: $(tail -c 300 <<<"$out" | tr '\n' ' ')"; return 1; }
	[[ $out == *"native=$len "* ]] || { WHY="not every byte went native: $out"; return 1; }
	drop_caches "$src" "$dst"
	read_region "$dst" "$dstoff" "$len" >"$T_DIR/got"
	same_as_expected "$T_DIR/got" "$dst at $dstoff"
}
