# Sourced by the shell tests of phivk serve. serve_start MODEL [OPTIONS...] starts
# "$phivk" serve on 127.0.0.1 at a free port (--port 0), its stderr in
# $dir/server.log, and sets $server (the pid) and $port once it listens; a server
# that does not start within 60 s fails the test with its log.
serve_start() {
  model=$1
  shift
  "$phivk" serve "$model" --port 0 "$@" 2>"$dir/server.log" &
  server=$!
  trap 'kill $server 2>/dev/null; rm -rf "$dir"' EXIT
  port=
  for _ in $(seq 600); do
    port=$(sed -n 's|.*listening on http://127.0.0.1:\([0-9]*\).*|\1|p' "$dir/server.log")
    [ -n "$port" ] && break
    kill -0 $server 2>/dev/null || break
    sleep 0.1
  done
  [ -n "$port" ] || { echo "FAIL the server did not start"; cat "$dir/server.log"; exit 1; }
}
