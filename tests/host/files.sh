#!/bin/bash
# SPDX-License-Identifier: MIT
# blkcopy CLI on regular files (no root needed): whole copies, scattered
# ranges, --ranges-from, size suffixes, --json, --buffered, unaligned offsets,
# ranges larger than the chunk size, limits --json, --help/--version.
set -uo pipefail
. "$(dirname "${BASH_SOURCE[0]}")/lib.sh"

D=$T_DIR
MiB=1048576

case_help() {
	bcp --help
	t_ok "--help: $(bcp_what)" test "$RC" -eq 0 || return 1
	t_ok "--help printed nothing on stdout" test -s "$T_OUT" || return 1
	t_ok "--help does not mention the copy command" \
		grep -q 'copy' "$T_OUT" || return 1
	t_ok "--help does not mention the limits command" grep -q 'limits' "$T_OUT" || return 1
	bcp --version
	t_ok "--version: $(bcp_what)" test "$RC" -eq 0 || return 1
	t_ok "--version does not print a version number: $(head -c 100 "$T_OUT")" \
		grep -Eq '[0-9]+\.[0-9]+\.[0-9]+' "$T_OUT"
}

case_whole() {
	local sz=$((3 * MiB + 123))
	rand_file "$D/w.src" "$sz"
	rand_file "$D/w.dst" "$sz"
	bcp_ok copy "$D/w.src" "$D/w.dst" || return 1
	t_ok "destination differs from the source after a whole-file copy" \
		cmp -s "$D/w.src" "$D/w.dst"
}

case_whole_offset() {
	local sz=$((2 * MiB + 5))
	rand_file "$D/wo.src" "$sz"
	rand_file "$D/wo.dst" $((4 * MiB))
	cp "$D/wo.dst" "$D/wo.orig"
	bcp_ok copy --dst-offset 4099 "$D/wo.src" "$D/wo.dst" || return 1
	verify_copy "$D/wo.src" "$D/wo.dst" "$D/wo.orig" 4099 "0:$sz"
}

# Scattered, unsorted ranges; adjacent ones (which the library may coalesce),
# source-adjacent ones in reverse order (which it must not merge), duplicates,
# overlapping source ranges, a range ending at the end of the source.
SCATTER=(
	1048576:65536
	0:4096
	4096:8192
	12288:4096
	5242880:131072
	5373952:4096
	20480:4096
	16384:4096
	0:4096
	1000:5000
	3000:5000
	7340032:1048576
)

scatter_case() { # extra options...
	rand_file "$D/s.src" $((8 * MiB))
	rand_file "$D/s.dst" $((8 * MiB))
	cp "$D/s.dst" "$D/s.orig"
	local dst_off=$((2 * MiB + 4096))
	# shellcheck disable=SC2046
	bcp_ok copy "$@" $(range_args "${SCATTER[@]}") --dst-offset "$dst_off" "$D/s.src" "$D/s.dst" || return 1
	verify_copy "$D/s.src" "$D/s.dst" "$D/s.orig" "$dst_off" "${SCATTER[@]}"
}

case_scattered() {
	scatter_case
}

case_buffered() {
	scatter_case --buffered
}

case_options() {
	# Options that must not change the result.
	scatter_case --no-offload --no-sync --no-progress --queue-depth 3 || return 1
	scatter_case --progress </dev/null
}

# --ranges-from with a few thousand 4 KiB ranges in random order.  The
# expected destination span is the concatenation of the 4 KiB source blocks
# in list order, built with split + cat.
NBLK=4096
prep_blocks() {
	[[ -d $D/blk ]] && return 0
	rand_file "$D/rf.src" $((NBLK * 4096))
	mkdir "$D/blk"
	(cd "$D/blk" && split -b 4096 -a 4 -d ../rf.src b.) || return 1
}

expected_span() { # ORDERFILE OUT
	(cd "$D/blk" && awk '{ printf "b.%04d\n", $1 }' "$1" | xargs cat) >"$2"
}

