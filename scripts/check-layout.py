#!/usr/bin/env python3
"""Layout checks: no source file under crates/*/src is over 700 lines, and the top-level
modules of each library crate import each other without cycles (a module's submodules
count as the module; tests and doc comments are left out)."""
import pathlib
import re
import sys

MAX_LINES = 700
root = pathlib.Path(__file__).resolve().parent.parent
failed = False

for path in sorted(root.glob("crates/*/src/**/*.rs")):
    n = sum(1 for _ in path.open(encoding="utf-8"))
    if n > MAX_LINES:
        print(f"{path.relative_to(root)}: {n} lines (limit {MAX_LINES})")
        failed = True

USE = re.compile(r"\bcrate::([a-z_][a-z0-9_]*)")


def strip(text):
    """Drops test modules, comments and doc comments."""
    text = re.sub(r"#\[cfg\(test\)\](\s*#\[[^\]]*\])*\s*mod tests \{.*", "", text, flags=re.S)
    return "\n".join(l for l in text.splitlines() if not l.lstrip().startswith("//"))


for src in sorted(root.glob("crates/*/src")):
    mods = {}
    for path in src.rglob("*.rs"):
        rel = path.relative_to(src)
        top = rel.parts[0].removesuffix(".rs")
        if top in ("lib", "main") or path.name == "tests.rs":
            continue
        deps = mods.setdefault(top, set())
        for m in USE.findall(strip(path.read_text(encoding="utf-8"))):
            if m != top:
                deps.add(m)
    for m in mods:
        mods[m] &= set(mods)
    # Cycles through depth-first search.
    state = {}
    stack = []

    def visit(m):
        global failed
        state[m] = 1
        stack.append(m)
        for d in sorted(mods[m]):
            if state.get(d) == 1:
                cycle = stack[stack.index(d):] + [d]
                print(f"{src.relative_to(root)}: import cycle {' -> '.join(cycle)}")
                failed = True
            elif d not in state:
                visit(d)
        stack.pop()
        state[m] = 2

    for m in sorted(mods):
        if m not in state:
            visit(m)

if failed:
    sys.exit(1)
print("layout: no source file over 700 lines, no import cycles between top-level modules")
