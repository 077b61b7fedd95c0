"""istio.io "Circuit Breaking" (configs/examples/circuit-breaking/, docs/tasks/circuit-breaking.md).

Expected outcome (istio.io): with the DestinationRule's maxConnections 1, http1MaxPendingRequests 1
and maxRequestsPerConnection 1, one request is served at a time and one more may wait; with three
concurrent clients some requests are answered 503 by the sidecar (Envoy: ``x-envoy-overloaded:
true``, flag UO) and ``upstream_rq_pending_overflow`` in the stats is > 0.

fortio's outcome depends on timing; here it is made deterministic: the first request is held at
httpbin (``/delay/1``), the second is seen waiting in the pending queue (stats), the third
overflows. The overflow does not count for outlier detection (consecutive5xxErrors: 1), so httpbin
is not ejected."""

from __future__ import annotations

import asyncio

from tests.support.client import get
from tests.support.wait import until

DIR = "circuit-breaking/"
C = "cluster.outbound|8000||httpbin.default.svc.cluster.local."
OVERFLOW = b"upstream connect error or disconnect/reset before headers. reset reason: overflow"


async def test_one_request_alone_succeeds(run_example):
    ex = await run_example(DIR)
    resp = await ex.get("httpbin:8000", "/get")
    assert (resp.status, resp.header("x-backend")) == (200, "httpbin-v1")


async def test_third_concurrent_client_overflows(run_example):
    ex = await run_example(DIR)
    httpbin = ex.backends["httpbin-v1"]
    first = asyncio.ensure_future(ex.get("httpbin:8000", "/delay/1"))
    await httpbin.wait_for_requests(1)  # holds the only connection for 1 s
    second = asyncio.ensure_future(ex.get("httpbin:8000", "/get"))
    await until(lambda: ex.stats()[C + "upstream_rq_pending_total"] == 2, "the second request pending")
    assert ex.stats()[C + "upstream_cx_overflow"] >= 1
    assert not second.done()
    third = await ex.get("httpbin:8000", "/get")
    assert (third.status, third.body) == (503, OVERFLOW)
    assert third.header("x-envoy-overloaded") == "true"
    assert ex.stats()[C + "upstream_rq_pending_overflow"] == 1
    a, b = await asyncio.gather(first, second)
    assert (a.status, a.header("x-backend")) == (200, "httpbin-v1")
    assert (b.status, b.header("x-backend")) == (200, "httpbin-v1")
    assert [r.path for r in httpbin.requests] == ["/delay/1", "/get"]
    snap = ex.stats()
    assert snap[C + "upstream_rq_200"] == 2 and snap[C + "upstream_cx_total"] == 2  # 1 request per connection
    # the admin /stats page shows the counter as Envoy's does
    admin = await get(ex.proxy.admin_port, "/stats", host="127.0.0.1")
    assert f"{C}upstream_rq_pending_overflow: 1\n".encode() in admin.body
    # overflows are not fed to outlier detection: httpbin is not ejected
    resp = await ex.get("httpbin:8000", "/get")
    assert (resp.status, resp.header("x-backend")) == (200, "httpbin-v1")


async def test_three_clients_five_requests_each(run_example):
    """fortio -c 3 -n 15, each request taking 0.1 s at httpbin: the three first requests arrive
    together, so at least one overflows; every 503 is an overflow."""
    ex = await run_example(DIR)

    async def client() -> list[int]:
        return [(await ex.get("httpbin:8000", "/delay/0.1")).status for _ in range(5)]

    codes = [c for cl in await asyncio.gather(client(), client(), client()) for c in cl]
    assert set(codes) == {200, 503}
    assert ex.stats()[C + "upstream_rq_pending_overflow"] == codes.count(503)
    assert ex.backends["httpbin-v1"].total_requests == codes.count(200)