case_ranges_file() {
	local n=3000 dst_off=$((MiB + 512))
	prep_blocks || { WHY="cannot split the source"; return 1; }
	shuf -i 0-$((NBLK - 1)) -n "$n" >"$D/order1"
	{
		echo "# blkcopy ranges, 4 KiB blocks in random order"
		echo
		awk '{ printf "%d:4096\n", $1 * 4096; if (NR % 500 == 0) print "" }' "$D/order1"
		echo "# end"
	} >"$D/ranges1"
	rand_file "$D/rf.dst" $((16 * MiB))
	cp "$D/rf.dst" "$D/rf.orig"
	bcp_ok copy --ranges-from "$D/ranges1" --dst-offset "$dst_off" "$D/rf.src" "$D/rf.dst" || return 1
	expected_span "$D/order1" "$D/span1"
	t_ok "destination span differs from the source blocks in list order" \
		same_region "$D/span1" 0 "$D/rf.dst" "$dst_off" $((n * 4096)) || return 1
	verify_outside "$D/rf.dst" "$D/rf.orig" "$dst_off" $((n * 4096))
}

case_ranges_stdin() {
	local n=2500 dst_off=$((3 * MiB))
	prep_blocks || { WHY="cannot split the source"; return 1; }
	shuf -i 0-$((NBLK - 1)) -n "$n" >"$D/order2"
	# With size suffixes this time: block b is at (4*b)k.
	awk '{ printf "%dk:4k\n", $1 * 4 }' "$D/order2" >"$D/ranges2"
	rand_file "$D/rf2.dst" $((16 * MiB))
	cp "$D/rf2.dst" "$D/rf2.orig"
	bcp_ok copy --ranges-from - --dst-offset 3m "$D/rf.src" "$D/rf2.dst" <"$D/ranges2" || return 1
	expected_span "$D/order2" "$D/span2"
	t_ok "destination span differs from the source blocks in stdin order" \
		same_region "$D/span2" 0 "$D/rf2.dst" "$dst_off" $((n * 4096)) || return 1
	verify_outside "$D/rf2.dst" "$D/rf2.orig" "$dst_off" $((n * 4096))
}

case_suffixes() {
	local G=1073741824
	# Sparse source of 1 GiB + 1 MiB with random data at 0 and at 1 GiB.
	truncate -s $((G + MiB)) "$D/x.src"
	rand_file "$D/x.head" "$MiB"
	write_region "$D/x.head" 0 "$D/x.src" 0 "$MiB"
	rand_file "$D/x.tail" "$MiB"
	write_region "$D/x.tail" 0 "$D/x.src" "$G" "$MiB"
	rand_file "$D/x.dst" $((4 * MiB))
	cp "$D/x.dst" "$D/x.orig"
	# 2s:3k = 1024:3072, 1g:64k, 10s:1k = 5120:1024, 1023k:2k (crosses
	# into the hole at 1 MiB), 2099199s = the last sector of the source.
	bcp_ok copy --range 2s:3k --range 1g:64k --range 10s:1k --range 1023k:2k \
		--range 2099199s:1s --dst-offset 3s "$D/x.src" "$D/x.dst" || return 1
	verify_copy "$D/x.src" "$D/x.dst" "$D/x.orig" 1536 \
		1024:3072 "$G:65536" 5120:1024 1047552:2048 $((G + MiB - 512)):512 || return 1
	# 1m dst offset and an m length.
	cp "$D/x.orig" "$D/x.dst"
	bcp_ok copy --range 1g:1m --dst-offset 1m "$D/x.src" "$D/x.dst" || return 1
	verify_copy "$D/x.src" "$D/x.dst" "$D/x.orig" "$MiB" "$G:$MiB" || return 1
	# t: 1t is far past the end of this source; a t misread as bytes (or
	# anything small) would succeed instead.
	cp "$D/x.orig" "$D/x.dst"
	bcp copy --range 0:1t "$D/x.src" "$D/x.dst"
	t_ok "--range 0:1t on a 1 GiB file: expected exit 1 'past the end of the source', got $(bcp_what)" \
		test "$RC" -eq 1 || return 1
	t_ok "--range 0:1t: expected 'source range past the end of the source', got $(bcp_what)" \
		grep -qF "source range past the end of the source" "$T_ERR" || return 1
	t_ok "--range 0:1t changed the destination" cmp -s "$D/x.orig" "$D/x.dst" || return 1
	# Hex, as nvme-cli prints offsets: 0x40000000 = 1 GiB, 0x400 = 1 KiB, in a
	# ranges file too; the suffixes stay decimal-only.
	bcp_ok copy --range 0x40000000:0x10000 --range 0X400:0xc00 --dst-offset 0x200 \
		"$D/x.src" "$D/x.dst" || return 1
	verify_copy "$D/x.src" "$D/x.dst" "$D/x.orig" 512 "$G:65536" 1024:3072 || return 1
	cp "$D/x.orig" "$D/x.dst"
	printf '0x100000:0x800\n' | bcp_ok copy --ranges-from - --dst-offset 0x0 "$D/x.src" "$D/x.dst" || return 1
	verify_copy "$D/x.src" "$D/x.dst" "$D/x.orig" 0 "$MiB:2048" || return 1
	cp "$D/x.orig" "$D/x.dst"
	bcp copy --range 0x10k:4k "$D/x.src" "$D/x.dst"
	t_ok "--range 0x10k:4k: expected a usage error, got $(bcp_what)" test "$RC" -eq 2 || return 1
	t_ok "--range 0x10k:4k changed the destination" cmp -s "$D/x.orig" "$D/x.dst"
}

