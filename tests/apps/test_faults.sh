#!/bin/sh
# The CLI when the GPU fails, with faults injected by PHIVK_FAULT (runtime/pvk_fault.h):
# a lost device or a failed submit ends the generation with a message in words and a
# non-zero exit; `chat` prints the conversation so far, so nothing typed is lost.
# PHIVK_TUNE=0: the load's only submit is the warm-up (submit 1), the prompt is
# submit 2 and each generated token's step one more.
# usage: test_faults.sh PHIVK MAKE_FIXTURE
phivk=$1
make_fixture=$2
. "$(dirname "$0")/expect.sh"
export PHIVK_TUNE=0

"$make_fixture" "$dir/tiny.gguf" phi3 || { echo "cannot make the fixture"; exit 1; }
gen="$dir/tiny.gguf -p hello -n 12 --temp 0"

# Submit 6 is the 4th generated token's step: 4 tokens are out before it fails.
expect run_device_lost_exits_1 1 env PHIVK_FAULT=device_lost:6 "$phivk" run $gen
check run_device_lost_says_so grep -q "lost the device" "$dir/err"
check run_device_lost_names_the_injection grep -q "PHIVK_FAULT" "$dir/err"
check run_device_lost_keeps_what_was_generated test "$(tr -d '\n' <"$dir/out" | wc -c)" -gt 0
check run_device_lost_prints_no_speed_line sh -c "! grep -q tokens/s \"$dir/err\""

expect run_failed_submit_exits_1 1 env PHIVK_FAULT=submit:4 "$phivk" run $gen
check run_failed_submit_says_out_of_memory grep -q "out of memory" "$dir/err"

expect run_failed_load_exits_1 1 env PHIVK_FAULT=alloc:3 "$phivk" run $gen
check run_failed_load_says_which_allocation grep -q "cannot allocate.*allocation 3 failed" "$dir/err"

expect run_bad_fault_spec_exits_1 1 env PHIVK_FAULT=alloc:soon "$phivk" run $gen
check run_bad_fault_spec_is_named grep -q "PHIVK_FAULT: cannot read 'alloc:soon'" "$dir/err"

# The first answer (6 tokens at most) ends by submit 8; the second message's prompt
# is submit 9 or earlier, so submit 11 falls in the second answer or its prompt.
printf 'hello\nsecond question\nthird never answered\n' >"$dir/chat_in"
expect chat_device_lost_exits_1 1 sh -c "PHIVK_FAULT=device_lost:11 \"$phivk\" chat \"$dir/tiny.gguf\" -n 6 --temp 0 <\"$dir/chat_in\""
check chat_device_lost_says_so grep -q "lost the device" "$dir/err"
check chat_keeps_the_transcript grep -q "^\[user\] hello$" "$dir/err"
check chat_transcript_has_the_second_message grep -q "^\[user\] second question$" "$dir/err"
check chat_transcript_has_the_first_answer grep -q "^\[assistant\]" "$dir/err"
check chat_stops_reading_after_the_loss sh -c "! grep -q 'third never answered' \"$dir/err\""

finish
