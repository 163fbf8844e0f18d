#!/bin/sh
# phivk serve with the official OpenAI client for Node (npm "openai", installed
# into tests/serve/node_modules by scripts/test.sh: npm ci). Skipped when Node or
# the client is absent. usage: test_openai.sh PHIVK MAKE_FIXTURE
phivk=$1
make_fixture=$2
here=$(cd "$(dirname "$0")" && pwd)
if ! command -v node >/dev/null || [ ! -d "$here/node_modules/openai" ]; then
  echo "skip openai_client: node or tests/serve/node_modules/openai is absent (npm ci --prefix tests/serve)"
  exit 77
fi
dir=$(mktemp -d)
export PHIVK_VALIDATE=1 PHIVK_TUNE=0
"$make_fixture" "$dir/tiny.gguf" phi3 || { echo "cannot make the fixture"; exit 1; }
. "$here/serve_start.sh"
serve_start "$dir/tiny.gguf" --parallel 2 --api-key test-key
node "$here/test_openai.mjs" "http://127.0.0.1:$port/v1"
status=$?
if grep -qE 'Validation (Error|Warning)|VUID-|phivk: validation' "$dir/server.log"; then
  echo "FAIL server_log_has_validation_messages"
  status=1
fi
exit $status
