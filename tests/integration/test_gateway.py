"""Ingress gateways: Gateway servers served on local addresses."""

from __future__ import annotations

from simulator.config import load_text
from simulator.core.translate import TranslateOptions, gateway_servers, translate, translate_gateway
from simulator.proxy.launch import GatewayListener, RunOptions, start_proxy
from tests.conftest import registry_yaml
from tests.support.client import get
from tests.support.recorder import Recorder

GATEWAY = """
---
apiVersion: networking.istio.io/v1
kind: Gateway
metadata: {name: web-gateway, namespace: default}
spec:
  selector: {istio: ingressgateway}
  servers:
  - port: {number: 80, name: http, protocol: HTTP}
    hosts: ["*"]
  - port: {number: 8443, name: http-redirect, protocol: HTTP}
    hosts: ["*"]
    tls: {httpsRedirect: true}
---
apiVersion: networking.istio.io/v1
kind: VirtualService
metadata: {name: web, namespace: default}
spec:
  hosts: ["*"]
  gateways: [web-gateway]
  http:
  - match:
    - uri: {exact: /productpage}
    - uri: {prefix: /static}
    route:
    - destination: {host: httpbin, port: {number: 8000}, subset: v1}
---
apiVersion: networking.istio.io/v1
kind: VirtualService
metadata: {name: web-extra, namespace: default}
spec:
  hosts: ["*"]
  gateways: [default/web-gateway]
  http:
  - route:
    - destination: {host: httpbin, subset: v2}
  - match: [{uri: {prefix: /api}}]
    route:
    - destination: {host: httpbin, subset: v1}
"""


async def start(v1: int, v2: int, server_port: int = 80):
    result = load_text(registry_yaml({"v1": v1, "v2": v2}) + GATEWAY, "gw.yaml")
    assert result.ok, [d.format() for d in result.diagnostics]
    cfg = result.config
    mesh = translate(cfg)
    gw, servers = gateway_servers(cfg, "default/web-gateway")
    (server,) = [s for s in servers if s.port.number == server_port]
    table = translate_gateway(cfg, gw, server, TranslateOptions(), clusters=mesh.clusters)
    return await start_proxy(mesh, RunOptions(listen_port=0, admin_port=None, local_address="192.0.2.2"),
                           [GatewayListener("gw", table)])


async def test_gateway_routes_bound_virtual_services_merged():
    async with Recorder("v1") as a, Recorder("v2") as b:
        rp = await start(a.port, b.port)
        try:
            port = rp.gateway_ports["gw"]
            assert (await get(port, "/productpage", host="bookinfo.example.com")).status == 200
            assert (await get(port, "/static/x.css", host="anything")).status == 200
            # web-extra's catch-all moved after its /api rule and after web's rules
            assert (await get(port, "/api/v1", host="x")).status == 200
            assert (await get(port, "/other", host="x")).status == 200
            # mesh listener does not serve gateway-bound VirtualServices: default route
            assert (await get(rp.port, "/mesh", host="httpbin:8000")).status == 200
        finally:
            await rp.close()
    gateway_a = [r.target for r in a.requests if r.target != "/mesh"]
    gateway_b = [r.target for r in b.requests if r.target != "/mesh"]
    assert gateway_a == ["/productpage", "/static/x.css", "/api/v1"]
    assert gateway_b == ["/other"]


async def test_https_redirect():
    async with Recorder("v1") as a, Recorder("v2") as b:
        rp = await start(a.port, b.port, server_port=8443)
        try:
            resp = await get(rp.gateway_ports["gw"], "/productpage?x=1", host="shop.example.com:8443")
        finally:
            await rp.close()
    assert resp.status == 301
    # Envoy's require_tls redirect is https://{Host as sent}{path}: the port stays
    assert resp.header("location") == "https://shop.example.com:8443/productpage?x=1"
    assert a.requests == []


async def test_gateway_without_matching_host_is_404_nr():
    cfg = load_text(registry_yaml({"v1": 1}) + GATEWAY.replace('hosts: ["*"]\n  gateways',
                                                                'hosts: ["shop.example.com"]\n  gateways'),
                    "gw.yaml").config
    gw, servers = gateway_servers(cfg, "default/web-gateway")
    table = translate_gateway(cfg, gw, servers[0])
    d = table.route("GET", "other.example.com", "/productpage", {}, 0)
    assert (d.status, d.flags) == (404, "NR")  # type: ignore[union-attr]
    d = table.route("GET", "shop.example.com:80", "/productpage", {}, 0)
    assert d.cluster == "outbound|8000|v1|httpbin.default.svc.cluster.local"  # type: ignore[union-attr]


async def test_gateway_listener_has_its_own_stat_prefix_and_server_name():
    async with Recorder("v1") as a, Recorder("v2") as b:
        rp = await start(a.port, b.port)
        try:
            resp = await get(rp.gateway_ports["gw"], "/nowhere-else", host="x")  # web-extra catch-all
            mesh = await get(rp.port, "/", host="httpbin:8000")
        finally:
            await rp.close()
    assert resp.header("server") == "istio-envoy" and mesh.header("server") == "envoy"
    snap = rp.stats.snapshot()
    assert snap["http.outbound_0.0.0.0_80.downstream_rq_2xx"] == 1
    assert snap["http.outbound_0.0.0.0_15001.downstream_rq_2xx"] == 1
