"""Shared fixtures: build a route table from Istio YAML, start the proxy on loopback."""

from __future__ import annotations

import textwrap
from collections.abc import AsyncIterator, Callable

import pytest

from simulator.config import load_text
from simulator.core.table import RouteTable
from simulator.core.translate import TranslateOptions, translate
from simulator.proxy.launch import RunningProxy, RunOptions, start_proxy


def registry_yaml(ports: dict[str, int], host: str = "httpbin", service_port: int = 8000) -> str:
    """A ServiceEntry for ``host`` with one loopback endpoint per version label,
    and a DestinationRule with one subset per version."""
    eps = "".join(
        f"""
  - address: 127.0.0.1
    ports: {{http: {port}}}
    labels: {{app: {host}, version: {version}}}"""
        for version, port in ports.items()
    )
    subsets = "".join(f"""
  - name: {version}
    labels: {{version: {version}}}""" for version in ports)
    return f"""
apiVersion: networking.istio.io/v1
kind: ServiceEntry
metadata: {{name: {host}, namespace: default}}
spec:
  hosts: [{host}.default.svc.cluster.local]
  location: MESH_INTERNAL
  resolution: STATIC
  ports:
  - {{number: {service_port}, name: http, protocol: HTTP}}
  endpoints:{eps}
---
apiVersion: networking.istio.io/v1
kind: DestinationRule
metadata: {{name: {host}, namespace: default}}
spec:
  host: {host}
  subsets:{subsets}
"""


def virtual_service(http: str, host: str = "httpbin", name: str | None = None) -> str:
    body = textwrap.indent(textwrap.dedent(http).strip("\n"), "  ")
    return f"""
---
apiVersion: networking.istio.io/v1
kind: VirtualService
metadata: {{name: {name or host}, namespace: default}}
spec:
  hosts: [{host}]
  http:
{body}
"""


def table_from_yaml(text: str, shadow_suffix: bool = True) -> RouteTable:
    result = load_text(text, "test.yaml")
    errors = [d.format() for d in result.diagnostics if d.severity == "error"]
    assert not errors, "\n".join(errors)
    return translate(result.config, TranslateOptions(shadow_suffix=shadow_suffix))


@pytest.fixture
async def run_proxy() -> AsyncIterator[Callable[..., object]]:
    """``rp = await run_proxy(table, seed=1, ...)``: a started proxy, closed after the test."""
    started: list[RunningProxy] = []

    async def _start(table: RouteTable, **kw: object) -> RunningProxy:
        kw.setdefault("listen_port", 0)
        kw.setdefault("admin_port", 0)
        kw.setdefault("local_address", "192.0.2.2")
        rp = await start_proxy(table, RunOptions(**kw))  # type: ignore[arg-type]
        started.append(rp)
        return rp

    yield _start
    for rp in started:
        await rp.close()
