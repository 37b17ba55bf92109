# SPDX-License-Identifier: MIT
# The guest kernel (sourced by lab/run.sh): Debian's current linux-image
# package, downloaded and unpacked into the cache, never installed; and the
# kernel-module part of the initramfs, cached as its own gzip'd cpio (Linux
# unpacks concatenated initramfs archives one after the other).
#
# Cache layout ($LAB_CACHE):
#   kernel/PKG_VERSION/root/       dpkg-deb -x of the package, depmod'ed
#   kernel/PKG_VERSION/complete    written last: checksums of vmlinuz and modules.dep
#   modules/KVER-HASH.cpio.gz      the modules below, keyed by kernel and list

# Modules the guest loads (their dependencies come from modules.dep).  The
# CRC providers come first: t10-pi and crc-t10dif ask the crypto API for them
# at load time and the guest has no modprobe to fetch them on demand.  The
# same goes for dm-crypt's cipher: "xts(aes)" needs the xts and ecb templates
# loaded beforehand (aes itself is built in).
LAB_MODULES=(crc64_rocksoft_generic crct10dif_generic
	nvme sd_mod sg configfs target_core_mod target_core_file target_core_iblock tcm_loop
	dm-mod brd loop virtio_pci virtio_blk
	dm-zero ecb xts dm-crypt)

KPKG="" KPKGVER="" KVER="" KROOT="" MODULES_CPIO=""

# kernel_resolve: the package linux-image-amd64 points at now (never a pinned
# ABI name: it changes with Debian point releases), or $LAB_KERNEL.
kernel_resolve() {
	KPKG=${LAB_KERNEL:-}
	if [[ -z $KPKG ]]; then
		KPKG=$(apt-cache depends linux-image-amd64 2>/dev/null |
			awk '$1 == "Depends:" && $2 ~ /^linux-image-[0-9]/ { print $2; exit }')
	fi
	[[ -n $KPKG ]] || return 1
	KPKGVER=$(apt-cache show --no-all-versions "$KPKG" 2>/dev/null | sed -n 's/^Version: //p' | head -n 1)
	[[ -n $KPKGVER ]] || return 1
	KVER=${KPKG#linux-image-}
}

# kernel_stamp DIR: what the "complete" stamp of an unpacked kernel says.
kernel_stamp() {
	local dir=$1 kver=$2
	(cd "$dir/root" && sha256sum "boot/vmlinuz-$kver" "lib/modules/$kver/modules.dep") 2>/dev/null
}

# kernel_cache_ok DIR KVER: the unpack finished and nothing in it changed.
kernel_cache_ok() {
	local dir=$1 kver=$2
	[[ -s $dir/complete ]] && [[ $(kernel_stamp "$dir" "$kver") == "$(cat "$dir/complete")" ]]
}

# kernel_fetch DIR: download, unpack, depmod; the stamp is written last so an
# interrupted run leaves no stamp and the next one starts over.
kernel_fetch() {
	local dir=$1 deb
	rm -rf "$dir"
	mkdir -p "$dir/deb" || return 1
	say "downloading $KPKG $KPKGVER"
	# Root's apt-get download would drop privileges to _apt, who cannot write here.
	(cd "$dir/deb" && apt-get -q -o APT::Sandbox::User=root download "$KPKG=$KPKGVER" >&2) || return 1
	deb=("$dir/deb"/*.deb)
	[[ -f ${deb[0]} ]] || return 1
	dpkg-deb -x "${deb[0]}" "$dir/root" || return 1
	depmod -b "$dir/root" "$KVER" || return 1
	[[ -f $dir/root/boot/vmlinuz-$KVER ]] || { say "no boot/vmlinuz-$KVER in ${deb[0]}"; return 1; }
	rm -rf "$dir/deb"	# the unpacked tree is what is reused
	kernel_stamp "$dir" "$KVER" >"$dir/complete.tmp" && mv "$dir/complete.tmp" "$dir/complete"
}

# kernel_newest_cached: without package lists (offline), reuse the newest
# complete unpack.
kernel_newest_cached() {
	local d pkg
	while IFS= read -r d; do
		pkg=${d##*/}
		KPKG=${pkg%%_*} KPKGVER=${pkg#*_} KVER=${KPKG#linux-image-}
		kernel_cache_ok "$d" "$KVER" && return 0
	done < <(ls -dt "$LAB_CACHE"/kernel/linux-image-*_* 2>/dev/null)
	return 1
}

# kernel_prune KEEP: drop other kernels' unpacks and module archives, so the
# cache does not grow by 400 MB with every Debian point release.
kernel_prune() {
	local keep=$1 d
	for d in "$LAB_CACHE"/kernel/*; do
		[[ -d $d && $d != "$keep" ]] && rm -rf "$d"
	done
	for d in "$LAB_CACHE"/modules/*.cpio.gz; do
		[[ -f $d && ${d##*/} != "$KVER"-* ]] && rm -f "$d"
	done
	return 0
}

