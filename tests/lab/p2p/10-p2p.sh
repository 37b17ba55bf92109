#!/bin/bash
# SPDX-License-Identifier: MIT
# Emulated copies staged in PCI peer-to-peer memory (--p2p), in the P2P
# guest (lab/host/p2p.sh): two NVMe controllers below one PCIe switch, the
# first with a 64 MiB CMB published as p2pmem, a third on the root complex,
# a RAM disk.  Copies in both directions, within one controller, several
# ranges of odd sizes; the proof that the bytes went through the CMB (a
# stopped copy's blocks found in it through its BAR, the mapping in the
# process, p2pmem/available) and that blkcopy's memory does not grow with
# the copy; every refusal leaves the destination unchanged; a kill leaves
# the journal's committed prefix exact, and a resume finishes the copy.
. "$(dirname "${BASH_SOURCE[0]}")/../lib.sh"

CMB_BAR=/sys/bus/pci/devices/${P2P_CMB_PCI:-none}/resource2	# QEMU's CMB is BAR 2
P2P_AVAILABLE=/sys/bus/pci/devices/${P2P_CMB_PCI:-none}/p2pmem/available

# p2p_copy OPTIONS SRC DST DSTOFF RANGE...: copy_verify with OPTIONS (one
# word, comma-separated: "--p2p", "--p2p=src,--no-offload"); then every byte
# must have been staged in the CMB's memory.
p2p_copy() {
	local o opts=() total=0 r v
	IFS=, read -ra o <<<"$1"
	shift
	for r in "${o[@]}"; do opts+=(--opt "$r"); done
	for r in "${@:4}"; do size_var v "${r#*:}"; total=$((total + v)); done
	copy_verify "${opts[@]}" "$@" || return 1
	json_check "$T_OUT" ".p2p_bytes == $total and .p2p_memory == \"$P2P_CMB_PCI\" and .method == \"emulate\"" \
		"not every byte was staged in the P2P memory of $P2P_CMB_PCI"
}

case_limits() {
	need P2P_CMB P2P_PEER P2P_CMB_SIZE || return 77
	bcp limits --json "$P2P_CMB" "$P2P_PEER" ${P2P_RAM:+"$P2P_RAM"}
	[[ $RC -eq 0 ]] || { WHY="blkcopy limits: $(bcp_what)"; return 1; }
	json_check "$T_OUT" ".[0].p2p.pci == \"$P2P_CMB_PCI\" and .[0].p2p.memory and .[0].p2p.published and .[0].p2p.size == $P2P_CMB_SIZE and .[0].p2p.available > 0 and .[0].p2p.driver == \"nvme\"" \
		"limits does not show the CMB's P2P memory" || return 1
	json_check "$T_OUT" ".[1].p2p.memory == false and (.[1].p2p.pci | length) == 12" \
		"limits shows P2P memory on the controller without a CMB" || return 1
	if [[ -n ${P2P_RAM:-} ]]; then
		json_check "$T_OUT" ".[2].p2p == null" "a RAM disk has no PCI function" || return 1
	fi
	bcp limits "$P2P_CMB"
	grep -q "p2p_memory .*64.00 MiB, .* available, published (PCI $P2P_CMB_PCI, driver nvme)" "$T_OUT" ||
		{ WHY="limits (text) does not show the P2P memory: $(grep p2p "$T_OUT")"; return 1; }
}

case_cmb_to_peer() {
	need P2P_CMB P2P_PEER P2P_CMB_PCI || return 77
	p2p_copy --p2p "$P2P_CMB" "$P2P_PEER" 1m 0:16m
}

# The source has no P2P memory: the destination's is used.
case_peer_to_cmb() {
	need P2P_CMB P2P_PEER P2P_CMB_PCI || return 77
	p2p_copy --p2p "$P2P_PEER" "$P2P_CMB" 40m 4m:16m+512
}

# Several ranges, odd multiples of the 512-byte block, into one destination span.
case_ranges() {
	need P2P_CMB P2P_PEER P2P_CMB_PCI || return 77
	p2p_copy --p2p=dst "$P2P_PEER" "$P2P_CMB" 70m+512 3s:1s 1m+512:7s 5m:1m+1536 9m+3584:3m+4608 20m:512
}

