#!/bin/sh
# Hostile model files at the command line: escape sequences in a file's strings
# (names, architecture, tensor names, vocabulary pieces) reach the terminal as
# visible \x1b text, never as the byte itself; a model whose
# logits are all NaN ends generation with an error that says so.
# usage: test_hostile.sh PHIVK MAKE_HOSTILE
phivk=$1
make_hostile=$2
. "$(dirname "$0")/expect.sh"

"$make_hostile" "$dir" || { echo "cannot make the fixtures"; exit 1; }
esc=$(printf '\033')
no_esc() { ! LC_ALL=C grep -q "$esc" "$dir/out" "$dir/err"; }

expect info_on_escapes_succeeds 0 "$phivk" info "$dir/escapes.gguf"
check info_prints_no_escape_byte no_esc
check info_shows_the_architecture_visibly grep -qF 'phi3\x1b]0;owned\x07\x1b[2J' "$dir/out"
check info_shows_the_name_visibly grep -qF '\x1b]0;owned\x07\x1b[2Jname\xc2\x9b31m' "$dir/out"
check info_shows_the_tensor_name_visibly grep -qF 'blk.0.\x1b[31mred' "$dir/out"

expect tokenize_pieces_of_an_escape_token 0 "$phivk" tokenize "$dir/esc-vocab.gguf" --no-bos --pieces "$esc"
check tokenize_prints_no_escape_byte no_esc
check tokenize_shows_the_piece_visibly grep -qF '3	\x1b' "$dir/out"

expect run_on_unknown_escaped_arch_fails 1 "$phivk" run "$dir/escapes.gguf" -p hi
check run_error_has_no_escape_byte no_esc
check run_error_shows_the_arch_with_x1b grep -qF "architecture 'phi3\\x1b]0;owned\\x07\\x1b[2J' is not supported" "$dir/err"

expect run_with_nan_logits_fails 1 "$phivk" run "$dir/nan-logits.gguf" -p "hello" -n 4 --temp 0
check run_nan_error_says_nan grep -q "NaN" "$dir/err"
check run_nan_error_is_not_about_token_ids sh -c "! grep -q 'outside the vocabulary' '$dir/err'"

printf 'hello\n/quit\n' >"$dir/chat_in"
expect chat_with_nan_logits_reports_and_goes_on 0 sh -c "\"$phivk\" chat \"$dir/nan-logits.gguf\" -n 4 --temp 0 <\"$dir/chat_in\""
check chat_nan_error_says_nan grep -q "NaN" "$dir/err"
check chat_nan_error_is_not_about_token_ids sh -c "! grep -q 'outside the vocabulary' '$dir/err'"

finish
