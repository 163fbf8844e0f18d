#!/bin/sh
# phivk bench end to end: synthetic models built in memory and a fixture file, the
# table and the JSON, bad arguments. Speeds are only checked to be positive: no
# timing assertions. Runs under the validation layer; any message fails.
# usage: test_bench.sh PHIVK MAKE_FIXTURE
phivk=$1
make_fixture=$2
. "$(dirname "$0")/expect.sh"
export PHIVK_VALIDATE=1

no_validation_messages() { ! grep -q "validation" "$dir/err"; }

# The JSON records: one per test, llama-bench's fields, positive speeds, decode's
# weight bandwidth and its fraction of the copy bandwidth.
json_ok() {
    python3 - "$dir/out" "$@" <<'EOF'
import json, sys
recs = json.load(open(sys.argv[1]))
want_tests, reps, model_type = sys.argv[2].split(","), int(sys.argv[3]), sys.argv[4]
assert [r["test"] for r in recs] == want_tests, [r["test"] for r in recs]
for r in recs:
    for k in ("model_name", "model_type", "device", "model_size", "model_n_params", "n_prompt",
              "n_gen", "avg_ts", "stddev_ts", "avg_ns", "samples_ts", "samples_ns", "copy_gbps", "kernels"):
        assert k in r, k
    assert r["kernels"].startswith(model_type + " f32 x "), r["kernels"]   # plain weights read f32
    assert r["model_type"] == model_type, r["model_type"]
    assert r["avg_ts"] > 0 and r["stddev_ts"] >= 0 and r["copy_gbps"] > 0 and r["read_gbps"] > 0, r
    assert r["model_size"] > 0 and r["model_n_params"] > 0, r
    assert len(r["samples_ts"]) == reps and all(t > 0 for t in r["samples_ts"]), r
    name, _, seqs = r["test"][2:].partition(" x")
    assert r["n_prompt"] + r["n_gen"] == int(name), r
    assert r["n_parallel"] == (int(seqs) if seqs else 1), r
    if r["n_gen"]:
        assert r["weights_gbps"] > 0 and 0 < r["copy_fraction"], r
        # decode's roofline: weights plus the cache it reads (tg from an empty cache
        # reads (n_gen + 1) / 2 positions on average), over the read kernel's bandwidth
        assert r["token_kv_bytes"] > 0 and r["decode_gbps"] > r["weights_gbps"], r
        assert abs(r["read_fraction"] - r["decode_gbps"] / r["read_gbps"]) < 1e-9, r
        # per decode token: a layer is several dispatches, a barrier orders at least the
        # result for the host, and recording takes some host time but less than the token
        assert r["token_dispatches"] >= 4 and r["token_barriers"] >= 1, r
        assert r["token_host_ms"] > 0 and 0 < r["token_host_fraction"] < 1, r
EOF
}

expect help_exits_0 0 "$phivk" bench --help
check help_lists_options_and_shapes grep -q -- "--shape.*phi3-mini" "$dir/out"

expect tiny_f16_json_exits_0 0 "$phivk" bench --shape tiny --type f16 -p 16 -n 8 -r 2 --json --copy-mib 16
check tiny_f16_json_has_pp_and_tg_records json_ok pp16,tg8 2 f16
check tiny_f16_json_no_validation_messages no_validation_messages

expect tiny_table_exits_0 0 "$phivk" bench --shape tiny --type bf16 -p 8 -n 4 -r 1 --copy-mib 16
check table_has_header grep -q "^| model .*| test .*| t/s .*| decode GB/s .*| of read bw" "$dir/out"
check table_has_pp_row grep -q "| pp8 .*±" "$dir/out"
check table_has_tg_row_with_fraction grep -q "| tg4 .*±.*%" "$dir/out"
check table_names_read_and_copy_bandwidth grep -q "^read bandwidth of .*GB/s .*copy bandwidth: .*GB/s" "$dir/out"
check table_names_the_matrix_kernels grep -q "^matrix kernels: bf16 f32 x [0-9]* rows" "$dir/out"
check table_has_per_token_counters grep -q "^tg4 per decode token: [0-9]* dispatches, [0-9]* barriers, host [0-9.]* ms .*% of its" "$dir/out"
check table_no_validation_messages no_validation_messages

