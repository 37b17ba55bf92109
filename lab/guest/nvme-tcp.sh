# SPDX-License-Identifier: MIT
# NVMe over TCP in the lab guest (sourced by lab/guest/setup.sh).  The QEMU
# controller with serial lab-tcp is exported by the kernel's NVMe target as
# a passthru subsystem (NVME_TARGET_PASSTHRU: Debian's 6.12 has it, 6.1 does
# not) on a TCP port at 127.0.0.1:4420, and connected from this same guest
# through /dev/nvme-fabrics: its namespaces appear again over TCP, and every
# command on them, Copy included, crosses the loopback to the target, which
# hands it to the QEMU controller.  lo's statistics count the wire bytes.
#
#   NVME_TCP_PCIE       the exported controller's char node (its namespaces: never used directly)
#   NVME_TCP1 NVME_TCP2 namespaces 1 and 2 over TCP (NAME_NG: their char nodes)
#   NVME_TCP_CTRL       the TCP controller (/dev/nvmeN); NVME_TCP_NQN, NVME_TCP_PORT

TCP_SERIAL=lab-tcp
TCP_NQN=nqn.2026-12.org.blkcopy.lab:tcp
TCP_PORT=4420
# ctrl_loss_tmo: a cut connection fails its I/O after this many seconds,
# instead of the default ten minutes of reconnecting.
TCP_CONNECT_OPTS="ctrl_loss_tmo=3,reconnect_delay=1"

# tcp_ns NSID: the block node of namespace NSID reached over TCP.
tcp_ns() {
	nvme_ns_disk "$1" "$TCP_SERIAL" tcp
}

setup_nvme_tcp() {
	local pcie sub=$CFS/nvmet/subsystems/$TCP_NQN port=$CFS/nvmet/ports/1 ctrl n
	pcie=$(nvme_ns_disk 1 "$TCP_SERIAL" pcie) ||
		{ setup_skip nvme-tcp "no controller with serial $TCP_SERIAL"; return 0; }
	pcie=$(nvme_ctrl_of "$pcie")
	[ -d "$CFS/nvmet" ] || { setup_skip nvme-tcp "no nvmet in configfs (module not loaded)"; return 0; }
	mkdir -p "$sub" || { setup_fail nvme-tcp "cannot make subsystem $TCP_NQN"; return 1; }
	if [ ! -d "$sub/passthru" ]; then
		rmdir "$sub"
		setup_skip nvme-tcp "the kernel's NVMe target has no passthru (NVME_TARGET_PASSTHRU off in $(uname -r))"
		return 0
	fi
	echo 1 >"$sub/attr_allow_any_host" &&
		echo "$pcie" >"$sub/passthru/device_path" &&
		echo 1 >"$sub/passthru/enable" ||
		{ setup_fail nvme-tcp "cannot enable passthru of $pcie"; return 1; }
	ip link set lo up 2>/dev/null || ifconfig lo 127.0.0.1 up
	mkdir -p "$port" &&
		echo tcp >"$port/addr_trtype" && echo ipv4 >"$port/addr_adrfam" &&
		echo 127.0.0.1 >"$port/addr_traddr" && echo "$TCP_PORT" >"$port/addr_trsvcid" &&
		ln -s "$sub" "$port/subsystems/$TCP_NQN" ||
		{ setup_fail nvme-tcp "cannot open TCP port $TCP_PORT"; return 1; }
	echo "transport=tcp,traddr=127.0.0.1,trsvcid=$TCP_PORT,nqn=$TCP_NQN,$TCP_CONNECT_OPTS" \
		>/dev/nvme-fabrics 2>/tmp/tcp-connect.err ||
		{ setup_fail nvme-tcp "connect over TCP failed: $(cat /tmp/tcp-connect.err)"; return 1; }
	wait_until 30 eval 'tcp_ns 1 >/dev/null && tcp_ns 2 >/dev/null' ||
		{ setup_fail nvme-tcp "namespaces over TCP did not appear: $(ls /sys/block | tr '\n' ' ')"; return 1; }
	env_set NVME_TCP_PCIE "$pcie"
	env_set NVME_TCP_NQN "$TCP_NQN"
	env_set NVME_TCP_PORT "$TCP_PORT"
	for n in 1 2; do
		env_device "NVME_TCP$n" "$(tcp_ns "$n")" nvme
		nvme_export_ns "$n" "NVME_TCP$n" "$(tcp_ns "$n")" nvme-tcp || return 1
	done
	ctrl=$(tcp_ns 1)
	env_set NVME_TCP_CTRL "$(nvme_ctrl_of "$ctrl")"
	setup_pass nvme-tcp
}
