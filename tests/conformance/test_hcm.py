"""Conformance of the connection-manager settings the export takes from Istio (docs/envoy-export.md):
path normalization per the mesh default (``normalize_path: true``, slashes kept, escaped slashes
kept), websocket upgrades, ``proxy_100_continue``, ``max_grpc_timeout`` on routes, on the real
Envoy vs mirrorsim.  A strict xfail is a mirrorsim data-plane difference these Istio settings
expose; its reason says what Envoy does."""

from __future__ import annotations

import asyncio

import pytest

from tests.conformance.harness import Backend, Driver, Observation, Req, Scenario, conformance_env, params
from tests.support.client import Response

pytestmark = [pytest.mark.slow, pytest.mark.asyncio(loop_scope="module")]

ROUTES = """
- match: [{uri: {prefix: /b}}]
  route: [{destination: {host: HOST, subset: v1}}]
- route: [{destination: {host: HOST, subset: v2}}]
"""

def same_host_retries(e: Observation, m: Observation) -> None:
    """With a consistent-hash destination Istio's retry policy has no previous_hosts predicate
    (retry.go ConvertPolicy, hashPolicy): every attempt goes to the hashed host.  Which host
    that is differs (deviations #11), so each proxy is checked on its own."""
    for o in (e, m):
        counts = sorted(o.count(b) for b in ("v1", "v2"))
        assert counts == [0, 3], f"{o.proxy}: attempts per backend {counts}, expected all 3 on one host"
        assert [r.status for r in o.responses if r is not None] == [503]


def _head(raw: bytes) -> Response:
    lines = raw.decode("latin-1").split("\r\n")
    status = int(lines[0].split(" ")[1])
    headers = [(k, v.strip()) for k, _, v in (ln.partition(":") for ln in lines[1:] if ln)]
    return Response(status, headers, b"")


async def drive_expect_continue(d: Driver) -> None:
    """POST with ``Expect: 100-continue``, the body held back as curl does: what arrives
    before the body is sent (within 1 s) is response #0 (status 0 if nothing), the final
    response #1."""
    reader, writer = await asyncio.open_connection("127.0.0.1", d.target.port)
    try:
        writer.write(f"POST /upload HTTP/1.1\r\nHost: {d.scenario.default_host}\r\nExpect: 100-continue\r\n"
                     "Content-Length: 5\r\nx-seq: 0\r\n\r\n".encode())
        await writer.drain()
        try:
            d.responses[0] = _head(await asyncio.wait_for(reader.readuntil(b"\r\n\r\n"), 1.0))
        except TimeoutError:
            d.responses[0] = Response(0, [], b"")
        writer.write(b"hello")
        await writer.drain()
        final = _head(await asyncio.wait_for(reader.readuntil(b"\r\n\r\n"), 5.0))
        n = int(dict((k.lower(), v) for k, v in final.headers).get("content-length", "0"))
        final.body = await asyncio.wait_for(reader.readexactly(n), 5.0)
        d.responses[1] = final
    finally:
        writer.close()


def grpc_req(timeout: str | None) -> Req:
    """A gRPC request (HTTP/1.1 here) with this grpc-timeout header, or none."""
    t = () if timeout is None else (("grpc-timeout", timeout),)
    return Req(method="POST", headers=(("content-type", "application/grpc"), *t, ("te", "trailers")),
               body=b"\0\0\0\0\0")


SCENARIOS = [
    Scenario("hcm-path-plain", http=ROUTES, requests=(Req(path="/b/x"), Req(path="/a//b"), Req(path="/a%2Fb"))),
    Scenario("hcm-path-dot-segments", http=ROUTES,
             requests=(Req(path="/a/../b/x"), Req(path="/./b"), Req(path="/a/%2e%2e/b"))),
    Scenario("hcm-path-backslash", http=ROUTES, requests=(Req(path="/a\\..\\b"),)),
    # httproute.go generateVirtualHostDomains: the absolute FQDN (PILOT_ENABLE_ABSOLUTE_FQDN_VHOST_DOMAIN)
    Scenario("hcm-domains", backends=("v1",), http="- route: [{destination: {host: HOST, subset: v1}}]",
             requests=(Req(host="hcm-domains.default.svc.cluster.local.:8000"), Req(host="hcm-domains.default:8000"),
                       Req(host="hcm-domains.default.svc.:8000"), Req(host="hcm-domains.:8000"),
                       Req(host="hcm-domains"), Req(host="hcm-domains.default.svc.cluster.local."),
                       Req(host="hcm-domains:80"))),
    Scenario("hcm-retry-consistent-hash", backends=(Backend("v1", status=503), Backend("v2", status=503)),
             http="""
             - route: [{destination: {host: HOST}}]
               retries: {attempts: 2, retryOn: 5xx}
             """,
             traffic_policy="loadBalancer: {consistentHash: {httpHeaderName: x-user}}",
             requests=(Req(headers=(("x-user", "alice"),)),), check=same_host_retries),
    Scenario("hcm-expect-100-continue", backends=("v1",), http="- route: [{destination: {host: HOST, subset: v1}}]",
             requests=(Req(), Req()), drive=drive_expect_continue),
    Scenario("hcm-websocket-upgrade", backends=("v1",), http="- route: [{destination: {host: HOST, subset: v1}}]",
             requests=(Req(headers=(("Connection", "Upgrade"), ("Upgrade", "websocket"),
                                    ("Sec-WebSocket-Version", "13"),
                                    ("Sec-WebSocket-Key", "dGhlIHNhbXBsZSBub25jZQ=="))),)),
    # route.go setTimeout: max_grpc_timeout = the route timeout (0s: none), so a gRPC request's
    # grpc-timeout is its timeout (Envoy's FilterUtility::finalTimeout; core/grpc_timeout.py)
    Scenario("hcm-grpc-timeout", backends=("v1",), http="- route: [{destination: {host: HOST, subset: v1}}]",
             requests=tuple(grpc_req(t) for t in ("2S", "2500001u", "3M", "1H", "abc", None))
             + (Req(method="POST", headers=(("content-type", "application/grpc-web"), ("grpc-timeout", "2S"))),)),
    Scenario("hcm-grpc-timeout-capped", backends=("v1",),
             http="- route: [{destination: {host: HOST, subset: v1}}]\n  timeout: 3s",
             requests=tuple(grpc_req(t) for t in ("2S", "10S", "0m", "abc", None, "999999999n"))  # 9 digits: invalid
             + (Req(method="POST", headers=(("content-type", "application/json"), ("grpc-timeout", "2S"))),)),
]

env = conformance_env(SCENARIOS)


@pytest.mark.parametrize("name", params(SCENARIOS))
async def test_conformance(env, name):
    await env.check(name)


@pytest.mark.parametrize("name", params(SCENARIOS, order=True))
async def test_header_order(env, name):
    await env.check_order(name)
