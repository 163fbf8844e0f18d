"""phivk serve's answers under batching and to bad requests:
- each request's greedy output is the same alone and decoded together with others;
- every bad request gets its status and OpenAI's error shape, and the server keeps
  serving; the API key is asked only when --api-key is set; a full queue is 503
  with Retry-After.
usage: test_api.py PHIVK MAKE_FIXTURE"""
import http.client
import json
import socket
import sys
import threading
import time

from harness import Suite, answer_text, chat, finish_reason, post, request, stream, streamed_text

phivk, make_fixture = sys.argv[1], sys.argv[2]
t = Suite()
model = t.fixture(make_fixture)

# ---------------------------------------------------------------- batching
PROMPTS = ["hello there", "the quick brown fox", "what is a vulkan queue", "tell me a story",
           "zebra", "one two three four five six", "where are the keys", "colour of the sky"]
srv = t.server(phivk, model, "--parallel", "4", "-c", "256")
alone = {}
for p in PROMPTS:
    st, _, body = post(srv.port, "/v1/chat/completions", chat(p, max_tokens=20))
    alone[p] = answer_text(body) if st == 200 else None
t.check("alone_every_request_answers", all(v is not None for v in alone.values()), alone)
t.check("alone_prompts_give_different_answers", len(set(alone.values())) == len(PROMPTS), alone)

together = {}


def run(p, streamed):
    if streamed:
        st, events, _, ok = stream(srv.port, "/v1/chat/completions", chat(p, max_tokens=20))
        together[(p, streamed)] = streamed_text(events) if st == 200 and ok else None
    else:
        st, _, body = post(srv.port, "/v1/chat/completions", chat(p, max_tokens=20))
        together[(p, streamed)] = answer_text(body) if st == 200 else None


threads = [threading.Thread(target=run, args=(p, s)) for p in PROMPTS for s in (False, True)]
for th in threads:
    th.start()
for th in threads:
    th.join(120)
diff = {k: (v, alone[k[0]]) for k, v in together.items() if v != alone[k[0]]}
t.check("together_16_requests_all_answer", len(together) == 16 and None not in together.values(), together)
t.check("together_greedy_output_equals_alone", not diff, diff)

# a slot keeps its cache: the same conversation one turn longer reuses the first
# turn's tokens (the random model's answer is bytes that tokenize differently when
# sent back, so the turn sent back is a fixed text)
conv = [{"role": "system", "content": "you are a test " * 8}, {"role": "user", "content": "first turn"}]
st, _, first = post(srv.port, "/v1/chat/completions", {"messages": conv, "max_tokens": 4, "temperature": 0})
conv += [{"role": "assistant", "content": "an answer"}, {"role": "user", "content": "and then?"}]
st, _, body = post(srv.port, "/v1/chat/completions", {"messages": conv, "max_tokens": 4, "temperature": 0})
t.check("next_turn_reuses_the_cached_prefix",
        st == 200 and body["usage"]["prompt_tokens_details"]["cached_tokens"] >= first["usage"]["prompt_tokens"] - 2,
        (first, body))

# stop strings: the answer ends before the first occurrence, finish_reason stop
full = alone["the quick brown fox"]
cut = next((i for i in range(2, len(full)) if full[i].isalnum() and full[i:i + 2] not in full[:i]), None)
if cut is not None:
    st, _, body = post(srv.port, "/v1/chat/completions", chat("the quick brown fox", max_tokens=20, stop=[full[cut:cut + 2]]))
    t.check("stop_string_cuts_the_answer", st == 200 and answer_text(body) == full[:cut] and
            body["choices"][0]["finish_reason"] == "stop", (full, cut, body))
    st, events, _, ok = stream(srv.port, "/v1/chat/completions", chat("the quick brown fox", max_tokens=20, stop=full[cut:cut + 2]))
    t.check("stop_string_cuts_the_stream", ok and streamed_text(events) == full[:cut] and finish_reason(events) == "stop",
            (full, cut, events[-3:]))
else:
    print("skip stop_string: the answer has no alphanumeric pair to stop at")

# seeded sampling repeats itself
a = post(srv.port, "/v1/completions", {"prompt": "abc", "max_tokens": 10, "temperature": 0.9, "top_p": 0.9, "seed": 7})
b = post(srv.port, "/v1/completions", {"prompt": "abc", "max_tokens": 10, "temperature": 0.9, "top_p": 0.9, "seed": 7})
t.check("seeded_sampling_repeats", a[0] == 200 and answer_text(a[2]) == answer_text(b[2]), (a, b))

# ------------------------------------------------------------ bad requests


def is_error(res, status, code=None, param=None):
    st, _, body = res
    if st != status or not isinstance(body, dict) or set(body) != {"error"}:
        return False
    e = body["error"]
    return (isinstance(e.get("message"), str) and e["message"] and isinstance(e.get("type"), str)
            and "param" in e and "code" in e and (code is None or e["code"] == code)
            and (param is None or e["param"] == param))


