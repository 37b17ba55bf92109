# SPDX-License-Identifier: MIT
# The project part of the initramfs (sourced by lab/run.sh), rebuilt every
# run: blkcopy and the tools the tests and the device setup use, with their
# shared libraries and the loader, busybox for everything else, the guest
# /init, the tests/lab scripts and the configuration passed to the guest.
#
# The tree is "usr-merged" like the host: /bin, /sbin, /usr/sbin point at
# /usr/bin, /lib at /usr/lib, /lib64 at /usr/lib64, so the loader and the
# libraries sit where the host's binaries expect them.

# Real tools (not busybox applets): their options are what the scripts use.
GUEST_TOOLS=(bash jq sfdisk partx blockdev losetup lsblk nvme dmsetup blkzone
	sg_inq sg_vpd sg_readcap sg_turs sg_raw sg_xcopy sg_copy_results
	dd md5sum sha256sum cmp timeout stat truncate head tail sort od mktemp sync split setpriv tc)

# The test programs of tests/lab (tests/lab/meson.build), from build-lab.
LAB_PROGRAMS=(dm_table_change dm_handle_reuse job_drive p2p_stamp)

# Busybox applets the guest must not have: the kernel would call "modprobe"
# on its own, and the rest would only shadow nothing useful.
BUSYBOX_SKIP=" modprobe depmod rmmod init linuxrc "

# host_tool NAME: path of a host tool (root's PATH may lack the sbin dirs).
host_tool() {
	PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin command -v "$1"
}

# copy_libs ROOT BINARY: the shared libraries BINARY loads, and the loader.
copy_libs() {
	local root=$1 bin=$2 name path out
	out=$(ldd "$bin" 2>/dev/null) || return 0	# a static binary needs nothing
	while read -r name _ path _; do
		case $name in
		linux-vdso.so.* | linux-gate.so.*) ;;
		/*) [[ -e $root$name ]] || cp -L "$name" "$root$name" || return 1 ;;	# the loader, by its own path
		*)
			[[ -f $path ]] || { say "$bin: library $name not found"; return 1; }
			[[ -e $root/usr/lib/x86_64-linux-gnu/$name ]] ||
				cp -L "$path" "$root/usr/lib/x86_64-linux-gnu/$name" || return 1
			;;
		esac
	done <<<"$out"
}

# add_binary ROOT PATH [NAME]: a binary into /usr/bin with its libraries.
add_binary() {
	local root=$1 src=$2 name=${3:-${2##*/}}
	cp -L "$src" "$root/usr/bin/$name" && copy_libs "$root" "$src"
}

initramfs_skeleton() {
	local root=$1
	mkdir -p "$root"/{usr/bin,usr/lib/x86_64-linux-gnu,usr/lib64,dev,proc,sys,tmp,run,mnt,root,etc/lab,lab/tests/p2p,lab/guest}
	ln -s usr/bin "$root/bin"
	ln -s usr/bin "$root/sbin"
	ln -s bin "$root/usr/sbin"
	ln -s usr/lib "$root/lib"
	ln -s usr/lib64 "$root/lib64"
	# The kernel opens /dev/console for init before anything is mounted.
	mknod -m 600 "$root/dev/console" c 5 1
	mknod -m 666 "$root/dev/null" c 1 3
	printf 'root:x:0:0:root:/root:/bin/bash\n' >"$root/etc/passwd"
	printf 'root:x:0:\n' >"$root/etc/group"
}

# install_busybox ROOT: applets only where no real tool is present.
install_busybox() {
	local root=$1 a bb
	bb=$(host_tool busybox) || { say "busybox not found"; return 1; }
	cp -L "$bb" "$root/usr/bin/busybox" || return 1
	for a in $("$bb" --list); do
		[[ $BUSYBOX_SKIP == *" $a "* || -e $root/usr/bin/$a ]] && continue
		ln -s busybox "$root/usr/bin/$a"
	done
}

# guest_config FILE: the LAB_* environment plus --only/--env, as shell
# assignments the guest sources.
guest_config() {
	local out=$1 kv
	{
		echo "# written by lab/run.sh"
		for kv in $(compgen -e | grep '^LAB_' | sort); do
			printf '%s=%q\n' "$kv" "${!kv}"
		done
		for kv in "${GUEST_ENV[@]}"; do
			[[ ${kv%%=*} =~ ^[A-Za-z_][A-Za-z0-9_]*$ ]] || { say "bad --env '$kv'"; return 1; }
			printf '%s=%q\n' "${kv%%=*}" "${kv#*=}"
		done
	} >"$out"
}

# project_cpio OUT
project_cpio() {
	local out=$1 root=$LAB_RUN/initramfs t p
	rm -rf "$root"
	initramfs_skeleton "$root" || return 1
	for t in "${GUEST_TOOLS[@]}"; do
		p=$(host_tool "$t") || { say "host tool $t not found"; return 1; }
		add_binary "$root" "$p" || return 1
	done
	add_binary "$root" "$LAB_BUILD/tools/blkcopy" || return 1
	# The benchmarks' baseline, the naive pread/pwrite loop (bench/naive-copy.c).
	add_binary "$root" "$LAB_BUILD/bench/naive-copy" || return 1
	for p in "${LAB_PROGRAMS[@]}"; do
		[[ -x $LAB_BUILD/tests/lab/$p ]] || { say "$LAB_BUILD/tests/lab/$p was not built"; return 1; }
		add_binary "$root" "$LAB_BUILD/tests/lab/$p" || return 1
	done
	install_busybox "$root" || return 1
	install -m 755 "$top/lab/guest/init" "$root/init" &&
		install -m 644 "$top"/lab/guest/*.sh "$root/lab/guest/" &&
		install -m 644 "$top"/tests/lab/*.sh "$root/lab/tests/" &&
		install -m 644 "$top"/tests/lab/p2p/*.sh "$root/lab/tests/p2p/" || return 1
	guest_config "$root/etc/lab/config" || return 1
	cpio_pack "$root" "$out"
}
