# SPDX-License-Identifier: MIT
# The guest kernel (sourced by lab/run.sh): Debian's current linux-image
# package, downloaded and unpacked into the cache, never installed; and the
# kernel-module part of the initramfs, cached as its own gzip'd cpio (Linux
# unpacks concatenated initramfs archives one after the other).
#
# LAB_KERNEL picks another package: a real one (linux-image-6.1.0-57-amd64)
# or a metapackage that points at one (linux-image-6.12-amd64, from
# bookworm-security), resolved through its Depends as linux-image-amd64 is.
#
# Cache layout ($LAB_CACHE):
#   kernel/PKG_VERSION/root/       dpkg-deb -x of the package, depmod'ed
#   kernel/PKG_VERSION/complete    written last: checksums of vmlinuz and modules.dep
#   kernel/.resolved-NAME          the PKG_VERSION that NAME (a metapackage, or
#                                  "default") last resolved to: offline runs reuse it
#   modules/KVER-HASH.cpio.gz      the modules below, keyed by kernel and list
# The cache keeps the newest unpack of each kernel series (major.minor: 6.1,
# 6.12) and the module archives of the kernels it keeps, so runs that
# alternate between series download nothing.

# Modules the guest loads (their dependencies come from modules.dep).  The
# CRC providers come first: t10-pi and crc-t10dif ask the crypto API for them
# at load time and the guest has no modprobe to fetch them on demand.  The
# same goes for dm-crypt's cipher: "xts(aes)" needs the xts and ecb templates
# loaded beforehand (aes itself is built in).  dm-flakey corrupts writes
# for the --verify test.  null_blk makes the zoned
# null_blk devices (through configfs; loaded with nr_devices=0).  nvmet,
# nvmet-tcp and nvme-tcp carry NVMe over TCP inside the guest (passthru
# needs 6.12: lab/guest/nvme-tcp.sh).
LAB_MODULES=(crc64_rocksoft_generic crct10dif_generic
	nvme sd_mod sg configfs target_core_mod target_core_file target_core_iblock tcm_loop
	dm-mod brd loop virtio_pci virtio_blk
	dm-zero ecb xts dm-crypt dm-flakey null_blk nvmet nvmet-tcp nvme-tcp sch_tbf)
# Modules a kernel may not have at all: newer kernels fold the CRC and some
# crypto providers into the kernel proper or rename them (6.14 dropped
# crc64_rocksoft_generic and crct10dif_generic; crc32c-intel became
# crc32c-x86).  A missing one is left out; one that is built in (6.12 builds
# in ecb, virtio_pci and both CRC providers) needs nothing either way.
LAB_MODULES_OPTIONAL=" crc64_rocksoft_generic crct10dif_generic crc32c_generic crc32c-intel ecb xts sch_tbf "

KPKG="" KPKGVER="" KVER="" KROOT="" MODULES_CPIO=""

# kernel_image_of NAME: the linux-image-N... package that metapackage NAME
# depends on now; nothing for a real kernel package (its Depends name no
# other image).
kernel_image_of() {
	apt-cache depends "$1" 2>/dev/null |
		awk '$1 == "Depends:" && $2 ~ /^linux-image-[0-9]/ { print $2; exit }'
}

