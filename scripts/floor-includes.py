#!/usr/bin/env python3
"""Checks the floors plan (docs/architecture.md) against the build itself: for each
library, a file that includes a header of a floor above it must not compile with the
flags the build gives that library's sources (read from compile_commands.json), and
one that includes the library's own header must.

usage: floor-includes.py BUILD_DIR    exits 1 when a floor sees above itself."""
import json
import os
import shlex
import subprocess
import sys
import tempfile

# library: (a header of its own, headers of floors above it)
FLOORS = {
    "phivk_core": ("gguf.h", ["tok.h", "pvk.h", "arch.h", "app_common.h"]),
    "phivk_tokenizer": ("tok.h", ["pvk.h", "arch.h", "app_common.h"]),
    "phivk_runtime": ("pvk.h", ["tok.h", "arch.h", "app_common.h"]),
    "phivk_model": ("arch.h", ["app_common.h"]),
}


def compiles(entry, header):
    """Whether `#include "header"` compiles with entry's flags."""
    args = shlex.split(entry["command"])
    with tempfile.TemporaryDirectory() as tmp:
        src = os.path.join(tmp, "probe.c")
        with open(src, "w") as f:
            f.write('#include "%s"\nint probe;\n' % header)
        keep = []
        skip = False
        for a in args[1:]:
            if skip:
                skip = False
                continue
            if a in ("-o", "-MF", "-MQ", "-c"):
                skip = a != "-c"
                continue
            if a == entry["file"] or a in ("-MD",):
                continue
            keep.append(a)
        cmd = [args[0], *keep, "-fsyntax-only", src]
        return subprocess.run(cmd, cwd=entry["directory"], capture_output=True).returncode == 0


def main():
    if len(sys.argv) != 2:
        sys.exit(__doc__)
    entries = json.load(open(os.path.join(sys.argv[1], "compile_commands.json")))
    bad = 0
    for lib, (own, above) in FLOORS.items():
        entry = next((e for e in entries if "lib%s.a.p/" % lib in e["output"]), None)
        if entry is None:
            print(f"{lib}: no source of it in the build")
            bad += 1
            continue
        before = bad
        if not compiles(entry, own):
            print(f"{lib}: its own {own} does not compile with its flags (the probe is broken)")
            bad += 1
        for h in above:
            if compiles(entry, h):
                print(f"{lib}: sees {h}, a header of a floor above it")
                bad += 1
        if bad == before:
            print(f"{lib}: {own} compiles; {', '.join(above)} do not")
    return 1 if bad else 0


if __name__ == "__main__":
    sys.exit(main())
