"""corsPolicy end to end on loopback: the proxy answers preflights itself (the backend never
sees them), forwards unmatched ones, and sets CORS headers on actual responses."""

from __future__ import annotations

from tests.conftest import registry_yaml, table_from_yaml, virtual_service
from tests.support.client import get
from tests.support.recorder import Recorder

HTTP = """
- route: [{destination: {host: httpbin, subset: v1}}]
  corsPolicy:
    allowOrigins: [{exact: "https://a.example"}]
    allowMethods: [GET, PUT]
    allowHeaders: [x-a]
    exposeHeaders: [x-e]
    maxAge: 60s
    allowCredentials: true
"""


async def test_preflight_is_answered_by_the_proxy(run_proxy):
    async with Recorder("v1") as a:
        rp = await run_proxy(table_from_yaml(registry_yaml({"v1": a.port}) + virtual_service(HTTP)))
        resp = await get(rp.port, "/x", method="OPTIONS", headers=[
            ("Origin", "https://a.example"), ("Access-Control-Request-Method", "PUT")])
    assert resp.status == 200 and resp.body == b""
    assert resp.header("access-control-allow-origin") == "https://a.example"
    assert resp.header("access-control-allow-methods") == "GET,PUT"
    assert resp.header("access-control-allow-headers") == "x-a"
    assert resp.header("access-control-max-age") == "60"
    assert resp.header("access-control-allow-credentials") == "true"
    assert resp.header("x-envoy-upstream-service-time") is None
    assert a.requests == []


async def test_unmatched_preflight_goes_upstream_without_cors_headers(run_proxy):
    async with Recorder("v1") as a:
        rp = await run_proxy(table_from_yaml(registry_yaml({"v1": a.port}) + virtual_service(HTTP)))
        resp = await get(rp.port, "/x", method="OPTIONS", headers=[
            ("Origin", "https://evil.example"), ("Access-Control-Request-Method", "PUT")])
    assert resp.status == 200 and resp.header("access-control-allow-origin") is None
    assert [r.method for r in a.requests] == ["OPTIONS"]


async def test_actual_request_gets_cors_headers(run_proxy):
    async with Recorder("v1") as a:
        rp = await run_proxy(table_from_yaml(registry_yaml({"v1": a.port}) + virtual_service(HTTP)))
        ok = await get(rp.port, "/x", headers=[("Origin", "https://a.example")])
        other = await get(rp.port, "/x", headers=[("Origin", "https://b.example")])
    assert ok.status == 200
    assert ok.header("access-control-allow-origin") == "https://a.example"
    assert ok.header("access-control-expose-headers") == "x-e"
    assert ok.header("access-control-allow-credentials") == "true"
    assert other.header("access-control-allow-origin") is None
    assert len(a.requests) == 2
    stats = rp.stats.snapshot()  # Envoy's CORS filter stats under the HCM prefix
    assert stats["http.outbound_0.0.0.0_15001.cors.origin_valid"] == 1
    assert stats["http.outbound_0.0.0.0_15001.cors.origin_invalid"] == 1


async def test_config_dump_shows_the_cors_policy(run_proxy):
    import json

    async with Recorder("v1") as a:
        rp = await run_proxy(table_from_yaml(registry_yaml({"v1": a.port}) + virtual_service(HTTP)))
        resp = await get(rp.admin_port, "/config_dump?format=mirrorsim", host="127.0.0.1")
    (rc,) = [rc for rc in json.loads(resp.body)["route_configs"] if rc["name"] == "8000"]
    (route,) = rc["virtual_hosts"][0]["routes"]
    assert route["cors"] == {"allow_origins": ["exact 'https://a.example'"], "allow_methods": "GET,PUT",
                             "allow_headers": "x-a", "expose_headers": "x-e", "max_age": "60",
                             "allow_credentials": True, "forward_not_matching_preflights": True}
