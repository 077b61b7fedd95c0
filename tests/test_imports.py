"""The dependency structure of simulator/, read from the source (ast, nothing imported).

* No import cycles between modules.  Every import counts: at module level, inside a
  function (a local import is how a cycle hides) and under ``if TYPE_CHECKING``.
* Layers, bottom to top: model (with the package bootstrap and diagnostics) <
  config, core < proxy, routecheck, envoy, backend < cli, demo, pytest_plugin, __main__.
  A module imports only from its own layer or below, and core never imports config
  (config may use core: it is core's input side that config must not be).
"""

from __future__ import annotations

import ast
from collections.abc import Iterator
from functools import cache
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]

# Cycles that exist on main today and are removed by the dataplane/rcheck branches.
# Each entry is one strongly connected component.  When a branch lands that removes
# one, test_known_cycles_are_current fails: delete the entry.
KNOWN_CYCLES: set[frozenset[str]] = set()
# Upward imports that exist today.
KNOWN_LAYER_BREAKS: set[tuple[str, str]] = set()

LAYERS: tuple[tuple[str, ...], ...] = (
    ("simulator", "simulator.build", "simulator.diagnostics", "simulator.model"),
    ("simulator.config", "simulator.core"),
    ("simulator.proxy", "simulator.routecheck", "simulator.envoy", "simulator.backend", "simulator.cli_args",
     "simulator.diffargs"),
    ("simulator.cli", "simulator.__main__", "simulator.demo", "simulator.demo_web", "simulator.pytest_plugin",
     "simulator.difftest", "simulator.demo_diff"),
)
# (importer, imported) pairs forbidden inside one layer
SAME_LAYER_FORBIDDEN = (("simulator.core", "simulator.config"),)


def modules() -> dict[str, tuple[Path, bool]]:
    """Module name -> (file, is a package)."""
    out: dict[str, tuple[Path, bool]] = {}
    for f in sorted((ROOT / "simulator").rglob("*.py")):
        parts = list(f.relative_to(ROOT).with_suffix("").parts)
        is_pkg = parts[-1] == "__init__"
        if is_pkg:
            parts.pop()
        out[".".join(parts)] = (f, is_pkg)
    return out


def imports_of(name: str, file: Path, is_pkg: bool, known: dict[str, tuple[Path, bool]]) -> Iterator[str]:
    """The simulator modules ``name`` imports (``from pkg import mod`` is ``pkg.mod``)."""
    package = name if is_pkg else name.rpartition(".")[0]
    for node in ast.walk(ast.parse(file.read_text(), str(file))):
        if isinstance(node, ast.Import):
            yield from (a.name for a in node.names if a.name.split(".")[0] == "simulator")
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = package.split(".")[: len(package.split(".")) - node.level + 1]
                module = ".".join(base + ([node.module] if node.module else []))
            else:
                module = node.module or ""
            if module.split(".")[0] != "simulator":
                continue
            for a in node.names:
                sub = f"{module}.{a.name}"
                yield sub if sub in known else module


@cache
def graph() -> dict[str, set[str]]:
    mods = modules()
    edges: dict[str, set[str]] = {}
    for name, (file, is_pkg) in mods.items():
        deps = set(imports_of(name, file, is_pkg, mods)) - {name}
        unknown = {d for d in deps if d not in mods}
        assert not unknown, f"{name} imports missing modules {sorted(unknown)}"
        edges[name] = deps
    return edges


