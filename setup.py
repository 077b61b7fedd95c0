"""Compile the data plane and the routing core with mypyc; everything else is in pyproject.toml.

``pip install .``, ``pip install -e .`` and ``pip wheel .`` build the modules listed in
``simulator/build.py`` (``COMPILED``) into C extensions, installed beside their ``.py``
sources (an editable install puts them in the source tree).  The compiled build uses about
2.4x less CPU per request than the interpreted one and is what reaches issue 6's throughput
and p99 targets (docs/performance.md).

Compiling the generated C takes most of a build (~40 s for the shared library on a quiet
machine); every install compiles (no cache of earlier builds: it depended on setuptools'
internals, and CI installs once).

The install still succeeds, as pure Python, when ``MIRRORSIM_PURE=1`` is set at build time
or the extensions cannot be built (no C compiler, a mypyc or compiler error); the reason is
printed in the build output (``pip install -v``) and ``mirrorsim --version`` says
"pure Python".
"""

from __future__ import annotations

import importlib.util
import os
import shutil
import sys
import sysconfig
from pathlib import Path

from setuptools import Extension, setup
from setuptools.command.build_ext import build_ext

ROOT = Path(__file__).resolve().parent
_spec = importlib.util.spec_from_file_location("_mirrorsim_build", ROOT / "simulator" / "build.py")
assert _spec and _spec.loader
build = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(build)


def note(msg: str) -> None:
    print(f"mirrorsim: {msg}", file=sys.stderr, flush=True)


def remove_inplace_builds() -> None:
    """Delete the compiled modules an earlier in-place (editable) build left in the source
    tree, so that an in-place build that went pure really runs the sources."""
    for module in (*build.COMPILED, build.SHARED_LIB):
        so = Path(build.module_files(str(ROOT / "simulator"), module)[1])
        if so.exists():
            so.unlink()
            note(f"removed the earlier compiled {so.relative_to(ROOT)}")


def have_c_compiler() -> bool:
    cc = os.environ.get("CC") or sysconfig.get_config_var("CC") or "cc"
    return shutil.which(cc.split()[0]) is not None


def going_pure(why: str, inplace: bool) -> list[Extension]:
    note(f"{why}: installing the pure-Python data plane (slower; `mirrorsim --version` says so)")
    if inplace:
        remove_inplace_builds()
    return []


def ext_modules(inplace: bool) -> list[Extension]:
    if build.pure_requested():
        return going_pure(f"{build.PURE_ENV} is set", inplace)
    if not have_c_compiler():
        return going_pure("no C compiler found (install gcc, or set CC)", inplace)
    try:
        from mypyc.build import mypycify
    except ImportError as exc:
        return going_pure(f"mypyc is not available ({exc})", inplace)
    paths = [m.replace(".", "/") + ".py" for m in build.COMPILED]
    try:
        # one shared library (group_name) inside the package: simulator/dataplane__mypyc.*.so
        # --no-incremental: a build does not depend on mypy's cache of an earlier one
        return mypycify(["--no-incremental", *paths], opt_level="3", group_name=build.GROUP)
    except (Exception, SystemExit) as exc:  # mypy reports type errors with SystemExit
        return going_pure(f"mypyc failed ({exc!r})", inplace)


class BuildExtOrPure(build_ext):
    """Runs mypyc only when extensions are built (not for the metadata-only steps pip runs
    first), and all or nothing: if any extension fails to build, none is installed (the
    compiled modules call each other natively, so a partial build could not be imported)."""

    def _inplace(self) -> bool:
        # editable installs (PEP 660) build in place too; editable_wheel may finalize this
        # command before it sets editable_mode on it
        return bool(self.inplace or getattr(self, "editable_mode", False)
                    or "editable_wheel" in self.distribution.commands)

    def finalize_options(self) -> None:
        if self.distribution.ext_modules is PLACEHOLDER:
            # egg_info and dist_info finalize build_ext too (to list its sources) but build nothing
            metadata_only = set(self.distribution.commands) <= {"egg_info", "dist_info", "sdist"}
            self.distribution.ext_modules = [] if metadata_only else ext_modules(self._inplace())
        super().finalize_options()

    def run(self) -> None:
        inplace = self._inplace()  # build_ext.run() clears self.inplace while it builds
        try:
            super().run()
        except Exception as exc:  # CompileError, LinkError, DistutilsExecError, OSError ...
            for ext in self.extensions:
                Path(self.get_ext_fullpath(ext.name)).unlink(missing_ok=True)
            self.extensions = []
            going_pure(f"building the C extensions failed ({exc})", inplace)


# Stands for the mypycify() output until build_ext needs it: it makes setuptools run
# build_ext and tag the wheel for this platform.
PLACEHOLDER = [Extension(build.SHARED_LIB, sources=[])]

setup(ext_modules=PLACEHOLDER, cmdclass={"build_ext": BuildExtOrPure})
