# SPDX-License-Identifier: MIT
# Booting the guest and reading its results (sourced by lab/run.sh).
#
# The guest has two serial ports: ttyS0 is the kernel console (console.log),
# ttyS1 carries only the result stream (results.log), so kernel messages can
# never land in the middle of a result line.  Result lines:
#   PASS name | FAIL name: why | SKIP name: why | INFO text | END blkcopy-lab
# END is the guest's last line: without it the run did not finish.

LAB_END_MARKER="END blkcopy-lab"

# NVMe namespaces of controller 1: nsid, image name, size, nvme-ns properties.
# The guest finds them again by controller serial and nsid (lab/guest/setup.sh).
NVME_NAMESPACES=(
	"1 small   128M mssrl=16,mcl=64,msrc=3"
	"2 default 128M "
	"3 4k      128M logical_block_size=4096,physical_block_size=4096"
	"4 part    128M "
	"5 dm      128M "
	"6 dm2     128M "
)
NVME_SERIAL=lab-nvme-1
NOCOPY_SERIAL=lab-nocopy

# Controller 2 (serial lab-zns): host-managed zoned namespaces (ZNS) and one
# conventional namespace, to compare zoned and conventional targets on the
# same controller.  QEMU keeps the zone states in memory, not in the image,
# so every zone starts empty.  Zone sizes are powers of two (Linux takes no
# other); no open/active limits (0) except on "bench", where the limits are
# part of what a GC benchmark must live with (its copy limits, 4 MiB and 128
# ranges per command, let a command carry a GC batch).  zoned.cross_read stays false
# (QEMU's default): a read across a zone boundary fails, as on drives that
# do not offer it, so nothing may count on it.
ZNS_NAMESPACES=(
	"1 base  64M  zoned=true,zoned.zone_size=4M,zoned.zone_capacity=4M"
	"2 cap   64M  zoned=true,zoned.zone_size=4M,zoned.zone_capacity=3M"
	"3 dm    64M  zoned=true,zoned.zone_size=4M,zoned.zone_capacity=4M"
	"4 bench 512M zoned=true,zoned.zone_size=32M,zoned.zone_capacity=32M,zoned.max_open=4,zoned.max_active=6,mssrl=8192,mcl=8192,msrc=127"
	"5 conv  128M "
)
ZNS_SERIAL=lab-zns

# Controller 3 (serial lab-tcp): what the guest exports over NVMe/TCP
# (lab/guest/nvme-tcp.sh) and reaches again through the kernel's initiator.
TCP_NAMESPACES=(
	"1 tcp1 64M "
	"2 tcp2 64M "
)
TCP_SERIAL=lab-tcp

# make_disks: sparse images, new each run.
make_disks() {
	local ns nsid name size props
	for ns in "${NVME_NAMESPACES[@]}"; do
		read -r nsid name size props <<<"$ns"
		truncate -s "$size" "$LAB_RUN/nvme-$name.img" || return 1
	done
	for ns in "${ZNS_NAMESPACES[@]}"; do
		read -r nsid name size props <<<"$ns"
		truncate -s "$size" "$LAB_RUN/zns-$name.img" || return 1
	done
	for ns in "${TCP_NAMESPACES[@]}"; do
		read -r nsid name size props <<<"$ns"
		truncate -s "$size" "$LAB_RUN/tcp-$name.img" || return 1
	done
	truncate -s 64M "$LAB_RUN/nocopy.img"
}

# qemu_nvme ID SERIAL IMAGE-PREFIX NAMESPACE...: one controller and its
# namespaces ("nsid name size props" as above) onto QEMU.
qemu_nvme() {
	local id=$1 serial=$2 prefix=$3 ns nsid name size props
	shift 3
	QEMU+=(-device "nvme,id=$id,serial=$serial")
	for ns in "$@"; do
		read -r nsid name size props <<<"$ns"
		# cache=unsafe: host durability means nothing to a throw-away image,
		# and the guest's many flushes would otherwise each cost an fsync.
		QEMU+=(-drive "file=$LAB_RUN/$prefix-$name.img,if=none,id=$id-ns$nsid,format=raw,cache=unsafe"
			-device "nvme-ns,drive=$id-ns$nsid,bus=$id,nsid=$nsid${props:+,$props}")
	done
}

qemu_command() {
	QEMU=("$QEMU_BIN" "${QEMU_FW[@]}" -machine q35 -accel tcg -cpu max -smp 2 -m 1536
		-nodefaults -nographic -no-reboot -monitor none
		-serial "file:$LAB_RUN/console.log" -serial "file:$LAB_RUN/results.log"
		-kernel "$KROOT/boot/vmlinuz-$KVER" -initrd "$LAB_RUN/initrd.img"
		-append "console=ttyS0 panic=-1 quiet${QEMU_APPEND:+ $QEMU_APPEND}")
	qemu_nvme nvme1 "$NVME_SERIAL" nvme "${NVME_NAMESPACES[@]}"
	qemu_nvme nvme2 "$ZNS_SERIAL" zns "${ZNS_NAMESPACES[@]}"
	qemu_nvme nvme3 "$TCP_SERIAL" tcp "${TCP_NAMESPACES[@]}"
	QEMU+=(-drive "file=$LAB_RUN/nocopy.img,if=none,id=nocopy,format=raw,cache=unsafe"
		-device "virtio-blk-pci,drive=nocopy,serial=$NOCOPY_SERIAL")
}

# Result counting, shared by the live reader and the end of the run.
R_PASSED=0 R_FAILED=0 R_SKIPPED=0 R_END=0

