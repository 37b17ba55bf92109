#!/bin/bash
# SPDX-License-Identifier: MIT
# NVMe over TCP (lab/guest/nvme-tcp.sh: the kernel's target exports a QEMU
# controller as a passthru subsystem on 127.0.0.1, the kernel's initiator
# connects to it): Copy on a namespace reached over TCP is done by the
# target, and only commands cross the wire (lo's byte counters, against an
# emulated copy that moves every byte twice); across two namespaces of the
# target, native where format 2h can be enabled and else emulated with the
# reason; a connection cut mid-copy ends with the exact committed prefix and
# the error.  Needs Debian's 6.12 (NVMe target
# passthru); skipped elsewhere.
. "$(dirname "${BASH_SOURCE[0]}")/lib.sh"

# wire_bytes: bytes lo has carried so far (each byte on the wire counts once).
wire_bytes() {
	cat /sys/class/net/lo/statistics/rx_bytes
}

native_only() {
	json_check "$T_OUT" '.native_bytes == .total and .emulated_bytes == 0 and .method == "nvme_copy"' \
		"expected every byte through NVMe Copy over TCP"
}

# tcp_copy LEN ARGS...: copy_verify on NVME_TCP*, WIRE set to the bytes on the wire during it.
tcp_copy() {
	local w0
	w0=$(wire_bytes)
	copy_verify "$@" || return 1
	WIRE=$(($(wire_bytes) - w0))
}

case_limits() {
	need NVME_TCP1 || return 77
	bcp limits --json "$NVME_TCP1"
	info "$T_NAME: $(jq -r '.[0].native_reason' <"$T_OUT")"
	json_check "$T_OUT" '.[0].backend == "nvme" and (.[0].native_reason | test("over tcp"))' \
		"limits of a namespace over TCP: expected the nvme backend, reached over tcp"
}

# 16 MiB natively: the wire carries commands, not data.
case_native_over_tcp() {
	need NVME_TCP1 || return 77
	local len=$((16 * MiB)) native emulated
	tcp_copy "$NVME_TCP1" "$NVME_TCP1" 32m 0:16m && native_only || return 1
	native=$WIRE
	tcp_copy --opt --no-offload "$NVME_TCP1" "$NVME_TCP1" 32m 0:16m || return 1
	emulated=$WIRE
	info "$T_NAME: 16 MiB over NVMe/TCP: $native bytes on the wire natively (the copy itself, the checks' reads not counted apart), $emulated emulated"
	# The checks read the source and the destination over TCP too (2 x 16 MiB);
	# an emulated copy adds its own read and write (2 x 16 MiB more).
	((emulated - native > 3 * len / 2)) ||
		{ WHY="native $native, emulated $emulated bytes on the wire: native did not spare the data"; return 1; }
}

# Only the copy on the wire: no check in the way.
case_native_wire_bytes() {
	need NVME_TCP1 || return 77
	local w0 n e
	w0=$(wire_bytes)
	bcp copy --json --no-progress --range 0:16m --dst-offset 40m "$NVME_TCP1" "$NVME_TCP1"
	n=$(($(wire_bytes) - w0))
	[[ $RC -eq 0 ]] && native_only || return 1
	w0=$(wire_bytes)
	bcp copy --json --no-progress --no-offload --range 0:16m --dst-offset 40m "$NVME_TCP1" "$NVME_TCP1"
	e=$(($(wire_bytes) - w0))
	[[ $RC -eq 0 ]] || { WHY="emulated copy: $(bcp_what)"; return 1; }
	info "$T_NAME: 16 MiB copy over NVMe/TCP: $n bytes on the wire native, $e emulated ($(awk -v n="$n" -v e="$e" 'BEGIN { printf "%.0f", e / n }')x)"
	((n < MiB && e > 32 * MiB)) || { WHY="native $n, emulated $e bytes on the wire"; return 1; }
}

