# SPDX-License-Identifier: MIT
# Which QEMU the lab boots (sourced by lab/run.sh).  LAB_QEMU=system (the
# default) is Debian 12's qemu-system-x86 (7.2), a host package.
# LAB_QEMU=backports is bookworm-backports' (10.x), never installed: its
# packages are downloaded with a private apt list and unpacked into the
# cache (one version kept), and run with -L for their firmware.  QEMU 10's
# NVMe controller offers Copy descriptor formats 0h-3h (across namespaces)
# and enforces MCL; it puts every controller in an NVM subsystem that can
# have several controllers, so the guest kernel is told not to make
# multipath head nodes (nvme_core.multipath=N): each namespace is
# /dev/nvmeXnY of its controller, as with 7.2; LAB_NVME_MULTIPATH=Y keeps
# the head nodes, to test blkcopy through them.
#
# After qemu_prepare: QEMU_BIN, QEMU_FW (firmware arguments), QEMU_APPEND
# (what the guest's kernel command line needs), QEMU_VERSION.

LAB_QEMU=${LAB_QEMU:-system}
QEMU_BIN=qemu-system-x86_64 QEMU_FW=() QEMU_APPEND="" QEMU_VERSION=""
QEMU_BACKPORTS_PKGS=(qemu-system-x86 qemu-system-common qemu-system-data)

# qemu_backports DIR: bookworm-backports' QEMU unpacked under DIR/VERSION/root;
# sets QEMU_VERSION.  Downloads only what the cache lacks.
qemu_backports() {
	local dir=$1 apt=$1/apt p
	local -a o
	mkdir -p "$apt"/{lists/partial,archives/partial} || return 1
	echo "deb http://deb.debian.org/debian bookworm-backports main" >"$apt/sources.list"
	o=(-o "Dir::Etc::SourceList=$apt/sources.list" -o Dir::Etc::SourceParts=/dev/null
		-o "Dir::State::Lists=$apt/lists" -o "Dir::Cache=$apt" -o "Dir::Cache::archives=$apt/archives"
		-o APT::Sandbox::User=root)
	apt-get -q "${o[@]}" update >"$apt/update.log" 2>&1 ||
		{ say "apt-get update (bookworm-backports) failed: $(tail -n 2 "$apt/update.log")"; return 1; }
	QEMU_VERSION=$(apt-cache "${o[@]}" show qemu-system-x86/bookworm-backports 2>/dev/null |
		sed -n 's/^Version: //p' | head -n 1)
	[[ -n $QEMU_VERSION ]] || { say "bookworm-backports has no qemu-system-x86"; return 1; }
	if [[ -x $dir/$QEMU_VERSION/root/usr/bin/qemu-system-x86_64 ]]; then
		return 0
	fi
	say "unpacking QEMU $QEMU_VERSION from bookworm-backports into $dir"
	rm -rf "$dir/$QEMU_VERSION.tmp" && mkdir -p "$dir/$QEMU_VERSION.tmp/root" || return 1
	(cd "$dir/$QEMU_VERSION.tmp" &&
		apt-get -q "${o[@]}" download "${QEMU_BACKPORTS_PKGS[@]/%//bookworm-backports}" >download.log 2>&1) ||
		{ say "apt-get download of QEMU failed: $(tail -n 2 "$dir/$QEMU_VERSION.tmp/download.log")"; return 1; }
	for p in "$dir/$QEMU_VERSION.tmp"/*.deb; do
		dpkg-deb -x "$p" "$dir/$QEMU_VERSION.tmp/root" || return 1
	done
	rm -f "$dir/$QEMU_VERSION.tmp"/*.deb
	# Older versions go: one is kept, as for kernels.
	find "$dir" -mindepth 1 -maxdepth 1 ! -name apt ! -name "$QEMU_VERSION.tmp" -exec rm -rf {} +
	mv "$dir/$QEMU_VERSION.tmp" "$dir/$QEMU_VERSION"
}

qemu_prepare() {
	case $LAB_QEMU in
	system)
		QEMU_VERSION=$(qemu-system-x86_64 --version | sed -n '1s/.*version \([^ ]*\).*/\1/p')
		;;
	backports)
		qemu_backports "$LAB_CACHE/qemu" || return 1
		QEMU_BIN=$LAB_CACHE/qemu/$QEMU_VERSION/root/usr/bin/qemu-system-x86_64
		QEMU_FW=(-L "$LAB_CACHE/qemu/$QEMU_VERSION/root/usr/share/qemu" -L /usr/share/seabios)
		# LAB_NVME_MULTIPATH=Y keeps the head nodes (/dev/nvmeXnY over the paths).
		[[ ${LAB_NVME_MULTIPATH:-N} == Y ]] || QEMU_APPEND="nvme_core.multipath=N"
		"$QEMU_BIN" --version >/dev/null || { say "$QEMU_BIN does not run"; return 1; }
		;;
	*)
		say "LAB_QEMU=$LAB_QEMU: want system or backports"
		return 1
		;;
	esac
}
