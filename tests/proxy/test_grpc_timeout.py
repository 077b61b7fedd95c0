"""A gRPC request's grpc-timeout is its route timeout (Istio's max_grpc_timeout = the route
timeout; simulator/core/grpc_timeout.py): the data plane's side, on retries and mirrors.
The first attempt is pinned against the real Envoy by tests/conformance/test_hcm.py."""

from __future__ import annotations

import asyncio

from tests.conftest import registry_yaml, table_from_yaml, virtual_service
from tests.support.client import get
from tests.support.recorder import Recorder

RETRIED = """
- route: [{destination: {host: httpbin, subset: v1}}]
  retries: {attempts: 1, retryOn: 5xx}
  mirror: {host: httpbin, subset: v2}
"""
GRPC = [("content-type", "application/grpc"), ("x-envoy-attempt-count", "7"), ("grpc-timeout", "5S"),
        ("te", "trailers")]


async def test_grpc_timeout_rewritten_per_attempt_and_on_the_mirror(run_proxy):
    async with Recorder("v1", status=503) as a, Recorder("v2") as m:
        rp = await run_proxy(table_from_yaml(registry_yaml({"v1": a.port, "v2": m.port})
                                             + virtual_service(RETRIED)))
        resp = await get(rp.port, "/svc/Method", method="POST", headers=GRPC, body=b"\0\0\0\0\0")
        first, second = await a.wait_for(2)
        (copy,) = await m.wait_for(1)
    assert resp.status == 503
    assert first.header("grpc-timeout") == "5000m" and first.header("x-envoy-expected-rq-timeout-ms") == "5000"
    left = int(second.header("x-envoy-expected-rq-timeout-ms") or 0)
    assert 4000 < left < 5000 and second.header("grpc-timeout") == f"{left}m"  # the time left
    for r, n in ((first, "1"), (second, "2"), (copy, "1")):
        names = [k for k, _ in r.headers]
        # the client's attempt count and grpc-timeout are replaced where they stood
        assert names.index("x-envoy-attempt-count") < names.index("grpc-timeout") < names.index("te")
        assert r.header_values("x-envoy-attempt-count") == [n]
    assert copy.header("grpc-timeout") == "5000m" and copy.header("x-envoy-expected-rq-timeout-ms") == "5000"


async def test_plain_request_keeps_grpc_timeout(run_proxy):
    async with Recorder("v1") as a:
        plain = "- route: [{destination: {host: httpbin, subset: v1}}]"
        rp = await run_proxy(table_from_yaml(registry_yaml({"v1": a.port}) + virtual_service(plain)))
        await asyncio.wait_for(get(rp.port, "/", headers=[("grpc-timeout", "5S")]), 5)
        (r,) = await a.wait_for(1)
    assert r.header("grpc-timeout") == "5S" and r.header("x-envoy-expected-rq-timeout-ms") is None
