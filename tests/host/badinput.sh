#!/bin/bash
# SPDX-License-Identifier: MIT
# Every bad-input case of the CLI contract: the exit status, the message on
# stderr, and that nothing was written.  File cases run anywhere; the loop
# device cases (alignment, read-only destination) need root and are skipped
# (SKIP lines, not failures) without it.
set -uo pipefail
. "$(dirname "${BASH_SOURCE[0]}")/lib.sh"

D=$T_DIR
MiB=1048576
U64_MAX=18446744073709551615

command -v jq >/dev/null || { echo "FAIL $T_NAME: jq is required"; exit 1; }

rand_file "$D/src" "$MiB"
rand_file "$D/dst" "$MiB"
cp "$D/dst" "$D/dst.orig"
SRC_SUM=$(sum_file "$D/src")

# expect_err RCSPEC FRAGMENT WATCH -- ARGS...
#   RCSPEC: an exit status ("1", "2") or a list "1|2".
#   FRAGMENT: text that must be in stderr ("" = only the "blkcopy: " prefix).
#   WATCH: space-separated files that must not change (plus $D/src).
# Exit 1 errors must print exactly one line "blkcopy: ...".
expect_err() {
	local rcspec=$1 frag=$2 watch=$3 f
	local -A before=()
	shift 4
	for f in $watch; do
		before[$f]=$(sum_file "$f")
	done
	bcp "$@"
	if [[ $RC -eq 0 ]]; then
		WHY="blkcopy $* succeeded; expected exit $rcspec${frag:+ with '$frag'}"
		return 1
	fi
	if [[ "|$rcspec|" != *"|$RC|"* ]]; then
		WHY="blkcopy $*: expected exit $rcspec, got $(bcp_what)"
		return 1
	fi
	if ! grep -q '^blkcopy: ' "$T_ERR"; then
		WHY="blkcopy $*: no 'blkcopy: ' message on stderr: $(bcp_what)"
		return 1
	fi
	if [[ $RC -eq 1 && $(wc -l <"$T_ERR") -ne 1 ]]; then
		WHY="blkcopy $*: stderr is not one line: $(bcp_what)"
		return 1
	fi
	if [[ -n $frag ]] && ! grep -qiF -- "$frag" "$T_ERR"; then
		WHY="blkcopy $*: stderr lacks '$frag': $(bcp_what)"
		return 1
	fi
	for f in $watch; do
		if [[ $(sum_file "$f") != "${before[$f]}" ]]; then
			WHY="blkcopy $* changed $f"
			return 1
		fi
	done
	if [[ $(sum_file "$D/src") != "$SRC_SUM" ]]; then
		WHY="blkcopy $* changed the source"
		return 1
	fi
	return 0
}

# Shorthand: error exit 1, $D/src -> $D/dst, $D/dst watched.
err1() { # FRAGMENT ARGS... (copy options)
	local frag=$1
	shift
	expect_err 1 "$frag" "$D/dst" -- copy "$@" "$D/src" "$D/dst"
}

usage2() { # ARGS... (copy options)
	expect_err 2 "" "$D/dst" -- copy "$@" "$D/src" "$D/dst"
}

# ---------------------------------------------------------------------------

case_zero_length() {
	err1 "zero-length range" --range 0:0 || return 1
	err1 "zero-length range" --range 0:512 --range 512:0 || return 1
	printf '0:4096\n0:0\n4096:4096\n' >"$D/zero.ranges"
	err1 "zero-length range" --ranges-from "$D/zero.ranges"
}

# An empty --ranges-from (only comments and blank lines) names no range.  It
# must not fall back to "no range given: copy the whole source" (which here
# would fit and overwrite the destination).  The contract maps "no ranges" to
# "zero-length range"; we only insist on an error that writes nothing.
case_empty_ranges_file() {
	printf '# nothing\n\n   \n# more nothing\n' >"$D/empty.ranges"
	expect_err "1|2" "" "$D/dst" -- copy --ranges-from "$D/empty.ranges" "$D/src" "$D/dst" || return 1
	expect_err "1|2" "" "$D/dst" -- copy --ranges-from - "$D/src" "$D/dst" </dev/null
}

