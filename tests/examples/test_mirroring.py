"""istio.io "Mirroring" (configs/examples/mirroring/, docs/tasks/mirroring.md; `mirrorsim demo`
runs the same folder).

Expected outcome (istio.io): the client always gets httpbin v1's answer; both v1's and v2's logs
show ``GET /headers``; the copy's Host is ``httpbin-shadow:8000`` (before Istio 1.28; mirrorsim's
default, ``--no-shadow-suffix`` keeps the Host) and v2's response is discarded."""

from __future__ import annotations

import json

C = "cluster.outbound|8000|{}|httpbin.default.svc.cluster.local."


async def test_client_gets_v1_and_v2_gets_a_copy(run_example):
    ex = await run_example("mirroring/")
    v1, v2 = ex.backends["httpbin-v1"], ex.backends["httpbin-v2"]
    for i in range(3):
        resp = await ex.get("httpbin:8000", "/headers")
        assert (resp.status, resp.header("x-backend")) == (200, "httpbin-v1")
        assert json.loads(resp.body)["headers"]["Host"] == "httpbin:8000"
        copies = await v2.wait_for_requests(i + 1)
        assert (copies[i].method, copies[i].path) == ("GET", "/headers")
        assert copies[i].header("host") == "httpbin-shadow:8000"
        assert copies[i].header("x-envoy-internal") == "true"
    await ex.proxy.drain_shadows()
    assert [r.path for r in v1.requests] == ["/headers"] * 3
    assert [r.header("x-request-id") for r in v1.requests] == [r.header("x-request-id") for r in v2.requests]
    snap = ex.stats()
    assert snap[C.format("v1") + "external.upstream_rq_200"] == 3
    assert snap[C.format("v2") + "internal.upstream_rq_200"] == 3
    assert snap["http.async-client.rq_total"] == 3
