"""Which build of the data plane runs: compiled by mypyc, or the pure-Python fallback.

``pip install`` compiles the modules in ``COMPILED`` (the data plane and the routing
core) to C extensions with mypyc (setup.py); the ``.py`` sources are installed beside
them.  ``choose()``, called once from ``simulator/__init__.py`` before any of them is
imported, decides which of the two is loaded, for all of them at once: compiled
modules call each other natively, so the two are never mixed.

The pure-Python sources are used when

* ``MIRRORSIM_PURE=1`` is set (silently: it was asked for);
* nothing was compiled (no C compiler at install time, or ``MIRRORSIM_PURE=1`` then);
* the compiled build is stale or incomplete: a ``.py`` is newer than its ``.so`` (a
  source edited in an editable install) or a ``.so`` is missing.  One line on stderr
  then says so and how to rebuild.

In the normal, compiled case this costs a stat() per file and nothing per import;
the meta-path finder that redirects the imports is installed only for the fallback.

This module is never compiled itself, and setup.py reads ``COMPILED`` from it.
"""

from __future__ import annotations

import os
import sys
from collections.abc import Mapping
from importlib.machinery import EXTENSION_SUFFIXES, ModuleSpec, SourceFileLoader
from typing import Final

COMPILED: Final = (
    "simulator.proxy.downstream", "simulator.proxy.stream", "simulator.proxy.forwarding",
    "simulator.proxy.heads", "simulator.proxy.client", "simulator.proxy.server", "simulator.proxy.ids",
    "simulator.proxy.upstream", "simulator.proxy.mirror",
    "simulator.proxy.stats", "simulator.proxy.accesslog", "simulator.proxy.headers",
    "simulator.proxy.diff",  # run --diff: its captures are called from the data plane's callbacks
    "simulator.proxy.events",  # the live page's records, built in the data plane's callbacks
    "simulator.core.table", "simulator.core.envoy_config", "simulator.core.matchers",
    "simulator.core.hosts", "simulator.core.paths", "simulator.core.cors",
    "simulator.core.retry_policy", "simulator.core.faults",
)
# mypycify(group_name=GROUP) puts the compiled code of every module in one shared library,
# GROUP + "__mypyc", inside the package (so editable and wheel installs both import it);
# each module's own .so is a small shim that calls into it.
GROUP: Final = "simulator.dataplane"
SHARED_LIB: Final = GROUP + "__mypyc"
PURE_ENV: Final = "MIRRORSIM_PURE"
# A wheel install writes each module's .so a moment before its .py; only a .py newer
# than its .so by more than this counts as edited after the build.
STALE_SLACK_S: Final = 2.0

COMPILED_LABEL: Final = "compiled (mypyc)"
PURE_LABEL: Final = "pure Python"

_reason = ""  # why the pure-Python modules are in use, when they are and it is worth saying


def pure_requested(environ: Mapping[str, str] = os.environ) -> bool:
    """``MIRRORSIM_PURE`` set to anything but empty or 0."""
    return environ.get(PURE_ENV, "") not in ("", "0")


def module_files(package_dir: str, module: str) -> tuple[str, str]:
    """(the .py, the .so) of ``module`` (a name in COMPILED, or SHARED_LIB) in ``package_dir``."""
    base = os.path.join(package_dir, *module.split(".")[1:])
    return base + ".py", base + EXTENSION_SUFFIXES[0]


def _mtime(path: str) -> float | None:
    try:
        return os.stat(path).st_mtime
    except OSError:
        return None


def check(package_dir: str, environ: Mapping[str, str] = os.environ) -> tuple[bool, str, str]:
    """(use the compiled modules?, reason if not, warning to print or "")."""
    if pure_requested(environ):
        return False, f"{PURE_ENV}=1", ""
    built, missing, stale = [], [], []
    for module in (*COMPILED, SHARED_LIB):
        py, so = module_files(package_dir, module)
        so_time = _mtime(so)
        if so_time is None:
            missing.append(module)
            continue
        built.append(module)
        py_time = _mtime(py)
        if py_time is not None and py_time > so_time + STALE_SLACK_S:
            stale.append(py)
    if not built:
        return False, "not compiled", ""
    rebuild = "re-run `pip install -e .` to rebuild it"
    if stale:
        first = os.path.relpath(stale[0], os.path.dirname(package_dir))
        more = f" (and {len(stale) - 1} more)" if len(stale) > 1 else ""
        return False, "stale compiled build", (
            f"mirrorsim: {first}{more} changed after the compiled build; running the pure-Python "
            f"data plane instead: {rebuild}")
    if missing:
        return False, "incomplete compiled build", (
            f"mirrorsim: the compiled build lacks {missing[0]}; running the pure-Python data plane "
            f"instead: {rebuild}")
    return True, "", ""


class PureSourceFinder:
    """A meta-path finder that loads the ``COMPILED`` modules from their ``.py`` source
    (the normal path finder would prefer the ``.so`` beside it)."""

    @classmethod
    def find_spec(cls, fullname: str, path: object = None, target: object = None) -> ModuleSpec | None:
        if fullname not in COMPILED or not isinstance(path, list) or not path:
            return None
        source = os.path.join(path[0], fullname.rpartition(".")[2] + ".py")
        if not os.path.exists(source):
            return None
        spec = ModuleSpec(fullname, SourceFileLoader(fullname, source), origin=source)
        spec.has_location = True
        return spec


def choose(package_dir: str) -> None:
    """Called by ``simulator/__init__.py``: load the pure-Python modules if needed."""
    global _reason
    ok, _reason, warning = check(package_dir)
    if ok:
        return
    if warning:
        print(warning, file=sys.stderr)
    if PureSourceFinder not in sys.meta_path:
        sys.meta_path.insert(0, PureSourceFinder)  # type: ignore[arg-type]


def build_info() -> str:
    """``"compiled (mypyc)"`` or ``"pure Python"`` (with the reason when it is not the
    plain install), from the ``__file__`` of the modules actually loaded."""
    import importlib

    compiled = [importlib.import_module(m).__file__.endswith(tuple(EXTENSION_SUFFIXES))  # type: ignore[union-attr]
                for m in COMPILED]
    if all(compiled):
        return COMPILED_LABEL
    if not any(compiled):
        return PURE_LABEL + (f" ({_reason})" if _reason and _reason != "not compiled" else "")
    return "mixed compiled and pure Python (broken install: re-run pip install)"  # pragma: no cover
