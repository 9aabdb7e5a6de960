#!/usr/bin/env python3
"""Worst-case stack depth of a thumbv7em ELF, from its disassembly.

    python3 stack_depth.py target/thumbv7em-none-eabihf/release/reauth-firmware [root]

Each function's frame is what its prologue reserves (`push`, `vpush`, `sub sp`); the call graph
comes from direct `bl`/`b.w` targets. The depth of a function is its frame plus the deepest of its
callees; the script prints the deepest chain from `root` (default: the firmware's main function).
Indirect calls (`blx rN`) cannot be followed and are reported; the firmware under measurement
has none on its request path. A call cycle is cut where it closes and reported: the only ones
are in `core`'s panic formatting, which ends in the halting panic handler.
"""

import re
import subprocess
import sys

elf = sys.argv[1]
root_pattern = sys.argv[2] if len(sys.argv) > 2 else r"__cortex_m_rt_main(::h[0-9a-f]+)?$"

disassembly = subprocess.run(
    ["llvm-objdump", "-d", "--no-show-raw-insn", "-C", elf],
    capture_output=True, text=True, check=True,
).stdout

frames, calls, indirect, names = {}, {}, set(), {}
current = None
for line in disassembly.splitlines():
    header = re.match(r"^([0-9a-f]+) <(.*)>:$", line)
    if header:
        current = int(header.group(1), 16)
        names[current] = header.group(2)
        frames[current], calls[current] = 0, set()
        continue
    if current is None or "\t" not in line:
        continue
    instruction = line.split("\t", 1)[1].strip()
    op, _, args = instruction.partition("\t")
    if op.startswith("push"):
        frames[current] += 4 * len(args.strip("{} ").split(","))
    elif op.startswith("vpush"):
        registers = args.strip("{} ").split(",")
        span = re.findall(r"d(\d+)", args)
        frames[current] += 8 * (int(span[-1]) - int(span[0]) + 1 if "-" in args else len(registers))
    elif re.match(r"sub(w|\.w)?$", op) and re.match(r"sp, (sp, )?#", args):
        frames[current] += int(args.rsplit("#", 1)[1].split()[0], 0)
    elif op in ("bl", "b.w", "b") and "<" in args:
        target = re.search(r"0x([0-9a-f]+) <([^>+]*)", args)
        if target and "+" not in args.split("<", 1)[1]:
            calls[current].add(int(target.group(1), 16))
    elif op.startswith("blx"):
        indirect.add(current)

memo, on_path, cycles = {}, set(), set()


def depth(function):
    """Deepest stack use from entering `function`, with the chain that reaches it."""
    if function in memo:
        return memo[function]
    if function in on_path:
        # A cycle: only the panic path has one (`slice_error_fail` and friends, which end in
        # the halting panic handler), so it is cut here and reported.
        cycles.add(function)
        return (0, [])
    on_path.add(function)
    best, chain = 0, []
    for callee in calls.get(function, ()):
        if callee == function or callee not in frames:
            continue
        callee_depth, callee_chain = depth(callee)
        if callee_depth > best:
            best, chain = callee_depth, callee_chain
    on_path.discard(function)
    memo[function] = (frames[function] + best, [function] + chain)
    return memo[function]


roots = [f for f, name in names.items() if re.search(root_pattern, name)]
if not roots:
    raise SystemExit(f"no function matches {root_pattern!r}")
total, chain = depth(roots[0])
print(f"worst-case stack from {names[roots[0]]}: {total} bytes")
for function in chain:
    print(f"  {frames[function]:6}  {names[function][:110]}")
reached = set()
pending = [roots[0]]
while pending:
    f = pending.pop()
    if f not in reached:
        reached.add(f)
        pending.extend(calls.get(f, ()))
if cycles & reached:
    print("cycles cut (counted once):", ", ".join(sorted(names[f][:80] for f in cycles & reached)))
unknown = sorted(names[f][:80] for f in indirect & reached)
if unknown:
    print("indirect calls not followed in:", ", ".join(unknown))
