#!/bin/bash
# SPDX-License-Identifier: MIT
# Native SCSI EXTENDED COPY against LIO over tcm_loop: limits from RECEIVE
# COPY OPERATING PARAMETERS, same-LU and cross-LU copies between fileio,
# rd_mcp and iblock backstores, segments split at the 16-bit block count,
# partitions remapped to the LU, block-size mismatch, forced emulation and
# a clean refusal with --no-emulation.
. "$(dirname "${BASH_SOURCE[0]}")/lib.sh"

xcopy_only() {
	json_check "$T_OUT" '.native_bytes == .total and .emulated_bytes == 0 and .method == "scsi_xcopy"' \
		"expected every byte through EXTENDED COPY"
}

emulated_only() {
	json_check "$T_OUT" '.native_bytes == 0 and .emulated_bytes == .total' "expected emulation"
}

# limits_are DEV RANGES RANGE_SECTORS SECTORS
limits_are() {
	bcp limits --json "$1"
	[[ $RC -eq 0 ]] || { WHY="limits $1: $(bcp_what)"; return 1; }
	info "limits $1: $(jq -c '.[0] | {backend, copy_offload, max_copy_nr_ranges, max_copy_range_sectors, max_copy_sectors, native_reason}' <"$T_OUT")"
	json_check "$T_OUT" ".[0].backend == \"scsi\" and .[0].copy_offload == 1 and
		.[0].max_copy_nr_ranges == $2 and .[0].max_copy_range_sectors == $3 and
		.[0].max_copy_sectors == $4" "limits of $1 are not $2 range(s) of $3 sectors, $4 per command"
}

# LIO: one segment per command; a segment counts at most 65535 blocks.
case_limits() {
	local l
	for l in LUN_FILEIO LUN_RDMCP LUN_IBLOCK LUN_PART1; do
		need $l || return 77
		limits_are "${!l}" 1 65535 65535 || return 1
	done
}

# 4096-byte blocks: 65535 blocks is 524280 sectors, under LIO's 256 MiB segment.
case_limits_4k() { need LUN_4K || return 77; limits_are "$LUN_4K" 1 524280 524280; }

case_same_lun() {
	need LUN_FILEIO || return 77
	copy_verify "$LUN_FILEIO" "$LUN_FILEIO" 32m 0:4k 1m:64k 2m+512:1536 5m:1m && xcopy_only
}

case_fileio_to_rdmcp() {
	need LUN_FILEIO LUN_RDMCP || return 77
	copy_verify "$LUN_FILEIO" "$LUN_RDMCP" 8m 0:64k 3m:512 4m:2m && xcopy_only
}

case_rdmcp_to_iblock() {
	need LUN_RDMCP LUN_IBLOCK || return 77
	copy_verify --via "$BRD_IBLOCK:0" "$LUN_RDMCP" "$LUN_IBLOCK" 20m 1m:1m 10m:8k && xcopy_only
}

case_iblock_to_fileio() {
	need LUN_IBLOCK LUN_FILEIO || return 77
	copy_verify "$LUN_IBLOCK" "$LUN_FILEIO" 40m 2m:256k 6m:4k && xcopy_only
}

# 40 MiB in one range: more than one segment's 65535 blocks, so split.
case_split_long_range() {
	need LUN_FILEIO LUN_RDMCP || return 77
	copy_verify "$LUN_FILEIO" "$LUN_RDMCP" 20m 0:40m && xcopy_only
}

case_partitions() {
	need LUN_PART1 LUN_PART2 LUN_PART || return 77
	copy_verify --via "$LUN_PART:$LUN_PART2_OFFSET" "$LUN_PART1" "$LUN_PART2" 2m 0:64k 1m:4k 7m:1m &&
		xcopy_only
}

case_4k_same_lun() {
	need LUN_4K || return 77
	copy_verify "$LUN_4K" "$LUN_4K" 32m 0:4k 1m:1m 9m:12k && xcopy_only
}

