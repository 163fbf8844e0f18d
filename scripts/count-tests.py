#!/usr/bin/env python3
"""Sums the test cases of every test binary from meson's testlog.json.

A test binary built on tests/harness.h ends its output with "N passed, N failed";
other tests (spirv-val, app scripts) count as one case each. A binary whose exit
status says it failed counts at least one failure even if its own line says 0
(a sanitizer report or a crash after the summary)."""
import json, re, sys

passed = failed = 0
summary = re.compile(r'^(\d+) passed, (\d+) failed', re.M)
for line in open(sys.argv[1], encoding='utf-8', errors='replace'):
    t = json.loads(line)
    ok = t['result'] in ('OK', 'EXPECTEDFAIL', 'SKIP')
    found = summary.findall(t.get('stdout') or '')
    if found:
        p, f = map(int, found[-1])
        if not ok and f == 0:
            f = 1
            print(f"FAILED after its summary: {t['name']} ({t['result']})")
        passed += p
        failed += f
    else:
        passed += ok
        failed += not ok
    if not ok:
        print(f"FAILED: {t['name']} ({t['result']})")
print(f"{passed} passed, {failed} failed")
sys.exit(1 if failed else 0)