C = "/v1/chat/completions"
cases = [
    ("malformed_json_is_400", post(srv.port, C, '{"messages": [', ), 400, "invalid_json", None),
    ("body_not_an_object_is_400", post(srv.port, C, "[1, 2]"), 400, None, None),
    ("messages_missing_is_400", post(srv.port, C, {"model": "tiny"}), 400, None, "messages"),
    ("messages_wrong_type_is_400", post(srv.port, C, {"messages": "hi"}), 400, None, "messages"),
    ("role_unknown_is_400", post(srv.port, C, {"messages": [{"role": "wizard", "content": "x"}]}), 400, None, "messages"),
    ("temperature_wrong_type_is_400", post(srv.port, C, chat("x", temperature="hot")), 400, None, "temperature"),
    ("temperature_out_of_range_is_400", post(srv.port, C, chat("x", temperature=7)), 400, None, "temperature"),
    ("top_p_zero_is_400", post(srv.port, C, chat("x", top_p=0)), 400, None, "top_p"),
    ("max_tokens_not_integer_is_400", post(srv.port, C, chat("x", max_tokens=2.5)), 400, None, "max_tokens"),
    ("stream_wrong_type_is_400", post(srv.port, C, chat("x", stream="yes")), 400, None, "stream"),
    ("stop_wrong_type_is_400", post(srv.port, C, chat("x", stop=[1])), 400, None, "stop"),
    ("presence_penalty_refused_by_name", post(srv.port, C, chat("x", presence_penalty=0.5)), 400,
     "unsupported_parameter", "presence_penalty"),
    ("frequency_penalty_refused_by_name", post(srv.port, C, chat("x", frequency_penalty=1)), 400,
     "unsupported_parameter", "frequency_penalty"),
    ("n_above_1_refused", post(srv.port, C, chat("x", n=2)), 400, "unsupported_parameter", "n"),
    ("unknown_model_is_404", post(srv.port, C, dict(chat("x"), model="gpt-9")), 404, "model_not_found", "model"),
    ("prompt_longer_than_context_is_400",
     post(srv.port, "/v1/completions", {"prompt": "word " * 400}), 400, "context_length_exceeded", "prompt"),
    ("unknown_endpoint_is_404", request(srv.port, "GET", "/v1/nothing"), 404, None, None),
    ("wrong_method_is_405", request(srv.port, "GET", C), 405, None, None),
]
for name, res, status, code, param in cases:
    t.check(name, is_error(res, status, code, param), res)


def declared_body(port, size):
    """Headers that declare a body over the limit: the answer comes before the body
    is sent (a client that sends it anyway finds the connection closed)."""
    s = socket.create_connection(("127.0.0.1", port), timeout=60)
    s.sendall(b"POST %s HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\nContent-Length: %d\r\n\r\n"
              % (C.encode(), size))
    r = http.client.HTTPResponse(s)
    r.begin()
    body = json.loads(r.read())
    s.close()
    return r.status, {}, body