# Different block sizes: the copy manager cannot, emulation can.
case_4k_to_512_emulated() {
	need LUN_4K LUN_FILEIO || return 77
	copy_verify "$LUN_4K" "$LUN_FILEIO" 48m 0:4k 1m:64k && emulated_only
}

case_no_offload() {
	need LUN_FILEIO LUN_RDMCP || return 77
	copy_verify --opt --no-offload "$LUN_FILEIO" "$LUN_RDMCP" 50m 0:64k 1m:4k && emulated_only
}

case_scsi_to_nvme_emulated() {
	need LUN_RDMCP NVME_DEFAULT || return 77
	copy_verify "$LUN_RDMCP" "$NVME_DEFAULT" 80m 0:64k 1m:4k && emulated_only
}

# A pair no copy manager can take: refused before anything is written.
case_no_emulation_refused() {
	need LUN_4K LUN_FILEIO || return 77
	fill_random "$LUN_FILEIO" 56m 1m || { WHY="fill failed"; return 1; }
	local before
	before=$(md5_region "$LUN_FILEIO" 56m 1m)
	bcp copy --json --no-progress --no-emulation --range 0:64k --dst-offset $((56 * MiB + 65536)) "$LUN_4K" "$LUN_FILEIO"
	[[ $RC -ne 0 ]] || { WHY="--no-emulation between block sizes succeeded"; return 1; }
	json_check "$T_OUT" '.bytes == 0 and (.error | test("native copy not available"))' "expected a clean refusal" || return 1
	json_check "$T_OUT" '.device_error | test("scsi: different block sizes")' \
		"the refusal does not name its reason" || return 1
	[[ $(md5_region "$LUN_FILEIO" 56m 1m) == "$before" ]] || { WHY="the refused copy wrote"; return 1; }
}

case_no_emulation_native_ok() {
	need LUN_FILEIO LUN_RDMCP || return 77
	copy_verify --opt --no-emulation "$LUN_FILEIO" "$LUN_RDMCP" 60m 0:64k 1m:4k && xcopy_only
}

# The target writes behind the initiator's page cache: a buffered read must see the copy.
case_buffered_read_after_copy() {
	need LUN_RDMCP || return 77
	local want got
	fill_random "$LUN_RDMCP" 30m 256k || { WHY="fill failed"; return 1; }
	want=$(md5_region "$LUN_RDMCP" 30m 256k)
	dd if="$LUN_RDMCP" bs=64k skip=$((34 * 16)) count=4 status=none >/dev/null
	bcp copy --json --no-progress --range 30m:256k --dst-offset 34m "$LUN_RDMCP" "$LUN_RDMCP"
	[[ $RC -eq 0 ]] || { WHY="copy: $(bcp_what)"; return 1; }
	xcopy_only || return 1
	got=$(dd if="$LUN_RDMCP" bs=64k skip=$((34 * 16)) count=4 status=none | md5sum | cut -d' ' -f1)
	[[ $got == "$want" ]] || { WHY="a buffered read after the copy saw stale data"; return 1; }
}

# A caller that polls only blkcopy_job_fd() finishes a copy whose native
# commands are synchronous (SG_IO): the library signals the descriptor.
case_job_fd_sg_io() {
	need LUN_FILEIO || return 77
	BLKCOPY_SCSI_SYNC=1 job_drive_verify fd "$LUN_FILEIO" "$LUN_FILEIO" 256k 40m
}

# The same through the sg queue (commands in flight together, polled through the job's descriptor).
case_job_fd_sg_queue() {
	need LUN_FILEIO || return 77
	job_drive_verify fd "$LUN_FILEIO" "$LUN_FILEIO" 256k 40m
}

# scattered_args N BASE: N ranges of 4..64 KiB spread over 16 MiB from BASE.
scattered_args() {
	local i
	for ((i = 0; i < $1; i++)); do
		echo "$(($2 + (i * 7919 % 4096) * 4096)):$(((i % 16 + 1) * 4096))"
	done
}

