#!/usr/bin/env python3
"""Sums the test cases of every test binary from meson's testlog.json.

A test binary built on tests/harness.h ends its output with "N passed, N failed"
(and ", N skipped" when cases skipped); other tests (spirv-val, app scripts) count
as one case each. A binary whose exit status says it failed counts at least one
failure even if its own line says 0 (a sanitizer report or a crash after the
summary). Exit status 77 (meson's SKIP) is a skip, never a pass. No test at all in
the log (meson ran nothing, or a stale log) is a failure, as is a summary of zero
cases.

Ends with "N passed, N failed", plus ", N skipped" when any skipped."""
import json, re, sys

summary = re.compile(r'^(\d+) passed, (\d+) failed(?:, (\d+) skipped)?$', re.M)
skipped_case = re.compile(r'^skip (\S+)$', re.M)
try:
    lines = open(sys.argv[1], encoding='utf-8', errors='replace').read().splitlines()
except OSError as e:
    print(f"no test log: {e}")
    print("0 passed, 1 failed")
    sys.exit(1)
tests = [json.loads(line) for line in lines if line.strip()]
if not tests:
    print(f"no test ran: {sys.argv[1]} is empty")
    print("0 passed, 1 failed")
    sys.exit(1)

passed = failed = skipped = 0
for t in tests:
    name, result, out = t['name'], t['result'], t.get('stdout') or ''
    ok, skip = result in ('OK', 'EXPECTEDFAIL'), result == 'SKIP'
    found = summary.findall(out)
    if found:
        p, f, s = (int(v or 0) for v in found[-1])
        if not ok and not skip and f == 0:
            f = 1
            print(f"FAILED after its summary: {name} ({result})")
        if p + f + s == 0:
            f = 1
            print(f"FAILED: {name} ran no case")
    else:
        p, f, s = int(ok), int(not ok and not skip), int(skip)
    passed, failed, skipped = passed + p, failed + f, skipped + s
    if skip:
        print(f"SKIPPED: {name}")
    else:
        for case in skipped_case.findall(out):
            print(f"SKIPPED: {name}: {case}")
    if not ok and not skip:
        print(f"FAILED: {name} ({result})")
print(f"{passed} passed, {failed} failed" + (f", {skipped} skipped" if skipped else ""))
sys.exit(1 if failed else 0)