# kernel_resolve: the package linux-image-amd64 points at now (never a pinned
# ABI name: it changes with Debian point releases), or $LAB_KERNEL: a
# metapackage the same way, a real package as it is.
kernel_resolve() {
	local want=${LAB_KERNEL:-linux-image-amd64}
	KPKG=$(kernel_image_of "$want")
	if [[ -z $KPKG ]]; then
		# linux-image-amd64 is only ever a metapackage.
		[[ -n ${LAB_KERNEL:-} ]] || return 1
		KPKG=$want
	fi
	KPKGVER=$(apt-cache show --no-all-versions "$KPKG" 2>/dev/null | sed -n 's/^Version: //p' | head -n 1)
	[[ -n $KPKGVER ]] || return 1
	KVER=${KPKG#linux-image-}
}

# kernel_series KVER: its major.minor (6.1 for 6.1.0-57-amd64, 6.12 for
# 6.12.117+deb12-amd64), the unit the cache keeps one of.
kernel_series() {
	[[ $1 =~ ^([0-9]+\.[0-9]+) ]] && echo "${BASH_REMATCH[1]}"
}

# kernel_dir_vars DIR: KPKG KPKGVER KVER of a cache directory PKG_VERSION.
kernel_dir_vars() {
	local pkg=${1##*/}
	KPKG=${pkg%%_*} KPKGVER=${pkg#*_}
	KVER=${KPKG#linux-image-}
}

# kernel_resolved_file: where the package the current request resolved to
# is remembered, for kernel_newest_cached.
kernel_resolved_file() {
	echo "$LAB_CACHE/kernel/.resolved-${LAB_KERNEL:-default}"
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

# kernel_newest_cached: without package lists (offline), reuse what the same
# request resolved to last time; failing that, the newest complete unpack
# that fits it: of that package (a real package name), of that series (a
# metapackage such as linux-image-6.12-amd64), of any kernel (no LAB_KERNEL).
kernel_newest_cached() {
	local d want=${LAB_KERNEL:-} series="" f
	f=$(kernel_resolved_file)
	if [[ -s $f ]]; then
		d=$LAB_CACHE/kernel/$(cat "$f")
		kernel_dir_vars "$d"
		[[ -d $d ]] && kernel_cache_ok "$d" "$KVER" && return 0
	fi
	[[ $want =~ ^linux-image-([0-9]+\.[0-9]+)-[a-z0-9]+$ ]] && series=${BASH_REMATCH[1]}
	while IFS= read -r d; do
		kernel_dir_vars "$d"
		if [[ -n $series ]]; then
			[[ $(kernel_series "$KVER") == "$series" ]] || continue
		elif [[ -n $want ]]; then
			[[ $KPKG == "$want" ]] || continue
		fi
		kernel_cache_ok "$d" "$KVER" && return 0
	done < <(ls -dt "$LAB_CACHE"/kernel/linux-image-*_* 2>/dev/null)
	return 1
}

# kernel_prune KEEP: keep KEEP and the newest complete unpack (by package
# version) of each kernel series, and the module archives of the kernels
# kept; drop the rest, so the cache does not grow by 100-400 MB with every
# Debian point release, while runs that alternate between 6.1 and 6.12 find
# both.
kernel_prune() {
	local keep=$1 d s name kver keepk=" " KPKG KPKGVER KVER
	local -A newest=()
	for d in "$LAB_CACHE"/kernel/*; do
		[[ -d $d ]] || continue
		kernel_dir_vars "$d"
		if ! kernel_cache_ok "$d" "$KVER"; then
			# Only an interrupted run leaves one (we hold the lock).
			[[ $d != "$keep" ]] && rm -rf "$d"
			continue
		fi
		s=$(kernel_series "$KVER")
		if [[ -z ${newest[$s]:-} ]] || dpkg --compare-versions "$KPKGVER" gt "${newest[$s]##*_}"; then
			newest[$s]=$d
		fi
	done
	for d in "$LAB_CACHE"/kernel/*; do
		[[ -d $d ]] || continue
		[[ $d == "$keep" || " ${newest[*]} " == *" $d "* ]] && { kernel_dir_vars "$d"; keepk+="$KVER "; continue; }
		say "pruning the cached kernel ${d##*/}"
		rm -rf "$d"
	done
	for d in "$LAB_CACHE"/modules/*.cpio.gz; do
		[[ -f $d ]] || continue
		name=${d##*/}
		kver=${name%-*}	# KVER-HASH.cpio.gz
		[[ $keepk == *" $kver "* ]] || rm -f "$d"
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
		say "cannot resolve ${LAB_KERNEL:-linux-image-amd64}; updating the package lists"
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
	echo "${dir##*/}" >"$(kernel_resolved_file)"
	kernel_prune "$dir"
}

# module_resolve MODULE...: sets MOD_PATHS (the module files to load,
# dependencies first, each once), MOD_WANT (the module each name loads, as
# its file is called: what the guest looks for in /sys/module), MOD_BUILTIN
# and MOD_ABSENT (names that need nothing loaded: built into this kernel, or
# optional (LAB_MODULES_OPTIONAL) and not in it).
module_resolve() {
	local m out verb path last
	local -A seen=()
	MOD_PATHS=() MOD_WANT=() MOD_BUILTIN=() MOD_ABSENT=()
	for m in "$@"; do
		if ! out=$(modprobe -d "$KROOT" -S "$KVER" --show-depends "$m" 2>&1); then
			if [[ $LAB_MODULES_OPTIONAL == *" $m "* ]]; then
				MOD_ABSENT+=("$m")
				continue
			fi
			say "module $m: $out"
			return 1
		fi
		# "builtin NAME" lines need nothing loaded; the last insmod is the
		# module itself.
		last=""
		while read -r verb path _; do
			[[ $verb == insmod ]] || continue
			last=${path##*/}
			[[ -n ${seen[$path]:-} ]] && continue
			seen[$path]=1
			MOD_PATHS+=("$path")
		done <<<"$out"
		if [[ -z $last ]]; then
			MOD_BUILTIN+=("$m")
		else
			MOD_WANT+=("${last%.ko*}")
		fi
	done
}

# module_unpack SRC DIR: SRC into DIR as a plain NAME.ko.  Busybox insmod
# hands the file's bytes to init_module(), which takes no compressed module
# (only finit_module() decompresses, and only when asked), and Debian's 6.12
# ships every module as .ko.xz.
module_unpack() {
	local src=$1 b=${1##*/}
	case $b in
	*.ko) cp "$src" "$2/$b" ;;
	*.ko.xz) xz -dc "$src" >"$2/${b%.xz}" ;;
	*.ko.gz) gzip -dc "$src" >"$2/${b%.gz}" ;;
	*.ko.zst) zstd -qdc "$src" >"$2/${b%.zst}" ;;
	*) say "module $src: not a .ko, .ko.xz, .ko.gz or .ko.zst"; return 1 ;;
	esac
}

