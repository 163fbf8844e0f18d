#!/bin/sh
# The phivk CLI end to end on a fixture model: what a user types and sees.
# usage: test_cli.sh PHIVK MAKE_FIXTURE
phivk=$1
make_fixture=$2
. "$(dirname "$0")/expect.sh"
# Every GPU run under the Khronos validation layer: expect fails a case that prints
# a validation message.
export PHIVK_VALIDATE=1

"$make_fixture" "$dir/tiny.gguf" phi3 || { echo "cannot make the fixture"; exit 1; }
printf 'not a gguf file at all\n' >"$dir/notgguf.gguf"

expect run_prints_text_and_exits_0 0 "$phivk" run "$dir/tiny.gguf" -p "hello there" -n 12 --temp 0
check run_streams_some_text test -s "$dir/out"
check run_reports_speed_on_stderr grep -q "tokens/s" "$dir/err"
cp "$dir/out" "$dir/greedy1"
expect run_greedy_is_repeatable 0 "$phivk" run -m "$dir/tiny.gguf" -p "hello there" -n 12 --temp 0
check run_greedy_same_text cmp -s "$dir/out" "$dir/greedy1"
expect run_seeded_sampling 0 "$phivk" run "$dir/tiny.gguf" -p "abc" -n 8 --temp 0.9 --top-k 20 --top-p 0.9 --min-p 0.01 --repeat-penalty 1.1 -s 42
expect run_without_prompt_is_usage_error 2 "$phivk" run "$dir/tiny.gguf"
expect run_with_bad_flag_value_is_usage_error 2 "$phivk" run "$dir/tiny.gguf" -p x --temp hot
expect run_missing_file_fails 1 "$phivk" run "$dir/missing.gguf" -p hi
check run_missing_file_one_line_reason one_line_reason
expect run_non_gguf_fails 1 "$phivk" run "$dir/notgguf.gguf" -p hi
check run_non_gguf_one_line_reason one_line_reason
long=$(awk 'BEGIN { for (i = 0; i < 400; i++) printf "word%d ", i }')
expect run_too_long_prompt_fails 1 "$phivk" run "$dir/tiny.gguf" -c 64 -p "$long"
check run_too_long_prompt_says_numbers grep -q "context holds 64" "$dir/err"

expect eval_ids_reports_perplexity 0 "$phivk" eval "$dir/tiny.gguf" --ids "1 20 30 40 50" --logits "$dir/l.bin"
check eval_prints_perplexity grep -q "perplexity" "$dir/out"
check eval_logits_file_is_positions_x_vocab test "$(stat -c %s "$dir/l.bin")" -eq $((5 * 400 * 4))
expect eval_bad_id_fails 1 "$phivk" eval "$dir/tiny.gguf" --ids "1 999999"
expect eval_needs_one_input 2 "$phivk" eval "$dir/tiny.gguf"

printf 'hello\n/system be brief\nhi again\n/reset\nbye\n/quit\n' >"$dir/chat_in"
expect chat_scripted_session_exits_0 0 sh -c "\"$phivk\" chat \"$dir/tiny.gguf\" -n 6 --temp 0 <\"$dir/chat_in\""

# On a CPU implementation of Vulkan (lavapipe) a model command says so once on stderr
# (the speed is the CPU's; a GPU driver would be used); never on stdout, so --json
# stays one JSON document; other commands and GPUs say nothing of it.
cpu_note='is a CPU implementation of Vulkan'
if "$phivk" devices | grep "phivk's default" | grep -q '(cpu,'; then notes=1; else notes=0; fi
note_count() { grep -c "$cpu_note" "$dir/$1"; }
expect run_on_a_cpu_device 0 "$phivk" run "$dir/tiny.gguf" -p "hi" -n 2 --temp 0
check run_says_cpu_device_once_on_stderr test "$(note_count err)" -eq $notes
check run_keeps_the_cpu_note_off_stdout test "$(note_count out)" -eq 0
expect bench_json_on_a_cpu_device 0 "$phivk" bench --json --shape tiny --type f16 -p 8 -n 4 -r 2 --copy-mib 1
check bench_says_cpu_device_once_on_stderr test "$(note_count err)" -eq $notes
check bench_json_is_one_json_document python3 -c 'import json, sys; json.load(open(sys.argv[1]))' "$dir/out"
expect devices_lists_without_the_note 0 "$phivk" devices
check devices_has_no_cpu_note test "$(note_count err)" -eq 0
[ $notes -eq 1 ] || echo "skip cpu_note_once: the default device is a GPU (checked that no note appears)"

expect unknown_command_is_usage_error 2 "$phivk" frobnicate

finish
