"""Build a mypyc-compiled copy of mirrorsim's data plane, for benchmarking.

    python3 benchmarks/compile.py OUT_DIR

copies simulator/ to OUT_DIR/simulator and compiles the hot modules (the data
plane and the routing core) to C extensions in place.  Run it with
``PYTHONPATH=OUT_DIR python3 -m simulator run ...``; run the test suite against
it with ``PYTHONPATH=OUT_DIR python3 -m pytest tests/integration``.  The source
stays plain Python: nothing in the repository is compiled, and the README's
commands run the interpreted code.  Needs mypy (pip) and a C compiler.
"""

from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
MODULES = [
    "simulator/proxy/server.py", "simulator/proxy/upstream.py", "simulator/proxy/mirror.py",
    "simulator/proxy/stats.py", "simulator/proxy/accesslog.py", "simulator/proxy/headers.py",
    "simulator/core/table.py", "simulator/core/matchers.py", "simulator/core/hosts.py",
]
SETUP = f"""
from setuptools import setup
from mypyc.build import mypycify
setup(name="mirrorsim-compiled", packages=[], ext_modules=mypycify({MODULES!r}, opt_level="3"))
"""


def main(out: str) -> int:
    dest = Path(out).resolve()
    if dest.exists():
        shutil.rmtree(dest)
    dest.mkdir(parents=True)
    shutil.copytree(ROOT / "simulator", dest / "simulator",
                    ignore=shutil.ignore_patterns("__pycache__", "*.so"))
    (dest / "setup.py").write_text(SETUP)
    subprocess.run([sys.executable, "-m", "pip", "install", "-q", "mypy", "setuptools"], check=True)
    proc = subprocess.run([sys.executable, "setup.py", "build_ext", "--inplace"], cwd=dest,
                          capture_output=True, text=True)
    if proc.returncode != 0:
        print(proc.stdout[-4000:], proc.stderr[-4000:], sep="\n", file=sys.stderr)
        return 1
    built = sorted(p.relative_to(dest) for p in dest.rglob("*.so"))
    print(f"compiled {len(built)} modules into {dest}")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1] if len(sys.argv) > 1 else "/tmp/mirrorsim-compiled"))
