"""istio.io "Request Routing" (configs/examples/request-routing/, docs/tasks/request-routing.md).

Expected outcome (istio.io): with virtual-service-all-v1 every request to reviews is served by v1
(no stars); with virtual-service-reviews-test-v2, requests carrying ``end-user: jason`` (what
productpage sends for the logged-in user) go to reviews v2, everyone else's to v1."""

from __future__ import annotations

import json

DIR = "request-routing/"
SERVICES = ("productpage", "details", "ratings", "reviews")


async def test_step1_all_v1(run_example):
    ex = await run_example(DIR + "services.yaml", DIR + "step1-all-v1.yaml")
    for svc in SERVICES:
        resp = await ex.get(f"{svc}:9080", "/get")
        assert (resp.status, resp.header("x-backend")) == (200, f"{svc}-v1")
    for headers in ([], [("end-user", "jason")], [("end-user", "someone-else")]):
        for _ in range(10):
            resp = await ex.get("reviews:9080", "/headers", headers=headers)
            assert (resp.status, resp.header("x-backend")) == (200, "reviews-v1")
    assert ex.backends["reviews-v2"].total_requests == 0
    assert ex.backends["reviews-v3"].total_requests == 0
    assert ex.stats()["cluster.outbound|9080|v1|reviews.default.svc.cluster.local.upstream_rq_200"] == 31


async def test_step2_jason_gets_v2_everyone_else_v1(run_example):
    ex = await run_example(DIR + "services.yaml", DIR + "step2-reviews-test-v2.yaml")
    for _ in range(10):
        resp = await ex.get("reviews:9080", "/headers", headers=[("end-user", "jason")])
        assert (resp.status, resp.header("x-backend")) == (200, "reviews-v2")
        assert json.loads(resp.body)["headers"]["End-User"] == "jason"
    for headers in ([], [("end-user", "Jason")], [("end-user", "jason2")], [("x-end-user", "jason")]):
        resp = await ex.get("reviews:9080", "/headers", headers=headers)
        assert (resp.status, resp.header("x-backend")) == (200, "reviews-v1"), headers  # exact match only
    # the other services stay on v1, whoever asks
    for svc in ("productpage", "details", "ratings"):
        resp = await ex.get(f"{svc}:9080", "/get", headers=[("end-user", "jason")])
        assert resp.header("x-backend") == f"{svc}-v1"
    assert ex.backends["reviews-v2"].total_requests == 10
    assert ex.backends["reviews-v1"].total_requests == 4
    assert ex.backends["reviews-v3"].total_requests == 0