# Many pieces (LIO takes one segment per command) in flight together, across LUs and in one LU.
# Every piece native (--native-min 0): the queue is tested here, the piece policy below.
case_queue_scattered() {
	need LUN_FILEIO LUN_RDMCP || return 77
	local r
	mapfile -t r < <(scattered_args 100 0)
	copy_verify --opt --native-min=0 "$LUN_FILEIO" "$LUN_RDMCP" 24m "${r[@]}" && xcopy_only || return 1
	copy_verify --opt --native-min=0 "$LUN_FILEIO" "$LUN_FILEIO" 40m "${r[@]}" && xcopy_only
}

# The one-at-a-time SG_IO path, kept for LUs without an sg node.
case_sync_sg_io() {
	need LUN_FILEIO LUN_RDMCP || return 77
	local r
	mapfile -t r < <(scattered_args 40 0)
	BLKCOPY_SCSI_SYNC=1 copy_verify --opt --native-min=0 "$LUN_FILEIO" "$LUN_RDMCP" 24m "${r[@]}" &&
		xcopy_only
}

# stride_verify SRC DST DST_OFF RANGES-FILE OPTS...: copy the ranges with
# OPTS, then check DST against the same ranges emulated into a file (another
# path: io_uring reads, no target involved) and the bytes around the span.
# Fast for thousands of ranges, where copy_verify runs dd per range.
stride_verify() {
	local src=$1 dst=$2 off=$3 ranges=$4 total end before after gb ga
	shift 4
	total=$(awk -F: '{ n += $2 } END { print n }' "$ranges")
	end=$(awk -F: '$1 + $2 > e { e = $1 + $2 } END { print e }' "$ranges")
	# The source under the ranges, the span and a guard on each side of it (TCG fills slowly).
	gb=$((off < GUARD ? off : GUARD))
	ga=$(($(dev_size "$dst") - off - total))
	((ga > GUARD)) && ga=$GUARD
	fill_random "$src" 0 "$end" && fill_random "$dst" $((off - gb)) $((gb + total + ga)) ||
		{ WHY="fill failed"; return 1; }
	before=$(md5_region "$dst" $((off - gb)) "$gb")$(md5_region "$dst" $((off + total)) "$ga")
	truncate -s "$total" "$T_DIR/want" || return 1
	"$BLKCOPY" copy --no-offload --no-progress --ranges-from "$ranges" "$src" "$T_DIR/want" >/dev/null ||
		{ WHY="the reference copy into a file failed"; return 1; }
	[[ -z ${STRIDE_MARK:-} ]] || : >"$STRIDE_MARK.started"
	bcp copy --json --no-progress "$@" --ranges-from "$ranges" --dst-offset "$off" "$src" "$dst"
	[[ -z ${STRIDE_MARK:-} ]] || : >"$STRIDE_MARK.done"
	[[ $RC -eq 0 ]] || { WHY="copy: $(bcp_what)"; return 1; }
	json_check "$T_OUT" ".bytes == $total and .error == null" "blkcopy did not report $total bytes" || return 1
	read_region "$dst" "$off" "$total" | cmp -s - "$T_DIR/want" ||
		{ WHY="$dst at $off does not hold the ranges"; return 1; }
	after=$(md5_region "$dst" $((off - gb)) "$gb")$(md5_region "$dst" $((off + total)) "$ga")
	[[ $before == "$after" ]] || { WHY="bytes of $dst next to the copy changed"; return 1; }
}

# 4096 ranges of 4 KiB: LIO's copy manager takes one per command, slower than emulation.
# By default blkcopy learns that (a few commands, a probe of emulation) and emulates them.
case_policy_learns() {
	need LUN_FILEIO LUN_RDMCP || return 77
	for ((i = 0; i < 4096; i++)); do echo "$((i * 8192)):4096"; done >"$T_DIR/stride"
	stride_verify "$LUN_FILEIO" "$LUN_RDMCP" 32m "$T_DIR/stride" || return 1
	info "policy: $(jq -c '{seconds, native_bytes, emulated, native_min, native_min_learnt, native_commands}' <"$T_OUT")"
	json_check "$T_OUT" '.native_min_learnt and .native_min > 4096 and .native_bytes >= 8 * 4096 and
		.emulated.slower > 8 * 1048576 and .emulated.probe <= 4194304 and
		.emulated_bytes == (.emulated.slower + .emulated.probe) and .native_commands * 4096 == .native_bytes' \
		"small pieces were not learnt to be emulated"
}

