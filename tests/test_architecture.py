"""The tree's shape (README "Architecture"): layers import downwards only, no import circle, no module
grown past what one reader holds in mind without saying why."""

from __future__ import annotations

import ast
from pathlib import Path

from tests.conftest import ROOT

PACKAGES = ("validators", "checks", "reports", "flows", "synth")
#: Who may import whom: a package sees only the packages below it.
BELOW = {
    "validators": set(),
    "checks": {"validators"},
    "synth": {"validators", "checks"},
    "reports": {"validators", "checks"},
    "flows": {"validators", "checks", "reports", "synth"},
}
MAX_LINES = 450


def _modules() -> dict[str, Path]:
    return {".".join(p.relative_to(ROOT).with_suffix("").parts): p
            for package in PACKAGES for p in sorted((ROOT / package).rglob("*.py"))}


def _imports(path: Path, known: set[str]) -> set[str]:
    """The project modules a file imports (at any depth of the file: lazy imports count too)."""
    found = set()
    for node in ast.walk(ast.parse(path.read_text("utf-8"))):
        names = []
        if isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            names = [node.module] + [f"{node.module}.{a.name}" for a in node.names]
        elif isinstance(node, ast.Import):
            names = [a.name for a in node.names]
        found |= {n for n in names if n in known and not n.endswith("__init__")}
    return found


def test_each_layer_imports_only_the_layers_below_it():
    modules = _modules()
    wrong = [(m, d) for m, p in modules.items() for d in _imports(p, set(modules))
             if d.split(".")[0] != m.split(".")[0] and d.split(".")[0] not in BELOW[m.split(".")[0]]]
    assert wrong == []


def test_no_module_imports_itself_through_others():
    modules = _modules()
    graph = {m: _imports(p, set(modules)) - {m} for m, p in modules.items()}
    cycles, state = [], {}

    def visit(node: str, path: list[str]) -> None:
        state[node] = "open"
        for nxt in sorted(graph[node]):
            if state.get(nxt) == "open":
                cycles.append(path[path.index(nxt):] + [nxt])
            elif nxt not in state:
                visit(nxt, path + [nxt])
        state[node] = "done"

    for m in sorted(graph):
        if m not in state:
            visit(m, [m])
    assert cycles == []


def test_a_long_module_says_why_in_its_docstring():
    long = {}
    for name, path in _modules().items():
        text = path.read_text("utf-8")
        lines = text.count("\n")
        doc = ast.get_docstring(ast.parse(text)) or ""
        if lines > MAX_LINES and "Why this module is long" not in doc:
            long[name] = lines
    assert long == {}


#: polars' readers by path (most take it as a glob pattern unless told `glob=False`: `checks.frame_files`).
PATH_READERS = {"read_parquet", "scan_parquet", "read_ipc", "scan_ipc", "read_ipc_stream", "scan_ipc_stream",
                "read_csv", "scan_csv", "read_ndjson", "scan_ndjson", "read_json", "read_excel", "read_ods",
                "read_avro", "read_delta", "scan_delta", "scan_iceberg"}


def test_every_read_by_path_takes_the_path_literally():
    """A data directory named `信用[正式]` broke every night: a read by path goes through `checks.frame_files` or
    says `glob=False` itself (polars under any name it is imported as; its readers imported by name count too)."""
    loose = []
    for name, path in _modules().items():
        if name == "checks.frame_files":
            continue
        tree = ast.parse(path.read_text("utf-8"))
        aliases = {a.asname or a.name for node in ast.walk(tree) if isinstance(node, ast.Import)
                   for a in node.names if a.name == "polars"}
        loose += [f"{name}:{node.lineno}" for node in ast.walk(tree)
                  if isinstance(node, ast.ImportFrom) and node.module == "polars"
                  and any(a.name in PATH_READERS for a in node.names)]
        for node in ast.walk(tree):
            if isinstance(node, ast.Call) and isinstance(node.func, ast.Attribute) and node.func.attr in PATH_READERS \
                    and isinstance(node.func.value, ast.Name) and node.func.value.id in aliases \
                    and not any(k.arg == "glob" and isinstance(k.value, ast.Constant) and k.value.value is False
                                for k in node.keywords):
                loose.append(f"{name}:{node.lineno}")
    assert loose == []


def test_every_citation_of_the_contract_points_inside_the_repository():
    """The product's contract is docs/: no comment or page cites the outside specification, and every
    docs/ anchor cited exists (tools/cite.py --check rewrites nothing and finds nothing unmapped)."""
    import subprocess
    import sys

    done = subprocess.run([sys.executable, "tools/cite.py", "--check"], cwd=ROOT, capture_output=True, text=True)
    assert done.returncode == 0, done.stdout + done.stderr
