"""istio.io "Ingress Gateways" (configs/examples/ingress-gateway/, docs/tasks/ingress-gateway.md).

Expected outcome (istio.io), through the ingress gateway (``mirrorsim run --gateway
httpbin-gateway=...``): with the httpbin.example.com Gateway and its VirtualService (/status,
/delay), ``curl -I -HHost:httpbin.example.com .../status/200`` gives 200 and ``.../headers`` 404;
with the ``*`` Gateway and the /headers VirtualService, ``/headers`` works from any host (a browser)."""

from __future__ import annotations

import json

DIR = "ingress-gateway/"
GW = "httpbin-gateway"


async def test_step1_status_and_delay_routed_other_paths_404(run_example):
    ex = await run_example(DIR + "services.yaml", DIR + "step1-httpbin-gateway.yaml", gateways=[GW])
    port = ex.gateway_port(GW)
    resp = await ex.get("httpbin.example.com", "/status/200", method="HEAD", port=port)
    assert (resp.status, resp.header("x-backend")) == (200, "httpbin-v1")
    resp = await ex.get("httpbin.example.com", "/status/418", port=port)
    assert (resp.status, resp.header("x-backend")) == (418, "httpbin-v1")
    resp = await ex.get("httpbin.example.com", "/delay/0", port=port)
    assert (resp.status, resp.header("x-backend")) == (200, "httpbin-v1")
    resp = await ex.get("httpbin.example.com", "/headers", method="HEAD", port=port)
    assert (resp.status, resp.header("x-backend")) == (404, None)
    # the Gateway and VirtualService only accept httpbin.example.com
    resp = await ex.get("other.example.com", "/status/200", port=port)
    assert (resp.status, resp.header("x-backend")) == (404, None)
    assert [r.path for r in ex.backends["httpbin-v1"].requests] == ["/status/200", "/status/418", "/delay/0"]
    # the gateway-bound VirtualService does not apply inside the mesh (the sidecar listener)
    resp = await ex.get("httpbin:8000", "/headers")
    assert (resp.status, resp.header("x-backend")) == (200, "httpbin-v1")


async def test_step2_any_host_headers(run_example):
    ex = await run_example(DIR + "services.yaml", DIR + "step2-any-host.yaml", gateways=[GW])
    port = ex.gateway_port(GW)
    for host in (f"127.0.0.1:{port}", "httpbin.example.com", "anything"):
        resp = await ex.get(host, "/headers", port=port)
        assert (resp.status, resp.header("x-backend")) == (200, "httpbin-v1")
        assert json.loads(resp.body)["headers"]["Host"] == host
    resp = await ex.get("httpbin.example.com", "/status/200", port=port)
    assert (resp.status, resp.header("x-backend")) == (404, None)
