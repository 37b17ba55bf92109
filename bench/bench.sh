#!/bin/bash
# SPDX-License-Identifier: MIT
#
# bench.sh - measure blkcopy against the obvious alternatives.
#
#   bench/bench.sh [--build DIR] [--size SIZE] [--quick] [--repeat N]
#
# Two loop devices (direct I/O) over files in /dev/shm, so the numbers show
# the cost of the copy engine rather than of a disk:
#   1. contiguous: dd bs=1M with O_DIRECT   vs  blkcopy copy SRC DST
#   2. scattered:  SIZE/4KiB 4 KiB ranges in random order,
#                  naive-copy --direct (pread+pwrite loop)
#                                         vs  blkcopy copy --ranges-from
# plus blkcopy's peak resident memory.  Every result is checked against the
# expected bytes; wrong data or a failing command exits 1.  A ratio that
# misses its target does not: this is a measurement, not a test.
#
# Needs root (losetup), GNU coreutils, awk, cmp and /usr/bin/time.

set -euo pipefail
export LC_ALL=C		# '.' as the decimal point in EPOCHREALTIME and awk

prog=bench.sh
script_dir=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)

# Targets from the project's goals.
contig_target=1.5	# blkcopy / dd, contiguous
scatter_target=3	# blkcopy / naive-copy, scattered 4 KiB ranges
rss_target_mib=64	# blkcopy peak RSS

die() {
	echo "$prog: error: $*" >&2
	exit 1
}

