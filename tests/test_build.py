"""The installed build: the data plane and routing core compiled by mypyc (setup.py), and
the pure-Python fallback (simulator/build.py) that MIRRORSIM_PURE=1, a missing compiler or
a stale build selects."""

from __future__ import annotations

import importlib
import os
import shutil
import subprocess
import sys
from importlib.machinery import EXTENSION_SUFFIXES
from pathlib import Path

import aiohttp
import pytest

import simulator
from simulator import __version__, build
from simulator.build import COMPILED, COMPILED_LABEL, SHARED_LIB, build_info
from tests.conftest import registry_yaml, table_from_yaml

ROOT = Path(__file__).resolve().parents[1]
PACKAGE = Path(simulator.__file__).resolve().parent
SO = EXTENSION_SUFFIXES[0]  # .cpython-311-x86_64-linux-gnu.so
PURE_RUN = build.pure_requested()  # this whole run tests the fallback (MIRRORSIM_PURE=1 in the environment)
# a complete compiled build, not older than its sources (what a run without MIRRORSIM_PURE loads)
BUILT = build.check(str(PACKAGE), environ={})[0]
# the directories whose tests cover the data plane and the routing core
BEHAVIOURAL = ["tests/integration", "tests/conformance", "tests/proxy", "tests/core", "tests/examples"]

PROBE = f"""
import importlib, sys
from simulator.build import build_info
for m in {COMPILED!r}:
    print(importlib.import_module(m).__file__)
print({SHARED_LIB!r} in sys.modules)
print(build_info())
"""


def _env(**env: str) -> dict[str, str]:
    """This process's environment without MIRRORSIM_PURE, plus ``env``."""
    return {**{k: v for k, v in os.environ.items() if k != build.PURE_ENV}, **env}


def _python(code: str, cwd: Path, **env: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-c", code], cwd=cwd, env=_env(**env),
                          capture_output=True, text=True, timeout=120)


def _probe(cwd: Path, **env: str) -> tuple[list[str], bool, str, str]:
    """(__file__ of each compiled module, shared library loaded?, build_info(), stderr)."""
    r = _python(PROBE, cwd, **env)
    assert r.returncode == 0, r.stderr
    *files, shared, info = r.stdout.splitlines()
    return files, shared == "True", info, r.stderr


def test_compiled_modules_are_listed_once():
    assert len(set(COMPILED)) == len(COMPILED)
    for m in COMPILED:
        assert (ROOT / (m.replace(".", "/") + ".py")).is_file(), m
    assert "build.COMPILED" in (ROOT / "setup.py").read_text()  # setup.py compiles exactly this list


@pytest.mark.skipif(PURE_RUN, reason="MIRRORSIM_PURE is set: this run tests the pure-Python fallback")
def test_the_data_plane_runs_compiled():
    files = {m: importlib.import_module(m).__file__ or "" for m in COMPILED}
    interpreted = [f for f in files.values() if not f.endswith(SO)]
    assert not interpreted, ("the data plane runs interpreted; `python3 -m pip install -e .` builds it "
                             "(a C compiler is needed; `pip install -v` says why it was not built):\n"
                             + "\n".join(interpreted))
    assert SHARED_LIB in sys.modules
    assert build_info() == COMPILED_LABEL


@pytest.mark.slow
@pytest.mark.skipif(not BUILT, reason="no usable compiled build installed")
def test_mirrorsim_pure_loads_every_module_from_source():
    files, shared, info, err = _probe(ROOT, **{build.PURE_ENV: "1"})
    assert all(f.endswith(".py") for f in files), files
    assert not shared
    assert info == "pure Python (MIRRORSIM_PURE=1)"
    assert err == ""
    # and without it, the same process start loads the compiled build
    files, shared, info, err = _probe(ROOT)
    assert all(f.endswith(SO) for f in files) and shared and info == COMPILED_LABEL and err == ""


@pytest.fixture
def package_copy(tmp_path: Path) -> Path:
    """A copy of the installed package (with its compiled modules, mtimes kept) in tmp_path."""
    if not BUILT:
        pytest.skip("no usable compiled build installed")
    shutil.copytree(PACKAGE, tmp_path / "simulator", ignore=shutil.ignore_patterns("__pycache__"))
    return tmp_path


