"""Scale-out: two phivk serve processes behind nginx with deploy/nginx.conf (its
upstream addresses and listen address substituted, run unprivileged from a temp
folder). Requests are spread over both servers; one server killed mid-run: the
requests sent after that are all still answered (nginx retries them on the other).
Skipped when nginx is absent.
usage: test_nginx.py PHIVK MAKE_FIXTURE NGINX_CONF"""
import atexit
import os
import re
import shutil
import signal
import socket
import subprocess
import sys
import threading
import time

from harness import Suite, chat, post, request, stream, streamed_text

phivk, make_fixture, template = sys.argv[1], sys.argv[2], sys.argv[3]
nginx = shutil.which("nginx") or ("/usr/sbin/nginx" if os.access("/usr/sbin/nginx", os.X_OK) else None)
if not nginx:
    print("skip nginx_scale_out: nginx is not installed (Debian: nginx-light)")
    sys.exit(77)

t = Suite()
model = t.fixture(make_fixture)
a = t.server(phivk, model, "--parallel", "2", "-c", "256")
b = t.server(phivk, model, "--parallel", "2", "-c", "256")


def free_port():
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    port = s.getsockname()[1]
    s.close()
    return port


port = free_port()
conf = open(template).read()
conf, n_up = re.subn(r"server 127\.0\.0\.1:\d+ ", lambda m, ports=iter([a.port, b.port]): "server 127.0.0.1:%d " % next(ports), conf)
conf, n_listen = re.subn(r"listen 127\.0\.0\.1:\d+;", "listen 127.0.0.1:%d;" % port, conf)
conf = conf.replace("worker_processes auto;", "worker_processes 1;")
t.check("template_has_two_upstreams_and_a_listen", n_up == 2 and n_listen == 1, (n_up, n_listen))
prefix = os.path.join(t.dir, "nginx")
os.makedirs(prefix)
with open(os.path.join(prefix, "nginx.conf"), "w") as f:
    f.write(conf)
lb = subprocess.Popen([nginx, "-p", prefix, "-c", os.path.join(prefix, "nginx.conf"), "-e", "stderr"],
                      stdout=subprocess.DEVNULL, stderr=open(os.path.join(t.dir, "nginx.log"), "w"))
atexit.register(lambda: lb.poll() is None and lb.kill())
deadline = time.time() + 30
up = False
while time.time() < deadline and lb.poll() is None and not up:
    try:
        up = request(port, "GET", "/health", timeout=5)[0] == 200
    except OSError:
        time.sleep(0.1)
if not t.check("nginx_starts_and_proxies_health", up, open(os.path.join(t.dir, "nginx.log")).read()):
    lb.kill()
    t.finish()


def served(srv):
    m = re.search(r'phivk_requests_total\{status="200"\} (\d+)', request(srv.port, "GET", "/metrics")[2])
    return int(m.group(1)) if m else 0


base = (served(a), served(b))
results = []
lock = threading.Lock()


def client(k, count, kill_at=None):
    for i in range(count):
        t0 = time.time()
        try:
            st = post(port, "/v1/chat/completions", chat("request %d of client %d" % (i, k), max_tokens=12), timeout=60)[0]
        except OSError:
            st = 0
        with lock:
            results.append((t0, time.time(), st))


threads = [threading.Thread(target=client, args=(k, 4)) for k in range(4)]
for th in threads:
    th.start()
for th in threads:
    th.join(120)
# less the GET /metrics that read base, itself a 200 on each
spread = (served(a) - base[0] - 1, served(b) - base[1] - 1)
t.check("requests_through_nginx_all_answered", len(results) == 16 and all(r[2] == 200 for r in results), results)
t.check("requests_spread_over_both_servers", spread[0] >= 2 and spread[1] >= 2 and sum(spread) == 16, spread)
st, events, _, ok = stream(port, "/v1/chat/completions", chat("streamed through nginx", max_tokens=12))
t.check("stream_through_nginx_well_formed", st == 200 and ok and streamed_text(events), events[-2:])

# one server killed mid-run
results.clear()
threads = [threading.Thread(target=client, args=(k, 8)) for k in range(4)]
for th in threads:
    th.start()
while True:
    with lock:
        if len(results) >= 6:
            break
    time.sleep(0.01)
killed_at = time.time()
a.proc.send_signal(signal.SIGKILL)
a.proc.wait()
for th in threads:
    th.join(180)
after = [r for r in results if r[0] > killed_at]
during = [r for r in results if r[0] <= killed_at < r[1]]
t.check("after_the_kill_requests_were_sent", len(after) >= 8, len(after))
t.check("after_the_kill_every_new_request_answered", all(r[2] == 200 for r in after), after)
print("figure: nginx: %d requests spread %d/%d over two servers; server A killed with %d in flight "
      "(%d of those failed); %d sent after the kill, %d answered"
      % (16, spread[0], spread[1], len(during), sum(r[2] != 200 for r in during), len(after),
         sum(r[2] == 200 for r in after)), flush=True)
lb.send_signal(signal.SIGQUIT)
try:
    lb.wait(20)
except subprocess.TimeoutExpired:
    lb.kill()
t.finish()
