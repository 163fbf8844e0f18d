#!/bin/sh
# phivk convert and llama2.c models from the command line: what a user types and sees.
# usage: test_convert_cli.sh PHIVK MAKE_CHECKPOINT
phivk=$1
make_checkpoint=$2
. "$(dirname "$0")/../apps/expect.sh"

"$make_checkpoint" "$dir" || { echo "cannot make the checkpoints"; exit 1; }

expect convert_folder_exits_0 0 "$phivk" convert "$dir/phi3" -o "$dir/phi3.gguf" --type q8_0
check convert_reports_tensor_progress grep -q "converting tensor 1 of" "$dir/err"
check convert_reports_completion grep -q "converted 15 tensors" "$dir/err"
expect converted_file_describes_itself 0 "$phivk" info "$dir/phi3.gguf"
check converted_file_is_phi3_q8_0 grep -q "q8_0" "$dir/out"
expect converted_folder_runs 0 "$phivk" run "$dir/phi3.gguf" -p "hello there" -n 4 --temp 0
check converted_folder_prints_text test -s "$dir/out"

expect convert_llama2c_exits_0 0 "$phivk" convert "$dir/stories.bin" --tokenizer "$dir/tokenizer.bin" -o "$dir/stories.gguf" --type f32
expect run_converted_llama2c 0 "$phivk" run "$dir/stories.gguf" -p "hello there" -n 4 --temp 0
cp "$dir/out" "$dir/from_gguf"
expect run_llama2c_bin_directly 0 "$phivk" run "$dir/stories.bin" --tokenizer "$dir/tokenizer.bin" -p "hello there" -n 4 --temp 0
check llama2c_bin_greedy_text_equals_the_converted_files cmp -s "$dir/out" "$dir/from_gguf"
expect eval_llama2c_bin_directly 0 "$phivk" eval "$dir/stories.bin" --tokenizer "$dir/tokenizer.bin" --ids "1 20 30 40"
check eval_llama2c_prints_perplexity grep -q "perplexity" "$dir/out"

expect convert_without_output_is_usage_error 2 "$phivk" convert "$dir/phi3"
expect convert_unknown_type_fails 1 "$phivk" convert "$dir/phi3" -o "$dir/x.gguf" --type q3_k
check convert_unknown_type_lists_types grep -q "q4_k_m" "$dir/err"
expect convert_missing_source_fails 1 "$phivk" convert "$dir/missing" -o "$dir/x.gguf"
check convert_missing_source_one_line_reason one_line_reason
check convert_failure_leaves_no_file test ! -e "$dir/x.gguf"
expect run_llama2c_with_wrong_tokenizer_fails 1 "$phivk" run "$dir/stories.bin" --tokenizer "$dir/phi3/config.json" -p hi
check run_llama2c_wrong_tokenizer_one_line_reason one_line_reason

finish