case_src_past_end() {
	err1 "source range past the end of the source" --range $((MiB - 512)):1024 || return 1
	err1 "source range past the end of the source" --range "$MiB:1" || return 1
	err1 "source range past the end of the source" --range 0:4096 --range 2m:4k || return 1
	# The last byte exactly is fine.
	cp "$D/dst.orig" "$D/dst"
	bcp_ok copy --range $((MiB - 1)):1 --dst-offset 5 "$D/src" "$D/dst" || return 1
	verify_copy "$D/src" "$D/dst" "$D/dst.orig" 5 $((MiB - 1)):1 || return 1
	cp "$D/dst.orig" "$D/dst"
}

case_dst_past_end() {
	err1 "destination range past the end of the destination" --range 0:4096 --dst-offset $((MiB - 4095)) || return 1
	err1 "destination range past the end of the destination" --range 0:1 --dst-offset "$MiB" || return 1
	err1 "destination range past the end of the destination" --range 0:4096 --range 8192:4096 --dst-offset $((MiB - 8191)) || return 1
	# Whole copy of a larger source into a smaller destination.
	rand_file "$D/big" $((2 * MiB))
	expect_err 1 "destination range past the end of the destination" "$D/dst" -- copy "$D/big" "$D/dst" || return 1
	# Ending exactly at the end is fine.
	cp "$D/dst.orig" "$D/dst"
	bcp_ok copy --range 0:4096 --dst-offset $((MiB - 4096)) "$D/src" "$D/dst" || return 1
	verify_copy "$D/src" "$D/dst" "$D/dst.orig" $((MiB - 4096)) 0:4096 || return 1
	cp "$D/dst.orig" "$D/dst"
}

case_overflow() {
	ERRS=""
	acc err1 "range arithmetic overflows" --range 18446744073709551104:1024
	acc err1 "range arithmetic overflows" --range "$U64_MAX:1"
	acc err1 "range arithmetic overflows" --range 0:4096 --dst-offset 18446744073709549568
	# offset + len > SSIZE_MAX, without a u64 wrap.
	acc err1 "range arithmetic overflows" --range 0:9223372036854775808
	# Each range fits, their sum exceeds SSIZE_MAX.
	acc err1 "range arithmetic overflows" --range 0:9223372036854775807 --range 0:9223372036854775807
	# dst_off + total = 2^63 > SSIZE_MAX (not merely past the end).
	acc err1 "range arithmetic overflows" --range 0:1 --dst-offset 9223372036854775807
	acc_done
}

# Numbers that do not fit in 64 bits at all: a usage error or an overflow
# error, never a wrapped value.
case_number_too_big() {
	expect_err "1|2" "" "$D/dst" -- copy --range 18446744073709551616:512 "$D/src" "$D/dst" || return 1
	expect_err "1|2" "" "$D/dst" -- copy --range 16777216t:512 "$D/src" "$D/dst" || return 1
	expect_err "1|2" "" "$D/dst" -- copy --range 0:512 --dst-offset 99999999999999999999 "$D/src" "$D/dst" || return 1
	# 2^55 sectors = 2^64 bytes: wraps to 0 if the multiplication is unchecked.
	expect_err "1|2" "" "$D/dst" -- copy --range 36028797018963968s:512 "$D/src" "$D/dst"
}