case_json() {
	local r=(65536:131072 0:4096 999:1 300000:70000)
	local total
	total=$(sum_lengths "${r[@]}")
	rand_file "$D/j.src" "$MiB"
	rand_file "$D/j.dst" "$MiB"
	cp "$D/j.dst" "$D/j.orig"
	# shellcheck disable=SC2046
	bcp_ok copy --json $(range_args "${r[@]}") --dst-offset 12345 "$D/j.src" "$D/j.dst" || return 1
	cp "$T_OUT" "$D/j.json"
	json_check "$D/j.json" 'type == "object"' "stdout is not one JSON object" || return 1
	t_ok "stdout holds more than one JSON value: $(head -c 300 "$D/j.json")" \
		test "$(jq -s length <"$D/j.json")" -eq 1 || return 1
	json_check "$D/j.json" 'has("bytes") and has("native_bytes") and has("emulated_bytes") and has("seconds")' \
		"missing one of bytes, native_bytes, emulated_bytes, seconds" || return 1
	json_check "$D/j.json" 'has("committed") and has("total") and has("ranges") and has("method") and has("error")' \
		"missing one of committed, total, ranges, method, error" || return 1
	json_check "$D/j.json" ".bytes == $total" "bytes is not the sum of the lengths ($total)" || return 1
	# Files on one file system: the file backend copies them natively.
	json_check "$D/j.json" '.native_bytes == .bytes and .emulated_bytes == 0 and (.method == "copy_file_range" or .method == "reflink" or .method == "mixed")' \
		"not all native through the file backend" || return 1
	json_check "$D/j.json" '(.methods | add) == .bytes' "methods do not add up to bytes" || return 1
	bcp_ok copy --json --no-offload $(range_args "${r[@]}") --dst-offset 12345 "$D/j.src" "$D/j.dst" || return 1
	json_check "$T_OUT" '.emulated_bytes == .bytes and .native_bytes == 0 and .method == "emulate"' \
		"--no-offload did not emulate everything" || return 1
	json_check "$D/j.json" ".total == $total and .committed == $total" "total/committed != $total" || return 1
	json_check "$D/j.json" '(.seconds | type) == "number" and .seconds >= 0' "seconds is not a number >= 0" || return 1
	json_check "$D/j.json" '(.ranges | type) == "number" and .ranges >= 1 and .ranges <= 4' \
		"ranges is not a count between 1 and 4" || return 1
	json_check "$D/j.json" '.error == null' "error != null" || return 1
	verify_copy "$D/j.src" "$D/j.dst" "$D/j.orig" 12345 "${r[@]}"
}

