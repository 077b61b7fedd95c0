"""One real process per command: the installed entry point and exit codes."""

from __future__ import annotations

import subprocess
import sys

import pytest

from tests.routecheck.helpers import BOOKINFO, DATA, ROOT

pytestmark = pytest.mark.slow


def run(*argv: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "simulator", *argv], cwd=ROOT, capture_output=True, text=True,
                          timeout=60)


def test_validate_process():
    p = run("validate", "-f", BOOKINFO)
    assert p.returncode == 0 and "0 error(s), 0 warning(s)" in p.stderr


def test_explain_process():
    p = run("explain", "-f", BOOKINFO, "-H", "end-user: jason", "http://reviews:9080/")
    assert p.returncode == 0
    assert "destination: outbound|9080|v2|reviews.default.svc.cluster.local" in p.stdout


def test_check_process():
    p = run("check", "-f", "configs/examples/mirroring/", "configs/examples/mirroring/routes.test.yaml")
    assert p.returncode == 0, p.stdout + p.stderr
    assert "4 test(s): 4 passed, 0 failed" in p.stdout
    p = run("check", "-f", BOOKINFO, str(DATA / "bookinfo.test.yaml"), "--fail-under", "100")
    assert p.returncode == 1
