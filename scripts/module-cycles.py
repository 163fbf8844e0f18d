#!/usr/bin/env python3
"""Lists the circles between source files: A -> B when A's object refers to a symbol
that B's object defines. A module is one .c file; a circle (A reaches B and B reaches
A) means neither can be read or tested without the other, so the floors plan
(docs/architecture.md) allows none.

usage: module-cycles.py ARCHIVE_OR_OBJECT_DIR...   prints each circle, exits 1 if any.
A directory stands for the objects (*.o) inside it, e.g. an executable's NAME.p folder;
each argument is checked on its own, so names may repeat between arguments."""
import glob
import os
import subprocess
import sys
from collections import defaultdict


def symbols(paths):
    """{object name: (defined symbols, undefined symbols)} from nm's portable output."""
    out = subprocess.run(["nm", "-A", "-P", *paths], capture_output=True, text=True, check=True).stdout
    objs = defaultdict(lambda: (set(), set()))
    for line in out.splitlines():
        name, rest = line.split(": ", 1)
        fields = rest.split()
        if len(fields) < 2:
            continue
        sym, kind = fields[0], fields[1]
        # "lib.a[runtime_pvk_dev.c.o]" or "dir/x.p/chat_ui.c.o": the source file's name
        obj = name.split("[")[-1].rstrip("]").rsplit("/", 1)[-1].removesuffix(".o")
        if kind == "U":
            objs[obj][1].add(sym)
        elif kind in "TDBRCV":  # global definitions only: static ones cannot be reached
            objs[obj][0].add(sym)
    return objs


def strongly_connected(graph):
    """Tarjan's algorithm: the components of more than one node."""
    index, low, stack, on, out, counter = {}, {}, [], set(), [], [0]

    def visit(v):
        index[v] = low[v] = counter[0]
        counter[0] += 1
        stack.append(v)
        on.add(v)
        for w in graph[v]:
            if w not in index:
                visit(w)
                low[v] = min(low[v], low[w])
            elif w in on:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            comp = []
            while True:
                w = stack.pop()
                on.discard(w)
                comp.append(w)
                if w == v:
                    break
            if len(comp) > 1:
                out.append(sorted(comp))

    sys.setrecursionlimit(10000)
    for v in list(graph):
        if v not in index:
            visit(v)
    return out


def circles_of(path):
    paths = sorted(glob.glob(os.path.join(path, "*.o"))) if os.path.isdir(path) else [path]
    objs = symbols(paths)
    owner = {}
    for obj, (defined, _) in objs.items():
        for s in defined:
            owner[s] = obj
    graph = defaultdict(set)
    for obj, (_, undefined) in objs.items():
        graph[obj]
        for s in undefined:
            if s in owner and owner[s] != obj:
                graph[obj].add(owner[s])
    circles = strongly_connected(graph)
    for c in circles:
        print(f"circle in {path}: " + " <-> ".join(c))
    print(f"{path}: {len(circles)} circles among {len(objs)} source files")
    return len(circles)


def main():
    if len(sys.argv) < 2:
        sys.exit(__doc__)
    return 1 if sum(circles_of(p) for p in sys.argv[1:]) else 0


if __name__ == "__main__":
    sys.exit(main())
