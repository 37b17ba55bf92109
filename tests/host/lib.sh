# SPDX-License-Identifier: MIT
# Helpers for the blkcopy host tests.  Sourced by tests/host/*.sh.
#
# Each test script:
#   . "$(dirname "${BASH_SOURCE[0]}")/lib.sh"
#   case_foo() { ...; t_ok COND "why" || return 1; ... }
#   t_case foo case_foo
#   t_finish
#
# Environment: BLKCOPY = path of the blkcopy CLI (required).
# Output: one line "PASS name" / "FAIL name: why" (or "SKIP name: why") per
# case.  Exit 0 if every case passed, 1 otherwise, 77 (meson: skipped) when
# the script needs root or loop devices and has neither.

set -uo pipefail
export LC_ALL=C

T_NAME=$(basename "${BASH_SOURCE[1]:-$0}" .sh)
T_PASSES=0
T_FAILS=0
T_SKIPS=0
T_LOOPS=()	# loop devices we attached (detached on exit)
T_PARTED=()	# loop devices we added partitions to with partx -a
T_MOUNTS=()	# mount points we mounted
T_PIDS=()	# background processes we started
WHY=""
RC=0

if [[ -z ${BLKCOPY:-} ]]; then
	echo "FAIL $T_NAME: BLKCOPY is not set (path of the blkcopy CLI)"
	exit 1
fi
if [[ ! -x $BLKCOPY ]]; then
	echo "FAIL $T_NAME: BLKCOPY=$BLKCOPY is not an executable"
	exit 1
fi
BLKCOPY=$(realpath -- "$BLKCOPY")

# Scratch space: tmpfs (/dev/shm) when it is there with room (containers often
# give it only 64 MiB), it is fast and supports O_DIRECT on recent kernels;
# /tmp otherwise.
if [[ -d /dev/shm && -w /dev/shm ]] &&
	[[ $(df --output=avail -B1M /dev/shm 2>/dev/null | tail -n 1) -ge 1536 ]]; then
	T_DIR=$(mktemp -d /dev/shm/blkcopy-"$T_NAME".XXXXXX) || exit 1
else
	T_DIR=$(mktemp -d /tmp/blkcopy-"$T_NAME".XXXXXX) || exit 1
fi
T_OUT=$T_DIR/.stdout
T_ERR=$T_DIR/.stderr

t_cleanup() {
	local p d m
	trap - EXIT INT TERM HUP
	for p in "${T_PIDS[@]}"; do
		kill -KILL "$p" 2>/dev/null
		wait "$p" 2>/dev/null
	done
	for d in "${T_PARTED[@]}"; do
		partx -d "$d" >/dev/null 2>&1
	done
	for d in "${T_LOOPS[@]}"; do
		losetup -d "$d" >/dev/null 2>&1
	done
	for m in "${T_MOUNTS[@]}"; do
		umount "$m" >/dev/null 2>&1 || umount -l "$m" >/dev/null 2>&1
	done
	rm -rf -- "$T_DIR"
}
trap t_cleanup EXIT
trap 'echo "FAIL $T_NAME: interrupted"; exit 130' INT TERM HUP

# ---------------------------------------------------------------------------
# Cases and results

# t_case NAME FUNC [ARGS...]: run FUNC in this shell; it returns 0 for pass,
# 1 for fail (with WHY set), 77 for skip (with WHY set).
t_case() {
	local name=$1 rc
	shift
	WHY=""
	"$@"
	rc=$?
	if [[ $rc -eq 0 ]]; then
		echo "PASS $name"
		T_PASSES=$((T_PASSES + 1))
	elif [[ $rc -eq 77 ]]; then
		echo "SKIP $name: ${WHY:-skipped}"
		T_SKIPS=$((T_SKIPS + 1))
	else
		echo "FAIL $name: ${WHY:-failed (rc $rc)}"
		T_FAILS=$((T_FAILS + 1))
	fi
}

t_finish() {
	echo "# $T_NAME: $T_PASSES passed, $T_FAILS failed, $T_SKIPS skipped"
	[[ $T_FAILS -eq 0 ]] && exit 0
	exit 1
}

# t_ok WHY CMD...: run CMD; if it fails set WHY and return 1.
t_ok() {
	local why=$1
	shift
	if "$@"; then
		return 0
	fi
	WHY=$why
	return 1
}

# t_skip_script WHY: the whole script cannot run here (meson: skipped).
t_skip_script() {
	echo "SKIP $T_NAME: $1"
	exit 77
}

need_root() {
	[[ $EUID -eq 0 ]] || t_skip_script "needs root"
}

# need_loop: root and a working loop driver, or skip the script.
need_loop() {
	need_root
	command -v losetup >/dev/null || t_skip_script "losetup not found"
	local f=$T_DIR/.loopprobe d
	truncate -s 1M "$f" || t_skip_script "cannot create $f"
	d=$(losetup -f --show "$f" 2>/dev/null) || t_skip_script "no loop devices (losetup -f failed)"
	losetup -d "$d"
	rm -f "$f"
}

# ---------------------------------------------------------------------------
# Running blkcopy

# bcp ARGS...: run blkcopy (stdin inherited; redirect it at the call site);
# stdout in $T_OUT, stderr in $T_ERR, exit status in $RC.
BC_TIMEOUT=${BC_TIMEOUT:-60}
bcp() {
	timeout -k 5 "$BC_TIMEOUT" "$BLKCOPY" "$@" >"$T_OUT" 2>"$T_ERR"
	RC=$?
}

# A short description of the last run for failure messages.
bcp_what() {
	local e
	e=$(head -c 300 "$T_ERR" | tr '\n' ' ')
	if [[ $RC -eq 124 || $RC -eq 137 ]]; then
		echo "timed out after ${BC_TIMEOUT}s (rc $RC); stderr: $e"
	else
		echo "rc $RC; stderr: $e"
	fi
}