# kernel_prepare: sets KPKG KPKGVER KVER KROOT.
kernel_prepare() {
	local dir
	mkdir -p "$LAB_CACHE/kernel" "$LAB_CACHE/modules" || return 1
	# One lab at a time touches the cache; a stuck one must not hang us.
	if [[ -z ${LAB_LOCK_FD:-} ]]; then
		exec {LAB_LOCK_FD}>"$LAB_CACHE/.lock" || return 1
		flock -w 900 "$LAB_LOCK_FD" || { say "another lab has held $LAB_CACHE/.lock for 15 minutes"; return 1; }
	fi
	if ! kernel_resolve; then
		say "cannot resolve linux-image-amd64; updating the package lists"
		apt-get update -q >/dev/null
		if ! kernel_resolve; then
			kernel_newest_cached || { say "no kernel package and nothing cached"; return 1; }
			say "package lists unusable; reusing the cached $KPKG $KPKGVER"
		fi
	fi
	dir=$LAB_CACHE/kernel/${KPKG}_$KPKGVER
	if kernel_cache_ok "$dir" "$KVER"; then
		say "reusing the cached kernel in $dir"
	else
		[[ -e $dir ]] && say "cached kernel in $dir is incomplete or damaged; rebuilding it"
		kernel_fetch "$dir" || { rm -rf "$dir"; return 1; }
	fi
	KROOT=$dir/root
	kernel_prune "$dir"
}

# module_paths MODULE...: the .ko files to load, dependencies first, each once.
module_paths() {
	local m out
	for m in "$@"; do
		out=$(modprobe -d "$KROOT" -S "$KVER" --show-depends "$m" 2>&1) ||
			{ say "module $m: $out"; return 1; }
		# "builtin NAME" lines need nothing loaded.
		awk '$1 == "insmod" { print $2 }' <<<"$out"
	done | awk '!seen[$0]++'
	return "${PIPESTATUS[0]}"
}

# modules_cpio [MODULE...]: sets MODULES_CPIO, building it unless cached; the
# modules are LAB_MODULES unless named (another guest role loads others).  The
# guest finds /lab-modules/*.ko, their load order in /lab-modules/load-order
# and the names it must end up with in /lab-modules/want.
modules_cpio() {
	local key tmp p list
	[[ $# -gt 0 ]] || set -- "${LAB_MODULES[@]}"
	list=$(module_paths "$@") || return 1
	key=$( { echo "$KPKG $KPKGVER"; printf '%s\n' "$@"; echo "$list"; } |
		sha256sum | cut -c1-16)
	MODULES_CPIO=$LAB_CACHE/modules/$KVER-$key.cpio.gz
	if [[ -s $MODULES_CPIO ]] && gzip -t "$MODULES_CPIO" 2>/dev/null; then
		return 0
	fi
	say "packing the kernel modules"
	tmp=$(mktemp -d "$LAB_CACHE/modules/.build.XXXXXX") || return 1
	mkdir -p "$tmp/root/lab-modules"
	while IFS= read -r p; do
		cp "$p" "$tmp/root/lab-modules/" || { rm -rf "$tmp"; return 1; }
		basename "$p" >>"$tmp/root/lab-modules/load-order"
	done <<<"$list"
	printf '%s\n' "$@" >"$tmp/root/lab-modules/want"
	cpio_pack "$tmp/root" "$tmp/out.cpio.gz" && mv "$tmp/out.cpio.gz" "$MODULES_CPIO"
	local rc=$?
	rm -rf "$tmp"
	return "$rc"
}

# cpio_pack DIR OUT: DIR as a gzip'd newc archive owned by root.
cpio_pack() {
	(cd "$1" && find . -mindepth 1 | LC_ALL=C sort |
		cpio -o -H newc --owner=0:0 --quiet | gzip -1 >"$2")
}
