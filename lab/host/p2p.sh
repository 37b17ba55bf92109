# SPDX-License-Identifier: MIT
# The P2P phase of the lab (sourced by lab/run.sh): emulated copies staged
# in PCI peer-to-peer memory.  Debian's kernels have CONFIG_PCI_P2PDMA off,
# so this guest boots a kernel of the lab's own: Linux 6.12 from Debian's
# linux-source-6.12, "make tinyconfig" plus lab/kernel/p2p.config, all built
# in (about 4 minutes on two cores), cached in $LAB_CACHE/p2p-kernel/ by
# source version and configuration.
#
# The machine: two NVMe controllers below one PCIe switch (x3130 upstream
# port, two xio3130 downstream ports, no ACS), the first with a 64 MiB
# controller memory buffer (CMB) that Linux publishes as p2pmem; a third on
# the root complex, whose DMA the kernel does not allow to the CMB (q35's
# host bridge is not on its list); a RAM disk (brd) as a device that takes
# no P2P pages.  The scripts tests/lab/p2p/*.sh run in it (lab/guest/p2p.sh).
# QEMU 7.2 moves a device's DMA into another device's memory through one
# 4 KiB bounce buffer for the whole machine; QEMU 9.1+ lets each device
# have a larger one (x-max-bounce-buffer-size), which the phase sets.
#
# --only picks the phase by the name "p2p" or by a script's name.

P2P_SOURCE_PKG=linux-source-6.12
P2P_KERNEL=""
P2P_BUILD_PKGS=(make gcc bc bison flex libelf-dev libssl-dev xz-utils cpio)
P2P_CMB_MB=64