# Unit Attentions while native commands are out (LIO queues one for every
# LU of a target port group on each ALUA state change): the commands that
# meet them go out again, and the copy completes, all native.  Through the
# sg queue and through SG_IO.  --no-sync: nothing but blkcopy's EXTENDED
# COPY commands reaches the LUs during the copy.
alua_state_file() {
	local f
	f=$(grep -l "$1\$" /sys/kernel/config/target/core/*/*/wwn/vpd_unit_serial 2>/dev/null | head -n 1)
	[[ -n $f ]] && echo "${f%/wwn/vpd_unit_serial}/alua/default_tg_pt_gp/alua_access_state"
}

ua_copy() {
	local sf df pid flips=0 k
	sf=$(alua_state_file "$LUN_FILEIO_SERIAL") && df=$(alua_state_file "$LUN_RDMCP_SERIAL") ||
		{ WHY="no ALUA state in configfs for the LUs"; return 77; }
	for ((k = 0; k < 4096; k++)); do echo "$((k * 8192)):4096"; done >"$T_DIR/all"
	sg_turs "$LUN_FILEIO" >/dev/null 2>&1; sg_turs "$LUN_RDMCP" >/dev/null 2>&1
	rm -f "$T_DIR/ua.started" "$T_DIR/ua.done"
	( STRIDE_MARK=$T_DIR/ua stride_verify "$LUN_FILEIO" "$LUN_RDMCP" 0 "$T_DIR/all" --native-min=0 --no-sync
	  echo "rc=$? why=${WHY:-}" >"$T_DIR/ua-result"; cp "$T_OUT" "$T_DIR/ua-json" 2>/dev/null ) &
	pid=$!
	# Wait for the copy itself (after the fills and the reference copy), then flip while it runs.
	while [[ ! -e $T_DIR/ua.started ]] && kill -0 "$pid" 2>/dev/null; do sleep 0.02; done
	sleep 0.2
	while [[ ! -e $T_DIR/ua.done ]] && kill -0 "$pid" 2>/dev/null; do
		echo 1 >"$sf" && echo 1 >"$df" && sleep 0.1 && echo 0 >"$sf" && echo 0 >"$df" &&
			flips=$((flips + 1))
		sleep 0.2
	done
	wait "$pid"
	echo 0 >"$sf"; echo 0 >"$df"
	sg_turs "$LUN_FILEIO" >/dev/null 2>&1; sg_turs "$LUN_RDMCP" >/dev/null 2>&1
	sg_turs "$LUN_FILEIO" >/dev/null 2>&1; sg_turs "$LUN_RDMCP" >/dev/null 2>&1
	local res
	res=$(cat "$T_DIR/ua-result" 2>/dev/null)
	[[ $res == "rc=0 "* ]] || { WHY="${res#*why=}"; return 1; }
	cp "$T_DIR/ua-json" "$T_OUT"
	((flips >= 2)) || { WHY="the copy ended before two ALUA state changes ($flips)"; return 1; }
	info "$T_NAME: $flips ALUA state changes (Unit Attentions on both LUs) during $(jq -r .seconds <"$T_OUT") s:" \
		"$(jq -c '{native_commands, emulated}' <"$T_OUT")"
	# LIO may fail a command whose own reads meet the state change (COPY ABORTED, target not
	# reachable): nothing of it counts, and emulation writes that piece; every other is native.
	json_check "$T_OUT" '.native_bytes >= 0.99 * .total and ((.emulated | keys) - ["refused"] == [])' \
		"the copy did not stay native through the Unit Attentions"
}

