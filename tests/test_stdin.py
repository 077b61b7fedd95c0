"""``-f -``: the configuration as a YAML stream on standard input, as a pipe from
``helm template`` or ``kustomize build`` gives it (issue 16)."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
EXAMPLE = ROOT / "configs" / "examples" / "gateway-api"


def rendered() -> bytes:
    """The example as a renderer prints it: documents separated by ``---``."""
    return b"".join(b"---\n" + (EXAMPLE / n).read_bytes() for n in ("httpbin.yaml", "workloads.yaml"))


def mirrorsim(*args: str, stdin: bytes) -> subprocess.CompletedProcess[bytes]:
    return subprocess.run([sys.executable, "-m", "simulator", *args], input=stdin, capture_output=True,
                          timeout=50, cwd=ROOT, check=False)


def test_check_reads_the_config_from_a_pipe() -> None:
    # the shell's `cat ... | mirrorsim check -f - tests/`, through a real pipe
    cat = subprocess.Popen(["cat"], stdin=subprocess.PIPE, stdout=subprocess.PIPE)
    check = subprocess.Popen([sys.executable, "-m", "simulator", "check", "-f", "-", str(EXAMPLE)],
                             stdin=cat.stdout, stdout=subprocess.PIPE, stderr=subprocess.PIPE, cwd=ROOT)
    assert cat.stdout is not None and cat.stdin is not None
    cat.stdout.close()
    cat.stdin.write(rendered())
    cat.stdin.close()
    out, err = check.communicate(timeout=50)
    cat.wait(timeout=10)
    assert check.returncode == 0, (out, err)
    assert b"2 passed, 0 failed" in out and b"route coverage: 100.0%" in out


def test_diagnostics_name_stdin_and_its_line() -> None:
    text = rendered() + b"""---
apiVersion: gateway.networking.k8s.io/v1
kind: HTTPRoute
metadata: {name: bad}
spec:
  parentRefs: [{group: "", kind: Service, name: httpbin}]
  rules:
  - backendRefs: [{name: httpbin-v1}]
"""
    line = text.decode().split("\n").index("  - backendRefs: [{name: httpbin-v1}]") + 1
    res = mirrorsim("validate", "-f", "-", stdin=text)
    assert res.returncode != 0
    assert f"<stdin>:{line}: error".encode() in res.stdout + res.stderr, res
    assert b"Must have port for Service reference" in res.stdout + res.stderr