result_line() {
	local line=${1%$'\r'}
	case $line in
	"PASS "*) R_PASSED=$((R_PASSED + 1)) ;;
	"FAIL "*) R_FAILED=$((R_FAILED + 1)) ;;
	"SKIP "*) R_SKIPPED=$((R_SKIPPED + 1)) ;;
	"$LAB_END_MARKER"*) R_END=1 ;;
	"") return ;;
	esac
	printf '%s\n' "$line"
}

# read_results FD: hand every complete line written so far to result_line;
# a partial last line waits in R_PARTIAL for the next call.
R_PARTIAL=""
read_results() {
	local fd=$1 chunk
	while true; do
		if IFS= read -r -u "$fd" chunk; then
			result_line "$R_PARTIAL$chunk"
			R_PARTIAL=""
		else
			R_PARTIAL+=$chunk
			return
		fi
	done
}

# console_tail FILE N: its last N lines, without the firmware's terminal
# escapes, each indented (awk ends an unterminated last line too).
console_tail() {
	tail -n "$2" "$1" 2>/dev/null | tr -d '\r' |
		sed -e 's/\x1b\[[0-9;?]*[A-Za-z]//g' -e 's/\x1b[c78]//g' |
		awk '{ print "  | " $0 }'
}

# guest_failed WHY [PREFIX]: the guest did not finish; counted as one
# failure, with the end of the console for the log.
guest_failed() {
	local pre=${2:-}
	echo "FAIL lab: ${pre:+${pre%-} }guest $1; last console lines ($LAB_RUN/${pre}console.log):"
	console_tail "$LAB_RUN/${pre}console.log" 30
	if [[ -s $LAB_RUN/${pre}qemu.log ]]; then
		echo "  qemu said:"
		console_tail "$LAB_RUN/${pre}qemu.log" 10
	fi
	R_FAILED=$((R_FAILED + 1))
}

# panicked_before_init CONSOLE RESULTS: the kernel panicked before /init
# wrote its first result line.  Debian's 6.12 does so now and then under TCG
# (an "Oops: int3" while it patches its own code: once in some 70 boots);
# nothing of blkcopy has run by then, so booting again loses no result.
panicked_before_init() {
	[[ ! -s $2 ]] && grep -aq 'Kernel panic' "$1"
}

# boot_and_collect [BUILDER [PREFIX]]: boot under a hard time limit, echo
# the results as they come, return 0 only for a finished run with passes and
# no failures (print_summary then prints the counts).  BUILDER fills QEMU
# (default qemu_command, the device guest); PREFIX names its files in
# $LAB_RUN (PREFIXconsole.log, PREFIXresults.log).  A kernel that panics
# before /init gets one more boot.
boot_and_collect() {
	local build=${1:-qemu_command} pre=${2:-} rc try
	local console=$LAB_RUN/${pre}console.log results=$LAB_RUN/${pre}results.log
	for try in 1 2; do
		boot_once "$build" "$pre"
		rc=$?
		[[ $R_END != 1 && $try == 1 ]] && panicked_before_init "$console" "$results" ||
			break
		cp "$console" "$LAB_RUN/${pre}console-boot1.log"
		result_line "INFO lab: the guest kernel panicked before /init ($(grep -a -m1 -o 'Oops:.*\|Kernel panic.*' "$console" | tr -d '\r')); booting it once more (first console: $LAB_RUN/${pre}console-boot1.log)"
	done

	if [[ $R_END != 1 ]]; then
		if [[ $rc -eq 124 || $rc -eq 137 ]]; then
			guest_failed "timed out after $LAB_TIMEOUT s before the end of its run (raise --timeout or LAB_TIMEOUT)" "$pre"
		elif grep -aq 'Kernel panic' "$console"; then
			guest_failed "kernel panicked ($(grep -a -m1 -o 'Kernel panic.*' "$console" | tr -d '\r'))" "$pre"
		elif [[ $rc -ne 0 ]]; then
			guest_failed "did not run: qemu exited with status $rc" "$pre"
		else
			guest_failed "stopped without its end-of-run marker '$LAB_END_MARKER'" "$pre"
		fi
	fi
	[[ $R_FAILED -eq 0 && $R_PASSED -gt 0 && $R_END -eq 1 ]]
}

# boot_once BUILDER PREFIX: one boot; QEMU's exit status.
boot_once() {
	local build=$1 pre=$2 qpid rc fd
	R_END=0
	"$build"
	printf '%q ' "${QEMU[@]}" >"$LAB_RUN/${pre}qemu-command.txt"
	: >"$LAB_RUN/${pre}results.log"
	: >"$LAB_RUN/${pre}console.log"
	R_PARTIAL=""
	say "booting the ${pre:+${pre%-} }guest (TCG, time limit ${LAB_TIMEOUT} s; console: $LAB_RUN/${pre}console.log)"
	timeout -k 10 "$LAB_TIMEOUT" "${QEMU[@]}" </dev/null >"$LAB_RUN/${pre}qemu.log" 2>&1 &
	qpid=$!
	trap 'kill -TERM "$qpid" 2>/dev/null; wait "$qpid" 2>/dev/null
		echo "FAIL lab: interrupted"; R_FAILED=$((R_FAILED + 1)); print_summary; exit 130' INT TERM HUP
	exec {fd}<"$LAB_RUN/${pre}results.log"
	while kill -0 "$qpid" 2>/dev/null; do
		read_results "$fd"
		sleep 1
	done
	wait "$qpid"
	rc=$?
	trap - INT TERM HUP
	read_results "$fd"
	[[ -n $R_PARTIAL ]] && result_line "$R_PARTIAL"
	exec {fd}<&-
	return "$rc"
}

# print_summary: the last lines of a run, as tests/run.sh ends.
print_summary() {
	echo
	[[ $R_SKIPPED -gt 0 ]] && echo "$R_SKIPPED skipped"
	echo "$R_PASSED passed, $R_FAILED failed"
}
