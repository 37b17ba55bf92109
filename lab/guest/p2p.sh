# SPDX-License-Identifier: MIT
# The P2P guest (lab/host/p2p.sh; sourced by /init with lab.role=p2p): the
# lab's own kernel, everything built in.  Names the devices in /run/lab/env,
# then runs tests/lab/p2p/*.sh (LAB_ONLY picks among them, unless it names
# the phase itself: "p2p").
#   P2P_CMB   namespace 1 of controller lab-p2p-cmb, below the switch, with
#             the CMB (P2P_CMB_PCI: its PCI address, P2P_CMB_SIZE: bytes)
#   P2P_PEER  namespace 1 of lab-p2p-peer, below the same switch, no CMB
#   P2P_FAR   namespace 1 of lab-p2p-far, on the root complex
#   P2P_RAM   /dev/ram0 (brd): no PCI device at all

p2p_setup() {
	local name serial dev pci
	mkdir -p "${LAB_ENV_FILE%/*}" && : >"$LAB_ENV_FILE"
	for name in CMB PEER FAR; do
		serial=lab-p2p-${name,,}
		if dev=$(nvme_ns_disk 1 "$serial"); then
			env_device "P2P_$name" "$dev" nvme
		else
			result "FAIL lab-setup-p2p-${name,,}: no namespace of controller $serial"
		fi
	done
	if [ -n "${P2P_CMB:-}" ]; then
		pci=$(basename "$(readlink -f "/sys/block/${P2P_CMB#/dev/}/device/device")")
		env_set P2P_CMB_PCI "$pci"
		if [ "$(trim "/sys/bus/pci/devices/$pci/p2pmem/published" 2>/dev/null)" = 1 ]; then
			env_set P2P_CMB_SIZE "$(trim "/sys/bus/pci/devices/$pci/p2pmem/size")"
			result "PASS lab-setup-p2p-memory"
			result "INFO p2p: $pci publishes $(trim "/sys/bus/pci/devices/$pci/p2pmem/size") bytes of P2P memory ($(trim "/sys/bus/pci/devices/$pci/p2pmem/available") available)"
		else
			result "FAIL lab-setup-p2p-memory: $pci (lab-p2p-cmb) publishes no P2P memory: $(dmesg | grep -i p2p | tail -n 2 | tr '\n' ' ')"
		fi
	fi
	[ -b /dev/ram0 ] && env_device P2P_RAM /dev/ram0 brd
	env_set LAB_DEVICES "$LAB_DEVICES"
}

p2p_main() {
	local s name ran=0
	result "INFO guest kernel $(uname -r) (the lab's, with PCI_P2PDMA), $(nproc) CPUs, uptime $(cut -d' ' -f1 /proc/uptime) s"
	p2p_setup
	for s in /lab/tests/p2p/[0-9]*.sh /lab/tests/p2p/bench-*.sh; do
		[ -f "$s" ] || continue
		name=$(basename "$s")
		if [ -n "$LAB_ONLY" ] && ! [[ p2p =~ $LAB_ONLY || $name =~ $LAB_ONLY ]]; then
			continue
		fi
		if [[ $name == bench-* ]] && [ "$LAB_BENCH" != 1 ]; then
			result "SKIP ${name%.sh}: benchmarks run only with LAB_BENCH=1"
			continue
		fi
		# The scripts source ../lib.sh from their directory's parent.
		run_script "$s"
		ran=$((ran + 1))
	done
	[ "$ran" -gt 0 ] || result "FAIL p2p: no script in tests/lab/p2p matches '${LAB_ONLY:-*}'"
	result "INFO guest done, uptime $(cut -d' ' -f1 /proc/uptime) s"
	result "$LAB_END_MARKER"
}
