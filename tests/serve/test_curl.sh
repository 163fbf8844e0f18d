#!/bin/sh
# phivk serve as curl sees it: health, models, chat (whole and streamed),
# completions and the Prometheus metrics, on 127.0.0.1 and a free port.
# usage: test_curl.sh PHIVK MAKE_FIXTURE
phivk=$1
make_fixture=$2
. "$(dirname "$0")/../apps/expect.sh"
export PHIVK_VALIDATE=1 PHIVK_TUNE=0
"$make_fixture" "$dir/tiny.gguf" phi3 || { echo "cannot make the fixture"; exit 1; }

. "$(dirname "$0")/serve_start.sh"
serve_start "$dir/tiny.gguf" --parallel 2
url=http://127.0.0.1:$port
# json FILE EXPR: a Python expression over the parsed JSON document j is true
json() { python3 -c 'import json, sys; j = json.load(open(sys.argv[1])); sys.exit(0 if eval(sys.argv[2]) else 1)' "$@"; }

expect health_answers_200 0 curl -sf "$url/health"
check health_says_ok json "$dir/out" 'j["status"] == "ok" and j["slots_idle"] == 2'

expect models_answers_200 0 curl -sf "$url/v1/models"
check models_lists_the_file_name json "$dir/out" '[m["id"] for m in j["data"]] == ["tiny"] and j["object"] == "list"'

expect model_answers_200 0 curl -sf "$url/v1/models/tiny"
check model_is_the_model json "$dir/out" 'j["id"] == "tiny" and j["object"] == "model"'
expect unknown_model_answers_404 22 curl -sf "$url/v1/models/gpt-9"

chat='{"model":"tiny","messages":[{"role":"user","content":"hello there"}],"max_tokens":12,"temperature":0}'
expect chat_answers_200 0 curl -sf "$url/v1/chat/completions" -H 'Content-Type: application/json' -d "$chat"
check chat_is_a_chat_completion json "$dir/out" \
  'j["object"] == "chat.completion" and j["choices"][0]["message"]["role"] == "assistant" and len(j["choices"][0]["message"]["content"]) > 0'
check chat_stops_at_max_tokens json "$dir/out" 'j["choices"][0]["finish_reason"] == "length" and j["usage"]["completion_tokens"] == 12'
check chat_usage_adds_up json "$dir/out" 'j["usage"]["total_tokens"] == j["usage"]["prompt_tokens"] + 12 and j["usage"]["prompt_tokens"] > 3'
cp "$dir/out" "$dir/chat.json"

stream=$(printf '%s' "$chat" | sed 's/}$/,"stream":true}/')
expect chat_stream_answers_200 0 curl -sfN "$url/v1/chat/completions" -d "$stream"
check chat_stream_ends_with_done test "$(grep -v '^$' "$dir/out" | tail -1)" = "data: [DONE]"
check chat_stream_lines_are_events_and_blanks sh -c "! grep -vqE '^(data: .*)?\$' '$dir/out'"
# the streamed deltas put together are the whole answer above (greedy, same prompt)
python3 - "$dir/out" "$dir/chat.json" >"$dir/joined" <<'PY'
import json, sys
events = [l[6:] for l in open(sys.argv[1]).read().splitlines() if l.startswith("data: ") and l != "data: [DONE]"]
chunks = [json.loads(e) for e in events]
assert all(c["object"] == "chat.completion.chunk" for c in chunks)
text = "".join(c["choices"][0]["delta"].get("content", "") for c in chunks if c["choices"])
whole = json.load(open(sys.argv[2]))["choices"][0]["message"]["content"]
print("same" if text == whole and chunks[-1]["choices"][0]["finish_reason"] == "length" else "differs")
PY
check chat_stream_joins_to_the_whole_answer grep -qx same "$dir/joined"

expect completion_answers_200 0 curl -sf "$url/v1/completions" -d '{"model":"tiny","prompt":"once upon a time","max_tokens":8,"temperature":0}'
check completion_is_a_text_completion json "$dir/out" \
  'j["object"] == "text_completion" and j["choices"][0]["finish_reason"] == "length" and j["usage"]["completion_tokens"] == 8'
expect completion_stream_answers_200 0 curl -sfN "$url/v1/completions" -d '{"prompt":"once upon a time","max_tokens":8,"temperature":0,"stream":true}'
check completion_stream_ends_with_done test "$(grep -v '^$' "$dir/out" | tail -1)" = "data: [DONE]"

expect bad_json_answers_400 22 curl -sf "$url/v1/completions" -d '{"prompt":'
expect metrics_answers_200 0 curl -sf "$url/metrics"
check metrics_count_requests_by_status grep -qE '^phivk_requests_total\{status="200"\} ([6-9]|[1-9][0-9])$' "$dir/out"
check metrics_count_the_400_and_404 sh -c "grep -qE '^phivk_requests_total\{status=\"400\"\} 1$' '$dir/out' && grep -qE '^phivk_requests_total\{status=\"404\"\} 1$' '$dir/out'"
check metrics_count_generated_tokens grep -qE '^phivk_generated_tokens_total (4[0-9]|[5-9][0-9]|[1-9][0-9][0-9])$' "$dir/out"
check metrics_have_a_time_to_first_token_histogram sh -c "grep -qE '^phivk_time_to_first_token_seconds_bucket\{le=\"\+Inf\"\} [4-9]$' '$dir/out' && grep -q '^phivk_time_to_first_token_seconds_count' '$dir/out'"
check metrics_have_queue_slots_and_rate sh -c "grep -q '^phivk_queue_depth 0' '$dir/out' && grep -q '^phivk_slots_total 2' '$dir/out' && grep -q '^phivk_tokens_per_second' '$dir/out'"

# the command line: slots that do not fit are refused with the numbers, bad values
# are usage errors, a host that is not this machine's is one line of reason
expect serve_refuses_slots_that_do_not_fit 1 "$phivk" serve "$dir/tiny.gguf" --port 0 --parallel 64 -c 4000000
check serve_refusal_says_slots_times_cache grep -q 'x 64 = .* GiB' "$dir/err"
expect serve_parallel_0_is_usage_error 2 "$phivk" serve "$dir/tiny.gguf" --parallel 0
expect serve_bad_port_is_usage_error 2 "$phivk" serve "$dir/tiny.gguf" --port http
expect serve_without_model_is_usage_error 2 "$phivk" serve --port 0
expect serve_port_in_use_fails 1 "$phivk" serve "$dir/tiny.gguf" --port "$port" -c 64
check serve_port_in_use_says_so grep -q "cannot listen on 127.0.0.1 port $port" "$dir/err"

kill $server
wait $server
check server_exits_0_on_sigterm test $? -eq 0
check server_log_has_no_validation_messages sh -c "! grep -qE '$validation_pattern' '$dir/server.log'"
finish
