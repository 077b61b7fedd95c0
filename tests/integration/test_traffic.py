"""Traffic management beyond mirroring, end to end on loopback: faults, retries, timeouts,
circuit breaking, outlier detection, load balancing."""

from __future__ import annotations

import asyncio

import pytest

from tests.conftest import registry_yaml, table_from_yaml, virtual_service
from tests.support.client import get
from tests.support.recorder import Recorder
from tests.support.wait import until

V1 = "cluster.outbound|8000|v1|httpbin.default.svc.cluster.local."


def table(http: str, **ports: int):
    return table_from_yaml(registry_yaml(ports) + virtual_service(http))


async def test_fault_abort_answers_locally_and_sends_nothing(run_proxy):
    http = """
- route: [{destination: {host: httpbin, subset: v1}}]
  mirror: {host: httpbin, subset: v2}
  fault:
    abort: {httpStatus: 500, percentage: {value: 100}}
"""
    async with Recorder("v1") as a, Recorder("v2") as b:
        rp = await run_proxy(table(http, v1=a.port, v2=b.port))
        resp = await get(rp.port, "/")
        assert (resp.status, resp.body) == (500, b"fault filter abort")
        assert rp.stats.snapshot()["http.outbound_0.0.0.0_15001.fault.aborts_injected"] == 1
        await rp.drain_shadows()
    assert a.requests == [] and b.requests == []  # the fault filter runs before the router


async def test_fault_delay_then_forward(run_proxy):
    http = """
- route: [{destination: {host: httpbin, subset: v1}}]
  fault:
    delay: {fixedDelay: 0.2s, percentage: {value: 100}}
"""
    async with Recorder("v1") as a:
        rp = await run_proxy(table(http, v1=a.port))
        loop = asyncio.get_running_loop()
        t0 = loop.time()
        resp = await get(rp.port, "/")
        elapsed = loop.time() - t0
    assert resp.status == 200 and elapsed >= 0.2
    assert rp.stats.snapshot()["http.outbound_0.0.0.0_15001.fault.delays_injected"] == 1


async def test_fault_without_percentage_injects_nothing(run_proxy):
    http = """
- route: [{destination: {host: httpbin, subset: v1}}]
  fault:
    abort: {httpStatus: 503}
"""
    async with Recorder("v1") as a:
        rp = await run_proxy(table(http, v1=a.port))
        assert (await get(rp.port, "/")).status == 200


@pytest.mark.parametrize("pct, low, high", [(50, 140, 260)])
async def test_fault_abort_percentage(run_proxy, pct, low, high):
    http = f"""
- route: [{{destination: {{host: httpbin, subset: v1}}}}]
  fault:
    abort: {{httpStatus: 503, percentage: {{value: {pct}}}}}
"""
    async with Recorder("v1") as a:
        rp = await run_proxy(table(http, v1=a.port), seed=5)
        codes = [(await get(rp.port, "/")).status for _ in range(400)]
    assert low <= codes.count(503) <= high
    assert codes.count(503) + codes.count(200) == 400


async def test_retry_on_5xx_resends_and_mirror_once(run_proxy):
    http = """
- route: [{destination: {host: httpbin, subset: v1}}]
  mirror: {host: httpbin, subset: v2}
  retries: {attempts: 2, retryOn: 5xx}
"""
    async with Recorder("v1", status=503) as a, Recorder("v2") as b:
        rp = await run_proxy(table(http, v1=a.port, v2=b.port))
        resp = await get(rp.port, "/")
        await rp.drain_shadows()
        assert resp.status == 503
        assert len(await a.wait_for(3)) == 3
    assert len(b.requests) == 1
    snap = rp.stats.snapshot()
    assert snap[V1 + "upstream_rq_retry"] == 2


async def test_default_policy_does_not_retry_503(run_proxy):
    http = "- route: [{destination: {host: httpbin, subset: v1}}]"
    async with Recorder("v1", status=503) as a:
        rp = await run_proxy(table(http, v1=a.port))
        assert (await get(rp.port, "/")).status == 503
        assert len(a.requests) == 1


