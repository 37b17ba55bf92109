# SPDX-License-Identifier: MIT
# Helpers for the host-side iSCSI lab tests, tests/lab/iscsi/NN-name.sh:
# tests/lab/lib.sh (results, blkcopy runs, copy_verify) over the environment
# lab/host/iscsi.sh writes for its target guest.
#
#   . "$(dirname "${BASH_SOURCE[0]}")/lib.sh"
#   case_foo() { lun_copy_verify ALPHA0 ALPHA1 8m 0:64k 1m:4k && native_only; }
#
# The environment ($ISCSI_ENV, default $LAB_RUN/iscsi.env): ISCSI_ALPHA0 ...
# (URLs, no credentials), ISCSI_IMG_ALPHA0 ... (the raw image of each LUN on
# the host: every LUN is an iblock backstore over its own virtio disk, so
# what a copy wrote is in the image once blkcopy has returned), *_SIZE,
# *_SERIAL, ISCSI_PORTAL, ISCSI_CHAP_USER/PASSWORD, ISCSI_CTL_SOCK, and
# LAB_BLKCOPY, the binary (BLKCOPY set by the caller wins).  Run a script by
# hand against a target left running: sudo bash lab/host/iscsi.sh start,
# then sudo bash tests/lab/iscsi/10-iscsi.sh.
ISCSI_ENV=${ISCSI_ENV:-${LAB_RUN:-/tmp/blkcopy-lab}/iscsi.env}
if [[ ! -r $ISCSI_ENV ]]; then
	echo "FAIL $(basename "$0" .sh): no $ISCSI_ENV: is the iSCSI target running? (sudo bash lab/host/iscsi.sh start)"
	exit 1
fi
T_USER_BLKCOPY=${BLKCOPY:-}
LAB_ENV=$ISCSI_ENV
. "$(dirname "${BASH_SOURCE[0]}")/../lib.sh"
T_NAME=$(basename "$0" .sh)
BLKCOPY=${T_USER_BLKCOPY:-$LAB_BLKCOPY}

# The images are read and written through the host's page cache, as QEMU
# (cache=unsafe, no cache of its own) reads and writes them: nothing to drop.
drop_caches() {
	:
}

# guest_sh [--timeout S] CMD: run CMD in the target guest (its helpers:
# tpg_enable TARGET 0|1, sessions [TARGET...]); its output on stdout, its
# status returned.
guest_sh() {
	local t=60
	[[ $1 == --timeout ]] && { t=$2; shift 2; }
	python3 "$ISCSI_GUEST_CTL" --timeout "$t" "$ISCSI_CTL_SOCK" "$*"
}

# target_alive: the guest still answers (after a test that upset it).
target_alive() {
	[[ $(guest_sh --timeout 10 echo alive 2>/dev/null) == alive ]]
}

# url NAME / img NAME: a LUN (ALPHA0, ...) as blkcopy names it and its image
# on the host; any other NAME is a host file, the same for both.
url() {
	local v=ISCSI_$1
	[[ $1 =~ ^[A-Z0-9]+$ ]] && echo "${!v}" || echo "$1"
}

img() {
	local v=ISCSI_IMG_$1
	[[ $1 =~ ^[A-Z0-9]+$ ]] && echo "${!v}" || echo "$1"
}

# lun_copy_verify [--opt OPTION]... SRC DST DSTOFF OFF:LEN...: copy_verify
# with LUN names (or host files) on both sides, checked in the images.
lun_copy_verify() {
	local opts=()
	while [[ $1 == --opt ]]; do
		opts+=("$1" "$2")
		shift 2
	done
	copy_verify "${opts[@]}" --read-src "$(img "$1")" --read-dst "$(img "$2")" \
		"$(url "$1")" "$(url "$2")" "${@:3}"
}

# img_sum NAME: md5 of a whole image (a LUN that must not change).
img_sum() {
	local s
	s=$(md5sum <"$(img "$1")")
	echo "${s%% *}"
}

# secret_leaked: the CHAP password in blkcopy's last stdout or stderr.
secret_leaked() {
	grep -qF -- "$ISCSI_CHAP_PASSWORD" "$T_OUT" "$T_ERR"
}

# err_mentions REGEX WHAT: blkcopy's stderr says it (case-insensitive), or WHY.
err_mentions() {
	grep -Eqi -- "$1" "$T_ERR" && return 0
	WHY="$2: stderr does not match /$1/: $(head -c 300 "$T_ERR" | tr '\n' ' ')"
	return 1
}

native_only() {
	json_check "$T_OUT" '.native_bytes == .total and .emulated_bytes == 0 and .method == "scsi_xcopy"' \
		"expected every byte through EXTENDED COPY"
}

emulated_only() {
	json_check "$T_OUT" '.native_bytes == 0 and .emulated_bytes == .total and .method == "emulate"' \
		"expected every byte emulated"
}
