#!/usr/bin/env python3
"""Import circles between the source files of one crate, from its `use` lines.

    scripts/import-circles.py [CRATE_SRC ...]     (default: every crate's src/ in the workspace)

Each file is a module (`api/monitors.rs` is `api::monitors`, `api/mod.rs` is `api`). A `use`
of `crate::a::b::X`, `super::X` or `self::X` (or, in a parent module, of one of its own
submodules) is an edge to the deepest module that path names; `pub use` re-exports are not. Files that import each other,
directly or through others, form a circle (a strongly connected component of more than one
file); each is printed with the edges that tie it. Exits 1 if there is any, 0 otherwise.

Paths written out in code count too (`super::schedule::cached(...)`, `crate::store::keys::x`, or
`child::f()` in a parent module), comments and string literals aside. A reading of the text, not
of the compiler; it is what ARCHITECTURE.md means by "no import circle".
"""

import re
import sys
from pathlib import Path

# Private `use` only: a `pub use` re-exports (an API choice of the parent), it is not a
# dependency of the file's own code.
USE = re.compile(r"^\s*use\s+([^;]+);", re.M)
PUB_USE = re.compile(r"^\s*pub(?:\([^)]*\))?\s+use\s+[^;]+;", re.M)
MOD = re.compile(r"^\s*(?:pub(?:\([^)]*\))?\s+)?mod\s+(\w+)\s*;", re.M)
CFG_TEST = re.compile(r"#\[cfg\(test\)\]\s*mod\s+tests\s*\{", re.M)


def module_of(src: Path, file: Path) -> tuple:
    parts = list(file.relative_to(src).with_suffix("").parts)
    if parts[-1] in ("mod", "lib", "main"):
        parts.pop()
    return tuple(parts)


def paths_in(tree: str) -> list:
    """`a::{b, c::{d}}` -> [a::b, a::c::d] (as lists of segments)."""
    # `x as y` keeps `x`; then whitespace goes.
    tree = re.sub(r"\s+as\s+\w+", "", tree)
    tree = re.sub(r"\s+", "", tree)
    out = []

    def walk(prefix, text):
        depth, start, items = 0, 0, []
        for i, ch in enumerate(text):
            if ch == "{":
                depth += 1
            elif ch == "}":
                depth -= 1
            elif ch == "," and depth == 0:
                items.append(text[start:i])
                start = i + 1
        items.append(text[start:])
        for item in filter(None, items):
            if "{" in item:
                head, _, rest = item.partition("{")
                walk(prefix + [s for s in head.split("::") if s], rest[:-1])
            else:
                out.append(prefix + [s for s in item.split("::") if s])

    walk([], tree)
    return out


def strip_comments_and_strings(text: str) -> str:
    """The code without `//` comments and string literals (raw strings included), so paths in
    prose or messages are not read as imports."""
    text = re.sub(r'r(#*)"(?:.|\n)*?"\1', '""', text)
    text = re.sub(r'"(?:\\.|[^"\\])*"', '""', text)
    return re.sub(r"//[^\n]*", "", text)


def crate_graph(src: Path) -> dict:
    files = {module_of(src, f): f for f in src.rglob("*.rs")}
    edges = {m: {} for m in files}
    for module, file in files.items():
        text = file.read_text(encoding="utf-8")
        cut = CFG_TEST.search(text)
        if cut:
            text = text[: cut.start()]
        children = set(MOD.findall(text))
        code = PUB_USE.sub("", USE.sub("", strip_comments_and_strings(text)))
        in_code = [
            [s for s in m.group(0).split("::") if s]
            for m in re.finditer(
                r"\b(?:crate|super|self|" + "|".join(sorted(children) or ["crate"]) + r")(?:::\w+)+",
                code,
            )
        ]
        for path in [p for tree in USE.findall(text) for p in paths_in(tree)] + in_code:
            if True:
                if not path:
                    continue
                head = path[0]
                if head == "crate":
                    target = list(path[1:])
                elif head == "super":
                    base = list(module)
                    while path and path[0] == "super":
                        base = base[:-1]
                        path = path[1:]
                    target = base + list(path)
                elif head == "self":
                    target = list(module) + list(path[1:])
                elif head in children:
                    target = list(module) + list(path)
                else:
                    continue
                # The deepest module the path names.
                while target and tuple(target) not in files:
                    target.pop()
                target = tuple(target)
                if target != module and target in files:
                    name = path[-1] if path else "*"
                    edges[module].setdefault(target, set()).add(name)
    return files, edges


def circles(edges: dict) -> list:
    index, low, stack, on, out, counter = {}, {}, [], set(), [], [0]

    def strong(v):
        index[v] = low[v] = counter[0]
        counter[0] += 1
        stack.append(v)
        on.add(v)
        for w in edges[v]:
            if w not in index:
                strong(w)
                low[v] = min(low[v], low[w])
            elif w in on:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            component = []
            while True:
                w = stack.pop()
                on.discard(w)
                component.append(w)
                if w == v:
                    break
            if len(component) > 1:
                out.append(sorted(component))

    sys.setrecursionlimit(10_000)
    for v in edges:
        if v not in index:
            strong(v)
    return out


def main() -> int:
    root = Path(__file__).resolve().parent.parent
    srcs = [Path(a).resolve() for a in sys.argv[1:]] or sorted(
        p for p in root.glob("*/src") if (p.parent / "Cargo.toml").exists()
    )
    found = 0
    for src in srcs:
        files, edges = crate_graph(src)
        for component in circles(edges):
            found += 1
            names = ", ".join(str(files[m].relative_to(root)) for m in component)
            print(f"circle of {len(component)} files: {names}")
            for m in component:
                for target, what in sorted(edges[m].items()):
                    if target in component:
                        print(
                            f"  {files[m].relative_to(root)} -> "
                            f"{files[target].relative_to(root)}: {', '.join(sorted(what))}"
                        )
    if not found:
        print("no import circles")
    return 1 if found else 0


if __name__ == "__main__":
    sys.exit(main())