@pytest.mark.slow
def test_stale_build_falls_back_to_source_with_a_warning(package_copy: Path):
    files, shared, info, err = _probe(package_copy)  # the copy itself loads compiled
    assert all(f.startswith(str(package_copy)) and f.endswith(SO) for f in files), files
    assert info == COMPILED_LABEL and err == ""

    edited = package_copy / "simulator" / "core" / "table.py"
    so = build.module_files(str(package_copy / "simulator"), "simulator.core.table")[1]
    so_mtime = os.stat(so).st_mtime
    os.utime(edited, (so_mtime + 60, so_mtime + 60))  # edited a minute after the build
    files, shared, info, err = _probe(package_copy)
    assert all(f.startswith(str(package_copy)) and f.endswith(".py") for f in files), files
    assert not shared  # all or nothing: no compiled module was loaded
    assert info == "pure Python (stale compiled build)"
    (line,) = err.splitlines()
    assert "simulator/core/table.py changed after the compiled build" in line
    assert "pip install -e ." in line

    os.utime(edited, (so_mtime - 60, so_mtime - 60))
    Path(build.module_files(str(package_copy / "simulator"), "simulator.proxy.stats")[1]).unlink()
    files, shared, info, err = _probe(package_copy)
    assert all(f.endswith(".py") for f in files) and not shared, files
    assert info == "pure Python (incomplete compiled build)"
    (line,) = err.splitlines()
    assert "lacks simulator.proxy.stats" in line and "pip install -e ." in line


@pytest.mark.slow
def test_version_names_the_build():
    r = subprocess.run([sys.executable, "-m", "simulator", "--version"], capture_output=True, text=True,
                       timeout=60)
    assert r.returncode == 0, r.stderr
    assert r.stdout == f"mirrorsim {__version__}, {build_info()}\n"


async def test_server_info_names_the_build(run_proxy):
    rp = await run_proxy(table_from_yaml(registry_yaml({"v1": 1})))
    async with aiohttp.ClientSession() as s:
        async with s.get(f"http://127.0.0.1:{rp.admin_port}/server_info") as r:
            info = await r.json()
    assert info["build"] == build_info()


@pytest.mark.slow
@pytest.mark.parametrize("env, why", [
    ({build.PURE_ENV: "1"}, "MIRRORSIM_PURE is set"),
    ({"CC": "/nonexistent/cc"}, "no C compiler found"),
    ({"CC": "false"}, "building the C extensions failed"),  # mypyc runs, every compile fails
], ids=["MIRRORSIM_PURE", "no-compiler", "compile-fails"])
@pytest.mark.timeout(300)
def test_setup_installs_pure_python_when_it_cannot_compile(tmp_path: Path, env: dict[str, str], why: str):
    pytest.importorskip("setuptools")
    if "CC" in env:
        pytest.importorskip("mypyc")
    for name in ("setup.py", "pyproject.toml", "README.md"):
        shutil.copy2(ROOT / name, tmp_path / name)
    shutil.copytree(ROOT / "simulator", tmp_path / "simulator", ignore=shutil.ignore_patterns("__pycache__"))
    stale = tmp_path / "simulator" / (SHARED_LIB.split(".")[1] + SO)
    stale.write_bytes(b"")  # an earlier in-place build, which the pure one must remove
    r = subprocess.run([sys.executable, "setup.py", "-q", "build_ext", "--inplace"], cwd=tmp_path,
                       env=_env(**env), capture_output=True, text=True, timeout=280)
    assert r.returncode == 0, r.stdout[-3000:] + r.stderr[-3000:]
    assert f"mirrorsim: {why}" in r.stderr and "installing the pure-Python data plane" in r.stderr
    assert sorted(tmp_path.glob("simulator/**/*.so")) == []
    files, shared, info, err = _probe(tmp_path)
    assert all(f.endswith(".py") for f in files) and info == "pure Python" and err == ""


@pytest.mark.slow
@pytest.mark.skipif(PURE_RUN, reason="this run is the pure-Python fallback already")
@pytest.mark.skipif(not BUILT, reason="no compiled build installed: every test ran pure already")
@pytest.mark.timeout(900)
def test_pure_fallback_passes_the_behavioural_tests(tmp_path: Path):
    dirs = [d for d in BEHAVIOURAL if (ROOT / d).is_dir()]
    assert dirs == BEHAVIOURAL, "update BEHAVIOURAL: the test directories moved"
    cmd = [sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", f"--basetemp={tmp_path / 'inner'}",
           "--ignore=tests/test_build.py", *dirs]
    r = subprocess.run(cmd, cwd=ROOT, env={**os.environ, build.PURE_ENV: "1"}, capture_output=True,
                       text=True, timeout=840)
    tail = "\n".join((r.stdout + r.stderr).splitlines()[-60:])
    assert r.returncode == 0, f"{' '.join(cmd)} with MIRRORSIM_PURE=1 failed:\n{tail}"
    assert " passed" in tail
