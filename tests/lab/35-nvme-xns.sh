#!/bin/bash
# SPDX-License-Identifier: MIT
# NVMe Copy across namespaces of one controller (TP4130, descriptor format
# 2h: a source namespace per range), on a controller that offers it (QEMU
# 10: LAB_QEMU=backports; under QEMU 7.2 every case is skipped, and
# 30-nvme.sh shows the emulation it falls back to).  blkcopy enables the
# format (Host Behavior Support, CDFE) itself, again after a controller
# reset clears it; commands stay inside both namespaces' limits; partitions
# and a dm table over two namespaces map onto it; namespaces of another LBA
# size stay emulated (30-nvme.sh).
#
# Linux 6.1 lets CAP_SYS_ADMIN set Host Behavior Support; Linux 6.12 refuses
# it to user space (EACCES, through every node; other features pass).  So
# on 6.1 every copy here must go native, on 6.12 every one must be emulated
# with that reason (and refused under --no-emulation); another kernel may
# do either, said in an INFO line.
. "$(dirname "${BASH_SOURCE[0]}")/lib.sh"

# offered: the controller of NVME_DEFAULT offers format 2h (else WHY, 77).
offered() {
	need NVME_DEFAULT NVME_SMALL || return 77
	format2h_offered "$NVME_DEFAULT"
}

# What this kernel lets blkcopy do: native (6.1), refused (6.12), either.
case $(uname -r) in
6.1.*) EXPECT=native ;;
6.12.*) EXPECT=refused ;;
*) EXPECT=either ;;
esac
REFUSAL="refuses Set Features Host Behavior Support from user space"

# expected: the last copy went as this kernel allows (native, or emulated for the refusal).
expected() {
	if jq -e '.native_bytes == .total and .emulated_bytes == 0 and .method == "nvme_copy"' <"$T_OUT" >/dev/null; then
		[[ $EXPECT != refused ]] && return 0
		WHY="native across namespaces, though $(uname -r) refuses to enable format 2h"
		return 1
	fi
	bcp copy --json --no-progress --no-emulation --range 0:4k --dst-offset 100m "$NVME_DEFAULT" "$NVME_SMALL"
	if [[ $EXPECT != native ]] && json_check "$T_OUT" ".bytes == 0 and (.device_error | test(\"$REFUSAL\"))" \
		"emulated across namespaces without the kernel's refusal as the reason"; then
		[[ $EXPECT == either ]] && info "$T_NAME: $(uname -r) refuses to enable format 2h"
		return 0
	fi
	[[ $EXPECT == native ]] && WHY="expected NVMe Copy across namespaces on $(uname -r): $(jq -c '{method, device_error}' <"$T_OUT")"
	return 1
}

# cdfe CTRL: Host Behavior Support's Copy Descriptor Formats Enable, in hex.
cdfe() {
	nvme get-feature "$1" --feature-id=0x16 --data-len=512 --raw-binary 2>/dev/null |
		od -An -tx2 -j4 -N2 | tr -d ' '
}

case_limits() {
	offered || return $?
	local r
	r=$(jq -r '.[0].native_reason' <"$T_OUT")
	info "$T_NAME: $r"
	[[ $r == *"over pcie"* && $r == *"$NVME_SMALL"* ]] ||
		{ WHY="limits of $NVME_DEFAULT do not name the transport and $NVME_SMALL: $r"; return 1; }
	[[ -z ${NVME_4K:-} || $r != *"$NVME_4K"* ]] ||
		{ WHY="$NVME_4K (4 KiB blocks) named as a native peer of a 512-byte namespace: $r"; return 1; }
}

# Into the namespace with the small limits: MSSRL 16, MCL 64 blocks cut the pieces.
case_native_into_small() {
	offered || return $?
	copy_verify "$NVME_DEFAULT" "$NVME_SMALL" 32m 1m:64k 3m:4k 4m+512:20k && expected
}

case_native_multi_range() {
	offered || return $?
	copy_verify "$NVME_SMALL" "$NVME_DEFAULT" 60m \
		1m:512 1m+4k:20k 2m:8k 2m+64k:512 3m:40k 3m+1m:1k 5m:4k 5m+8k:4k 6m:64k 7m:32k 7m+512k:23k &&
		expected
}

case_large() {
	offered || return $?
	copy_verify "$NVME_DEFAULT" "$NVME_SMALL" 64m 8m:16m && expected
}

# A partition of one namespace to another namespace: LBAs through the partition's start.
case_partition() {
	offered || return $?
	need NVME_PART1 || return 77
	copy_verify "$NVME_PART1" "$NVME_DEFAULT" 70m 0:64k 1m:4k && expected
}

# --no-emulation: native where the kernel allows, else refused with its reason and nothing written.
case_no_emulation() {
	offered || return $?
	local before
	before=$(md5_region "$NVME_SMALL" 90m 256k)
	bcp copy --json --no-progress --no-emulation --range 2m:256k --dst-offset 90m "$NVME_DEFAULT" "$NVME_SMALL"
	if [[ $RC -eq 0 ]]; then
		[[ $EXPECT != refused ]] || { WHY="--no-emulation succeeded where $(uname -r) refuses format 2h"; return 1; }
		return 0
	fi
	[[ $EXPECT != native ]] || { WHY="--no-emulation across namespaces: $(bcp_what)"; return 1; }
	json_check "$T_OUT" ".bytes == 0 and (.device_error | test(\"$REFUSAL\"))" "refused without the reason" || return 1
	[[ $(md5_region "$NVME_SMALL" 90m 256k) == "$before" ]] || { WHY="a refused copy wrote"; return 1; }
}

# A controller reset clears Host Behavior Support; the next request enables format 2h again.
case_after_reset() {
	offered || return $?
	need NVME_CTRL || return 77
	local ctrl=$NVME_CTRL c i
	c=$(cdfe "$ctrl")
	echo 1 >"/sys/class/nvme/${ctrl#/dev/}/reset_controller" || { WHY="cannot reset $ctrl"; return 1; }
	for ((i = 0; i < 50; i++)); do
		[[ $(cat "/sys/class/nvme/${ctrl#/dev/}/state" 2>/dev/null) == live ]] && break
		sleep 0.2
	done
	info "$T_NAME: CDFE before the reset 0x$c, after it 0x$(cdfe "$ctrl")"
	copy_verify "$NVME_DEFAULT" "$NVME_SMALL" 100m 4m:128k && expected || return 1
	c=$(cdfe "$ctrl")
	info "$T_NAME: CDFE after the copy 0x$c"
	[[ $EXPECT != native || $((16#${c:-0} & 4)) -ne 0 ]] ||
		{ WHY="format 2h not enabled after the copy (CDFE 0x$c)"; return 1; }
}

# A dm table over two namespaces: the piece from one to the other goes native too.
case_dm_span() {
	offered || return $?
	need DM_SPAN || return 77
	copy_verify "$DM_SPAN" "$DM_SPAN" 36m 28m:1m 29m+4k:4k && expected
}

run_case nvme-xns-limits case_limits
run_case nvme-xns-native-into-small case_native_into_small
run_case nvme-xns-native-multi-range case_native_multi_range
run_case nvme-xns-large case_large
run_case nvme-xns-partition case_partition
run_case nvme-xns-no-emulation case_no_emulation
run_case nvme-xns-after-reset case_after_reset
run_case nvme-xns-dm-span case_dm_span
finish