case_unit_attention_queue() { need LUN_FILEIO LUN_RDMCP || return 77; ua_copy; }
case_unit_attention_sg_io() { need LUN_FILEIO LUN_RDMCP || return 77; BLKCOPY_SCSI_SYNC=1 ua_copy; }

# Large pieces stay native under the learnt policy (and 64k pieces under a set 8k minimum).
case_policy_keeps_large() {
	need LUN_FILEIO LUN_RDMCP || return 77
	copy_verify "$LUN_FILEIO" "$LUN_RDMCP" 40m 0:16m 20m:8m && xcopy_only || return 1
	json_check "$T_OUT" '.emulated == {} and .native_min == 0' "large pieces were emulated"
}

# --native-min set: pieces shorter are emulated at once (no command), the rest native.
case_native_min_set() {
	need LUN_FILEIO LUN_RDMCP || return 77
	copy_verify --opt --native-min=64k "$LUN_FILEIO" "$LUN_RDMCP" 48m 0:4k 1m:64k 2m:1m 4m:60k || return 1
	json_check "$T_OUT" '.emulated == {"native_min": 65536} and .native_bytes == 65536 + 1048576 and
		.native_min == 65536 and (.native_min_learnt | not)' "--native-min 64k not applied"
}

# --no-emulation: the policy never emulates, even pieces native is slow at.
case_policy_no_emulation() {
	need LUN_FILEIO LUN_RDMCP || return 77
	local r
	mapfile -t r < <(scattered_args 300 0)
	copy_verify --opt --no-emulation "$LUN_FILEIO" "$LUN_RDMCP" 40m "${r[@]}" && xcopy_only
}

# Without CAP_SYS_RAWIO the kernel refuses EXTENDED COPY: the copy is emulated, and says why.
case_no_rawio() {
	need LUN_FILEIO LUN_RDMCP || return 77
	printf '#!/bin/bash\nexec setpriv --inh-caps=-sys_rawio --bounding-set=-sys_rawio %q "$@"\n' \
		"$BLKCOPY" >"$T_DIR/blkcopy-no-rawio"
	chmod +x "$T_DIR/blkcopy-no-rawio"
	BLKCOPY=$T_DIR/blkcopy-no-rawio copy_verify "$LUN_FILEIO" "$LUN_RDMCP" 8m 0:64k 1m:1m &&
		emulated_only
}

# A command timeout: LUN_FREEZE's backing dm device is suspended, so the
# target's reads, and the EXTENDED COPY, hang.  With BLKCOPY_SCSI_TIMEOUT=3
# the kernel aborts the command after 3 s; the abort itself waits for the
# target, which goes on when the device is resumed (8 s in).  The copy must
# fail with the timeout named, nothing committed, nothing written outside
# the span; the LU must work afterwards.  Through the sg queue and SG_IO.
timeout_copy() {
	local dm=$LUN_FREEZE_DM rz t0 took before after k
	for ((k = 0; k < 16; k++)); do echo "$((k * 1048576)):65536"; done >"$T_DIR/ranges"
	fill_random "$LUN_FREEZE" 0 16m && fill_random "$LUN_RDMCP" 0 8m || { WHY="fill failed"; return 1; }
	before=$(md5_region "$LUN_RDMCP" 0 1m)$(md5_region "$LUN_RDMCP" 2m 6m)
	dmsetup suspend "$dm" || { WHY="dmsetup suspend $dm failed"; return 1; }
	( sleep 8; dmsetup resume "$dm" ) &
	rz=$!
	t0=$EPOCHREALTIME
	BLKCOPY_SCSI_TIMEOUT=3 bcp copy --json --no-progress --native-min=0 --ranges-from "$T_DIR/ranges" \
		--dst-offset 1m "$LUN_FREEZE" "$LUN_RDMCP"
	took=$(elapsed_since "$t0")
	wait "$rz"
	dmsetup resume "$dm" 2>/dev/null
	sg_turs "$LUN_FREEZE" >/dev/null 2>&1; sg_turs "$LUN_RDMCP" >/dev/null 2>&1
	info "$T_NAME: rc $RC after ${took}s: $(jq -c '{error, device_error, committed}' <"$T_OUT" 2>/dev/null)"
	[[ $RC -ne 0 ]] || { WHY="the copy succeeded while its source hung"; return 1; }
	json_check "$T_OUT" '.committed == 0 and .native_bytes == 0 and (.error | test("timed out"; "i")) and
		(.device_error | test("no answer within 3 s"))' "the timeout is not reported as such" || return 1
	after=$(md5_region "$LUN_RDMCP" 0 1m)$(md5_region "$LUN_RDMCP" 2m 6m)
	[[ $before == "$after" ]] || { WHY="bytes outside the copy changed"; return 1; }
	# The LU works again: the same copy, now complete.
	copy_verify --opt --native-min=0 "$LUN_FREEZE" "$LUN_RDMCP" 1m 0:64k 1m:64k 2m:64k && xcopy_only
}