# bcp_ok ARGS...: run blkcopy, return 1 with WHY set unless it exited 0.
bcp_ok() {
	bcp "$@"
	if [[ $RC -ne 0 ]]; then
		WHY="blkcopy $* failed: $(bcp_what)"
		return 1
	fi
	return 0
}

# ---------------------------------------------------------------------------
# Data helpers

# rand_file PATH BYTES: a file of BYTES random bytes.
rand_file() {
	head -c "$2" /dev/urandom >"$1"
}

# t_size PATH: size in bytes of a file or a block device.
t_size() {
	if [[ -b $1 ]]; then
		blockdev --getsize64 "$1"
	else
		stat -L -c %s "$1"
	fi
}

# read_region PATH OFF LEN: LEN bytes of PATH from OFF to stdout.
read_region() {
	if [[ $3 -eq 0 ]]; then
		return 0
	fi
	dd if="$1" bs=1M iflag=skip_bytes,count_bytes skip="$2" count="$3" status=none
}

# sum_region PATH OFF LEN: sha256 of a region.
sum_region() {
	read_region "$@" | sha256sum | cut -d' ' -f1
}

sum_file() {
	sha256sum <"$1" | cut -d' ' -f1
}

# same_region A AOFF B BOFF LEN: are the two regions equal?
same_region() {
	[[ $5 -eq 0 ]] && return 0
	cmp -s <(read_region "$1" "$2" "$5") <(read_region "$3" "$4" "$5")
}

# write_region SRC SOFF DST DOFF LEN: copy bytes with dd (no truncation).
write_region() {
	dd if="$1" of="$3" bs=1M iflag=skip_bytes,count_bytes oflag=seek_bytes \
		skip="$2" seek="$4" count="$5" conv=notrunc status=none
}

# range_args OFF:LEN...: print "--range OFF:LEN" words for blkcopy.
range_args() {
	local r
	for r in "$@"; do
		printf -- '--range\n%s\n' "$r"
	done
}

# sum_lengths OFF:LEN...
sum_lengths() {
	local r t=0
	for r in "$@"; do
		t=$((t + ${r#*:}))
	done
	echo "$t"
}

# verify_copy SRC DST ORIG DSTOFF OFF:LEN...
# SRC: what was copied from (file or device); DST: the destination now;
# ORIG: a saved copy (regular file) of the whole destination before the copy.
# Checks that every range landed, in order, contiguously from DSTOFF, that
# nothing outside [DSTOFF, DSTOFF+total) changed, and that DST did not grow.
verify_copy() {
	local src=$1 dst=$2 orig=$3 pos=$4 r off len i=0 dsz osz
	local start=$4
	shift 4
	for r in "$@"; do
		off=${r%%:*}
		len=${r#*:}
		if ! same_region "$src" "$off" "$dst" "$pos" "$len"; then
			WHY="range #$i ($off:$len) is not at destination offset $pos of $dst"
			return 1
		fi
		pos=$((pos + len))
		i=$((i + 1))
	done
	verify_outside "$dst" "$orig" "$start" "$((pos - start))"
}

# verify_outside DST ORIG DSTOFF TOTAL: DST equals ORIG outside the span.
verify_outside() {
	local dst=$1 orig=$2 start=$3 total=$4 dsz osz end
	dsz=$(t_size "$dst")
	osz=$(t_size "$orig")
	if [[ $dsz -ne $osz ]]; then
		WHY="destination size changed: $osz -> $dsz"
		return 1
	fi
	if ! same_region "$orig" 0 "$dst" 0 "$start"; then
		WHY="destination changed before the destination span (0..$start)"
		return 1
	fi
	end=$((start + total))
	if [[ $end -lt $dsz ]] && ! same_region "$orig" "$end" "$dst" "$end" "$((dsz - end))"; then
		WHY="destination changed after the destination span ($end..$dsz)"
		return 1
	fi
	return 0
}

# json_check FILE JQ-EXPR WHY: jq -e on FILE.
json_check() {
	if ! jq -e "$2" <"$1" >/dev/null 2>&1; then
		WHY="$3 (jq '$2' on: $(head -c 400 "$1" | tr '\n' ' '))"
		return 1
	fi
	return 0
}

# ---------------------------------------------------------------------------
# Loop devices

# loop_attach VAR [LOSETUP-OPTIONS...] FILE: attach, record for cleanup, and
# store the device path in VAR.
loop_attach() {
	local __var=$1 __dev
	shift
	__dev=$(losetup -f --show "$@") || return 1
	T_LOOPS+=("$__dev")
	printf -v "$__var" '%s' "$__dev"
}

# loop_detach DEV
loop_detach() {
	local d=$1 i
	losetup -d "$d" >/dev/null 2>&1
	for i in "${!T_LOOPS[@]}"; do
		[[ ${T_LOOPS[$i]} == "$d" ]] && unset 'T_LOOPS[i]'
	done
	T_LOOPS=("${T_LOOPS[@]}")
}

# wait_blockdev PATH: wait up to 5 s for a block device node.
wait_blockdev() {
	local i
	for i in $(seq 50); do
		[[ -b $1 ]] && return 0
		sleep 0.1
	done
	return 1
}

# Collect several checks in one case without stopping at the first failure:
#   ERRS=""; acc check1 ...; acc check2 ...; acc_done
ERRS=""
acc() {
	"$@" || ERRS+="${WHY}; "
	return 0
}
acc_done() {
	[[ -z $ERRS ]] && return 0
	WHY=${ERRS%; }
	ERRS=""
	return 1
}
