"""istio.io "Traffic Shifting" (configs/examples/traffic-shifting/, docs/tasks/traffic-shifting.md).

Expected outcome (istio.io): all-v1 -> reviews never shows stars (v1); reviews-50-v3 -> red stars
(v3) on about half the refreshes, v1 on the others, never v2; reviews-v3 -> always red stars (v3).

The 50/50 split is measured over 400 sequential requests with a fixed seed: the outcome is then
reproducible, and the bounds (200 +- 60, six standard deviations of Binomial(400, 0.5)) would hold
for practically any seed."""

from __future__ import annotations

from collections import Counter

DIR = "traffic-shifting/"


async def _reviews(ex, n: int) -> Counter[str]:
    seen: Counter[str] = Counter()
    for _ in range(n):
        resp = await ex.get("reviews:9080", "/get")
        assert resp.status == 200
        seen[resp.header("x-backend")] += 1
    return seen


async def test_step1_all_v1(run_example):
    ex = await run_example(DIR + "services.yaml", DIR + "step1-all-v1.yaml")
    assert await _reviews(ex, 50) == {"reviews-v1": 50}


async def test_step2_50_50(run_example):
    ex = await run_example(DIR + "services.yaml", DIR + "step2-50-50.yaml", seed=20)
    seen = await _reviews(ex, 400)
    assert set(seen) == {"reviews-v1", "reviews-v3"}
    assert 140 <= seen["reviews-v1"] <= 260 and seen["reviews-v1"] + seen["reviews-v3"] == 400
    snap = ex.stats()
    assert snap["cluster.outbound|9080|v1|reviews.default.svc.cluster.local.upstream_rq_200"] == seen["reviews-v1"]
    assert snap["cluster.outbound|9080|v3|reviews.default.svc.cluster.local.upstream_rq_200"] == seen["reviews-v3"]
    assert ex.backends["reviews-v2"].total_requests == 0


async def test_step2_is_reproducible_with_a_seed(run_example):
    a = await run_example(DIR + "services.yaml", DIR + "step2-50-50.yaml", seed=20)
    b = await run_example(DIR + "services.yaml", DIR + "step2-50-50.yaml", seed=20)
    order_a = [(await a.get("reviews:9080", "/get")).header("x-backend") for _ in range(40)]
    order_b = [(await b.get("reviews:9080", "/get")).header("x-backend") for _ in range(40)]
    assert order_a == order_b and len(set(order_a)) == 2


async def test_step3_100_v3(run_example):
    ex = await run_example(DIR + "services.yaml", DIR + "step3-100-v3.yaml")
    assert await _reviews(ex, 50) == {"reviews-v3": 50}
