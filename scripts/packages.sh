#!/usr/bin/env bash
# SPDX-License-Identifier: MIT
# The Debian packages, built and used as a user would: dpkg-buildpackage
# (libblkcopy0, libblkcopy-dev, blkcopy, python3-blkcopy), lintian (no
# errors, no warnings), apt-get install of the .debs, then from the
# installed paths only: the demo with /usr/bin/blkcopy, a C program built
# with pkg-config against the installed header and library, the Python
# module's tests against the installed module, the bash completion loaded
# as bash-completion loads it.  The packages are purged at the end (also on
# failure).  Ends with "N passed, N failed".  Run as root.
#   bash scripts/packages.sh [OUTDIR]   (default: .ci-logs/packages)
set -uo pipefail
top=$(cd "$(dirname "$0")/.." && pwd)
out=${1:-$top/.ci-logs/packages}
cd "$top" || exit 1
export DEBIAN_FRONTEND=noninteractive
passed=0 failed=0
PKGS=(libblkcopy0 libblkcopy-dev blkcopy python3-blkcopy)

step() {	# step NAME CMD...: one PASS or FAIL line, the output in $out/NAME.log
	local name=$1
	shift
	if "$@" >"$out/$name.log" 2>&1; then
		echo "PASS packages-$name"
		passed=$((passed + 1))
	else
		echo "FAIL packages-$name (last lines of $out/$name.log):"
		tail -n 15 "$out/$name.log" | sed 's/^/  | /'
		failed=$((failed + 1))
	fi
}

build() {
	local p missing=()
	for p in debhelper dh-python dpkg-dev fakeroot lintian bash-completion; do
		dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
	done
	[[ ${#missing[@]} -eq 0 ]] || apt-get install -y -q --no-install-recommends "${missing[@]}" || return 1
	# A copy of the tree: dpkg-buildpackage writes beside it and into debian/.
	rm -rf "$out/src" && mkdir -p "$out/src" &&
		git ls-files -z | tar --null -cf - -T - | tar -xf - -C "$out/src" &&
		(cd "$out/src" && dpkg-buildpackage -us -uc -b) &&
		ls "$out"/*.deb
}

lint() {
	local l rc
	l=$(lintian --fail-on error,warning "$out"/*.changes 2>&1)
	rc=$?
	l=$(grep -v 'running with root privileges' <<<"$l")
	echo "$l"
	[[ $rc -eq 0 && -z $l ]]
}

install_debs() {
	local p debs=()
	for p in "${PKGS[@]}"; do debs+=("$out/${p}_"*"_$(dpkg --print-architecture).deb"); done
	apt-get install -y -q --no-install-recommends "${debs[@]}" && dpkg -s "${PKGS[@]}" | grep -c '^Status: install ok installed' | grep -qx ${#PKGS[@]}
}

demo() {
	[[ $(command -v blkcopy) == /usr/bin/blkcopy ]] && BLKCOPY=/usr/bin/blkcopy bash examples/demo.sh
}

c_program() {
	local d
	d=$(mktemp -d)
	cc -std=c17 -Wall -Wextra -Werror tests/installed-program.c -o "$d/use" $(pkg-config --cflags --libs blkcopy) &&
		(cd "$d" &&
		head -c 64k /dev/urandom >a && truncate -s 64k b && ./use a b && cmp -n 8192 -i 4096:0 a b &&
		ldd ./use | grep '/lib/x86_64-linux-gnu/libblkcopy.so.0' >/dev/null &&
		man -w blkcopy_copy blkcopy_dev_p2p >/dev/null)
	local rc=$?
	rm -rf "$d"
	return "$rc"
}

python_module() {
	local d
	d=$(mktemp -d)
	# From elsewhere, so that only the installed module can be imported.
	cp python/test_blkcopy.py "$d/" &&
		(cd "$d" && /usr/bin/python3 -c 'import blkcopy; print(blkcopy.__file__, blkcopy.version())' &&
			/usr/bin/python3 -c 'import blkcopy, sys; sys.exit(not blkcopy.__file__.startswith("/usr/lib/python3/dist-packages/"))' &&
			/usr/bin/python3 -m pytest -q -p no:cacheprovider test_blkcopy.py)
	local rc=$?
	rm -rf "$d"
	return "$rc"
}

completion() {
	# As bash-completion loads it on first use: from its completions directory.
	bash -c '. /usr/share/bash-completion/bash_completion
		__load_completion blkcopy || exit 1
		complete -p blkcopy | grep -q _blkcopy
		COMP_WORDS=(blkcopy copy --p2p); COMP_CWORD=2; COMP_LINE="blkcopy copy --p2p"; COMP_POINT=${#COMP_LINE}
		_blkcopy blkcopy --p2p copy
		printf "%s\n" "${COMPREPLY[@]}" | grep -qx -- "--p2p="'
}

purge() {
	apt-get purge -y -q "${PKGS[@]}"
}

rm -rf "$out" && mkdir -p "$out"
step build build
step lintian lint
step install install_debs
step demo demo
step c-program c_program
step python python_module
step completion completion
step purge purge
echo
echo "$passed passed, $failed failed"
[[ $failed -eq 0 ]]
