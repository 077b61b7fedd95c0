"""istio.io "Mirroring", Gateway API version (configs/examples/gateway-api/,
docs/tasks/gateway-api-mirroring.md): Services and an HTTPRoute as a chart renders them, the pods
as loopback WorkloadEntries. The client always gets httpbin-v1's answer; httpbin-v2 gets a copy
of each request (Host ``httpbin-shadow:8000``) whose answer is discarded."""

from __future__ import annotations

import json

C = "cluster.outbound|80||{}.default.svc.cluster.local."


async def test_client_gets_v1_and_v2_gets_a_copy(run_example):
    ex = await run_example("gateway-api/")
    v1, v2 = ex.backends["httpbin-v1"], ex.backends["httpbin-v2"]  # Service httpbin selects both first
    for i in range(3):
        resp = await ex.get("httpbin:8000", "/headers")
        assert resp.status == 200
        assert json.loads(resp.body)["headers"]["Host"] == "httpbin:8000"
        copies = await v2.wait_for_requests(i + 1)
        assert (copies[i].method, copies[i].path) == ("GET", "/headers")
        assert copies[i].header("host") == "httpbin-shadow:8000"
    await ex.proxy.drain_shadows()
    assert [r.path for r in v1.requests] == ["/headers"] * 3
    assert [r.header("x-request-id") for r in v1.requests] == [r.header("x-request-id") for r in v2.requests]
    snap = ex.stats()
    assert snap[C.format("httpbin-v1") + "external.upstream_rq_200"] == 3
    assert snap[C.format("httpbin-v2") + "internal.upstream_rq_200"] == 3