case_overlap_same_file() {
	local f=$D/dst
	expect_err 1 "source range overlaps the destination" "$f" -- copy --range 0:8192 --dst-offset 4096 "$f" "$f" || return 1
	# One byte of overlap, at either end.
	expect_err 1 "source range overlaps the destination" "$f" -- copy --range 65536:4096 --dst-offset 69631 "$f" "$f" || return 1
	expect_err 1 "source range overlaps the destination" "$f" -- copy --range 65536:4096 --dst-offset 61441 "$f" "$f" || return 1
	# Only the third range overlaps the destination span.
	expect_err 1 "source range overlaps the destination" "$f" -- \
		copy --range 0:4096 --range 8192:4096 --range 200000:4096 --dst-offset 196608 "$f" "$f" || return 1
	# Whole-file copy onto itself.
	expect_err 1 "source range overlaps the destination" "$f" -- copy "$f" "$f" || return 1
	# The same file through another name (hard link, symlink).
	ln "$f" "$D/dst.hardlink"
	ln -s "$f" "$D/dst.symlink"
	expect_err 1 "source range overlaps the destination" "$f" -- copy --range 0:8192 --dst-offset 4096 "$f" "$D/dst.hardlink" || return 1
	expect_err 1 "source range overlaps the destination" "$f" -- copy --range 0:8192 --dst-offset 4096 "$D/dst.symlink" "$f" || return 1
	rm -f "$D/dst.hardlink" "$D/dst.symlink"
}

case_same_file_ok() {
	local f=$D/dst
	cp "$D/dst.orig" "$f"
	# Adjacent, not overlapping.
	bcp_ok copy --range 65536:4096 --dst-offset 69632 "$f" "$f" || return 1
	verify_copy "$D/dst.orig" "$f" "$D/dst.orig" 69632 65536:4096 || return 1
	cp "$D/dst.orig" "$f"
	bcp_ok copy --range 0:4096 --range 500000:8192 --range 4096:1000 --dst-offset 700000 "$f" "$f" || return 1
	verify_copy "$D/dst.orig" "$f" "$D/dst.orig" 700000 0:4096 500000:8192 4096:1000 || return 1
	# Destination before the source, adjacent.
	cp "$D/dst.orig" "$f"
	bcp_ok copy --range 65536:4096 --dst-offset 61440 "$f" "$f" || return 1
	verify_copy "$D/dst.orig" "$f" "$D/dst.orig" 61440 65536:4096 || return 1
	cp "$D/dst.orig" "$f"
}

case_too_many_ranges() {
	local t0 t1
	yes 0:512 | head -n 16777217 >"$D/many.ranges"
	t0=$(date +%s%N)
	# Exit 1 (a request the library refuses) or 2 (the CLI refuses the list
	# while reading it): the contract does not say which.
	expect_err "1|2" "too many ranges" "$D/dst" -- copy --ranges-from "$D/many.ranges" "$D/src" "$D/dst" || return 1
	t1=$(date +%s%N)
	echo "# too-many-ranges: rejected in $(((t1 - t0) / 1000000)) ms"
	if [[ $(((t1 - t0) / 1000000)) -gt 30000 ]]; then
		WHY="rejecting 2^24+1 ranges took $(((t1 - t0) / 1000000)) ms (> 30 s)"
		return 1
	fi
	# Exactly 2^24 ranges is allowed: it passes the count check and fails
	# later, because 8 GiB do not fit in the destination.
	head -n 16777216 "$D/many.ranges" >"$D/max.ranges"
	rm -f "$D/many.ranges"
	err1 "destination range past the end of the destination" --ranges-from "$D/max.ranges" || return 1
	rm -f "$D/max.ranges"
}

case_nonexistent() {
	expect_err 1 "No such file or directory" "$D/dst" -- copy "$D/no-such-src" "$D/dst" || return 1
	t_ok "message does not name the missing source: $(bcp_what)" grep -qF "$D/no-such-src" "$T_ERR" || return 1
	# DST must already exist: it is not created.
	expect_err 1 "No such file or directory" "" -- copy "$D/src" "$D/no-such-dst" || return 1
	t_ok "blkcopy created the missing destination" test ! -e "$D/no-such-dst" || return 1
	expect_err "1|2" "" "$D/dst" -- copy --ranges-from "$D/no-such-ranges" "$D/src" "$D/dst" || return 1
	expect_err 1 "" "" -- limits "$D/no-such-dev"
}

