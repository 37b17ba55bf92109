#!/usr/bin/env python3
# SPDX-License-Identifier: MIT
"""The library's layering, read off its object files (nm), not its text:

  1. no call cycle between files: file A calls a function defined in file B
     (directly, not through a table) and B, directly or through others, calls
     back into A;
  2. the core names no transport, layer or backend: no core file refers to a
     symbol (function or data) defined in lib/transport/, lib/layer/ or
     lib/backend/; it reaches them through the tables in transports.c,
     layer.c and backends.c only.

usage: check-layering.py BUILD_DIR   (the library's objects under BUILD_DIR/lib)
"""
import os
import subprocess
import sys

CORE = {'api', 'commit', 'device', 'emulate', 'job', 'leg', 'names', 'native', 'plan', 'request', 'split'}
PLUGIN_DIRS = ('transport_', 'layer_', 'backend_')


def objects(build):
    for root, _, files in os.walk(os.path.join(build, 'lib')):
        if not root.endswith('.so.p') and 'libblkcopy.so' not in root:
            continue
        for f in files:
            if f.endswith('.c.o'):
                yield os.path.join(root, f)


def name_of(path):
    return os.path.basename(path)[:-len('.c.o')]


def main():
    if len(sys.argv) != 2:
        sys.exit(__doc__)
    defined, funcs, wants = {}, set(), {}
    objs = list(objects(sys.argv[1]))
    if not objs:
        sys.exit('check-layering: no objects under %s/lib' % sys.argv[1])
    for o in objs:
        f = name_of(o)
        out = subprocess.run(['nm', o], capture_output=True, text=True, check=True).stdout
        wants[f] = set()
        for line in out.splitlines():
            parts = line.split()
            if len(parts) == 2 and parts[0] == 'U':
                wants[f].add(parts[1])
            elif len(parts) == 3 and parts[1] in 'TDRBtdrb' and parts[1].isupper():
                defined[parts[2]] = f
                if parts[1] == 'T':
                    funcs.add(parts[2])
    calls = {f: {defined[s] for s in w if s in funcs and defined.get(s, f) != f}
             for f, w in wants.items()}
    bad = 0
    # 1. call cycles: a file that reaches itself.
    for start in sorted(calls):
        seen, stack = set(), [(start, [start])]
        while stack:
            f, path = stack.pop()
            for g in calls[f]:
                if g == start:
                    print('call cycle: ' + ' -> '.join(path + [g]))
                    bad += 1
                    stack = []
                    break
                if g not in seen:
                    seen.add(g)
                    stack.append((g, path + [g]))
    # 2. the core and the plug-ins.
    for f in sorted(wants):
        if f not in CORE:
            continue
        for s in sorted(wants[f]):
            owner = defined.get(s, '')
            if owner.startswith(PLUGIN_DIRS):
                print('core file %s.c names %s from %s' % (f, s, owner.replace('_', '/', 1) + '.c'))
                bad += 1
    print('check-layering: %d files, %s' % (len(objs), 'ok' if not bad else '%d problems' % bad))
    sys.exit(1 if bad else 0)


main()
