#!/usr/bin/env bash
# The whole test suite.  Installs what it needs (as root), then:
#   1. gcc build: unit and host tests (host tests need root and loop devices)
#   2. the same suite on an ASan+UBSan build
#   3. unit tests and a CLI copy under valgrind
#   4. a clang build with -Werror
#   5. the fuzz targets (tests/fuzz), FUZZ_SECONDS (default 30) each
# and ends with one line "N passed, N failed".  --quick runs step 1 only.
set -uo pipefail
top=$(cd "$(dirname "$0")/.." && pwd)
cd "$top"

quick=0
[ "${1:-}" = "--quick" ] && quick=1

bash scripts/deps.sh || { echo "0 passed, 1 failed"; exit 1; }

passed=0 failed=0 skipped=0

note() { printf '\n=== %s\n' "$*"; }
tally() {	# tally LABEL RESULT NAME
	case $2 in
	OK) passed=$((passed + 1)) ;;
	SKIP) skipped=$((skipped + 1)); echo "SKIP $1/$3" ;;
	*) failed=$((failed + 1)); echo "FAIL $1/$3 ($2)" ;;
	esac
}

# suite LABEL BUILDDIR [meson setup options]
suite() {
	local label=$1 dir=$2
	shift 2
	note "$label"
	if ! bash scripts/build.sh "$dir" "$@"; then
		tally "$label" BUILD-FAILED build
		return
	fi
	rm -f "$dir/meson-logs/testlog.json"
	meson test -C "$dir" --no-rebuild --print-errorlogs ${MESON_TEST_ARGS:-}
	if [ ! -s "$dir/meson-logs/testlog.json" ]; then
		tally "$label" NO-RESULTS meson-test
		return
	fi
	while IFS=$'\t' read -r name result; do
		tally "$label" "$result" "$name"
	done < <(jq -r '[.name, .result] | @tsv' "$dir/meson-logs/testlog.json")
}

# man_pages DESTDIR: in a tree that "meson install --destdir" filled, a page
# man3/NAME.3 (full, or a ".so" alias) for every function that lib/blkcopy.map
# exports, every ".so" target present, and, where man(1) is installed, every
# full page rendered without warnings.  Prints what is wrong; fails if anything is.
man_pages() {
	local mandir funcs f page target out bad=0
	mandir=$(find "$1" -type d -name man3 -print -quit)
	if [ -z "$mandir" ]; then
		echo "man-pages: no man3 directory installed"
		return 1
	fi
	mandir=$(dirname "$mandir")
	funcs=$(awk 'sub(/^[[:space:]]*global:/, "") { g = 1 }
		/^[[:space:]]*local:/ || /}/ { g = 0 }
		g && match($0, /^[[:space:]]*blkcopy_[A-Za-z0-9_]*[[:space:]]*;/) {
			s = substr($0, RSTART, RLENGTH); gsub(/[[:space:];]/, "", s); print s
		}' lib/blkcopy.map)
	if [ -z "$funcs" ]; then
		echo "man-pages: no functions found in lib/blkcopy.map"
		return 1
	fi
	for f in $funcs; do
		[ -f "$mandir/man3/$f.3" ] || { echo "man-pages: no man3/$f.3"; bad=1; }
	done
	for page in "$mandir"/man*/*; do
		[ -f "$page" ] || continue
		while read -r _ target _; do
			[ -f "$mandir/$target" ] ||
				{ echo "man-pages: ${page#"$mandir"/}: .so $target: no such page"; bad=1; }
		done < <(grep '^\.so[[:space:]]' "$page")
		if command -v man >/dev/null && ! grep -q '^\.so[[:space:]]' "$page"; then
			out=$(MANWIDTH=80 man --warnings -l "$page" 2>&1 >/dev/null)
			[ -z "$out" ] || { printf 'man-pages: %s:\n%s\n' "${page#"$mandir"/}" "$out"; bad=1; }
		fi
	done
	command -v man >/dev/null || echo "man-pages: man not installed, pages not rendered"
	return $bad
}

suite gcc build

if [ $quick = 0 ]; then
	# Leak checking under ASan needs ptrace-free LSan; it works as root here.
	ASAN_OPTIONS=detect_leaks=1:abort_on_error=1 UBSAN_OPTIONS=halt_on_error=1:print_stacktrace=1 \
		suite asan+ubsan build-asan -Db_sanitize=address,undefined -Db_lundef=false

	note valgrind
	vg="valgrind -q --error-exitcode=99 --leak-check=full --errors-for-leak-kinds=definite"
	for t in build/tests/unit/test_*; do
		[ -f "$t" ] && [ -x "$t" ] || continue
		if $vg "$t" >/dev/null; then tally valgrind OK "${t##*/}"; else tally valgrind FAIL "${t##*/}"; fi
	done
	tmp=$(mktemp -d)
	head -c 8M /dev/urandom >"$tmp/src"
	truncate -s 8M "$tmp/dst"
	if $vg build/tools/blkcopy copy --no-sync --range 1m:1m --range 0:512k --range 4m:2m \
		--dst-offset 512k "$tmp/src" "$tmp/dst" >/dev/null &&
		cmp -s -n 1048576 -i 1048576:524288 "$tmp/src" "$tmp/dst"; then
		tally valgrind OK cli-copy
	else
		tally valgrind FAIL cli-copy
	fi
	rm -rf "$tmp"

	note "install: header, library and pkg-config file work for a program outside the tree"
	inst=$(mktemp -d)
	if meson install -C build --destdir "$inst" >/dev/null &&
		pc=$(dirname "$(find "$inst" -name blkcopy.pc)") &&
		cc -std=c17 -Wall -Wextra -Werror tests/installed-program.c -o "$inst/use" \
			$(PKG_CONFIG_PATH=$pc PKG_CONFIG_SYSROOT_DIR=$inst pkg-config --cflags --libs blkcopy) &&
		head -c 64k /dev/urandom >"$inst/a" && truncate -s 64k "$inst/b" &&
		LD_LIBRARY_PATH=$(dirname "$(find "$inst" -name libblkcopy.so)") "$inst/use" "$inst/a" "$inst/b" &&
		cmp -s -n 8192 -i 4096:0 "$inst/a" "$inst/b"; then
		tally install OK pkg-config-program
	else
		tally install FAIL pkg-config-program
	fi
	if man_pages "$inst"; then tally install OK man-pages; else tally install FAIL man-pages; fi
	rm -rf "$inst"

	note "clang -Werror build"
	if CC=clang bash scripts/build.sh build-clang; then tally clang OK build; else tally clang FAIL build; fi

	# Every parser and decoder of what users and devices say, under libFuzzer with
	# ASan and UBSan, from the seeds in tests/fuzz/corpus (FUZZ_SECONDS=N for longer).
	export FUZZ_SECONDS=${FUZZ_SECONDS:-30}
	UBSAN_OPTIONS=halt_on_error=1:print_stacktrace=1 CC=clang MESON_TEST_ARGS="--suite fuzz" \
		suite "fuzz (${FUZZ_SECONDS} s each)" build-fuzz -Dfuzz=true \
		-Db_sanitize=address,undefined -Db_lundef=false
fi

echo
[ $skipped -gt 0 ] && echo "$skipped skipped (need root and loop devices)"
echo "$passed passed, $failed failed"
[ $failed -eq 0 ]