usage() {
	cat <<EOF
usage: $prog [--build DIR] [--size SIZE] [--quick] [--repeat N] [--blkcopy-opts "OPTS"]
  --build DIR   build directory holding tools/blkcopy and bench/naive-copy
                (default: the repository's build/)
  --size SIZE   size of the source and destination (default 1G);
                suffix s, k, m, g, t as for blkcopy; a multiple of 1 MiB
  --quick       smoke run: --size 64M
  --repeat N    run each timed command N times and keep the best (default 1)
  --blkcopy-opts "OPTS"
                extra options for both blkcopy copies, e.g. "--max-inflight 4m"
Run as root.  Uses about 3 x SIZE of memory in /dev/shm.
EOF
}

# Size with blkcopy's suffixes (s = 512-byte sectors, k/m/g/t = powers of 1024).
parse_size() {
	local s=$1 n unit
	[[ $s =~ ^([0-9]+)([sSkKmMgGtT]?)$ ]] || return 1
	n=${BASH_REMATCH[1]}
	unit=${BASH_REMATCH[2],,}
	case $unit in
	'') echo $((10#$n)) ;;
	s) echo $((10#$n * 512)) ;;
	k) echo $((10#$n << 10)) ;;
	m) echo $((10#$n << 20)) ;;
	g) echo $((10#$n << 30)) ;;
	t) echo $((10#$n << 40)) ;;
	esac
}

# "1 GiB", "64 MiB", for labels.
human_size() {
	local b=$1
	if ((b % (1 << 30) == 0)); then
		echo "$((b >> 30)) GiB"
	else
		echo "$((b >> 20)) MiB"
	fi
}

# Float arithmetic: calc 'printf "%.2f", a/b'
calc() {
	awk "BEGIN { $1 }"
}

build_dir=$script_dir/../build
size_arg=1G
repeat=1
bc_opts=()
while (($#)); do
	case $1 in
	--build) (($# >= 2)) || die "--build needs a directory"; build_dir=$2; shift 2 ;;
	--size) (($# >= 2)) || die "--size needs a size"; size_arg=$2; shift 2 ;;
	--quick) size_arg=64M; shift ;;
	--repeat) (($# >= 2)) || die "--repeat needs a count"; repeat=$2; shift 2 ;;
	--blkcopy-opts) (($# >= 2)) || die "--blkcopy-opts needs options"; read -ra bc_opts <<<"$2"; shift 2 ;;
	-h | --help) usage; exit 0 ;;
	*) usage >&2; exit 2 ;;
	esac
done

size=$(parse_size "$size_arg") || die "bad size '$size_arg'"
((size >= 1 << 20 && size % (1 << 20) == 0)) || die "--size must be a multiple of 1 MiB"
[[ $repeat =~ ^[1-9][0-9]*$ ]] || die "--repeat wants a positive integer"
((EUID == 0)) || die "run as root (loop devices)"

abs=$(cd "$build_dir" 2>/dev/null && pwd) || die "no build directory '$build_dir'"
build_dir=$abs
blkcopy=$build_dir/tools/blkcopy
naive=$build_dir/bench/naive-copy
[[ -x $blkcopy ]] || die "$blkcopy not found; build first"
[[ -x $naive ]] || die "$naive not found; build first"

for cmd in losetup truncate blockdev cmp awk seq dd; do
	command -v "$cmd" >/dev/null || die "$cmd is required"
done
if [[ ! -x /usr/bin/time ]]; then
	echo "$prog: installing GNU time for peak-memory figures" >&2
	apt-get install -y time >/dev/null || die "cannot install the 'time' package"
fi

# src, dst and the scattered test's reference all live in RAM.
avail=$(($(df --output=avail -k /dev/shm | tail -n1) * 1024))
((avail > 3 * size + (64 << 20))) ||
	die "/dev/shm has $(human_size $((avail / (1 << 20) << 20))) free, needs 3 x $(human_size "$size")"

# ---------------------------------------------------------------------------
# Setup, and cleanup that runs however we leave.

work=
loops=()
cleanup() {
	local rc=$? l
	set +e
	for l in "${loops[@]}"; do
		losetup -d "$l"
	done
	[[ -n $work ]] && rm -rf "$work"
	exit "$rc"
}
trap cleanup EXIT
trap 'exit 130' INT
trap 'exit 143' TERM

work=$(mktemp -d /dev/shm/blkcopy-bench.XXXXXX)
src_img=$work/src.img
dst_img=$work/dst.img
ref_img=$work/ref.img
ranges=$work/ranges.txt
mib=$((size >> 20))

# Random source data, one dd per CPU: /dev/urandom gives ~300 MB/s per core,
# the slowest part of the setup.
fill_random() {
	local file=$1 jobs per i start count pids=() pid
	jobs=$(nproc)
	per=$(((mib + jobs - 1) / jobs))
	truncate -s "$size" "$file"
	for ((i = 0; i < jobs; i++)); do
		start=$((i * per))
		((start < mib)) || break
		count=$((mib - start < per ? mib - start : per))
		dd if=/dev/urandom of="$file" bs=1M seek="$start" count="$count" \
			iflag=fullblock conv=notrunc status=none &
		pids+=($!)
	done
	for pid in "${pids[@]}"; do
		wait "$pid" || die "filling $file with random data failed"
	done
}

# attach FILE: sets $dev.  Not called as $(attach ...): the device must be
# recorded in $loops by this shell, not a subshell, for cleanup to see it.
attach() {
	dev=$(losetup -f --show --direct-io=on "$1") || die "losetup $1 failed"
	loops+=("$dev")
}

echo "setting up $(human_size "$size") source and destination in $work ..."
fill_random "$src_img"
truncate -s "$size" "$dst_img"	# filled by reset_dst before each run
attach "$src_img"
src_dev=$dev
attach "$dst_img"
dst_dev=$dev

# Before every timed run: zero the destination, so a copy that does nothing
# cannot pass verification on the previous run's data.  Zeroes are written
# in place rather than punched out: every run then writes to memory that is
# allocated and already touched.  (Freshly allocated pages made single runs
# up to 3x slower at random on a VM, where first touch faults in the host.)
# flushbufs drops any page cache of the loop device itself, so nothing stale
# survives the change made behind its back.
reset_dst() {
	dd if=/dev/zero of="$dst_img" bs=1M count="$mib" conv=notrunc status=none
	blockdev --flushbufs "$dst_dev"
}

dio_state() {
	local f=/sys/block/${1#/dev/}/loop/dio
	if [[ -r $f && $(<"$f") == 1 ]]; then echo on; else echo OFF; fi
}

# ---------------------------------------------------------------------------
# Timing.  run_timed NAME CMD...: runs CMD with stdout in $work/NAME.out,
# stderr in $work/NAME.err; sets run_secs (wall clock around the whole
# command) and run_kib (peak RSS from GNU time).  Any failure is fatal.

run_timed() {
	local name=$1 t0 t1
	shift
	t0=$EPOCHREALTIME
	if ! /usr/bin/time -f '%M' -o "$work/$name.time" "$@" \
		>"$work/$name.out" 2>"$work/$name.err"; then
		echo "$prog: command failed: $*" >&2
		sed 's/^/  /' "$work/$name.err" >&2
		die "$name failed"
	fi
	t1=$EPOCHREALTIME
	run_secs=$(calc "printf \"%.4f\", $t1 - $t0")
	run_kib=$(tail -n1 "$work/$name.time")
}

# blkcopy --json: one object on one line; pull a scalar field.
json_field() {
	sed -n "s/.*\"$1\":\\([^,}]*\\).*/\\1/p" "$2" | tr -d '"'
}

check_blkcopy_json() {
	local out=$1 want=$2 bytes err
	bytes=$(json_field bytes "$out")
	err=$(json_field error "$out")
	[[ $err == null ]] || die "blkcopy reported error $err: $(cat "$out")"
	[[ $bytes == "$want" ]] || die "blkcopy copied '$bytes' bytes, expected $want: $(cat "$out")"
}

verify_same() {
	cmp -s "$1" "$2" || die "WRONG DATA after $3: $(cmp "$1" "$2" 2>&1 | head -n1)"
}

mbps() {
	calc "printf \"%.0f\", $size / $1 / 1e6"
}

# Best-of-N bookkeeping: best time, largest peak RSS.
best_secs=
max_kib=
keep_best() {
	if [[ -z $best_secs ]] || calc "exit !($run_secs < $best_secs)"; then
		best_secs=$run_secs
	fi
	if [[ -z $max_kib ]] || ((run_kib > max_kib)); then
		max_kib=$run_kib
	fi
}
reset_best() {
	best_secs=
	max_kib=
}

verdict() {	# verdict VALUE OP TARGET -> met / MISSED
	if calc "exit !($1 $2 $3)"; then echo met; else echo MISSED; fi
}

kib_to_mib() {
	calc "printf \"%.1f\", $1 / 1024"
}

echo "kernel $(uname -r), $(nproc) CPUs, blkcopy $("$blkcopy" --version 2>/dev/null | head -n1 || echo '?')"
echo "source $src_dev (dio $(dio_state "$src_dev")), destination $dst_dev (dio $(dio_state "$dst_dev")),"\
	"logical block $(blockdev --getss "$src_dev") bytes; best of $repeat run(s)"
echo

label=$(human_size "$size")

# ---------------------------------------------------------------------------
# Test 1: contiguous copy of the whole source.

reset_best
for ((r = 0; r < repeat; r++)); do
	reset_dst
	run_timed dd dd if="$src_dev" of="$dst_dev" bs=1M iflag=direct oflag=direct conv=fsync status=none
	verify_same "$src_img" "$dst_img" "dd"
	keep_best
done
dd_secs=$best_secs dd_kib=$max_kib

reset_best
for ((r = 0; r < repeat; r++)); do
	reset_dst
	run_timed blkcopy-contig "$blkcopy" copy "${bc_opts[@]}" --json "$src_dev" "$dst_dev"
	check_blkcopy_json "$work/blkcopy-contig.out" "$size"
	verify_same "$src_img" "$dst_img" "blkcopy copy (contiguous)"
	keep_best
done
bc1_secs=$best_secs bc1_kib=$max_kib

ratio1=$(calc "printf \"%.2f\", $dd_secs / $bc1_secs")
ok1=$(verdict "$ratio1" '>=' "$contig_target")
mem1=$(kib_to_mib "$bc1_kib")
okm1=$(verdict "$mem1" '<' "$rss_target_mib")
echo "contiguous $label: dd $(mbps "$dd_secs") MB/s, blkcopy $(mbps "$bc1_secs") MB/s," \
	"ratio ${ratio1}x (target >= ${contig_target}x: $ok1)"
echo "  wall: dd ${dd_secs} s, blkcopy ${bc1_secs} s; blkcopy says seconds=$(json_field seconds "$work/blkcopy-contig.out")" \
	"method=$(json_field method "$work/blkcopy-contig.out")"
echo "  peak RSS: blkcopy $mem1 MiB (target < $rss_target_mib MiB: $okm1), dd $(kib_to_mib "$dd_kib") MiB"
echo

# ---------------------------------------------------------------------------
# Test 2: SIZE/4KiB ranges of 4 KiB covering the source, in random order.
# Fisher-Yates in awk with a fixed seed: the same permutation every run.
# The offsets are shuffled as strings so awk never formats large numbers.

nr=$((size / 4096))
seq 0 4096 $((size - 4096)) |
	awk -v seed=20240601 '
		{ a[NR] = $0 }
		END {
			srand(seed)
			for (i = NR; i > 1; i--) {
				j = int(rand() * i) + 1
				t = a[i]; a[i] = a[j]; a[j] = t
			}
			for (i = 1; i <= NR; i++)
				print a[i] ":4096"
		}' >"$ranges"
(($(wc -l <"$ranges") == nr)) || die "generating $nr ranges failed"

# The expected destination: naive-copy, buffered, file to file.  Spot-check
# it independently of naive-copy with cmp at a sample of ranges (range i
# lands at i * 4096), so the reference itself is not taken on trust.
"$naive" "$ranges" "$src_img" "$ref_img" || die "building the reference with naive-copy failed"
step=$((nr / 64 > 0 ? nr / 64 : 1))
awk -F: -v n="$nr" -v step="$step" 'NR == 1 || NR == n || NR % step == 0 { print $1, (NR - 1) * 4096 }' "$ranges" |
	while read -r soff doff; do
		cmp -s -n 4096 -i "$soff:$doff" "$src_img" "$ref_img" ||
			die "reference is wrong at destination offset $doff (source $soff)"
	done

reset_best
for ((r = 0; r < repeat; r++)); do
	reset_dst
	run_timed naive "$naive" --direct "$ranges" "$src_dev" "$dst_dev"
	verify_same "$ref_img" "$dst_img" "naive-copy (scattered)"
	keep_best
done
nv_secs=$best_secs nv_kib=$max_kib

reset_best
for ((r = 0; r < repeat; r++)); do
	reset_dst
	run_timed blkcopy-scatter "$blkcopy" copy "${bc_opts[@]}" --ranges-from "$ranges" --json "$src_dev" "$dst_dev"
	check_blkcopy_json "$work/blkcopy-scatter.out" "$size"
	verify_same "$ref_img" "$dst_img" "blkcopy copy --ranges-from (scattered)"
	keep_best
done
bc2_secs=$best_secs bc2_kib=$max_kib

ratio2=$(calc "printf \"%.2f\", $nv_secs / $bc2_secs")
ok2=$(verdict "$ratio2" '>=' "$scatter_target")
mem2=$(kib_to_mib "$bc2_kib")
okm2=$(verdict "$mem2" '<' "$rss_target_mib")
echo "scattered $label ($nr x 4 KiB, random order): naive-copy $(mbps "$nv_secs") MB/s," \
	"blkcopy $(mbps "$bc2_secs") MB/s, ratio ${ratio2}x (target >= ${scatter_target}x: $ok2)"
echo "  wall: naive-copy ${nv_secs} s, blkcopy ${bc2_secs} s; blkcopy says seconds=$(json_field seconds "$work/blkcopy-scatter.out")" \
	"method=$(json_field method "$work/blkcopy-scatter.out")"
echo "  peak RSS: blkcopy $mem2 MiB (target < $rss_target_mib MiB: $okm2), naive-copy $(kib_to_mib "$nv_kib") MiB"
echo

# ---------------------------------------------------------------------------

echo "summary ($label, data verified):"
printf '  %-34s %10s %10s %8s  %s\n' test baseline blkcopy ratio target
printf '  %-34s %7s MB/s %5s MB/s %7sx  >= %sx %s\n' "contiguous (vs dd)" \
	"$(mbps "$dd_secs")" "$(mbps "$bc1_secs")" "$ratio1" "$contig_target" "$ok1"
printf '  %-34s %7s MB/s %5s MB/s %7sx  >= %sx %s\n' "scattered 4 KiB (vs naive-copy)" \
	"$(mbps "$nv_secs")" "$(mbps "$bc2_secs")" "$ratio2" "$scatter_target" "$ok2"
mem_max=$(calc "printf \"%.1f\", ($bc1_kib > $bc2_kib ? $bc1_kib : $bc2_kib) / 1024")
echo "  blkcopy peak RSS $mem_max MiB (target < $rss_target_mib MiB: $(verdict "$mem_max" '<' "$rss_target_mib"))"
