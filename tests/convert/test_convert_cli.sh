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

# GPT-Neo (TinyStories): the folder without tokenizer files takes one from elsewhere
mkdir "$dir/neo-tok" && mv "$dir/tinystories/tokenizer.json" "$dir/tinystories/tokenizer_config.json" "$dir/neo-tok/"
expect convert_gptneo_without_tokenizer_fails 1 "$phivk" convert "$dir/tinystories" -o "$dir/neo.gguf"
check convert_gptneo_without_tokenizer_one_line_reason one_line_reason
expect convert_gptneo_with_tokenizer_folder 0 "$phivk" convert "$dir/tinystories" --tokenizer "$dir/neo-tok" -o "$dir/neo.gguf" --type q8_0
expect info_reports_gptneo 0 "$phivk" info "$dir/neo.gguf"
check info_names_the_gptneo_architecture grep -q "architecture  gptneo" "$dir/out"
check info_reports_learned_positions grep -q "positions *learned" "$dir/out"
check info_reports_local_layers grep -q "2 of 2 layers local\|1 of 2 layers local" "$dir/out"
expect run_gptneo_plain_completion 0 "$phivk" run "$dir/neo.gguf" -p "once upon a time" -n 6 --temp 0
check run_gptneo_prints_text test -s "$dir/out"
expect eval_gptneo 0 "$phivk" eval "$dir/neo.gguf" --ids "10 20 30 40 50 60 70 80 90 100"
check eval_gptneo_prints_perplexity grep -q "perplexity" "$dir/out"
# no chat format: the turns are plain text to continue; summarize cues "Summary:"
printf 'once upon a time\n/reset\nthe end\n/quit\n' >"$dir/chat_in"
expect chat_gptneo_plain_text_turns 0 sh -c "\"$phivk\" chat \"$dir/neo.gguf\" -n 4 --temp 0 <\"$dir/chat_in\""
printf 'The river rises in the mountains. It runs to the sea.\n' >"$dir/doc.txt"
expect summarize_gptneo 0 "$phivk" summarize "$dir/neo.gguf" "$dir/doc.txt" --words 5
check summarize_gptneo_writes_a_summary test -s "$dir/out"
expect chat_llama2c_bin_directly 0 sh -c "\"$phivk\" chat \"$dir/stories.bin\" --tokenizer \"$dir/tokenizer.bin\" -n 4 --temp 0 <\"$dir/chat_in\""

expect convert_without_output_is_usage_error 2 "$phivk" convert "$dir/phi3"
expect convert_unknown_type_fails 1 "$phivk" convert "$dir/phi3" -o "$dir/x.gguf" --type q3_k
check convert_unknown_type_lists_types grep -q "q4_k_m" "$dir/err"
expect convert_missing_source_fails 1 "$phivk" convert "$dir/missing" -o "$dir/x.gguf"
check convert_missing_source_one_line_reason one_line_reason
check convert_failure_leaves_no_file test ! -e "$dir/x.gguf"
expect run_llama2c_with_wrong_tokenizer_fails 1 "$phivk" run "$dir/stories.bin" --tokenizer "$dir/phi3/config.json" -p hi
check run_llama2c_wrong_tokenizer_one_line_reason one_line_reason

finish
