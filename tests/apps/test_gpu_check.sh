#!/bin/sh
# scripts/gpu-check.sh without a GPU: it parses, refuses bad arguments with the
# usage and exit status 2, and its dry run lists every step (loader, release build,
# validated tests, the 150M bench, the decode profile, the summary) without running
# any or writing the summary. The full check runs on a machine with a GPU.
# usage: test_gpu_check.sh SCRIPT
script=$1
. "$(dirname "$0")/expect.sh"

expect script_parses 0 sh -n "$script"
expect unknown_option_is_refused 2 sh "$script" --fast
check unknown_option_is_named grep -q "unknown option --fast" "$dir/err"
check unknown_option_prints_usage grep -q "^usage: scripts/gpu-check.sh" "$dir/err"
expect build_without_a_directory_is_refused 2 sh "$script" --build
check build_without_a_directory_says_so grep -q -- "--build needs a directory" "$dir/err"
expect two_output_directories_are_refused 2 sh "$script" "$dir/a" "$dir/b"
expect help_exits_0 0 sh "$script" --help
check help_lists_quick grep -q -- "--quick" "$dir/out"

expect quick_dry_run_exits_0 0 sh "$script" --quick --dry-run "$dir/summary"
cat "$dir/out" "$dir/err" >"$dir/all"
check dry_run_checks_the_loader grep -q "^== Vulkan loader" "$dir/all"
check dry_run_builds_release grep -q "would run: 'meson' 'compile'" "$dir/all"
check dry_run_runs_the_tests_validated grep -q "^== correctness tests (PHIVK_VALIDATE=1)" "$dir/all"
check dry_run_benches_150m grep -q "'bench' '--json' '--shape' '150m'" "$dir/all"
check dry_run_profiles_one_decode_token grep -q "'PHIVK_PROFILE=1' .*'-n' '1'" "$dir/all"
check dry_run_writes_no_summary test ! -e "$dir/summary"

finish