# --verify reads the destination back: aligned (O_DIRECT) and unaligned (buffered) ranges.
case_verify() {
	local r=(65536:131072 0:4096 300000:70000) u=(999:1 4095:4098 70001:20003)
	rand_file "$D/v.src" "$MiB"
	rand_file "$D/v.dst" "$MiB"
	# shellcheck disable=SC2046
	bcp_ok copy --json --verify --no-offload $(range_args "${r[@]}") --dst-offset 4096 "$D/v.src" "$D/v.dst" || return 1
	json_check "$T_OUT" ".verified == true and .verified_bytes == $(sum_lengths "${r[@]}") and .mismatch_offset == null" \
		"--verify did not verify every byte" || return 1
	# shellcheck disable=SC2046
	bcp_ok copy --json --verify $(range_args "${u[@]}") --dst-offset 7 "$D/v.src" "$D/v.dst" || return 1
	json_check "$T_OUT" ".verified == true and .verified_bytes == $(sum_lengths "${u[@]}")" \
		"--verify of unaligned ranges" || return 1
	# shellcheck disable=SC2046
	bcp_ok copy --verify $(range_args "${u[@]}") --dst-offset 7 "$D/v.src" "$D/v.dst" || return 1
	t_ok "no verification line: $(cat "$T_OUT")" grep -q "^verified $(sum_lengths "${u[@]}") bytes" "$T_OUT" || return 1
	# shellcheck disable=SC2046
	bcp_ok copy --json $(range_args "${u[@]}") "$D/v.src" "$D/v.dst" || return 1
	json_check "$T_OUT" '.verified == null and .mismatch_offset == null' "verified without --verify"
}

# --rate over a 10 s copy: the rate achieved within 10% of the one asked.
case_rate() {
	local size=$((160 * MiB)) rate=$((16 * MiB)) secs
	rand_file "$D/rt.src" "$size"
	rand_file "$D/rt.dst" "$size"
	bcp_ok copy --json --no-offload --rate 16m "$D/rt.src" "$D/rt.dst" || return 1
	secs=$(jq -r .seconds "$T_OUT")
	t_ok "--rate 16m: 160 MiB took $secs s, not 10 s within 10%" \
		awk -v s="$secs" -v n="$size" -v r="$rate" 'BEGIN { a = n / s; exit !(a > 0.9 * r && a < 1.1 * r) }' || return 1
	t_ok "--rate copy differs" cmp -s "$D/rt.src" "$D/rt.dst" || return 1
	rm -f "$D/rt.src" "$D/rt.dst"
}

case_unaligned() {
	local sz=$((MiB + 13))
	local r=(1:1 12345:6789 999999:3 4095:4098 3:4093 $((sz - 13)):13 511:513 70001:200003)
	rand_file "$D/u.src" "$sz"
	rand_file "$D/u.dst" $((2 * MiB))
	cp "$D/u.dst" "$D/u.orig"
	# shellcheck disable=SC2046
	bcp_ok copy $(range_args "${r[@]}") --dst-offset 77 "$D/u.src" "$D/u.dst" || return 1
	verify_copy "$D/u.src" "$D/u.dst" "$D/u.orig" 77 "${r[@]}" || return 1
	# Same through the buffered path, to another odd offset.
	cp "$D/u.orig" "$D/u.dst"
	# shellcheck disable=SC2046
	bcp_ok copy --buffered $(range_args "${r[@]}") --dst-offset 1000003 "$D/u.src" "$D/u.dst" || return 1
	verify_copy "$D/u.src" "$D/u.dst" "$D/u.orig" 1000003 "${r[@]}"
}