case_not_a_device() {
	mkdir -p "$D/adir"
	expect_err 1 "" "$D/dst" -- copy "$D/adir" "$D/dst" || return 1
	expect_err 1 "" "$D/src" -- copy "$D/src" /dev/null
}

case_bad_syntax() {
	ERRS=""
	acc usage2 --range 1x:2
	acc usage2 --range 5
	acc usage2 --range 5:
	acc usage2 --range :5
	acc usage2 --range -1:5
	acc usage2 --range 0x:5
	acc usage2 --range 0:4096 --dst-offset abc
	acc usage2 --range 0:4096 --dst-offset 1q
	acc usage2 --range 0:4096 --chunk-size 12zz
	acc usage2 --range 0:4096 --queue-depth many
	acc usage2 --range 0:4096 --native-min 12zz
	acc usage2 --range 0:4096 --native-min automatic
	acc usage2 --range 0:4096 --native-min -4k
	acc usage2 --range 0:4096 --rate 0
	acc usage2 --range 0:4096 --rate fast
	acc usage2 --range 0:4096 --no-such-option
	acc expect_err 2 "" "$D/dst" -- copy --range 0:4096 "$D/src"
	# Two destinations are one more than a request to one: --dst-offset counts must match.
	acc expect_err 2 "" "$D/dst" -- copy --range 0:4096 -d 0 -d 4096 -d 8192 "$D/src" "$D/dst" "$D/dst"
	acc expect_err 2 "" "$D/dst" -- frobnicate "$D/src" "$D/dst"
	# No arguments at all: usage on stderr, exit 2.
	bcp
	t_ok "no arguments: expected exit 2 and usage on stderr, got $(bcp_what)" test "$RC" -eq 2 -a -s "$T_ERR" || ERRS+="$WHY; "
	acc expect_err 2 "" "" -- limits
	# A bad line in a ranges file.
	printf '0:4096\nbanana\n' >"$D/bad.ranges"
	acc expect_err "1|2" "" "$D/dst" -- copy --ranges-from "$D/bad.ranges" "$D/src" "$D/dst"
	acc_done
}

# Native copy between regular files does not exist in this version, so
# --no-emulation must fail and write nothing.  (This case changes once the
# file backend lands: then a file-to-file copy may be native and succeed.)
# A second file system (a small tmpfs): native copy cannot cross into it.
other_fs() {
	[[ $EUID -eq 0 ]] || return 1
	OTHER=$D/other
	[[ -d $OTHER ]] && mountpoint -q "$OTHER" && return 0
	mkdir -p "$OTHER" && mount -t tmpfs -o size=16m blkcopy-other "$OTHER" 2>/dev/null || return 1
	T_MOUNTS+=("$OTHER")
}

case_no_emulation_files() {
	other_fs || { WHY="needs root to mount a second file system"; return 77; }
	cp "$D/src" "$OTHER/src"
	expect_err 1 "native copy not available and emulation forbidden" "$D/dst" -- \
		copy --no-emulation --range 0:4096 "$OTHER/src" "$D/dst" || return 1
	bcp copy --json --no-emulation "$OTHER/src" "$D/dst"
	t_ok "--json --no-emulation: expected exit 1, got $(bcp_what)" test "$RC" -eq 1 || return 1
	t_ok "--json --no-emulation changed the destination" cmp -s "$D/dst" "$D/dst.orig" || return 1
	# On one file system the file backend copies natively: --no-emulation succeeds.
	bcp_ok copy --json --no-emulation --range 4096:8192 "$D/src" "$D/dst" || return 1
	t_ok "native copy on one file system did not go native: $(cat "$T_OUT")" \
		jq -e '.native_bytes == 8192 and .emulated_bytes == 0' "$T_OUT" >/dev/null || return 1
	verify_copy "$D/src" "$D/dst" "$D/dst.orig" 0 4096:8192 || return 1
	cp "$D/dst.orig" "$D/dst"
}