# Within the controller that has the CMB: NVMe Copy would do it, so
# --no-offload; the controller's DMA reaches its own memory.
case_same_controller() {
	need P2P_CMB P2P_CMB_PCI || return 77
	p2p_copy --p2p=src,--no-offload "$P2P_CMB" "$P2P_CMB" 100m 2m:8m+1024
}

# refused NAME WHAT-IN-STDERR SRC DST ARGS...: blkcopy copy must fail and
# leave DST's first 16 MiB unchanged.
refused() {
	local want=$1 src=$2 dst=$3 before after
	shift 3
	before=$(md5_region "$dst" 0 16m)
	bcp copy --no-progress "$@" "$src" "$dst"
	after=$(md5_region "$dst" 0 16m)
	[[ $RC -ne 0 ]] || { WHY="blkcopy copy $* $src $dst succeeded"; return 1; }
	[[ $before == "$after" ]] || { WHY="the refused copy changed $dst"; return 1; }
	grep -q -- "$want" "$T_ERR" || { WHY="stderr does not say '$want': $(head -c 300 "$T_ERR")"; return 1; }
	info "$T_NAME: refused: $(head -c 300 "$T_ERR" | tr '\n' ' ')"
}

case_refusals() {
	need P2P_CMB P2P_PEER P2P_FAR || return 77
	fill_random "$P2P_PEER" 0 16m && fill_random "$P2P_CMB" 0 16m && fill_random "$P2P_FAR" 0 16m
	refused "cannot be staged in P2P memory: no P2P memory to stage the copy in: ${P2P_PEER#/dev/} (.*) has no P2P memory$" \
		"$P2P_PEER" "$P2P_CMB" --p2p=src -r 0:1m || return 1
	refused "no P2P memory to stage the copy in" "$P2P_FAR" "$P2P_PEER" --p2p -r 0:1m || return 1
	# The far controller is on the root complex: its DMA may not reach the CMB.
	refused "meet only at the host bridge" "$P2P_CMB" "$P2P_FAR" --p2p -r 0:1m || return 1
	refused "meet only at the host bridge" "$P2P_FAR" "$P2P_CMB" --p2p -r 0:1m --dst-offset 1m || return 1
	if [[ -n ${P2P_RAM:-} ]]; then
		fill_random "$P2P_RAM" 0 16m
		refused "is not on a PCI device" "$P2P_CMB" "$P2P_RAM" --p2p -r 0:1m || return 1
	fi
	refused "not with --buffered" "$P2P_CMB" "$P2P_PEER" --p2p --buffered -r 0:1m || return 1
	refused "want src, dst or auto" "$P2P_CMB" "$P2P_PEER" --p2p=both -r 0:1m || return 1
}

# vm_kb PID FIELD: a /proc/PID/status field in kB.
vm_kb() {
	awk -v f="$2:" '$1 == f { print $2 }' "/proc/$1/status"
}

# wait_for SECONDS CMD...: until CMD succeeds, polling every 0.1 s.
wait_for() {
	local n=$(($1 * 10))
	shift
	until "$@"; do
		((n-- > 0)) || return 1
		sleep 0.1
	done
}

# p2p_held AVAIL: the CMB's free P2P memory is below AVAIL (a copy mapped its buffers).
p2p_held() {
	(($(cat "$P2P_AVAILABLE") < $1))
}

