"""The layout rules of the package, checked on its source (no import is executed).

Data flows one way: a module may import from its own layer or a lower one, never a higher
one, and the import graph (imports inside functions included) has no cycle. Private names
stay private to their module, modules stay under 600 lines and functions under 80 (their
code: a docstring documents, it does not make a function long).
"""

from __future__ import annotations

import ast
from pathlib import Path

PACKAGE = Path(__file__).resolve().parents[1] / "imaging_tl"
MAX_MODULE_LINES = 600
MAX_FUNCTION_LINES = 80

# Lower number = lower layer. A module is in the layer of its longest listed prefix.
LAYERS = {
    "imaging_tl._version": 0,
    "imaging_tl._atomic": 0,
    "imaging_tl._tf_quiet": 0,
    "imaging_tl.io": 1,
    "imaging_tl.synthetic": 2,
    "imaging_tl.stages": 2,
    "imaging_tl.augment": 3,
    "imaging_tl.evaluate": 3,
    "imaging_tl.data": 4,
    "imaging_tl.models": 5,
    "imaging_tl.train": 6,
    "imaging_tl.explain": 6,
    "imaging_tl.report": 7,
    "imaging_tl.deploy": 7,
    "imaging_tl.config": 7,
    "imaging_tl.pipeline": 8,
    "imaging_tl.pretrain": 8,
    "imaging_tl.scale": 9,
    "imaging_tl.cli": 10,
    "imaging_tl.cli_pretrain": 10,
    "imaging_tl.cli_compare": 10,
    "imaging_tl": 11,
}


def _modules() -> dict[str, Path]:
    mods = {}
    for p in PACKAGE.rglob("*.py"):
        parts = list(p.relative_to(PACKAGE.parent).with_suffix("").parts)
        if parts[-1] == "__init__":
            parts = parts[:-1]
        mods[".".join(parts)] = p
    return mods


MODULES = _modules()


def _imports(module: str, path: Path) -> list[tuple[str, list[str], int]]:
    """``(target module, imported names, line)`` of every import of the package."""
    package = module if path.name == "__init__.py" else module.rsplit(".", 1)[0]
    out = []
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.ImportFrom):
            if node.level:
                base = package.split(".")[: len(package.split(".")) - (node.level - 1)]
                target = ".".join(base + ([node.module] if node.module else []))
            else:
                target = node.module or ""
            names = [a.name for a in node.names]
        elif isinstance(node, ast.Import):
            target, names = "", [a.name for a in node.names]
        else:
            continue
        if target:
            if target.split(".")[0] == "imaging_tl":
                out.append((target, names, node.lineno))
        else:
            out += [(n, [], node.lineno) for n in names if n.split(".")[0] == "imaging_tl"]
    return out


def _resolve(target: str, names: list[str]) -> list[str]:
    """The package modules an import statement reaches (a submodule named in it counts)."""
    found = []
    for cand in [f"{target}.{n}" for n in names] or [target]:
        parts = cand.split(".")
        while parts and ".".join(parts) not in MODULES:
            parts.pop()
        if parts:
            found.append(".".join(parts))
    if not found:
        parts = target.split(".")
        while parts and ".".join(parts) not in MODULES:
            parts.pop()
        found.append(".".join(parts))
    return sorted(set(found))


def _graph() -> dict[str, set[str]]:
    edges: dict[str, set[str]] = {m: set() for m in MODULES}
    for m, p in MODULES.items():
        for target, names, _ in _imports(m, p):
            edges[m].update(t for t in _resolve(target, names) if t != m)
    return edges


def _layer(module: str) -> int:
    parts = module.split(".")
    while ".".join(parts) not in LAYERS:
        parts.pop()
        assert parts, f"{module} is in no layer: add it to LAYERS in {__file__}"
    return LAYERS[".".join(parts)]


def _cycles(edges: dict[str, set[str]]) -> list[list[str]]:
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on: set[str] = set()
    found: list[list[str]] = []

    def visit(v: str) -> None:
        index[v] = low[v] = len(index)
        stack.append(v)
        on.add(v)
        for w in edges[v]:
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
                found.append(sorted(comp))

    for v in edges:
        if v not in index:
            visit(v)
    return found


def test_every_module_has_a_layer():
    for m in MODULES:
        _layer(m)


def test_no_import_cycle():
    cycles = _cycles(_graph())
    assert not cycles, "import cycles: " + "; ".join(" <-> ".join(c) for c in cycles)


def test_no_upward_import():
    upward = [f"{m} (layer {_layer(m)}) imports {t} (layer {_layer(t)})"
              for m, targets in _graph().items() for t in sorted(targets)
              if _layer(t) > _layer(m) and not t.startswith(m + ".")]
    assert not upward, "imports from a higher layer:\n" + "\n".join(upward)


def test_no_private_name_imported_from_another_module():
    bad = []
    for m, p in MODULES.items():
        for target, names, line in _imports(m, p):
            bad += [f"{p.relative_to(PACKAGE.parent)}:{line} imports {target}.{n}"
                    for n in names if n.startswith("_") and not n.startswith("__")]
    assert not bad, "private names imported across modules:\n" + "\n".join(bad)


def _code_lines(node: ast.FunctionDef | ast.AsyncFunctionDef) -> int:
    """Lines of a function from its ``def`` to its end, less its docstring."""
    n = node.end_lineno - node.lineno + 1
    first = node.body[0]
    if isinstance(first, ast.Expr) and isinstance(first.value, ast.Constant) \
            and isinstance(first.value.value, str):
        n -= first.end_lineno - first.lineno + 1
    return n


def test_modules_and_functions_stay_short():
    long_modules = [f"{p.relative_to(PACKAGE.parent)}: {n} lines" for p in MODULES.values()
                    if (n := len(p.read_text().splitlines())) > MAX_MODULE_LINES]
    long_functions = []
    for p in MODULES.values():
        for node in ast.walk(ast.parse(p.read_text())):
            if isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef):
                n = _code_lines(node)
                if n > MAX_FUNCTION_LINES:
                    long_functions.append(f"{p.relative_to(PACKAGE.parent)}:{node.lineno} "
                                          f"{node.name}: {n} lines")
    assert not long_modules, f"modules over {MAX_MODULE_LINES} lines: {long_modules}"
    assert not long_functions, f"functions over {MAX_FUNCTION_LINES} lines: {long_functions}"


def test_the_checker_sees_a_cycle_and_an_upward_edge():
    # the rules above must be able to fail: a planted cycle and upward edge are found
    edges = {"a": {"b"}, "b": {"a"}, "c": set()}
    assert _cycles(edges) == [["a", "b"]]
    assert _layer("imaging_tl.io.reader") < _layer("imaging_tl.models.transfer")
    assert _resolve("imaging_tl.io", ["read_scan"]) == ["imaging_tl.io"]
    source = 'def f():\n    """doc\n\n    more"""\n' + "    x = 1\n" * 81
    assert _code_lines(ast.parse(source).body[0]) == 82 > MAX_FUNCTION_LINES


def test_no_reference_to_files_outside_the_project():
    root = PACKAGE.parent
    files = [*PACKAGE.rglob("*.py"), *(root / "tests").rglob("*.py"),
             *(root / "benchmarks").glob("*.py"), *root.glob("*.md"), *root.glob("*.cff"),
             *(root / "pipelines").glob("*.yaml")]
    bad = [str(p.relative_to(root)) for p in files if p != Path(__file__)
           and ("DESIGN.md" in p.read_text() or "../shared" in p.read_text())]
    assert not bad, f"references to files outside the project in {bad}"