# --p2p where there is no PCI peer-to-peer memory (files here; loop
# devices below): refused with the reason, nothing written; its own usage
# errors.  The lab proves it where there is some (tests/lab/p2p).
case_p2p_refused() {
	expect_err 1 "no P2P memory to stage the copy in" "$D/dst" -- \
		copy --p2p --range 0:4096 "$D/src" "$D/dst" || return 1
	expect_err 1 "is not on a PCI device" "$D/dst" -- \
		copy --p2p=dst --range 0:4096 "$D/src" "$D/dst" || return 1
	expect_err 1 "P2P memory is reached by O_DIRECT only" "$D/dst" -- \
		copy --p2p --range 100:4096 "$D/src" "$D/dst" || return 1
	expect_err 2 "want src, dst or auto" "$D/dst" -- \
		copy --p2p=cmb --range 0:4096 "$D/src" "$D/dst" || return 1
	expect_err 2 "not with --buffered" "$D/dst" -- \
		copy --p2p --buffered --range 0:4096 "$D/src" "$D/dst" || return 1
	if [[ $HAVE_LOOP -eq 1 ]]; then
		local L
		L=$(losetup -f --show "$D/dst") || { WHY="losetup failed"; return 1; }
		expect_err 1 "is not on a PCI device" "$D/dst" -- \
			copy --p2p --range 0:4096 "$D/src" "$L"
		local rc=$?
		losetup -d "$L"
		return "$rc"
	fi
}

# --------------------------------------------------------------------------
# Root and loop devices.

HAVE_LOOP=0
if [[ $EUID -eq 0 ]] && command -v losetup >/dev/null; then
	truncate -s 1M "$D/probe" &&
		PROBE=$(losetup -f --show "$D/probe" 2>/dev/null) &&
		losetup -d "$PROBE" && HAVE_LOOP=1
fi

case_misaligned() {
	[[ $HAVE_LOOP -eq 1 ]] || { WHY="needs root and loop devices"; return 77; }
	local L4 L5
	rand_file "$D/l4.img" "$MiB"
	rand_file "$D/l5.img" "$MiB"
	loop_attach L4 --sector-size 4096 "$D/l4.img" || { WHY="losetup --sector-size 4096 failed"; return 1; }
	loop_attach L5 "$D/l5.img" || { WHY="losetup failed"; return 1; }
	local W="$D/l4.img $D/l5.img $D/dst"
	expect_err 1 "not aligned to the logical block size" "$W" -- copy --range 512:4096 "$L4" "$D/dst" || return 1
	expect_err 1 "not aligned to the logical block size" "$W" -- copy --range 0:1000 "$L4" "$D/dst" || return 1
	expect_err 1 "not aligned to the logical block size" "$W" -- copy --range 0:6144 "$L4" "$D/dst" || return 1
	# The larger of the two block sizes counts: 512 is fine for the 512-byte
	# destination, not for the 4096-byte source.
	expect_err 1 "not aligned to the logical block size" "$W" -- copy --range 0:4096 --dst-offset 512 "$L4" "$L5" || return 1
	expect_err 1 "not aligned to the logical block size" "$W" -- copy --range 0:512 "$D/src" "$L4" || return 1
	expect_err 1 "not aligned to the logical block size" "$W" -- copy --range 0:4096 --dst-offset 100 "$D/src" "$L4" || return 1
	expect_err 1 "not aligned to the logical block size" "$W" -- copy --range 100:512 "$L5" "$D/dst" || return 1
	expect_err 1 "not aligned to the logical block size" "$W" -- copy --range 0:512 --range 1024:100 "$L5" "$D/dst" || return 1
	# A whole copy of an odd-sized file onto a 512-byte device.
	rand_file "$D/odd" 1000
	expect_err 1 "not aligned to the logical block size" "$W" -- copy "$D/odd" "$L5" || return 1
	loop_detach "$L4"
	loop_detach "$L5"
}