# The bytes go through the device: a copy stopped half way has the source's
# blocks in the CMB (read through its BAR), its buffers are a mapping of
# p2pmem/allocate, the P2P memory it holds is gone from "available", and
# its memory does not grow as the copy goes on (VmRSS counts the mapped
# CMB pages, RssAnon the host memory it uses).  The same copy through host
# memory leaves none of its blocks in the CMB and has its buffers in
# anonymous memory.
case_staged_in_cmb() {
	need P2P_CMB P2P_PEER P2P_CMB_PCI || return 77
	local magic=P2P$RANDOM$RANDOM hmagic=HOST$RANDOM$RANDOM pid scan avail0 avail1 rss1 rss2 anon1 anon2 maps
	p2p_stamp write "$P2P_CMB" 0 $((24 * MiB)) "$magic" || { WHY="stamping $P2P_CMB failed"; return 1; }
	avail0=$(cat "$P2P_AVAILABLE")
	"$BLKCOPY" copy --no-progress --p2p --rate 6m -r 0:24m "$P2P_CMB" "$P2P_PEER" >"$T_OUT" 2>"$T_ERR" &
	pid=$!
	wait_for 30 p2p_held "$avail0" || { kill "$pid"; WHY="the copy never mapped P2P memory"; return 1; }
	sleep 0.5
	rss1=$(vm_kb "$pid" VmRSS) anon1=$(vm_kb "$pid" RssAnon)
	sleep 1
	kill -STOP "$pid"
	scan=$(p2p_stamp scan "$CMB_BAR" "$magic")
	avail1=$(cat "$P2P_AVAILABLE")
	maps=$(grep -c 'p2pmem/allocate' "/proc/$pid/maps")
	kill -CONT "$pid"
	sleep 1
	rss2=$(vm_kb "$pid" VmRSS) anon2=$(vm_kb "$pid" RssAnon)
	wait "$pid"
	RC=$?
	[[ $RC -eq 0 ]] || { WHY="the stopped copy failed: $(bcp_what)"; return 1; }
	cmp -s <(read_region "$P2P_CMB" 0 24m) <(read_region "$P2P_PEER" 0 24m) ||
		{ WHY="the stopped copy's destination differs from its source"; return 1; }
	info "$T_NAME: stopped P2P copy: CMB holds $scan stamped $magic; p2pmem available $avail0 -> $avail1 bytes; $maps mapping(s) of p2pmem/allocate; VmRSS ${rss1} -> ${rss2} kB, RssAnon ${anon1} -> ${anon2} kB"
	[[ ${scan%% *} -gt 0 ]] || { WHY="no block of the source found in the CMB ($scan)"; return 1; }
	[[ $maps -ge 1 ]] || { WHY="blkcopy has no mapping of p2pmem/allocate"; return 1; }
	((avail1 < avail0)) || { WHY="p2pmem available did not drop during the copy ($avail0 -> $avail1)"; return 1; }
	((rss2 - rss1 < 1024 && anon2 - anon1 < 1024)) ||
		{ WHY="memory grew as the copy went on: VmRSS $rss1 -> $rss2 kB, RssAnon $anon1 -> $anon2 kB"; return 1; }
	[[ $(cat "$P2P_AVAILABLE") == "$avail0" ]] || { WHY="p2pmem available did not come back ($(cat "$P2P_AVAILABLE"), was $avail0)"; return 1; }

	# The control: host memory.
	p2p_stamp write "$P2P_CMB" 0 $((24 * MiB)) "$hmagic" || { WHY="stamping $P2P_CMB failed"; return 1; }
	"$BLKCOPY" copy --no-progress --rate 6m -r 0:24m "$P2P_CMB" "$P2P_PEER" >"$T_OUT" 2>"$T_ERR" &
	pid=$!
	sleep 2
	kill -STOP "$pid"
	scan=$(p2p_stamp scan "$CMB_BAR" "$hmagic")
	local hanon
	hanon=$(vm_kb "$pid" RssAnon)
	kill -CONT "$pid"
	wait "$pid"
	info "$T_NAME: stopped host-memory copy: CMB holds $scan stamped $hmagic; RssAnon ${hanon} kB"
	[[ ${scan%% *} -eq 0 ]] || { WHY="a host-memory copy left $scan in the CMB"; return 1; }
	((hanon > anon2 + 4096)) || { WHY="host-memory buffers (RssAnon $hanon kB) are not larger than P2P's ($anon2 kB)"; return 1; }
}

# journal_committed FILE: its committed prefix, into JC (0 while none is recorded).
journal_committed() {
	JC=$("$BLKCOPY" journal --json "$1" 2>/dev/null | jq -r '.committed // 0' 2>/dev/null)
	[[ $JC =~ ^[0-9]+$ ]] || JC=0
	((JC > 0))
}

