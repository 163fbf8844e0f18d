#!/bin/sh
# Installs what is missing, builds with warnings as errors, runs every test with the
# Vulkan validation layer on, and ends with the line "N passed, N failed" (plus
# ", N skipped" when a test or case skipped: a skip is not a pass).
set -e
cd "$(dirname "$0")/.."
scripts/deps.sh
# The serve tests' OpenAI client (npm "openai", pinned by the lock file) into
# tests/serve/node_modules; without npm that test prints skipped.
if command -v npm >/dev/null; then
  npm ci --prefix tests/serve --no-audit --no-fund --loglevel=error || echo "npm ci failed: the openai client test will skip"
fi
if [ ! -d build-test ]; then
  meson setup build-test -Dbuildtype=debugoptimized -Dwerror=true
fi
meson compile -C build-test
set +e
# A log left by an earlier run would be counted again if meson ran nothing now.
rm -f build-test/meson-logs/testlog.json
PHIVK_VALIDATE=1 meson test -C build-test --num-processes 2 --print-errorlogs "$@" >build-test/test-output.txt 2>&1
cat build-test/test-output.txt | grep -vE '^ *[0-9]+/[0-9]+ ' || true
python3 scripts/count-tests.py build-test/meson-logs/testlog.json
