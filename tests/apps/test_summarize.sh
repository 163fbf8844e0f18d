#!/bin/sh
# phivk summarize end to end on a fixture model: one pass, the map-reduce path
# over a document several times the context, input that is not text, bad
# arguments. The fixture's weights are random, so the checks are on behaviour
# (exit status, progress, where text goes), never on what the summary says.
# Runs under the validation layer; any message fails.
# usage: test_summarize.sh PHIVK MAKE_FIXTURE
phivk=$1
make_fixture=$2
. "$(dirname "$0")/expect.sh"
export PHIVK_VALIDATE=1

"$make_fixture" "$dir/tiny.gguf" phi3 || { echo "cannot make the fixture"; exit 1; }
m=$dir/tiny.gguf

no_validation_messages() { ! grep -qi "validation" "$dir/err"; }
# The summary is the last thing on stdout and ends its line.
summary_line_ends() { [ -s "$dir/out" ] && [ "$(tail -c 1 "$dir/out" | od -An -c | tr -d ' ')" = '\n' ]; }

expect help_exits_0 0 "$phivk" summarize --help
check help_names_the_options grep -q -- "--words" "$dir/out"

printf '# Notes\n\nThe river rises in the mountains. It runs to the sea.\n\nBoats carry grain.\n' >"$dir/short.md"
expect short_document_exits_0 0 "$phivk" summarize "$m" "$dir/short.md" --words 10
check short_document_is_one_pass sh -c "! grep -q chunk \"$dir/err\""
check short_document_summary_on_stdout summary_line_ends
check short_document_reports_tokens grep -q "summarized in" "$dir/err"
check short_document_no_validation_messages no_validation_messages
cp "$dir/out" "$dir/first"
expect greedy_by_default_is_repeatable 0 "$phivk" summarize "$m" "$dir/short.md" --words 10
check greedy_same_summary cmp -s "$dir/out" "$dir/first"
expect document_from_stdin 0 sh -c "\"$phivk\" summarize \"$m\" - --words 10 <\"$dir/short.md\""
check stdin_same_summary cmp -s "$dir/out" "$dir/first"

# About 2.7 KB of sentences in paragraphs: some 2700 fixture tokens, ten times a
# context of 256.
awk 'BEGIN {
    split("the model reads a long document and writes summary context tokens shader of in river mountain", w, " ")
    x = 3
    for (p = 0; p < 12; p++) {
        for (s = 0; s < 4; s++) {
            x = (x * 1103 + 12345) % 65536; n = 6 + int(x / 8192)
            for (i = 0; i < n; i++) { x = (x * 1103 + 12345) % 65536; printf "%s%s", (i || s) ? " " : "", w[1 + int(x / 4096)] }
            printf "."
        }
        printf "\n\n"
    }
}' >"$dir/long.txt"
expect long_document_map_reduce_exits_0 0 "$phivk" summarize "$m" "$dir/long.txt" --ctx 256 --words 10 -v
check long_document_shows_chunk_progress grep -q "^chunk 2/" "$dir/err"
check long_document_ends_with_a_final_pass grep -q "^final summary of" "$dir/err"
check long_document_verbose_shows_chunk_summaries grep -q "summary of chunk 1/" "$dir/err"
check long_document_summary_on_stdout summary_line_ends
check long_document_no_validation_messages no_validation_messages
# Sampled chunk summaries are longer than greedy ones on this fixture (greedy
# often stops at once): together they overflow the context again, so the
# summaries themselves go through a second pass.
expect summaries_of_summaries_exits_0 0 "$phivk" summarize "$m" "$dir/long.txt" --ctx 256 --words 10 --temp 1 -s 2
check summaries_get_a_second_pass grep -q "^pass 2: chunk 1/" "$dir/err"
check summaries_of_summaries_on_stdout summary_line_ends

printf 'valid text, then \377 a bad byte\n' >"$dir/bad_utf8.txt"
expect invalid_utf8_fails 1 "$phivk" summarize "$m" "$dir/bad_utf8.txt"
check invalid_utf8_one_line_reason one_line_reason
check invalid_utf8_names_the_offset grep -q "UTF-8.*byte 17" "$dir/err"
printf 'text\000with a NUL\n' >"$dir/nul.txt"
expect nul_byte_fails 1 "$phivk" summarize "$m" "$dir/nul.txt"
check nul_byte_one_line_reason one_line_reason
check nul_byte_names_the_offset grep -q "NUL byte at byte 4" "$dir/err"
: >"$dir/empty.txt"
expect empty_file_fails 1 "$phivk" summarize "$m" "$dir/empty.txt"
check empty_file_says_so grep -q "empty" "$dir/err"
expect missing_file_fails 1 "$phivk" summarize "$m" "$dir/missing.txt"
check missing_file_one_line_reason one_line_reason
expect context_smaller_than_the_template_fails 1 "$phivk" summarize "$m" "$dir/short.md" --ctx 32
check context_too_small_says_what_to_do grep -q "larger --ctx" "$dir/err"

expect no_file_is_usage_error 2 "$phivk" summarize "$m"
expect bad_words_is_usage_error 2 "$phivk" summarize "$m" "$dir/short.md" --words many
expect bad_ctx_is_usage_error 2 "$phivk" summarize "$m" "$dir/short.md" --ctx 0
expect unknown_flag_is_usage_error 2 "$phivk" summarize "$m" "$dir/short.md" --frobnicate
expect extra_argument_is_usage_error 2 "$phivk" summarize "$m" "$dir/short.md" other.md

finish