# SIGKILL half way through a journalled P2P copy: the committed prefix the
# journal names is on the destination, and a resume with --p2p finishes it.
case_kill_resume() {
	need P2P_CMB P2P_PEER P2P_CMB_PCI || return 77
	local j=$T_DIR/journal pid committed
	fill_random "$P2P_PEER" 0 24m && fill_random "$P2P_CMB" 32m 24m || { WHY="filling failed"; return 1; }
	"$BLKCOPY" copy --no-progress --p2p --rate 8m --journal "$j" -r 0:24m --dst-offset 32m \
		"$P2P_PEER" "$P2P_CMB" >"$T_OUT" 2>"$T_ERR" &
	pid=$!
	wait_for 30 journal_committed "$j" || { kill "$pid"; WHY="the journal never recorded progress"; return 1; }
	sleep 0.5
	kill -KILL "$pid"
	wait "$pid" 2>/dev/null
	bcp journal --json "$j"
	committed=$(jq -r '.committed' "$T_OUT")
	[[ $committed =~ ^[0-9]+$ ]] && ((committed > 0 && committed < 24 * MiB)) ||
		{ WHY="journal after the kill: committed '$committed' ($(head -c 300 "$T_OUT"))"; return 1; }
	cmp -s <(read_region "$P2P_PEER" 0 "$committed") <(read_region "$P2P_CMB" 32m "$committed") ||
		{ WHY="the committed prefix ($committed bytes) differs from the source"; return 1; }
	info "$T_NAME: killed at committed $committed of $((24 * MiB))"
	bcp copy --no-progress --json --p2p --journal "$j" --resume -r 0:24m --dst-offset 32m "$P2P_PEER" "$P2P_CMB"
	[[ $RC -eq 0 ]] || { WHY="resume: $(bcp_what)"; return 1; }
	json_check "$T_OUT" ".p2p_bytes > 0 and .p2p_memory == \"$P2P_CMB_PCI\"" "the resume was not staged in P2P memory" || return 1
	cmp -s <(read_region "$P2P_PEER" 0 24m) <(read_region "$P2P_CMB" 32m 24m) ||
		{ WHY="after the resume the destination differs"; return 1; }
}

# Two destinations from one read, both staged in the CMB: the peer, and the
# CMB's own namespace at another offset (--no-offload: NVMe Copy would take
# that one); p2p_bytes counts what reached both.
case_two_destinations() {
	need P2P_CMB P2P_PEER P2P_CMB_PCI || return 77
	fill_random "$P2P_CMB" 0 8m && fill_random "$P2P_PEER" 0 8m && fill_random "$P2P_CMB" 96m 8m ||
		{ WHY="filling failed"; return 1; }
	bcp copy --json --no-progress --p2p --no-offload -r 0:8m -d 0 -d 96m "$P2P_CMB" "$P2P_PEER" "$P2P_CMB"
	[[ $RC -eq 0 ]] || { WHY="copy to two destinations: $(bcp_what)"; return 1; }
	json_check "$T_OUT" ".p2p_bytes == $((16 * MiB)) and .p2p_memory == \"$P2P_CMB_PCI\" and
		([.destinations[] | .bytes] == [$((8 * MiB)), $((8 * MiB))])" \
		"both destinations staged in the CMB" || return 1
	cmp -s <(read_region "$P2P_CMB" 0 8m) <(read_region "$P2P_PEER" 0 8m) &&
		cmp -s <(read_region "$P2P_CMB" 0 8m) <(read_region "$P2P_CMB" 96m 8m) ||
		{ WHY="a destination differs from the source"; return 1; }
}

# --verify compares in host memory after a P2P copy.
case_verify() {
	need P2P_CMB P2P_PEER P2P_CMB_PCI || return 77
	p2p_copy --p2p,--verify "$P2P_CMB" "$P2P_PEER" 60m 30m:4m || return 1
	json_check "$T_OUT" ".verified == true and .verified_bytes == $((4 * MiB))" "not verified"
}

run_case limits case_limits
run_case cmb-to-peer case_cmb_to_peer
run_case peer-to-cmb case_peer_to_cmb
run_case ranges case_ranges
run_case same-controller case_same_controller
run_case refusals case_refusals
run_case staged-in-cmb case_staged_in_cmb
run_case kill-resume case_kill_resume
run_case two-destinations case_two_destinations
run_case verify case_verify
finish