async def test_retriable_status_codes(run_proxy):
    http = """
- route: [{destination: {host: httpbin, subset: v1}}]
  retries: {attempts: 3, retryOn: "418"}
"""
    async with Recorder("v1") as a:
        n = 0

        def respond(_req):
            nonlocal n
            n += 1
            return (418, [], b"teapot") if n < 3 else (200, [], b"brewed")

        a.responder(respond)
        rp = await run_proxy(table(http, v1=a.port))
        resp = await get(rp.port, "/")
    assert (resp.status, resp.body) == (200, b"brewed")
    assert len(a.requests) == 3


async def test_circuit_breaker_overflow(run_proxy):
    yaml = registry_yaml({"v1": 0}).replace(
        "  subsets:", """  trafficPolicy:
    connectionPool:
      tcp: {maxConnections: 1}
      http: {http1MaxPendingRequests: 1, maxRequestsPerConnection: 1}
  subsets:""")
    release = asyncio.Event()
    async with Recorder("v1", delay_event=release) as a:
        text = yaml.replace("{http: 0}", f"{{http: {a.port}}}") + virtual_service(
            "- route: [{destination: {host: httpbin, subset: v1}}]")
        rp = await run_proxy(table_from_yaml(text))
        first = asyncio.create_task(get(rp.port, "/1"))
        await a.wait_for(1)  # holds the only connection
        second = asyncio.create_task(get(rp.port, "/2"))  # waits in the pending queue
        await until(lambda: rp.stats.snapshot().get(V1 + "upstream_rq_pending_total", 0) >= 2,
                    "the second request to be queued")
        third = await get(rp.port, "/3")  # pending queue full: overflow
        release.set()
        results = [await first, await second, third]
    statuses = sorted(r.status for r in results)
    assert statuses == [200, 200, 503]
    overflow = next(r for r in results if r.status == 503)
    assert overflow.header("x-envoy-overloaded") == "true"
    assert overflow.body.endswith(b"reset reason: overflow")
    assert rp.stats.snapshot()[V1 + "upstream_rq_pending_overflow"] == 1


def two_host_registry(port_a: int, port_b: int, policy: str = "") -> str:
    """httpbin with two v1 endpoints (a and b), and an optional DR trafficPolicy block."""
    text = registry_yaml({"v1": port_a})
    text = text.replace("  endpoints:", f"""  endpoints:
  - address: 127.0.0.1
    ports: {{http: {port_b}}}
    labels: {{app: httpbin, version: v1}}""", 1)
    if policy:
        text = text.replace("  subsets:", "  trafficPolicy:\n" + policy + "  subsets:")
    return text


async def test_outlier_detection_ejects_failing_host(run_proxy):
    policy = """    loadBalancer: {simple: ROUND_ROBIN}
    outlierDetection: {consecutive5xxErrors: 1, interval: 1s, baseEjectionTime: 3m, maxEjectionPercent: 100}
"""
    async with Recorder("bad", status=500) as bad, Recorder("good") as good:
        text = two_host_registry(bad.port, good.port, policy) + virtual_service("""
- route: [{destination: {host: httpbin, subset: v1}}]
  retries: {attempts: 0}
""")
        rp = await run_proxy(table_from_yaml(text))
        statuses = [(await get(rp.port, "/")).status for _ in range(10)]
    assert statuses.count(500) == 1  # one failure, then the host is ejected
    assert len(bad.requests) == 1 and len(good.requests) == 9
    snap = rp.stats.snapshot()
    assert snap[V1 + "outlier_detection.ejections_enforced_total"] == 1
    assert snap[V1 + "outlier_detection.ejections_active"] == 1


async def test_all_hosts_ejected_gives_503_uh(run_proxy):
    policy = """    outlierDetection: {consecutive5xxErrors: 1, baseEjectionTime: 3m, maxEjectionPercent: 100}
"""
    async with Recorder("a", status=503) as a, Recorder("b", status=503) as b:
        text = two_host_registry(a.port, b.port, policy) + virtual_service("""
- route: [{destination: {host: httpbin, subset: v1}}]
  retries: {attempts: 0}
""")
        rp = await run_proxy(table_from_yaml(text))
        first = [(await get(rp.port, "/")).status for _ in range(2)]
        after = await get(rp.port, "/")
    assert first == [503, 503]
    assert (after.status, after.body) == (503, b"no healthy upstream")


