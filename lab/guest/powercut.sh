# SPDX-License-Identifier: MIT
# The powercut role of the lab guest (sourced by /init when the kernel
# command line says lab.role=powercut, after lab/guest/setup.sh, whose
# helpers it uses).  lab/host/powercut.sh boots it twice on the same disks:
#
#   lab.powercut=copy    fills a source region of an NVMe namespace and starts
#                        one journalled, rate-limited copy of it to two
#                        destinations (the same namespace, by NVMe Copy; a
#                        virtio disk, emulated), says so, and waits: the host
#                        kills the machine mid-copy (a power cut);
#   lab.powercut=resume  finds the journal the cut left on its ext4 disk,
#                        resumes the copy from it, and checks both
#                        destinations against the source byte for byte.
#
# Disks (by serial): NVMe namespace 1 of controller lab-powercut (source and
# first destination), virtio lab-pc-dst (second destination), virtio
# lab-pc-journal (an ext4 file system the host made: the journal and the
# source's checksum live there).

POWERCUT_READY_MARKER="READY powercut"
PC_LEN=$((48 * MiB))
PC_DST_OFF=$((128 * MiB))
PC_RATE=8m	# 2 x 48 MiB at 8 MiB/s: 12 s, the cut comes within the first half

pc_pass() { result "PASS powercut-$1"; }
pc_fail() { result "FAIL powercut-$1: $2"; return 1; }

pc_modules() {
	load_modules
	[ ${#MODULES_MISSING[@]} -eq 0 ] || { pc_fail modules "not loaded: ${MODULES_MISSING[*]}"; return 1; }
}

# pc_devices: PC_NVME, PC_VDST, PC_JDEV, and the journal file system on /persist.
pc_devices() {
	wait_until 30 eval 'nvme_ns_disk 1 lab-powercut >/dev/null' ||
		{ pc_fail devices "no NVMe namespace 1 of lab-powercut"; return 1; }
	wait_until 30 eval 'virtio_disk lab-pc-journal >/dev/null && virtio_disk lab-pc-dst >/dev/null' ||
		{ pc_fail devices "no virtio disks lab-pc-dst and lab-pc-journal: $(ls /sys/block | tr '\n' ' ')"; return 1; }
	PC_NVME=$(nvme_ns_disk 1 lab-powercut)
	PC_VDST=$(virtio_disk lab-pc-dst)
	PC_JDEV=$(virtio_disk lab-pc-journal)
	mkdir -p /persist
	mount -t ext4 "$PC_JDEV" /persist || { pc_fail devices "cannot mount $PC_JDEV (ext4)"; return 1; }
	result "INFO powercut: source and destination 1 $PC_NVME, destination 2 $PC_VDST, journal on $PC_JDEV"
}

# pc_copy_args [OPTION...]: the copy both boots name (a resume must name the same request).
pc_copy_args() {
	PC_ARGS=(copy --no-progress "$@" --journal /persist/j --range "0:$PC_LEN"
		"$PC_NVME" "$PC_NVME" "$PC_VDST" -d "$PC_DST_OFF" -d 0)
}

# The first boot: start the copy and wait for the cut.
pc_copy() {
	local i c=0 pid
	dd if=/dev/urandom of="$PC_NVME" bs=1M count=$((PC_LEN / MiB)) oflag=direct conv=fsync status=none ||
		{ pc_fail fill "cannot fill the source"; return 1; }
	dd if="$PC_NVME" bs=1M count=$((PC_LEN / MiB)) iflag=direct status=none | md5sum >/persist/src.md5
	sync -f /persist/src.md5
	rm -f /persist/j
	pc_copy_args --rate "$PC_RATE"
	blkcopy "${PC_ARGS[@]}" >/tmp/copy.out 2>&1 &
	pid=$!
	# Wait until the journal records progress on both destinations, so that
	# the cut falls between its records, not before the first one.
	for ((i = 0; i < 300; i++)); do
		c=$(blkcopy journal --json /persist/j 2>/dev/null |
			jq '[.destinations[].committed] | min' 2>/dev/null)
		[[ ${c:-0} -gt 0 ]] && break
		kill -0 "$pid" 2>/dev/null || break
		sleep 0.1
	done
	if ! kill -0 "$pid" 2>/dev/null; then
		pc_fail copy "the copy ended before the cut: $(tr '\n' ' ' </tmp/copy.out)"
		return 1
	fi
	result "INFO powercut: copying, $c bytes journalled on both destinations; cut now"
	result "$POWERCUT_READY_MARKER"
	wait "$pid"
	pc_fail copy "the copy finished before the host cut the power: $(tr '\n' ' ' </tmp/copy.out)"
}

# pc_region_md5 DEV OFF: the md5 of PC_LEN bytes of DEV from OFF.
pc_region_md5() {
	dd if="$1" bs=1M skip=$(($2 / MiB)) count=$((PC_LEN / MiB)) iflag=direct status=none | md5sum
}

# The second boot: the journal as the cut left it, the resume, the result.
pc_resume() {
	local st src
	st=$(blkcopy journal --json /persist/j 2>&1) ||
		{ pc_fail journal-survived "blkcopy journal: $st"; return 1; }
	result "INFO powercut: after the cut: $(jq -c '{complete, committed, records, torn, destinations: [.destinations[].committed]}' <<<"$st")"
	jq -e ".complete == false and .committed > 0 and .committed < $PC_LEN" <<<"$st" >/dev/null ||
		{ pc_fail journal-survived "not an incomplete journal with progress: $st"; return 1; }
	pc_pass journal-survived
	pc_copy_args --resume --json
	blkcopy "${PC_ARGS[@]}" >/tmp/resume.json 2>/tmp/resume.err ||
		{ pc_fail resumed "blkcopy --resume: $(tr '\n' ' ' </tmp/resume.err)"; return 1; }
	result "INFO powercut: resumed: $(jq -c '{bytes, destinations: [.destinations[] | {method, bytes}]}' </tmp/resume.json)"
	pc_pass resumed
	src=$(cat /persist/src.md5)
	[ "$(pc_region_md5 "$PC_NVME" 0)" = "$src" ] || pc_fail source-unchanged "the source region changed"
	[ "$(pc_region_md5 "$PC_NVME" "$PC_DST_OFF")" = "$src" ] &&
		[ "$(pc_region_md5 "$PC_VDST" 0)" = "$src" ] &&
		pc_pass destinations-equal ||
		pc_fail destinations-equal "a destination differs from the source after the resume"
	st=$(blkcopy journal --json /persist/j 2>&1)
	jq -e ".complete == true and ([.destinations[].committed] == [$PC_LEN, $PC_LEN])" <<<"$st" >/dev/null &&
		pc_pass journal-complete || pc_fail journal-complete "$st"
}

powercut_main() {
	local phase
	phase=$(sed -n 's/.*lab\.powercut=\([a-z]*\).*/\1/p' /proc/cmdline)
	result "INFO powercut guest ($phase), kernel $(uname -r), uptime $(cut -d' ' -f1 /proc/uptime) s"
	if pc_modules && pc_devices; then
		case $phase in
		copy) pc_copy ;;
		resume) pc_resume ;;
		*) pc_fail role "unknown lab.powercut=$phase" ;;
		esac
	fi
	umount /persist 2>/dev/null
	result "$LAB_END_MARKER"
}
