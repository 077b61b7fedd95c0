"""Compile the data plane and the routing core with mypyc; everything else is in pyproject.toml.

``pip install .``, ``pip install -e .`` and ``pip wheel .`` build the modules listed in
``simulator/build.py`` (``COMPILED``) into C extensions, installed beside their ``.py``
sources (an editable install puts them in the source tree).  The compiled build uses about
2.4x less CPU per request than the interpreted one and is what reaches issue 6's throughput
and p99 targets (docs/performance.md).

Compiling the generated C takes most of a build (~40 s for the shared library).  Each
extension built is kept in ``build/compiled-cache/`` under a hash of what went into it (its
C sources and the headers beside them, mypy's version, the Python ABI, the compiler and its
flags), and a later build that would compile exactly the same copies it instead: the
README's second command (``pip install -e '.[test]'`` after ``pip install -e .``) does not
compile again.  Set ``MIRRORSIM_NO_BUILD_CACHE=1`` to always compile.

The install still succeeds, as pure Python, when ``MIRRORSIM_PURE=1`` is set at build time
or the extensions cannot be built (no C compiler, a mypyc or compiler error); the reason is
printed in the build output (``pip install -v``) and ``mirrorsim --version`` says
"pure Python".
"""

from __future__ import annotations

import hashlib
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
        # --no-incremental: a build does not depend on mypy's cache of an earlier one (the
        # same C every time, so the compiled cache below can serve the next install)
        return mypycify(["--no-incremental", *paths], opt_level="3", group_name=build.GROUP)
    except (Exception, SystemExit) as exc:  # mypy reports type errors with SystemExit
        return going_pure(f"mypyc failed ({exc!r})", inplace)


CACHE_DIR = ROOT / "build" / "compiled-cache"
CACHE_KEEP = 3  # builds kept per extension (the newest)


def cache_key(ext: Extension, compiler_cmd: list[str]) -> str:
    """A hash of everything that decides the extension's binary."""
    h = hashlib.sha256()
    try:
        import mypy.version
        h.update(mypy.version.__version__.encode())
    except ImportError:
        pass
    for part in (sys.version, sysconfig.get_config_var("EXT_SUFFIX") or "", *compiler_cmd,
                 repr(ext.extra_compile_args), repr(ext.extra_link_args), repr(ext.define_macros),
                 os.environ.get("CFLAGS", ""), os.environ.get("LDFLAGS", "")):
        # not ext.include_dirs: mypyc's runtime headers sit in pip's temporary build
        # environment, a new path each time; mypy's version stands for their content
        h.update(b"\0" + str(part).encode())
    files = {Path(src) for src in ext.sources} | {Path(d) for d in ext.depends}
    for src in list(files):  # mypyc's generated headers sit beside its C files
        files.update(Path(src).parent.glob("*.h"))
    for f in sorted(files):
        h.update(b"\0" + str(f).encode() + b"\0" + f.read_bytes())
    return h.hexdigest()[:32]


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

    def build_extension(self, ext: Extension) -> None:
        target = Path(self.get_ext_fullpath(ext.name))
        if os.environ.get("MIRRORSIM_NO_BUILD_CACHE", "") not in ("", "0"):
            super().build_extension(ext)
            return
        try:
            key = cache_key(ext, list(getattr(self.compiler, "compiler_so", None) or []))
        except OSError:
            super().build_extension(ext)
            return
        cached = CACHE_DIR / f"{ext.name}-{key}{sysconfig.get_config_var('EXT_SUFFIX') or '.so'}"
        if cached.is_file():
            target.parent.mkdir(parents=True, exist_ok=True)
            shutil.copyfile(cached, target)  # a new mtime: build.py compares it with the sources
            note(f"{ext.name}: unchanged since an earlier build, reused {cached.relative_to(ROOT)}")
            return
        super().build_extension(ext)
        try:
            CACHE_DIR.mkdir(parents=True, exist_ok=True)
            partial = cached.with_name(cached.name + ".partial")
            shutil.copyfile(target, partial)
            os.replace(partial, cached)  # an interrupted copy is never taken for a build
            older = sorted(CACHE_DIR.glob(f"{ext.name}-*{cached.suffix}"), key=lambda p: p.stat().st_mtime)
            for old in older[:-CACHE_KEEP]:
                old.unlink()
        except OSError as exc:
            note(f"could not keep {ext.name} in {CACHE_DIR} ({exc})")

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