case_timeout_queue() { need LUN_FREEZE LUN_RDMCP LUN_FREEZE_DM || return 77; timeout_copy; }
case_timeout_sg_io() { need LUN_FREEZE LUN_RDMCP LUN_FREEZE_DM || return 77; BLKCOPY_SCSI_SYNC=1 timeout_copy; }

# A bad BLKCOPY_SCSI_TIMEOUT is refused at open, naming it.
case_timeout_setting() {
	need LUN_FILEIO || return 77
	BLKCOPY_SCSI_TIMEOUT=0 bcp limits "$LUN_FILEIO"
	[[ $RC -ne 0 ]] && grep -q "BLKCOPY_SCSI_TIMEOUT must be 1 to 3600 seconds, not '0'" "$T_ERR" ||
		{ WHY="BLKCOPY_SCSI_TIMEOUT=0 accepted: $(bcp_what)"; return 1; }
}

run_case scsi-limits case_limits
run_case scsi-limits-4k case_limits_4k
run_case scsi-xcopy-same-lun case_same_lun
run_case scsi-xcopy-fileio-to-rdmcp case_fileio_to_rdmcp
run_case scsi-xcopy-rdmcp-to-iblock case_rdmcp_to_iblock
run_case scsi-xcopy-iblock-to-fileio case_iblock_to_fileio
run_case scsi-xcopy-split-40m case_split_long_range
run_case scsi-xcopy-partitions case_partitions
run_case scsi-xcopy-4k-same-lun case_4k_same_lun
run_case scsi-4k-to-512-emulated case_4k_to_512_emulated
run_case scsi-job-fd-sg-io case_job_fd_sg_io
run_case scsi-job-fd-sg-queue case_job_fd_sg_queue
run_case scsi-queue-scattered case_queue_scattered
run_case scsi-sync-sg-io case_sync_sg_io
run_case scsi-policy-learns case_policy_learns
run_case scsi-policy-keeps-large case_policy_keeps_large
run_case scsi-native-min-set case_native_min_set
run_case scsi-policy-no-emulation case_policy_no_emulation
run_case scsi-unit-attention-queue case_unit_attention_queue
run_case scsi-unit-attention-sg-io case_unit_attention_sg_io
run_case scsi-no-rawio-emulates case_no_rawio
run_case scsi-no-offload case_no_offload
run_case scsi-to-nvme-emulated case_scsi_to_nvme_emulated
run_case scsi-no-emulation-refused case_no_emulation_refused
run_case scsi-no-emulation-native case_no_emulation_native_ok
run_case scsi-buffered-read-after-copy case_buffered_read_after_copy
run_case scsi-timeout-setting case_timeout_setting
# Last: a timeout sends the tcm_loop host through error handling.
run_case scsi-timeout-queue case_timeout_queue
run_case scsi-timeout-sg-io case_timeout_sg_io
finish