def cycles(edges: dict[str, set[str]]) -> list[frozenset[str]]:
    """Strongly connected components with more than one module (Tarjan, iterative)."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    found: list[frozenset[str]] = []
    counter = 0
    for start in sorted(edges):
        if start in index:
            continue
        work = [(start, iter(sorted(edges[start])))]
        index[start] = low[start] = counter
        counter += 1
        stack.append(start)
        on_stack.add(start)
        while work:
            node, children = work[-1]
            child = next(children, None)
            if child is not None:
                if child not in index:
                    index[child] = low[child] = counter
                    counter += 1
                    stack.append(child)
                    on_stack.add(child)
                    work.append((child, iter(sorted(edges[child]))))
                elif child in on_stack:
                    low[node] = min(low[node], index[child])
                continue
            work.pop()
            if work:
                low[work[-1][0]] = min(low[work[-1][0]], low[node])
            if low[node] == index[node]:
                comp = set()
                while True:
                    top = stack.pop()
                    on_stack.discard(top)
                    comp.add(top)
                    if top == node:
                        break
                if len(comp) > 1:
                    found.append(frozenset(comp))
    return found


def describe(comp: frozenset[str], edges: dict[str, set[str]]) -> str:
    inner = [f"{a} -> {b}" for a in sorted(comp) for b in sorted(edges[a] & comp)]
    return "{" + ", ".join(sorted(comp)) + "}: " + "; ".join(inner)


def layer_of(name: str) -> tuple[int, str]:
    """(layer, the prefix that placed it); the longest prefix wins."""
    best = (-1, "")
    for level, prefixes in enumerate(LAYERS):
        for p in prefixes:
            if (name == p or name.startswith(p + ".")) and len(p) > len(best[1]):
                best = (level, p)
    return best


def test_no_import_cycles():
    edges = graph()
    new = [c for c in cycles(edges) if c not in KNOWN_CYCLES]
    assert not new, "import cycles:\n" + "\n".join(describe(c, edges) for c in new)


def test_known_cycles_are_current():
    found = set(cycles(graph()))
    stale = [sorted(c) for c in KNOWN_CYCLES if c not in found]
    assert not stale, f"KNOWN_CYCLES lists cycles that are gone (delete them): {stale}"


def layer_breaks(edges: dict[str, set[str]]) -> set[tuple[str, str]]:
    breaks = set()
    for name, deps in edges.items():
        level, prefix = layer_of(name)
        for dep in deps:
            dep_level, dep_prefix = layer_of(dep)
            if dep_level > level:
                breaks.add((name, dep))
            elif dep_level == level and (prefix, dep_prefix) in SAME_LAYER_FORBIDDEN:
                breaks.add((name, dep))
    return breaks


def test_every_module_has_a_layer():
    missing = [name for name in graph() if layer_of(name)[0] < 0]
    assert not missing, f"modules outside LAYERS (place them): {missing}"


def test_layers_point_down():
    new = sorted(layer_breaks(graph()) - KNOWN_LAYER_BREAKS)
    assert not new, "imports against the layer order:\n" + "\n".join(f"{a} -> {b}" for a, b in new)


def test_known_layer_breaks_are_current():
    stale = sorted(KNOWN_LAYER_BREAKS - layer_breaks(graph()))
    assert not stale, f"KNOWN_LAYER_BREAKS lists imports that are gone (delete them): {stale}"


def test_the_checks_see_a_cycle_and_a_break(tmp_path):
    """The graph reader itself: relative and ``from pkg import module`` imports resolve,
    a cycle and an upward import are found."""
    f = tmp_path / "m.py"
    f.write_text("from . import table\nfrom ..config import loader as ld\nfrom .hosts import fqdn\n"
                 "def later():\n    from simulator.config.loader import load\n")
    known = modules()
    assert set(imports_of("simulator.core.m", f, False, known)) == {
        "simulator.core.table", "simulator.config.loader", "simulator.core.hosts"}
    edges = {"simulator.core.a": {"simulator.core.b"}, "simulator.core.b": {"simulator.core.a"},
             "simulator.core.c": {"simulator.config.loader"}, "simulator.config.loader": set(),
             "simulator.model.d": {"simulator.proxy.server"}, "simulator.proxy.server": set()}
    assert cycles(edges) == [frozenset({"simulator.core.a", "simulator.core.b"})]
    assert layer_breaks(edges) == {("simulator.core.c", "simulator.config.loader"),
                                   ("simulator.model.d", "simulator.proxy.server")}