def chunked_body(port, size):
    """A body over the limit sent chunked: no Content-Length to refuse it by."""
    c = http.client.HTTPConnection("127.0.0.1", port, timeout=60)
    c.request("POST", C, body=iter([b"x" * 65536] * (size // 65536)), encode_chunked=True,
              headers={"Transfer-Encoding": "chunked"})
    r = c.getresponse()
    body = json.loads(r.read())
    c.close()
    return r.status, {}, body


t.check("declared_body_over_limit_is_413", is_error(declared_body(srv.port, 2 << 20), 413, "request_too_large"))
t.check("chunked_body_over_limit_is_413", is_error(chunked_body(srv.port, 2 << 20), 413, "request_too_large"))
# half a request, then the connection dropped: nothing to answer, nothing breaks
s = socket.create_connection(("127.0.0.1", srv.port))
s.sendall(b"POST /v1/chat/completions HTTP/1.1\r\nHost: x\r\nContent-Length: 100\r\n\r\n{\"messages\"")
s.close()
st, _, body = post(srv.port, C, chat("hello there", max_tokens=20))
t.check("server_keeps_serving_after_bad_requests", st == 200 and answer_text(body) == alone["hello there"], body)
st, _, body = request(srv.port, "GET", "/metrics")
t.check("metrics_count_the_errors", st == 200 and 'phivk_requests_total{status="400"} 15' in body and
        'phivk_requests_total{status="413"} 2' in body, body)
srv.stop()

# ------------------------------------------------------------- API key
srv = t.server(phivk, model, "--parallel", "1", "--api-key", "s3cret", "-c", "128")
t.check("api_key_missing_is_401", is_error(post(srv.port, C, chat("x", max_tokens=2)), 401, "invalid_api_key"))
t.check("api_key_wrong_is_401",
        is_error(post(srv.port, C, chat("x", max_tokens=2), {"Authorization": "Bearer nope"}), 401, "invalid_api_key"))
st, _, _ = post(srv.port, C, chat("x", max_tokens=2), {"Authorization": "Bearer s3cret"})
t.check("api_key_right_is_200", st == 200)
t.check("api_key_not_asked_of_health", request(srv.port, "GET", "/health")[0] == 200)
srv.stop()
st, _, _ = post(t.server(phivk, model, "--parallel", "1", "-c", "128").port, C,
                chat("x", max_tokens=2), {"Authorization": "Bearer anything"})
t.check("without_api_key_any_or_none_is_accepted", st == 200)
t.servers[-1].stop()

# ---------------------------------------------------------- queue full
srv = t.server(phivk, model, "--parallel", "1", "--queue", "1", "-c", "256")
long_req = {"prompt": "a long answer", "max_tokens": 200, "temperature": 0}
holder = socket.create_connection(("127.0.0.1", srv.port))
body = json.dumps(dict(long_req, stream=True)).encode()
holder.sendall(b"POST /v1/completions HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\nContent-Length: %d\r\n\r\n"
               % len(body) + body)
holder.recv(1)  # the slot is taken once the answer begins
queued = threading.Thread(target=lambda: together.__setitem__("queued", post(srv.port, "/v1/completions",
                                                                             dict(long_req, max_tokens=4))))
queued.start()
deadline = time.time() + 30
while time.time() < deadline and request(srv.port, "GET", "/health")[2].get("queue") != 1:
    time.sleep(0.05)
st, hdrs, body = post(srv.port, "/v1/completions", dict(long_req, max_tokens=4))
t.check("queue_full_is_503", is_error((st, hdrs, body), 503, "queue_full"), (st, body))
t.check("queue_full_says_retry_after", hdrs.get("retry-after") == "1", hdrs)
holder.close()  # the client leaves: its slot goes to the queued request
queued.join(60)
t.check("queued_request_answers_after_the_holder_left", together.get("queued", (0,))[0] == 200, together.get("queued"))

srv.stop()

# a client that leaves during a long prefill stops it (phivk_cancel between the
# prefill's chunks): the same prompt again finds only part of it in the slot's cache
srv = t.server(phivk, model, "--parallel", "1", "-c", "4096")
long_prompt = {"prompt": " ".join("w%d" % i for i in range(520)), "max_tokens": 1, "temperature": 0}
leaver = socket.create_connection(("127.0.0.1", srv.port))
body = json.dumps(dict(long_prompt, stream=True)).encode()
leaver.sendall(b"POST /v1/completions HTTP/1.1\r\nHost: x\r\nContent-Length: %d\r\n\r\n" % len(body) + body)
deadline = time.time() + 30
while time.time() < deadline and not request(srv.port, "GET", "/health")[2]["slots_processing"]:
    time.sleep(0.01)
leaver.close()
st, _, body = post(srv.port, "/v1/completions", long_prompt)
n, cached = body["usage"]["prompt_tokens"], body["usage"]["prompt_tokens_details"]["cached_tokens"]
if st == 200 and cached == n - 1:
    print("skip prefill_cancelled_by_a_leaving_client: the prefill of %d tokens ended before the client left" % n)
else:
    t.check("prefill_cancelled_by_a_leaving_client", st == 200 and n > 2000 and cached < n - 1, (n, cached, body))
    print("figure: a %d-token prefill stopped with %d tokens in the cache when its client left" % (n, cached))
srv.stop()

# a lost device (injected: the 12th submit, after the load, the start probe and
# two answers): that answer is a 500, every later request a 503 naming the device
# (a load balancer retries it elsewhere), /health a 503 (its probe takes the server
# out); the process stays up and exits 0 on SIGTERM
srv = t.server(phivk, model, "--parallel", "1", "-c", "128", env={"PHIVK_FAULT": "device_lost:12"})
answers = [post(srv.port, "/v1/completions", {"prompt": "hi", "max_tokens": 4}) for _ in range(5)]
statuses = [a[0] for a in answers]
first_bad = next((i for i, st in enumerate(statuses) if st != 200), None)
t.check("device_lost_answer_is_500_then_503", first_bad is not None and is_error(answers[first_bad], 500) and
        all(is_error(a, 503, "device_lost") for a in answers[first_bad + 1:]) and first_bad < 4, statuses)
t.check("device_lost_health_is_503", is_error(request(srv.port, "GET", "/health"), 503, "device_lost"))
t.check("device_lost_server_stays_up_and_exits_0", request(srv.port, "GET", "/metrics")[0] == 200 and srv.stop() == 0)

srv = t.server(phivk, model, "--parallel", "1", "--queue", "1", "-c", "256")
# SIGTERM while an answer streams: it ends with an error event and [DONE], the
# server exits 0
c = http.client.HTTPConnection("127.0.0.1", srv.port, timeout=60)
c.request("POST", "/v1/completions", body=json.dumps(dict(long_req, stream=True)))
r = c.getresponse()
lines = [r.readline() for _ in range(4)]  # two events and their blank lines
srv.proc.terminate()
rest = r.read().decode().split("\n\n")
events = [e for e in rest if e.startswith("data: ")]
t.check("sigterm_ends_a_stream_with_an_error_event", len(events) >= 2 and events[-1] == "data: [DONE]" and
        '"error"' in events[-2] and "shutting down" in events[-2], events[-3:])
t.check("sigterm_exits_0", srv.proc.wait(30) == 0)
t.finish()