# modules_cpio [MODULE...]: sets MODULES_CPIO, building it unless cached; the
# modules are LAB_MODULES unless named (another guest role loads others).  The
# guest finds /lab-modules/*.ko, their load order in /lab-modules/load-order,
# the names it must end up with in /lab-modules/want, and what needed nothing
# in /lab-modules/builtin and /lab-modules/absent (for its log).
modules_cpio() {
	local key tmp p b rc
	[[ $# -gt 0 ]] || set -- "${LAB_MODULES[@]}"
	module_resolve "$@" || return 1
	key=$( { echo "$KPKG $KPKGVER"; printf '%s\n' "$@"; printf '%s\n' "${MOD_PATHS[@]}";
		echo "want ${MOD_WANT[*]} builtin ${MOD_BUILTIN[*]} absent ${MOD_ABSENT[*]}"; } |
		sha256sum | cut -c1-16)
	MODULES_CPIO=$LAB_CACHE/modules/$KVER-$key.cpio.gz
	if [[ -s $MODULES_CPIO ]] && gzip -t "$MODULES_CPIO" 2>/dev/null; then
		return 0
	fi
	say "packing the kernel modules${MOD_BUILTIN[*]:+ (built in: ${MOD_BUILTIN[*]})}${MOD_ABSENT[*]:+ (not in this kernel: ${MOD_ABSENT[*]})}"
	tmp=$(mktemp -d "$LAB_CACHE/modules/.build.XXXXXX") || return 1
	mkdir -p "$tmp/root/lab-modules"
	: >"$tmp/root/lab-modules/load-order"
	for p in "${MOD_PATHS[@]}"; do
		module_unpack "$p" "$tmp/root/lab-modules" || { rm -rf "$tmp"; return 1; }
		b=${p##*/}
		echo "${b%.ko*}.ko" >>"$tmp/root/lab-modules/load-order"
	done
	printf '%s\n' "${MOD_WANT[@]}" >"$tmp/root/lab-modules/want"
	printf '%s\n' "${MOD_BUILTIN[@]}" >"$tmp/root/lab-modules/builtin"
	printf '%s\n' "${MOD_ABSENT[@]}" >"$tmp/root/lab-modules/absent"
	cpio_pack "$tmp/root" "$tmp/out.cpio.gz" && mv "$tmp/out.cpio.gz" "$MODULES_CPIO"
	rc=$?
	rm -rf "$tmp"
	return "$rc"
}

# cpio_pack DIR OUT: DIR as a gzip'd newc archive owned by root.
cpio_pack() {
	(cd "$1" && find . -mindepth 1 | LC_ALL=C sort |
		cpio -o -H newc --owner=0:0 --quiet | gzip -1 >"$2")
}