expect only_tg_when_p_is_0 0 "$phivk" bench --shape tiny --type f32 -p 0 -n 4 -r 1 --json --copy-mib 16
check only_tg_record json_ok tg4 1 f32

# --parallel: one tg row per count of sequences decoding together, aggregate tokens/s.
expect parallel_json_exits_0 0 "$phivk" bench --shape tiny --type f16 -p 0 -n 4 -r 2 --parallel 1,3,8 --json --copy-mib 16
check parallel_json_has_a_record_per_count json_ok "tg4 x1,tg4 x3,tg4 x8" 2 f16
check parallel_json_no_validation_messages no_validation_messages
# after a pp test that filled the context (-p 64: a context of 64), the sequences start empty
expect parallel_after_full_pp_exits_0 0 "$phivk" bench --shape tiny --type f16 -p 64 -n 4 -r 1 --parallel 1,2 --json --copy-mib 16
check parallel_after_full_pp_has_every_record json_ok "pp64,tg4 x1,tg4 x2" 1 f16
expect parallel_table_exits_0 0 "$phivk" bench --shape tiny --type f16 -p 8 -n 4 -r 1 --parallel 2 --copy-mib 16
check parallel_table_has_pp_and_the_parallel_row grep -q "| tg4 x2 .*±.*%" "$dir/out"
# The repetitions interleave: round r runs every test once, so a slow spell of a
# shared machine falls on all the counts alike (their ratio is what --parallel is for).
expect parallel_table_two_reps_exits_0 0 "$phivk" bench --shape tiny --type f16 -p 4 -n 4 -r 2 --parallel 1,3 --copy-mib 16
check parallel_repetitions_run_in_rounds sh -c '[ "$(grep -oE "^(pp4|tg4 x[0-9]+) [0-9]/2" "$1" | tr "\n" ,)" = \
    "pp4 1/2,tg4 x1 1/2,tg4 x3 1/2,pp4 2/2,tg4 x1 2/2,tg4 x3 2/2," ]' _ "$dir/err"
expect parallel_zero_is_usage_error 2 "$phivk" bench --shape tiny --parallel 0
expect parallel_garbage_is_usage_error 2 "$phivk" bench --shape tiny --parallel 1,x
expect parallel_past_the_batch_is_usage_error 2 "$phivk" bench --shape tiny --parallel 8 -b 4
check parallel_past_the_batch_says_why grep -q "exceeds the batch size 4" "$dir/err"
expect parallel_without_tg_is_usage_error 2 "$phivk" bench --shape tiny --parallel 2 -n 0

expect bad_shape_is_usage_error 2 "$phivk" bench --shape phi9 --type f16
check bad_shape_lists_shapes grep -q "unknown model shape 'phi9' (known: tiny, 150m, phi3-mini" "$dir/err"
expect bad_type_is_usage_error 2 "$phivk" bench --shape tiny --type q9_9
check bad_type_lists_types grep -q "unknown weight type 'q9_9' (known: q4_k_m, .*f16" "$dir/err"
expect zero_repetitions_is_usage_error 2 "$phivk" bench --shape tiny -r 0
expect nothing_to_measure_is_usage_error 2 "$phivk" bench --shape tiny -p 0 -n 0
expect unknown_option_is_usage_error 2 "$phivk" bench --frobnicate 3

# A million decode tokens take far longer than a second on any device.
expect too_slow_run_is_refused 1 "$phivk" bench --shape tiny --type f16 -p 0 -n 1000 -r 1000 --max-seconds 1 --copy-mib 16
check too_slow_says_why_and_what_to_do grep -q "would take about .*--max-seconds is 1; try " "$dir/err"

"$make_fixture" "$dir/tiny.gguf" phi2 || { echo "cannot make the fixture"; exit 1; }
expect model_file_json_exits_0 0 "$phivk" bench -m "$dir/tiny.gguf" -p 16 -n 8 -r 2 --json --copy-mib 16
check model_file_json_records json_ok pp16,tg8 2 f16
expect missing_model_file_fails 1 "$phivk" bench -m "$dir/missing.gguf" -p 4 -n 2 -r 1 --copy-mib 16
check missing_model_file_one_line_reason one_line_reason

finish
