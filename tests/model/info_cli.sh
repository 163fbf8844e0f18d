#!/bin/sh
# phivk info's exit statuses: 0 ok, 1 bad file (one line on stderr), 2 bad usage.
# usage: info_cli.sh PHIVK TESTDATA
phivk=$1 data=$2 passed=0 failed=0
expect() { # expect STATUS ARGS...
  want=$1; shift
  "$phivk" info "$@" >/tmp/phivk-info-cli.$$ 2>/tmp/phivk-info-cli-err.$$
  got=$? ok=1
  if [ "$got" != "$want" ]; then echo "FAIL: phivk info $* -> $got, want $want"; ok=0; fi
  if [ "$want" = 1 ] && [ "$(wc -l </tmp/phivk-info-cli-err.$$)" != 1 ]; then
    echo "FAIL: phivk info $*: stderr is not one line:"; cat /tmp/phivk-info-cli-err.$$; ok=0
  fi
  if [ $ok = 1 ]; then passed=$((passed + 1)); else failed=$((failed + 1)); fi
}
expect 0 "$data/reference/phi3-q4_0.gguf"
expect 0 "$data/reference/phi3-q4_0.gguf" --ctx 131072 --json
expect 0 "$data/vocab/ggml-vocab-phi-3.gguf"
expect 1 "$data/no-such-file.gguf"
expect 1 "$data/README.md"
head -c 3000 "$data/reference/phi2.gguf" >/tmp/phivk-info-cli-trunc.$$
expect 1 /tmp/phivk-info-cli-trunc.$$
expect 2
expect 2 "$data/reference/phi2.gguf" --ctx
expect 2 "$data/reference/phi2.gguf" --ctx -5
expect 2 "$data/reference/phi2.gguf" --frobnicate
expect 2 a.gguf b.gguf
rm -f /tmp/phivk-info-cli.$$ /tmp/phivk-info-cli-err.$$ /tmp/phivk-info-cli-trunc.$$
echo "$passed passed, $failed failed"
[ $failed = 0 ]