case_readonly_loop() {
	[[ $HAVE_LOOP -eq 1 ]] || { WHY="needs root and loop devices"; return 77; }
	local R
	rand_file "$D/ro.img" "$MiB"
	loop_attach R -r "$D/ro.img" || { WHY="losetup -r failed"; return 1; }
	expect_err 1 "read-only" "$D/ro.img" -- copy --range 0:4096 "$D/src" "$R" || return 1
	expect_err 1 "read-only" "$D/ro.img" -- copy "$D/src" "$R" || return 1
	# Reading from a read-only device is fine.
	bcp_ok copy --range 0:4096 --dst-offset 512 "$R" "$D/dst" || return 1
	verify_copy "$D/ro.img" "$D/dst" "$D/dst.orig" 512 0:4096 || return 1
	cp "$D/dst.orig" "$D/dst"
	loop_detach "$R"
}

case_readonly_mount() {
	[[ $EUID -eq 0 ]] || { WHY="needs root"; return 77; }
	local m=$D/romnt
	mkdir -p "$m"
	if ! mount -t tmpfs -o size=4m blkcopy-test "$m" 2>/dev/null; then
		WHY="cannot mount a tmpfs"
		return 77
	fi
	T_MOUNTS+=("$m")
	rand_file "$m/file" "$MiB"
	local s
	s=$(sum_file "$m/file")
	if ! mount -o remount,ro "$m" 2>/dev/null; then
		WHY="cannot remount read-only"
		return 77
	fi
	expect_err 1 "read-only" "$m/file" -- copy --range 0:4096 "$D/src" "$m/file" || return 1
	t_ok "file on the read-only mount changed" test "$(sum_file "$m/file")" = "$s"
}

case_readonly_perm() {
	[[ $EUID -ne 0 ]] || { WHY="root ignores file permissions (covered by the loop/mount cases)"; return 77; }
	cp "$D/dst.orig" "$D/ro.file"
	chmod 444 "$D/ro.file"
	expect_err 1 "" "$D/ro.file" -- copy --range 0:4096 "$D/src" "$D/ro.file"
}

case_no_emulation_loop() {
	[[ $HAVE_LOOP -eq 1 ]] || { WHY="needs root and loop devices"; return 77; }
	local A B
	# Backing files on two file systems: no native path between them.
	other_fs || { WHY="cannot mount a second file system"; return 1; }
	rand_file "$OTHER/ne1.img" "$MiB"
	rand_file "$D/ne2.img" "$MiB"
	loop_attach A "$OTHER/ne1.img" || { WHY="losetup failed"; return 1; }
	loop_attach B "$D/ne2.img" || { WHY="losetup failed"; return 1; }
	expect_err 1 "native copy not available and emulation forbidden" "$D/ne2.img" -- \
		copy --no-emulation --range 0:4096 "$A" "$B" || return 1
	loop_detach "$A"
	loop_detach "$B"
}

t_case zero-length-range case_zero_length
t_case empty-ranges-file case_empty_ranges_file
t_case source-past-end case_src_past_end
t_case destination-past-end case_dst_past_end
t_case u64-overflow case_overflow
t_case number-too-big case_number_too_big
t_case overlap-same-file case_overlap_same_file
t_case same-file-no-overlap-ok case_same_file_ok
t_case too-many-ranges case_too_many_ranges
t_case nonexistent case_nonexistent
t_case not-a-device case_not_a_device
t_case bad-syntax case_bad_syntax
t_case no-emulation-files case_no_emulation_files
t_case misaligned-loop case_misaligned
t_case read-only-loop case_readonly_loop
t_case read-only-mount case_readonly_mount
t_case read-only-permissions case_readonly_perm
t_case no-emulation-loop case_no_emulation_loop
t_case p2p-refused case_p2p_refused
t_finish