# Across two namespaces of the target.  A passthru target lets a host set
# Host Behavior Support only to what its controller has, and the target's
# Linux (6.12) refuses to set it from user space, so format 2h cannot be
# enabled: the copy is emulated, and --no-emulation says why.
case_cross_namespace() {
	need NVME_TCP1 NVME_TCP2 || return 77
	format2h_offered "$NVME_TCP1" || return $?
	tcp_copy "$NVME_TCP1" "$NVME_TCP2" 8m 0:1m || return 1
	if jq -e '.method == "nvme_copy"' <"$T_OUT" >/dev/null; then
		info "$T_NAME: across namespaces over TCP, native: $WIRE bytes on the wire (with the checks' reads)"
		return 0
	fi
	bcp copy --json --no-progress --no-emulation --range 0:1m --dst-offset 8m "$NVME_TCP1" "$NVME_TCP2"
	info "$T_NAME: across namespaces over TCP: emulated, $WIRE bytes on the wire; $(jq -r .device_error <"$T_OUT")"
	json_check "$T_OUT" '.bytes == 0 and (.device_error | test("format 2h is not enabled"))' \
		"emulated across namespaces over TCP without the reason"
}

# The target's port goes away mid-copy: the host gives up after ctrl_loss_tmo,
# and the destination holds exactly the committed prefix.  Last: the TCP
# controller is gone afterwards.
case_connection_cut() {
	need NVME_TCP1 NVME_TCP_NQN NVME_TCP_PORT || return 77
	local port=/sys/kernel/config/nvmet/ports/1 pid committed
	fill_random "$NVME_TCP1" 0 16m || { WHY="fill failed"; return 1; }
	read_region "$NVME_TCP1" 0 16m >"$T_DIR/src"
	blkcopy copy --json --no-progress --no-offload --rate 4m --range 0:16m --dst-offset 32m \
		"$NVME_TCP1" "$NVME_TCP1" >"$T_OUT" 2>"$T_ERR" &
	pid=$!
	sleep 1.5
	rm "$port/subsystems/$NVME_TCP_NQN" || { WHY="cannot remove the port's subsystem"; return 1; }
	wait "$pid"
	RC=$?
	info "$T_NAME: $(jq -c '{error, committed, bytes}' <"$T_OUT" 2>/dev/null) $(tr '\n' ' ' <"$T_ERR" | head -c 200)"
	[[ $RC -ne 0 ]] || { WHY="the copy survived the cut"; return 1; }
	committed=$(jq '.committed' <"$T_OUT")
	((committed > 0 && committed < 16 * MiB)) || { WHY="committed $committed after the cut"; return 1; }
	# The namespace over TCP is gone with its controller: read the prefix
	# through the target's PCIe side, namespace 1 by its NSID (Linux scans
	# namespaces in parallel: nvmeXn1 need not be NSID 1).
	local pcie="" b
	for b in /sys/class/nvme/"${NVME_TCP_PCIE#/dev/}"/nvme*n*; do
		[[ ${b##*/} =~ ^nvme[0-9]+n[0-9]+$ && $(cat "$b/nsid" 2>/dev/null) == 1 ]] && pcie=/dev/${b##*/}
	done
	[[ -b $pcie ]] || { WHY="no namespace with NSID 1 on ${NVME_TCP_PCIE}"; return 1; }
	read_region "$pcie" 32m 16m >"$T_DIR/dst"
	if ! cmp -s -n "$committed" "$T_DIR/src" "$T_DIR/dst"; then
		WHY="the committed prefix ($committed bytes) is not the source's: $(cmp -n "$committed" "$T_DIR/src" "$T_DIR/dst" 2>&1 | head -c 120); read through $pcie; blkcopy: $(tr '\n' ' ' <"$T_ERR" | head -c 300)"
		return 1
	fi
	info "$T_NAME: the destination holds the committed $committed bytes (read through $pcie)"
}

run_case nvme-tcp-limits case_limits
run_case nvme-tcp-native case_native_over_tcp
run_case nvme-tcp-native-wire-bytes case_native_wire_bytes
run_case nvme-tcp-cross-namespace case_cross_namespace
run_case nvme-tcp-connection-cut case_connection_cut
finish
