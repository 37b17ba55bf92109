# SPDX-License-Identifier: MIT
# The power-cut phase of the lab (sourced by lab/run.sh): a journalled copy
# to two destinations (NVMe Copy within a namespace, emulation to a virtio
# disk) is cut by killing its machine (SIGKILL to QEMU: nothing in the guest
# runs after it), and a second boot on the same disk images resumes it from
# the journal and checks every byte (lab/guest/powercut.sh).  The journal
# lives on an ext4 file system the host makes; the guest replays ext4's own
# journal when it mounts it again.  What the guest wrote and flushed before
# the cut is in the images: QEMU completes a write once the host file has it.
#
# Its checks are the PASS/FAIL lines of the two boots, and one of the host:
# powercut-cut (the machine was killed while its copy ran).  --only picks the
# phase by the name "powercut".

POWERCUT_MODULES=(nvme virtio_pci virtio_blk ext4)
POWERCUT_READY_MARKER="READY powercut"

powercut_wanted() {
	[[ -z $LAB_ONLY_RE || powercut =~ $LAB_ONLY_RE ]]
}

powercut_initrd() {
	local main_cpio=$MODULES_CPIO rc
	modules_cpio "${POWERCUT_MODULES[@]}" || return 1
	cat "$MODULES_CPIO" "$LAB_RUN/project.cpio.gz" >"$LAB_RUN/pc-initrd.img"
	rc=$?
	MODULES_CPIO=$main_cpio
	return "$rc"
}

powercut_disks() {
	rm -f "$LAB_RUN"/pc-{nvme,dst,journal}.img
	truncate -s 256M "$LAB_RUN/pc-nvme.img" &&
		truncate -s 64M "$LAB_RUN/pc-dst.img" &&
		truncate -s 32M "$LAB_RUN/pc-journal.img" &&
		mkfs.ext4 -q -F -O ^metadata_csum "$LAB_RUN/pc-journal.img"
}

# powercut_qemu PHASE: the command line of one boot (the same disks each time).
powercut_qemu() {
	local phase=$1
	QEMU_PC=("$QEMU_BIN" "${QEMU_FW[@]}" -machine q35 -accel tcg -cpu max -smp 2 -m 768
		-nodefaults -nographic -no-reboot -monitor none
		-serial "file:$LAB_RUN/pc-$phase-console.log" -serial "file:$LAB_RUN/pc-$phase-results.log"
		-kernel "$KROOT/boot/vmlinuz-$KVER" -initrd "$LAB_RUN/pc-initrd.img"
		-append "console=ttyS0 panic=-1 quiet lab.role=powercut lab.powercut=$phase${QEMU_APPEND:+ $QEMU_APPEND}"
		-device nvme,id=pc,serial=lab-powercut
		-drive "file=$LAB_RUN/pc-nvme.img,if=none,id=pcns1,format=raw,cache=unsafe"
		-device nvme-ns,drive=pcns1,bus=pc,nsid=1
		-drive "file=$LAB_RUN/pc-dst.img,if=none,id=pcdst,format=raw,cache=unsafe"
		-device virtio-blk-pci,drive=pcdst,serial=lab-pc-dst
		-drive "file=$LAB_RUN/pc-journal.img,if=none,id=pcj,format=raw,cache=unsafe"
		-device virtio-blk-pci,drive=pcj,serial=lab-pc-journal)
}

# powercut_boot PHASE: one boot, its result lines echoed as they come.  In
# the copy phase the host kills the machine a random 1-4 s after the guest
# says its copy runs: 0 once it did, 1 if the guest never got there.  In the
# resume phase: 0 when the guest reached its end marker.
powercut_boot() {
	local phase=$1 qpid fd results=$LAB_RUN/pc-$1-results.log cut="" rc=1 ms start=$SECONDS
	powercut_qemu "$phase"
	printf '%q ' "${QEMU_PC[@]}" >"$LAB_RUN/pc-$phase-qemu-command.txt"
	: >"$results"
	: >"$LAB_RUN/pc-$phase-console.log"
	R_PARTIAL=""
	say "power cut: booting the $phase guest (console: $LAB_RUN/pc-$phase-console.log)"
	# QEMU itself, not under timeout(1): the cut must kill the machine, and
	# the time limit is kept here.
	"${QEMU_PC[@]}" </dev/null >"$LAB_RUN/pc-$phase-qemu.log" 2>&1 &
	qpid=$!
	exec {fd}<"$results"
	while kill -0 "$qpid" 2>/dev/null; do
		read_results "$fd"
		if [[ $phase == copy && -z $cut ]] && grep -aq "^$POWERCUT_READY_MARKER" "$results"; then
			ms=$((1000 + RANDOM % 3000))
			sleep "$(awk -v m="$ms" 'BEGIN { printf "%.3f", m / 1000 }')"
			kill -KILL "$qpid" 2>/dev/null
			cut=$ms
		fi
		((SECONDS - start > LAB_TIMEOUT)) && kill -KILL "$qpid" 2>/dev/null
		sleep 0.2
	done
	{ wait "$qpid"; } 2>/dev/null
	read_results "$fd"
	[[ -n $R_PARTIAL ]] && result_line "$R_PARTIAL"
	exec {fd}<&-
	if [[ $phase == copy ]]; then
		if [[ -n $cut ]]; then
			result_line "PASS powercut-cut"
			result_line "INFO powercut: the host killed the guest (SIGKILL to QEMU) $cut ms after its copy was under way"
			rc=0
		else
			result_line "FAIL powercut-cut: the guest never said its copy ran (console: $LAB_RUN/pc-copy-console.log)"
		fi
	elif grep -aq "^$LAB_END_MARKER" "$results"; then
		rc=0
	else
		result_line "FAIL powercut-resume: the guest did not reach its end (console: $LAB_RUN/pc-resume-console.log)"
	fi
	return "$rc"
}

powercut_phase() {
	local t=$SECONDS failed_before=$R_FAILED
	powercut_initrd || { result_line "FAIL powercut: could not build its initramfs"; return 1; }
	powercut_disks || { result_line "FAIL powercut: could not create its disk images in $LAB_RUN"; return 1; }
	powercut_boot copy && powercut_boot resume
	say "power-cut phase: $((SECONDS - t)) s"
	[[ $R_FAILED -eq $failed_before ]]
}
