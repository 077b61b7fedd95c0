"""``mirrorsim backend --for PATH...``: one built-in backend per loopback STATIC endpoint."""

from __future__ import annotations

import asyncio
import re
import socket
import sys
from pathlib import Path

import pytest

from simulator.backend import BackendSpec, backends_for
from simulator.config import load_text
from tests.examples.conftest import EXAMPLES, load_example
from tests.support.client import get

BOOKINFO = [BackendSpec("productpage-v1", "127.0.0.1", 19080), BackendSpec("details-v1", "127.0.0.1", 19081),
            BackendSpec("ratings-v1", "127.0.0.1", 19082), BackendSpec("reviews-v1", "127.0.0.1", 19083),
            BackendSpec("reviews-v2", "127.0.0.1", 19084), BackendSpec("reviews-v3", "127.0.0.1", 19085)]


@pytest.mark.parametrize("folder, expected", [
    ("request-routing", BOOKINFO), ("fault-injection", BOOKINFO), ("traffic-shifting", BOOKINFO),
    ("request-timeouts", BOOKINFO),
    ("circuit-breaking", [BackendSpec("httpbin-v1", "127.0.0.1", 18080)]),
    ("ingress-gateway", [BackendSpec("httpbin-v1", "127.0.0.1", 18080)]),
    ("mirroring", [BackendSpec("httpbin-v1", "127.0.0.1", 18081), BackendSpec("httpbin-v2", "127.0.0.1", 18082)]),
])
def test_every_example_folder(folder, expected):
    files = [p.name for p in (EXAMPLES / folder).iterdir()]
    paths = [f"{folder}/services.yaml"] if "services.yaml" in files else [f"{folder}/"]
    assert backends_for(load_example(*paths)) == (expected, [])


SE = """
apiVersion: networking.istio.io/v1
kind: ServiceEntry
metadata: {name: %(name)s, namespace: default}
spec:
  hosts: [%(host)s]
  location: MESH_INTERNAL
  resolution: %(resolution)s
  ports:
  - {number: 8000, name: http, protocol: HTTP}
  - {number: 9000, name: admin, protocol: HTTP, targetPort: 9901}
%(endpoints)s
---
"""


def _config(**kw: str):
    text = SE % {"name": "svc", "host": "svc.default.svc.cluster.local", "resolution": "STATIC", **kw}
    text += """
apiVersion: networking.istio.io/v1
kind: WorkloadEntry
metadata: {name: vm, namespace: default}
spec: {address: "::1", labels: {app: vm, version: v7}, ports: {http: 18007}}
---
apiVersion: networking.istio.io/v1
kind: ServiceEntry
metadata: {name: vm, namespace: default}
spec:
  hosts: [vm.example.com]
  resolution: STATIC
  ports: [{number: 80, name: http, protocol: HTTP}]
  workloadSelector: {labels: {app: vm}}
"""
    result = load_text(text, "t.yaml")
    assert result.ok, [d.format() for d in result.diagnostics]
    return result.config


def test_ports_names_non_loopback_and_workload_entries():
    cfg = _config(endpoints="""  endpoints:
  - {address: 127.0.0.1, ports: {http: 18001}, labels: {version: v1}}
  - {address: 10.0.0.7, ports: {http: 18002}, labels: {version: v2}}
  - {address: 127.0.0.1, ports: {http: 18001}}
  - {address: "::1", labels: {app: x}}""")
    specs, notes = backends_for(cfg)
    assert specs == [
        BackendSpec("svc-v1", "127.0.0.1", 18001),  # ports[<name>]
        BackendSpec("svc-v1", "127.0.0.1", 9901),  # targetPort of the second service port
        BackendSpec("svc", "::1", 8000), BackendSpec("svc", "::1", 9901),  # no version label; number
        BackendSpec("vm-v7", "::1", 18007),  # WorkloadEntry picked by workloadSelector
    ]
    assert notes == [
        "ServiceEntry default/svc: endpoint 10.0.0.7 is not a loopback address: no backend started for svc-v2",
        "ServiceEntry default/svc: svc on 127.0.0.1:18001 is served by svc-v1 (same address)",
        "ServiceEntry default/svc: svc on 127.0.0.1:9901 is served by svc-v1 (same address)",
    ]


def test_dns_entries_start_nothing():
    cfg = _config(resolution="DNS", endpoints="  endpoints: [{address: 127.0.0.1, labels: {version: v1}}]")
    specs, notes = backends_for(cfg)
    assert specs == [BackendSpec("vm-v7", "::1", 18007)]
    assert notes == ["ServiceEntry default/svc: resolution DNS, not STATIC: no backend started"]


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


async def _mirrorsim(*args: str) -> asyncio.subprocess.Process:
    return await asyncio.create_subprocess_exec(sys.executable, "-m", "simulator", *args,
                                                stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE)


@pytest.mark.slow
async def test_cli_starts_one_backend_per_endpoint_until_interrupted(tmp_path: Path):
    p1, p2 = _free_port(), _free_port()
    text = (EXAMPLES / "mirroring" / "httpbin.yaml").read_text()
    (tmp_path / "httpbin.yaml").write_text(text.replace("18081", str(p1)).replace("18082", str(p2)))
    proc = await _mirrorsim("backend", "--for", str(tmp_path))
    try:
        lines = [(await asyncio.wait_for(proc.stdout.readline(), 20)).decode() for _ in range(2)]  # type: ignore[union-attr]
        assert lines == [f"httpbin-v1 listening on http://127.0.0.1:{p1}\n",
                         f"httpbin-v2 listening on http://127.0.0.1:{p2}\n"]
        for port, name in ((p1, "httpbin-v1"), (p2, "httpbin-v2")):
            resp = await get(port, "/headers", host="httpbin:8000")
            assert (resp.status, resp.header("x-backend")) == (200, name)
        log = (await asyncio.wait_for(proc.stdout.readline(), 20)).decode()  # type: ignore[union-attr]
        assert re.match(r"\[httpbin-v1\] GET /headers host=httpbin:8000", log)
    finally:
        proc.send_signal(2)  # Ctrl-C
        await asyncio.wait_for(proc.wait(), 20)
    assert proc.returncode == 0


@pytest.mark.slow
async def test_cli_usage_and_config_errors(tmp_path: Path):
    proc = await _mirrorsim("backend", "--for", str(EXAMPLES / "mirroring"), "--name", "x")
    _, err = await asyncio.wait_for(proc.communicate(), 20)
    assert proc.returncode == 2 and b"cannot be combined with --name or --listen" in err
    (tmp_path / "dns.yaml").write_text(SE % {"name": "svc", "host": "svc.example.com", "resolution": "DNS",
                                              "endpoints": "  endpoints: [{address: 127.0.0.1}]"})
    proc = await _mirrorsim("backend", "--for", str(tmp_path))
    _, err = await asyncio.wait_for(proc.communicate(), 20)
    assert proc.returncode == 1
    assert b"resolution DNS, not STATIC" in err and b"nothing was started" in err
    (tmp_path / "dns.yaml").write_text("kind: VirtualService\napiVersion: networking.istio.io/v1\nspec: {x: 1}\n")
    proc = await _mirrorsim("backend", "--for", str(tmp_path))
    _, err = await asyncio.wait_for(proc.communicate(), 20)
    assert proc.returncode == 1 and b"error" in err