async def test_round_robin_alternates(run_proxy):
    policy = "    loadBalancer: {simple: ROUND_ROBIN}\n"
    async with Recorder("a") as a, Recorder("b") as b:
        text = two_host_registry(a.port, b.port, policy) + virtual_service(
            "- route: [{destination: {host: httpbin, subset: v1}}]")
        rp = await run_proxy(table_from_yaml(text))
        for _ in range(10):
            await get(rp.port, "/")
    assert len(a.requests) == len(b.requests) == 5


async def test_consistent_hash_on_header_is_sticky(run_proxy):
    policy = "    loadBalancer: {consistentHash: {httpHeaderName: x-user}}\n"
    async with Recorder("a") as a, Recorder("b") as b:
        text = two_host_registry(a.port, b.port, policy) + virtual_service(
            "- route: [{destination: {host: httpbin, subset: v1}}]")
        rp = await run_proxy(table_from_yaml(text), seed=3)
        for user in ("alice", "bob", "carol", "dave"):
            for _ in range(5):
                await get(rp.port, "/", headers=[("x-user", user)])
    for rec in (a, b):
        by_user: dict[str, int] = {}
        for r in rec.requests:
            by_user[r.header("x-user") or ""] = by_user.get(r.header("x-user") or "", 0) + 1
        assert all(n == 5 for n in by_user.values())  # a user always lands on one host
    assert len(a.requests) + len(b.requests) == 20


async def test_per_try_timeout_retries_then_504(run_proxy):
    http = """
- route: [{destination: {host: httpbin, subset: v1}}]
  timeout: 2s
  retries: {attempts: 2, perTryTimeout: 0.1s, retryOn: gateway-error}
"""
    release = asyncio.Event()
    async with Recorder("v1", delay_event=release) as a:
        rp = await run_proxy(table(http, v1=a.port))
        resp = await get(rp.port, "/")
        reqs = await a.wait_for(3)
        release.set()
    assert (resp.status, resp.body) == (504, b"upstream request timeout")
    assert [r.header("x-envoy-expected-rq-timeout-ms") for r in reqs] == ["100"] * 3
    assert rp.stats.snapshot()[V1 + "upstream_rq_retry"] == 2


async def test_grpc_status_retry_on_unavailable(run_proxy):
    http = """
- route: [{destination: {host: httpbin, subset: v1}}]
  retries: {attempts: 2, retryOn: unavailable}
"""
    async with Recorder("v1") as a:
        n = 0

        def respond(_req):
            nonlocal n
            n += 1
            if n == 1:
                return (200, [("content-type", "application/grpc"), ("grpc-status", "14")], b"")
            return (200, [("content-type", "application/grpc"), ("grpc-status", "0")], b"")

        a.responder(respond)
        rp = await run_proxy(table(http, v1=a.port))
        resp = await get(rp.port, "/svc/Method", method="POST", body=b"\x00\x00\x00\x00\x00",
                         headers=[("content-type", "application/grpc")])
    assert resp.status == 200 and resp.header("grpc-status") == "0"
    assert len(a.requests) == 2


async def test_max_retries_circuit_breaker(run_proxy):
    yaml = registry_yaml({"v1": 0}).replace(
        "  subsets:", """  trafficPolicy:
    connectionPool:
      http: {maxRetries: 1}
  subsets:""")
    release = asyncio.Event()
    async with Recorder("v1") as a:
        def respond(req):
            return (503, [], b"busy")

        a.responder(respond)
        text = yaml.replace("{http: 0}", f"{{http: {a.port}}}") + virtual_service("""
- route: [{destination: {host: httpbin, subset: v1}}]
  retries: {attempts: 1, retryOn: 5xx}
""")
        rp = await run_proxy(table_from_yaml(text))
        results = await asyncio.gather(*(get(rp.port, f"/{i}") for i in range(4)))
        release.set()
    assert all(r.status == 503 for r in results)
    snap = rp.stats.snapshot()
    assert snap[V1 + "upstream_rq_retry"] + snap.get(V1 + "upstream_rq_retry_overflow", 0) == 4
    assert snap[V1 + "upstream_rq_retry"] >= 1