case_large_ranges() {
	local r1=(512:$((5 * MiB + 1234)))
	rand_file "$D/l.src" $((6 * MiB + 4096))
	rand_file "$D/l.dst" $((8 * MiB))
	cp "$D/l.dst" "$D/l.orig"
	bcp_ok copy --chunk-size 1m --max-inflight 2m --range "${r1[0]}" --dst-offset 100000 \
		"$D/l.src" "$D/l.dst" || return 1
	verify_copy "$D/l.src" "$D/l.dst" "$D/l.orig" 100000 "${r1[@]}" || return 1
	# Small chunks, one I/O at a time, two big ranges in reverse order.
	local r2=($((3 * MiB)):$((3 * MiB)) 4096:$((3 * MiB - 4096)))
	cp "$D/l.orig" "$D/l.dst"
	# shellcheck disable=SC2046
	bcp_ok copy --chunk-size 64k --max-inflight 128k --queue-depth 1 $(range_args "${r2[@]}") \
		--dst-offset $((2 * MiB)) "$D/l.src" "$D/l.dst" || return 1
	verify_copy "$D/l.src" "$D/l.dst" "$D/l.orig" $((2 * MiB)) "${r2[@]}" || return 1
	# Whole source with a chunk size that does not divide it.
	rand_file "$D/l2.dst" $((6 * MiB + 4096))
	bcp_ok copy --chunk-size 192k --max-inflight 1m "$D/l.src" "$D/l2.dst" || return 1
	t_ok "whole copy with --chunk-size 192k differs" cmp -s "$D/l.src" "$D/l2.dst"
}

case_limits() {
	local sz=$((MiB + 77))
	rand_file "$D/lim1" "$sz"
	rand_file "$D/lim2" 4096
	bcp_ok limits --json "$D/lim1" || return 1
	cp "$T_OUT" "$D/lim.json"
	json_check "$D/lim.json" 'type == "array" and length == 1' "limits --json FILE is not an array of 1" || return 1
	json_check "$D/lim.json" '.[0] | has("device") and has("kind") and has("backend") and has("native_reason") and has("logical_block_size") and has("capacity") and has("read_only") and has("copy_offload") and has("max_copy_sectors") and has("max_copy_nr_ranges") and has("max_copy_range_sectors")' \
		"limits object lacks a key" || return 1
	json_check "$D/lim.json" ".[0].device == \"$D/lim1\"" "device is not the path given" || return 1
	json_check "$D/lim.json" '.[0].kind == "file"' "kind is not file" || return 1
	json_check "$D/lim.json" '.[0].logical_block_size == 1' "logical_block_size of a file is not 1" || return 1
	json_check "$D/lim.json" ".[0].capacity == $sz" "capacity is not the file size $sz" || return 1
	json_check "$D/lim.json" '.[0].read_only == false' "read_only is not false" || return 1
	# The file backend: one range per command, large pieces.
	json_check "$D/lim.json" '.[0].copy_offload == 1 and .[0].max_copy_sectors > 0 and .[0].max_copy_nr_ranges == 1 and .[0].max_copy_range_sectors > 0' \
		"a file does not report the file backend's limits" || return 1
	json_check "$D/lim.json" '.[0].backend == "file"' "backend of a file is not file" || return 1
	# Two devices: two objects, in order.
	bcp_ok limits --json "$D/lim1" "$D/lim2" || return 1
	cp "$T_OUT" "$D/lim2.json"
	json_check "$D/lim2.json" "length == 2 and .[0].capacity == $sz and .[1].capacity == 4096 and .[1].device == \"$D/lim2\"" \
		"limits --json with two files" || return 1
	# Human-readable form.
	bcp_ok limits "$D/lim1" || return 1
	t_ok "limits (no --json) printed nothing" test -s "$T_OUT"
}

command -v jq >/dev/null || { echo "FAIL $T_NAME: jq is required"; exit 1; }

t_case help case_help
t_case whole-file case_whole
t_case whole-file-dst-offset case_whole_offset
t_case scattered-ranges case_scattered
t_case buffered case_buffered
t_case options case_options
t_case ranges-from-file case_ranges_file
t_case ranges-from-stdin case_ranges_stdin
t_case size-suffixes case_suffixes
t_case json case_json
t_case verify case_verify
t_case rate case_rate
t_case unaligned-offsets case_unaligned
t_case ranges-larger-than-chunk case_large_ranges
t_case limits-json case_limits
t_finish
