#!/bin/bash
# SPDX-License-Identifier: MIT
# The bash completion (completions/blkcopy) against the CLI itself: every
# long option a subcommand's --help lists is offered, and nothing it does
# not; subcommands; the values of --p2p= and --native-min; files for
# --ranges-from, --journal and the operands; nothing after a size option.
# With bash's own word breaks, and through bash-completion's
# _init_completion where that package is installed.
set -uo pipefail
. "$(dirname "${BASH_SOURCE[0]}")/lib.sh"

COMPLETION=$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)/completions/blkcopy
. "$COMPLETION" || { echo "FAIL $T_NAME: cannot source $COMPLETION"; exit 1; }

# complete_line LINE: COMPREPLY for the cursor at the end of LINE, words
# split as bash splits them (COMP_WORDBREAKS: = is a word of its own).
complete_line() {
	local line=$1 w
	COMP_LINE=$line COMP_POINT=${#line}
	COMP_WORDS=()
	read -ra COMP_WORDS <<<"${line//=/ = }"
	[[ $line == *" " || $line == *= ]] && COMP_WORDS+=("")
	# "--p2p=" ends in "=": bash puts the cursor on the "=" word.
	[[ $line == *= ]] && unset 'COMP_WORDS[${#COMP_WORDS[@]}-1]'
	COMP_CWORD=$((${#COMP_WORDS[@]} - 1))
	COMPREPLY=()
	_blkcopy blkcopy "${COMP_WORDS[COMP_CWORD]}" "${COMP_WORDS[COMP_CWORD - 1]}"
	printf '%s\n' "${COMPREPLY[@]}" | sort -u | tr '\n' ' ' | sed 's/ $//'
}

# help_options SUBCOMMAND: the long options its --help lists (lines that
# begin with one, after a short one or none; [--opt] in its usage line), and --help.
help_options() {
	local h
	h=$("$BLKCOPY" "$1" --help)
	{ sed -nE 's/^ +(-[a-zA-Z], )?(--[a-z0-9-]+).*/\2/p' <<<"$h"
	  sed -n 's/^Usage: //p' <<<"$h" | grep -oE -- '\[--[a-z0-9-]+' | tr -d '['
	  echo --help; } |
		sort -u | tr '\n' ' ' | sed 's/ $//'
}

same() {	# same WHAT GOT WANT
	[[ $2 == "$3" ]] && return 0
	WHY="$1: got '$2', want '$3'"
	return 1
}

case_subcommands() {
	same "blkcopy <TAB>" "$(complete_line 'blkcopy ')" "--help --version copy journal limits" &&
		same "blkcopy li<TAB>" "$(complete_line 'blkcopy li')" "limits"
}

case_options() {
	local c got want
	for c in copy limits journal; do
		got=$(complete_line "blkcopy $c --" | tr ' ' '\n' | sed 's/=$//' | sort -u | tr '\n' ' ' | sed 's/ $//')
		want=$(help_options "$c")
		same "blkcopy $c --<TAB> against blkcopy $c --help" "$got" "$want" || return 1
	done
}

case_values() {
	same "--p2p=<TAB>" "$(complete_line 'blkcopy copy --p2p=')" "auto dst src" &&
		same "--p2p=s<TAB>" "$(complete_line 'blkcopy copy --p2p=s')" "src" &&
		same "--native-min <TAB>" "$(complete_line 'blkcopy copy --native-min ')" "0 auto" &&
		same "--range <TAB>" "$(complete_line 'blkcopy copy --range ')" "" &&
		same "-d <TAB>" "$(complete_line 'blkcopy copy -d ')" ""
}

case_files() {
	mkdir -p "$T_DIR/c" && : >"$T_DIR/c/src.img" && : >"$T_DIR/c/ranges.txt"
	same "copy operand" "$(complete_line "blkcopy copy $T_DIR/c/sr")" "$T_DIR/c/src.img" &&
		same "--ranges-from FILE" "$(complete_line "blkcopy copy --ranges-from $T_DIR/c/ra")" "$T_DIR/c/ranges.txt" &&
		same "--journal FILE" "$(complete_line "blkcopy copy --journal $T_DIR/c/ra")" "$T_DIR/c/ranges.txt" &&
		same "limits operand" "$(complete_line "blkcopy limits $T_DIR/c/s")" "$T_DIR/c/src.img" &&
		same "journal operand" "$(complete_line "blkcopy journal $T_DIR/c/r")" "$T_DIR/c/ranges.txt"
}

run_all() {
	t_case "subcommands$1" case_subcommands
	t_case "options-match-help$1" case_options
	t_case "option-values$1" case_values
	t_case "files$1" case_files
}

run_all ""
if [[ -r /usr/share/bash-completion/bash_completion ]]; then
	# shellcheck disable=SC1091
	. /usr/share/bash-completion/bash_completion
	. "$COMPLETION"
	run_all "-bash-completion"
fi
t_finish
