"""Hostile input on the command line: every command that reads a config refuses a YAML bomb,
a FIFO, a device, a huge file and deep nesting with FILE:LINE and exit code 1 within a
second; `run` refuses a config without resources; a non-loopback --admin is warned about."""

from __future__ import annotations

import os
import re
import time
from pathlib import Path

import pytest

from simulator import cli
from simulator.proxy.admin import exposure_warning
from tests.conftest import registry_yaml

BOMB = "apiVersion: networking.istio.io/v1\nkind: VirtualService\nmetadata: {name: bomb}\nspec:\n" \
       "  hosts: [a]\n  x0: &a0 [" + ", ".join(['"lol"'] * 9) + "]\n" + "".join(
           f"  x{i}: &a{i} [" + ", ".join([f"*a{i - 1}"] * 9) + "]\n" for i in range(1, 10))


@pytest.fixture
def hostile(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> dict[str, str]:
    monkeypatch.setenv("MIRRORSIM_MAX_CONFIG_BYTES", str(64 * 1024))
    fifo = tmp_path / "pipe.yaml"
    os.mkfifo(fifo)
    (tmp_path / "bomb.yaml").write_text(BOMB)
    (tmp_path / "deep.yaml").write_text("a: " + "[" * 3000 + "]" * 3000 + "\n")
    (tmp_path / "big.yaml").write_text("# " + "x" * 100 * 1024 + "\n")
    return {"fifo": str(fifo), "zero": "/dev/zero", "bomb": str(tmp_path / "bomb.yaml"),
            "deep": str(tmp_path / "deep.yaml"), "big": str(tmp_path / "big.yaml")}


def _main(argv: list[str], capsys: pytest.CaptureFixture[str]) -> tuple[int, str, float]:
    t0 = time.perf_counter()
    code = cli.main(argv)
    elapsed = time.perf_counter() - t0
    out = capsys.readouterr()
    return code, out.out + out.err, elapsed


@pytest.mark.parametrize("what", ["fifo", "zero", "bomb", "deep", "big"])
@pytest.mark.parametrize("command", ["validate", "run", "check", "explain", "envoy"])
def test_every_command_refuses_hostile_input(command, what, hostile, tmp_path, capsys, monkeypatch):
    monkeypatch.setattr(cli, "_serve", _no_serve)  # run must stop before serving anyway
    path = hostile[what]
    tests = tmp_path / "t.test.yaml"
    tests.write_text("tests:\n- request: {url: 'http://a/'}\n  expect: {status: 404}\n")
    argv = {"validate": ["validate", "-f", path],
            "run": ["run", "-f", path, "--listen", "127.0.0.1:0", "--admin", "127.0.0.1:0"],
            "check": ["check", "-f", path, str(tests)],
            "explain": ["explain", "-f", path, "http://a/"],
            "envoy": ["envoy", "-f", path]}[command]
    code, out, elapsed = _main(argv, capsys)
    assert code == 1, out
    assert re.search(rf"^{re.escape(path)}:\d+: error", out, re.M), out
    assert elapsed < 1.0, f"{command} {what}: {elapsed:.2f}s"


def test_route_test_files_are_bounded_too(hostile, tmp_path, capsys):
    config = tmp_path / "c.yaml"
    config.write_text(registry_yaml({"v1": 18081}))
    for what in ("fifo", "bomb", "zero"):
        code, out, elapsed = _main(["check", "-f", str(config), hostile[what]], capsys)
        assert code == 1 and elapsed < 1.0
        assert re.search(rf"^{re.escape(hostile[what])}:\d+: error", out, re.M), out


async def _no_serve(*args: object) -> int:
    return 0


def test_run_without_resources_says_so(tmp_path, capsys, monkeypatch):
    monkeypatch.setattr(cli, "_serve", _no_serve)
    (tmp_path / "empty.yaml").write_text("# nothing here\n---\n")
    (tmp_path / "other.yml").write_text("apiVersion: v1\nkind: Service\nmetadata: {name: x}\n")
    code, out, _ = _main(["run", "-f", str(tmp_path), "--listen", "127.0.0.1:0"], capsys)
    assert code == 1
    assert "no VirtualService, DestinationRule, ServiceEntry, WorkloadEntry or Gateway in" in out
    assert str(tmp_path / "empty.yaml") in out and str(tmp_path / "other.yml") in out
    assert "nothing was started" in out


def test_admin_on_a_non_loopback_address_is_warned_about(tmp_path, capsys, monkeypatch):
    monkeypatch.setattr(cli, "_serve", _no_serve)
    monkeypatch.setattr(cli, "_use_uvloop", lambda: None)
    config = tmp_path / "c.yaml"
    config.write_text(registry_yaml({"v1": 18081}))
    base = ["run", "-f", str(config), "--listen", "127.0.0.1:0", "--access-log", "off"]
    code, out, _ = _main([*base, "--admin", "0.0.0.0:0"], capsys)
    assert code == 0
    assert "warning: the admin interface listens on 0.0.0.0:0 (every interface)" in out
    assert "/config_dump" in out
    code, out, _ = _main([*base, "--admin", "127.0.0.1:0"], capsys)
    assert code == 0 and "warning" not in out


@pytest.mark.parametrize(("host", "warned"), [
    ("127.0.0.1", False), ("127.1.2.3", False), ("::1", False), ("localhost", False),
    ("0.0.0.0", True), ("::", True), ("192.0.2.7", True), ("example.com", True),
])
def test_exposure_warning(host, warned):
    w = exposure_warning(host, 15000)
    assert (w is not None) is warned
    if w:
        assert host in w and "/config_dump" in w and "live page" in w