p2p_scripts() {
	local s
	for s in "$top"/tests/lab/p2p/[0-9]*.sh "$top"/tests/lab/p2p/bench-*.sh; do
		[[ -f $s ]] || continue
		[[ -z $LAB_ONLY_RE || p2p =~ $LAB_ONLY_RE || ${s##*/} =~ $LAB_ONLY_RE ]] && echo "$s"
	done
}

p2p_wanted() {
	[[ -n $(p2p_scripts) ]]
}

# p2p_kernel_key VERSION: the cache key of a kernel built from that source
# version with the configuration fragment as it is now.
p2p_kernel_key() {
	echo "$1-$(sha256sum <"$top/lab/kernel/p2p.config" | cut -c1-12)"
}

# p2p_kernel_build DIR VERSION: download the source package, configure,
# build; DIR/bzImage and DIR/complete (its checksum) last.
p2p_kernel_build() {
	local dir=$1 ver=$2 src opt missing=() p t=$SECONDS
	for p in "${P2P_BUILD_PKGS[@]}"; do
		dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
	done
	if [[ ${#missing[@]} -gt 0 ]]; then
		say "installing the kernel build's packages: ${missing[*]}"
		apt-get install -y -q --no-install-recommends "${missing[@]}" >/dev/null || return 1
	fi
	rm -rf "$dir" && mkdir -p "$dir/build" || return 1
	say "building the P2P guest kernel from $P2P_SOURCE_PKG $ver (log: $dir/build.log)"
	(cd "$dir/build" && apt-get -q -o APT::Sandbox::User=root download "$P2P_SOURCE_PKG=$ver" >&2) ||
		return 1
	# The package holds the source as one tarball.
	dpkg-deb --fsys-tarfile "$dir"/build/*.deb |
		tar -x -O --wildcards './usr/src/linux-source-*.tar.xz' |
		xz -dc -T0 | tar -x -C "$dir/build" || return 1
	src=$(echo "$dir"/build/linux-source-*/)
	[[ -d $src ]] || { say "no kernel tree in the $P2P_SOURCE_PKG package"; return 1; }
	{
		make -C "$src" tinyconfig &&
			"$src/scripts/kconfig/merge_config.sh" -m -O "$src" "$src/.config" "$top/lab/kernel/p2p.config" &&
			make -C "$src" olddefconfig
	} >"$dir/build.log" 2>&1 || { say "configuring the kernel failed (see $dir/build.log)"; return 1; }
	# Every option asked for must have survived olddefconfig (a missing
	# dependency drops one silently).
	while read -r opt; do
		grep -qx "$opt" "$src/.config" || { say "the kernel configuration lost '$opt'"; return 1; }
	done < <(grep -E '^CONFIG_[A-Z0-9_]+=' "$top/lab/kernel/p2p.config")
	make -C "$src" -j"$(($(nproc) + 1))" bzImage >>"$dir/build.log" 2>&1 ||
		{ say "building the kernel failed: $(tail -n 3 "$dir/build.log")"; return 1; }
	cp "$src/arch/x86/boot/bzImage" "$dir/bzImage" && cp "$src/.config" "$dir/config" || return 1
	rm -rf "$dir/build"	# 1.5 GB of tree and objects; the image is what is kept
	sha256sum <"$dir/bzImage" >"$dir/complete"
	say "P2P guest kernel built in $((SECONDS - t)) s"
}

# p2p_kernel_prepare: sets P2P_KERNEL, building the kernel unless cached.
# Without package lists, the newest complete build is reused.
p2p_kernel_prepare() {
	local ver key dir d
	ver=$(apt-cache show --no-all-versions "$P2P_SOURCE_PKG" 2>/dev/null | sed -n 's/^Version: //p' | head -n 1)
	if [[ -z $ver ]]; then
		for d in $(ls -dt "$LAB_CACHE"/p2p-kernel/*/ 2>/dev/null); do
			[[ -s $d/complete && $(sha256sum <"$d/bzImage") == "$(cat "$d/complete")" ]] || continue
			P2P_KERNEL=${d%/}/bzImage
			say "no $P2P_SOURCE_PKG in the package lists; reusing $P2P_KERNEL"
			return 0
		done
		say "no $P2P_SOURCE_PKG in the package lists (bookworm-security) and no kernel cached"
		return 1
	fi
	key=$(p2p_kernel_key "$ver")
	dir=$LAB_CACHE/p2p-kernel/$key
	if [[ -s $dir/complete && -f $dir/bzImage && $(sha256sum <"$dir/bzImage") == "$(cat "$dir/complete")" ]]; then
		say "reusing the P2P guest kernel in $dir"
	else
		p2p_kernel_build "$dir" "$ver" || { rm -rf "$dir"; return 1; }
	fi
	# One build is kept: another source version or configuration replaces it.
	for d in "$LAB_CACHE"/p2p-kernel/*; do
		[[ -d $d && $d != "$dir" ]] && rm -rf "$d"
	done
	P2P_KERNEL=$dir/bzImage
}

p2p_disks() {
	truncate -s 128M "$LAB_RUN/p2p-cmb.img" && truncate -s 128M "$LAB_RUN/p2p-peer.img" &&
		truncate -s 64M "$LAB_RUN/p2p-far.img"
}

# p2p_qemu: the machine (QEMU for boot_and_collect).
p2p_qemu() {
	local bounce="" bounce_size=4096
	# QEMU 9.1+: each device's own bounce buffer for DMA into another's memory.
	if "$QEMU_BIN" -device nvme,help 2>/dev/null | grep -q x-max-bounce-buffer-size; then
		bounce_size=$((4 << 20))
		bounce=",x-max-bounce-buffer-size=$bounce_size"
	fi
	QEMU=("$QEMU_BIN" "${QEMU_FW[@]}" -machine q35 -accel tcg -cpu max -smp 2 -m 1024
		-nodefaults -nographic -no-reboot -monitor none
		-serial "file:$LAB_RUN/p2p-console.log" -serial "file:$LAB_RUN/p2p-results.log"
		-kernel "$P2P_KERNEL" -initrd "$LAB_RUN/project.cpio.gz"
		-append "console=ttyS0 panic=-1 quiet lab.role=p2p lab.qemu=$QEMU_VERSION lab.bounce=$bounce_size"
		-device pcie-root-port,id=p2p-rp,bus=pcie.0,chassis=1,slot=1
		-device x3130-upstream,id=p2p-up,bus=p2p-rp
		-device xio3130-downstream,id=p2p-dn1,bus=p2p-up,chassis=2,slot=0
		-device xio3130-downstream,id=p2p-dn2,bus=p2p-up,chassis=3,slot=0
		-device "nvme,id=cmb,bus=p2p-dn1,serial=lab-p2p-cmb,cmb_size_mb=$P2P_CMB_MB$bounce"
		-drive "file=$LAB_RUN/p2p-cmb.img,if=none,id=cmb-ns1,format=raw,cache=unsafe"
		-device nvme-ns,drive=cmb-ns1,bus=cmb,nsid=1
		-device "nvme,id=peer,bus=p2p-dn2,serial=lab-p2p-peer$bounce"
		-drive "file=$LAB_RUN/p2p-peer.img,if=none,id=peer-ns1,format=raw,cache=unsafe"
		-device nvme-ns,drive=peer-ns1,bus=peer,nsid=1
		-device "nvme,id=far,bus=pcie.0,serial=lab-p2p-far$bounce"
		-drive "file=$LAB_RUN/p2p-far.img,if=none,id=far-ns1,format=raw,cache=unsafe"
		-device nvme-ns,drive=far-ns1,bus=far,nsid=1)
}

p2p_phase() {
	local t=$SECONDS failed_before=$R_FAILED
	p2p_kernel_prepare || { result_line "FAIL p2p: could not prepare its kernel (see the messages above)"; return 1; }
	say "P2P kernel: $((SECONDS - t)) s"
	p2p_disks || { result_line "FAIL p2p: could not create its disk images in $LAB_RUN"; return 1; }
	boot_and_collect p2p_qemu p2p-
	say "P2P phase: $((SECONDS - t)) s"
	[[ $R_FAILED -eq $failed_before ]]
}
