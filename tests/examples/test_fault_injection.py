"""istio.io "Fault Injection" (configs/examples/fault-injection/, docs/tasks/fault-injection.md).

Expected outcome (istio.io): with virtual-service-ratings-test-delay, calls to ratings from user
jason are held 7 s before being forwarded (the Bookinfo page then breaks on productpage's own 6 s
budget for reviews); with virtual-service-ratings-test-abort, jason's calls to ratings are answered
at once with HTTP 500 (body ``fault filter abort``) and never reach ratings; other users are not
affected. Reviews itself routes jason to v2 and everyone else to v1 (reviews-test-v2, a prerequisite).

The 7 s delay is checked through the core (the decision carries a 7 s delay applied to 100 % of
jason's requests and none of the others') and in real time on a copy of the config scaled to 0.3 s.
"""

from __future__ import annotations

import asyncio

from simulator.core.table import Forward
from tests.support.wait import until

DIR = "fault-injection/"
JASON = [("end-user", "jason")]
FAULT = "http.outbound_0.0.0.0_15001.fault."


async def test_step1_delay_decision_is_7s_for_jason_only(run_example):
    ex = await run_example(DIR + "services.yaml", DIR + "step1-delay.yaml")
    for random_value in (0, 123456789, 2**64 - 1):
        d = ex.table.route("GET", "ratings:9080", "/ratings/0", {"end-user": "jason"}, random_value)
        assert isinstance(d, Forward) and d.cluster == "outbound|9080|v1|ratings.default.svc.cluster.local"
        assert d.fault is not None and (d.fault.delay, d.fault.delay_numerator) == (7.0, 1_000_000)
        assert d.fault.abort_status is None
        for headers in ({}, {"end-user": "jasonx"}):
            d = ex.table.route("GET", "ratings:9080", "/ratings/0", headers, random_value)
            assert isinstance(d, Forward) and d.fault is None
            assert d.cluster == "outbound|9080|v1|ratings.default.svc.cluster.local"
    # others are not delayed: answered at once, nothing injected
    resp = await ex.get("ratings:9080", "/get")
    assert (resp.status, resp.header("x-backend")) == (200, "ratings-v1")
    assert ex.stats().get(FAULT + "delays_injected", 0) == 0
    # jason's request is held at the proxy: the delay timer is running, ratings has not seen it
    pending = asyncio.ensure_future(ex.get("ratings:9080", "/get", headers=JASON))
    try:
        await until(lambda: ex.stats().get(FAULT + "delays_injected", 0) == 1, "jason's delay injected")
        assert ex.backends["ratings-v1"].total_requests == 1  # only the first (undelayed) request
        assert not pending.done()
    finally:
        pending.cancel()
    # reviews-test-v2 is in force too
    assert (await ex.get("reviews:9080", "/get", headers=JASON)).header("x-backend") == "reviews-v2"
    assert (await ex.get("reviews:9080", "/get")).header("x-backend") == "reviews-v1"


async def test_step1_delay_in_real_time_scaled_to_300ms(run_example):
    ex = await run_example(DIR + "services.yaml", DIR + "step1-delay.yaml",
                           replace={"fixedDelay: 7s": "fixedDelay: 300ms"})
    ratings = ex.backends["ratings-v1"]
    loop = asyncio.get_running_loop()
    t0 = loop.time()
    resp = await ex.get("ratings:9080", "/get", headers=JASON)
    elapsed = loop.time() - t0
    assert (resp.status, resp.header("x-backend")) == (200, "ratings-v1")
    assert elapsed >= 0.3
    (received,) = ratings.requests
    assert received.header("end-user") == "jason"
    assert ex.stats()[FAULT + "delays_injected"] == 1
    resp = await ex.get("ratings:9080", "/get", headers=[("end-user", "someone-else")])
    assert (resp.status, resp.header("x-backend")) == (200, "ratings-v1")
    assert ex.stats()[FAULT + "delays_injected"] == 1


async def test_step2_abort_500_for_jason_only(run_example):
    ex = await run_example(DIR + "services.yaml", DIR + "step2-abort.yaml")
    for _ in range(5):
        resp = await ex.get("ratings:9080", "/ratings/0", headers=JASON)
        assert (resp.status, resp.body) == (500, b"fault filter abort")
        assert resp.header("x-backend") is None
    assert ex.backends["ratings-v1"].total_requests == 0  # the fault filter runs before the router
    assert ex.stats()[FAULT + "aborts_injected"] == 5
    for headers in ([], [("end-user", "someone-else")]):
        resp = await ex.get("ratings:9080", "/get", headers=headers)
        assert (resp.status, resp.header("x-backend")) == (200, "ratings-v1")
    assert ex.stats()[FAULT + "aborts_injected"] == 5
    # reviews for jason still works (v2), as the page shows "Ratings service is currently unavailable"
    resp = await ex.get("reviews:9080", "/get", headers=JASON)
    assert (resp.status, resp.header("x-backend")) == (200, "reviews-v2")
