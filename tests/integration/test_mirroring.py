"""End to end on loopback: what the client, the primary and the mirror each receive.

Expected header sets are Envoy 1.40's, as recorded in
shared/reference/envoy-mirroring.md sections 1-4 (the local address is pinned to
192.0.2.2, the address Envoy appended in those recordings).
"""

from __future__ import annotations

import asyncio
import hashlib

import pytest

from tests.conftest import registry_yaml, table_from_yaml, virtual_service
from tests.support.client import Client, get, request
from tests.support.recorder import Recorder

V1 = "cluster.outbound|8000|v1|httpbin.default.svc.cluster.local."
V2 = "cluster.outbound|8000|v2|httpbin.default.svc.cluster.local."

MIRROR_V2 = """
- route:
  - destination: {host: httpbin, subset: v1}
    weight: 100
  timeout: 2s
  mirror: {host: httpbin, subset: v2}
  mirrorPercentage: {value: 100.0}
"""


def mirror_table(v1: int, v2: int, http: str = MIRROR_V2, shadow_suffix: bool = True):
    return table_from_yaml(registry_yaml({"v1": v1, "v2": v2}) + virtual_service(http),
                           shadow_suffix=shadow_suffix)


async def test_primary_and_mirror_headers_match_envoy(run_proxy):
    async with Recorder("v1") as a, Recorder("v2") as b:
        rp = await run_proxy(mirror_table(a.port, b.port))
        resp = await get(rp.port, "/get?q=1", headers=[
            ("X-Forwarded-For", "1.2.3.4"), ("x-request-id", "client-supplied-id"),
            ("X-Custom", "Keep"), ("x-envoy-upstream-rq-timeout-ms", "777"),
            ("x-forwarded-proto", "https"), ("Connection", "keep-alive, x-hop"),
            ("x-hop", "dropme"), ("Keep-Alive", "timeout=5"), ("TE", "trailers"),
            ("Upgrade-Insecure-Requests", "1"), ("Proxy-Connection", "keep-alive")])
        assert resp.status == 200 and resp.body == b"ok"
        (primary,) = await a.wait_for(1)
        (shadow,) = await b.wait_for(1)
    assert primary.target == shadow.target == "/get?q=1"
    assert primary.headers == [
        ("host", "httpbin:8000"), ("x-forwarded-for", "1.2.3.4"),
        ("x-request-id", "client-supplied-id"), ("x-custom", "Keep"),
        ("x-forwarded-proto", "https"), ("te", "trailers"), ("upgrade-insecure-requests", "1"),
        ("x-envoy-expected-rq-timeout-ms", "2000"), ("x-envoy-attempt-count", "1"),
    ]
    assert shadow.headers == [
        ("host", "httpbin-shadow:8000"), ("x-forwarded-for", "1.2.3.4,192.0.2.2"),
        ("x-request-id", "client-supplied-id"), ("x-custom", "Keep"),
        ("x-forwarded-proto", "https"), ("te", "trailers"), ("upgrade-insecure-requests", "1"),
        ("x-envoy-expected-rq-timeout-ms", "2000"), ("x-envoy-attempt-count", "1"),
        ("x-envoy-internal", "true"),
    ]


async def test_plain_get_generates_request_id_shared_with_mirror(run_proxy):
    async with Recorder("v1") as a, Recorder("v2") as b:
        rp = await run_proxy(mirror_table(a.port, b.port))
        await get(rp.port, "/get")
        (primary,) = await a.wait_for(1)
        (shadow,) = await b.wait_for(1)
    # Istio sets include_request_attempt_count on every virtual host
    assert primary.header_names() == ["host", "x-forwarded-proto", "x-request-id",
                                      "x-envoy-expected-rq-timeout-ms", "x-envoy-attempt-count"]
    assert shadow.header_names() == ["host", "x-forwarded-proto", "x-request-id",
                                     "x-envoy-expected-rq-timeout-ms", "x-envoy-attempt-count",
                                     "x-envoy-internal", "x-forwarded-for"]
    rid = primary.header("x-request-id")
    assert rid and len(rid) == 36 and shadow.header("x-request-id") == rid
    assert shadow.header("x-forwarded-for") == "192.0.2.2"


@pytest.mark.parametrize("client_host, shadow_host", [
    ("httpbin:8000", "httpbin-shadow:8000"),
    ("HTTPBin:8000", "HTTPBin-shadow:8000"),
    ("httpbin.default.svc.cluster.local:8000",
     "httpbin.default.svc.cluster.local-shadow:8000"),
    ("httpbin.default:8000", "httpbin.default-shadow:8000"),
])
async def test_host_suffix(run_proxy, client_host, shadow_host):
    async with Recorder("v1") as a, Recorder("v2") as b:
        rp = await run_proxy(mirror_table(a.port, b.port))
        assert (await get(rp.port, "/", host=client_host)).status == 200
        (shadow,) = await b.wait_for(1)
        (primary,) = await a.wait_for(1)
    assert primary.header("host") == client_host
    assert shadow.header("host") == shadow_host


async def test_absolute_form_uri_authority_wins(run_proxy):
    async with Recorder("v1") as a, Recorder("v2") as b:
        rp = await run_proxy(mirror_table(a.port, b.port))
        async with Client(rp.port) as c:
            (resp,) = await c.send(b"GET http://httpbin:8000/abs?x=1 HTTP/1.1\r\n"
                                   b"Host: other:1\r\n\r\n")
        assert resp.status == 200
        (primary,) = await a.wait_for(1)
        (shadow,) = await b.wait_for(1)
    assert primary.target == "/abs?x=1" and primary.header("host") == "httpbin:8000"
    assert shadow.header("host") == "httpbin-shadow:8000"


async def test_suffix_switch_off_keeps_host(run_proxy):
    async with Recorder("v1") as a, Recorder("v2") as b:
        rp = await run_proxy(mirror_table(a.port, b.port, shadow_suffix=False))
        await get(rp.port, "/")
        (shadow,) = await b.wait_for(1)
    assert shadow.header("host") == "httpbin:8000"
    assert shadow.header("x-envoy-internal") == "true"


async def test_slow_mirror_does_not_delay_primary(run_proxy):
    release = asyncio.Event()
    async with Recorder("v1") as a, Recorder("v2", delay_event=release) as b:
        rp = await run_proxy(mirror_table(a.port, b.port))
        for _ in range(3):
            resp = await get(rp.port, "/slow")
            assert resp.status == 200  # answered while every shadow is still held
        await b.wait_for(3)
        assert rp.proxy.shadows.inflight == 3
        release.set()
        await rp.drain_shadows()
    snap = rp.stats.snapshot()
    assert snap[V2 + "internal.upstream_rq_200"] == 3
    assert snap[V1 + "external.upstream_rq_200"] == 3


async def test_mirror_timeout_is_route_timeout(run_proxy):
    release = asyncio.Event()
    http = MIRROR_V2.replace("timeout: 2s", "timeout: 0.2s")
    async with Recorder("v1") as a, Recorder("v2", delay_event=release) as b:
        rp = await run_proxy(mirror_table(a.port, b.port, http))
        assert (await get(rp.port, "/")).status == 200
        (shadow,) = await b.wait_for(1)
        await rp.drain_shadows()  # ends when the 0.2 s timeout resets the shadow
        release.set()
    assert shadow.header("x-envoy-expected-rq-timeout-ms") == "200"
    snap = rp.stats.snapshot()
    assert snap[V2 + "upstream_rq_timeout"] == 1
    assert snap[V2 + "internal.upstream_rq_504"] == 1


async def test_refused_mirror(run_proxy):
    async with Recorder("v1") as a, Recorder("v2", refuse=True) as b:
        rp = await run_proxy(mirror_table(a.port, b.port))
        for _ in range(3):
            assert (await get(rp.port, "/")).status == 200
            await rp.drain_shadows()
        assert len(a.requests) == 3
    snap = rp.stats.snapshot()
    # the first copy tries to connect; the next ones, within half a second of that
    # failure, fail at once (docs/deviations.md: Envoy would try each time)
    assert snap[V2 + "upstream_cx_connect_fail"] == 1
    assert snap["mirrorsim.shadow_fast_failed"] == 2
    assert snap[V2 + "internal.upstream_rq_503"] == 3
    assert snap["http.async-client.rq_total"] == 3


async def test_refused_mirror_one_probe_after_the_window(run_proxy):
    """Once the fast-fail window is over, one copy tries to connect again (the probe);
    copies dispatched while that attempt is in flight fail at once."""
    async with Recorder("v1") as a, Recorder("v2", refuse=True) as b:
        rp = await run_proxy(mirror_table(a.port, b.port))
        assert (await get(rp.port, "/")).status == 200
        await rp.drain_shadows()
        pool = rp.proxy.pools["outbound|8000|v2|httpbin.default.svc.cluster.local"]
        (endpoint,) = pool.connect_failed_at
        pool.connect_failed_at[endpoint] -= 10  # the failure is now older than the window
        async with Client(rp.port) as c1, Client(rp.port) as c2:
            # both requests arrive in the same event-loop turn, before the probe's
            # connection attempt can end
            r1, r2 = await asyncio.gather(c1.send(request(path="/1")), c2.send(request(path="/2")))
        assert r1[0].status == r2[0].status == 200
        await rp.drain_shadows()
    snap = rp.stats.snapshot()
    assert snap[V2 + "upstream_cx_connect_fail"] == 2  # the first copy and the probe
    assert snap["mirrorsim.shadow_fast_failed"] == 1
    assert snap[V2 + "internal.upstream_rq_503"] == 3


async def test_mirror_back_after_refusing(run_proxy):
    """A mirror that refused connections and listens again gets every copy once the
    probe's connection succeeded."""
    async with Recorder("v1") as a, Recorder("v2") as b:
        rp = await run_proxy(mirror_table(a.port, b.port))
        pool = rp.proxy.pool("outbound|8000|v2|httpbin.default.svc.cluster.local")
        assert pool is not None
        (endpoint,) = pool.cluster.endpoints
        pool.connect_failed_at[endpoint] = pool.loop.time() - 10  # it refused, long ago
        for i in range(3):
            assert (await get(rp.port, f"/{i}")).status == 200
            await rp.drain_shadows()
        assert [r.target for r in await b.wait_for(3)] == ["/0", "/1", "/2"]
        assert not pool.connect_failed_at
    assert rp.stats.snapshot().get("mirrorsim.shadow_fast_failed", 0) == 0


async def test_mirror_sent_when_primary_refused(run_proxy):
    async with Recorder("v1", refuse=True) as a, Recorder("v2") as b:
        rp = await run_proxy(mirror_table(a.port, b.port))
        resp = await get(rp.port, "/primarydown")
        await b.wait_for(1)
        await rp.drain_shadows()
    assert resp.status == 503
    assert resp.body == (b"upstream connect error or disconnect/reset before headers. "
                         b"retried and the latest reset reason: remote connection failure")
    # Istio's default retry policy retried the connect failure twice; one shadow only
    assert rp.stats.snapshot()[V1 + "upstream_cx_connect_fail"] == 3
    assert len(b.requests) == 1


async def test_mirror_sent_when_primary_times_out(run_proxy):
    release = asyncio.Event()
    http = MIRROR_V2.replace("timeout: 2s", "timeout: 0.2s")
    async with Recorder("v1", delay_event=release) as a, Recorder("v2") as b:
        rp = await run_proxy(mirror_table(a.port, b.port, http))
        resp = await get(rp.port, "/")
        await b.wait_for(1)
        release.set()
    assert resp.status == 504 and resp.body == b"upstream request timeout"
    assert rp.stats.snapshot()[V1 + "upstream_rq_timeout"] == 1


async def test_one_mib_post_reaches_both_intact(run_proxy):
    body = bytes(range(256)) * 4096
    async with Recorder("v1") as a, Recorder("v2") as b:
        rp = await run_proxy(mirror_table(a.port, b.port))
        resp = await get(rp.port, "/post", method="POST", body=body)
        assert resp.status == 200
        (primary,) = await a.wait_for(1)
        (shadow,) = await b.wait_for(1)
    digest = hashlib.sha256(body).hexdigest()
    for r in (primary, shadow):
        assert r.content_length == len(body) == 1 << 20
        assert hashlib.sha256(r.body).hexdigest() == digest


async def test_chunked_upload_is_rechunked_to_both(run_proxy):
    chunks = [b"a" * 1000, b"b" * 2000, b"c" * 3]
    raw = (b"POST /up HTTP/1.1\r\nHost: httpbin:8000\r\nTransfer-Encoding: chunked\r\n\r\n"
           + b"".join(b"%x\r\n%s\r\n" % (len(c), c) for c in chunks) + b"0\r\n\r\n")
    async with Recorder("v1") as a, Recorder("v2") as b:
        rp = await run_proxy(mirror_table(a.port, b.port))
        async with Client(rp.port) as c:
            (resp,) = await c.send(raw)
        assert resp.status == 200
        (primary,) = await a.wait_for(1)
        (shadow,) = await b.wait_for(1)
    for r in (primary, shadow):
        assert r.chunked and r.body == b"".join(chunks)
        assert r.header("transfer-encoding") == "chunked"


async def test_head_is_mirrored_as_head_and_options_gets_content_length(run_proxy):
    async with Recorder("v1", body=b"hello") as a, Recorder("v2") as b:
        rp = await run_proxy(mirror_table(a.port, b.port))
        resp = await get(rp.port, "/h", method="HEAD")
        assert resp.status == 200 and resp.header("content-length") == "5" and resp.body == b""
        await get(rp.port, "/o", method="OPTIONS")
        p_head, p_opt = await a.wait_for(2)
        s_head, s_opt = await b.wait_for(2)
    assert p_head.method == s_head.method == "HEAD"
    assert p_head.content_length is None and s_head.content_length is None
    assert p_opt.content_length == s_opt.content_length == 0


async def test_pipelined_requests_answered_in_order_on_one_upstream_connection(run_proxy):
    async with Recorder("v1") as a, Recorder("v2") as b:
        a.responder(lambda r: (200, [], r.target.encode()))
        rp = await run_proxy(mirror_table(a.port, b.port))
        async with Client(rp.port) as c:
            raw = b"".join(request("GET", f"/p{i}") for i in range(5))
            resps = await c.send(raw, n=5)
        assert [r.body for r in resps] == [b"/p0", b"/p1", b"/p2", b"/p3", b"/p4"]
        reqs = await a.wait_for(5)
    assert len({r.peer_port for r in reqs}) == 1  # keep-alive reuse upstream


async def test_connection_close_from_client(run_proxy):
    async with Recorder("v1") as a, Recorder("v2") as b:
        rp = await run_proxy(mirror_table(a.port, b.port))
        async with Client(rp.port) as c:
            (resp,) = await c.send(request("GET", "/", headers=[("Connection", "close")]))
            assert resp.header("connection") == "close"
            assert await c.closed()
        (primary,) = await a.wait_for(1)
    assert primary.header("connection") is None  # not propagated upstream


@pytest.mark.parametrize("pct, expected_low, expected_high", [(50.0, 140, 260), (10.0, 15, 65)])
async def test_sampling_with_fixed_seed_is_reproducible(run_proxy, pct, expected_low,
                                                        expected_high):
    http = MIRROR_V2.replace("value: 100.0", f"value: {pct}")
    mirrored: list[set[str]] = []
    for _ in range(2):
        async with Recorder("v1") as a, Recorder("v2") as b:
            rp = await run_proxy(mirror_table(a.port, b.port, http), seed=42)
            async with Client(rp.port) as c:
                for i in range(400):
                    await c.send(request("GET", "/", headers=[("x-request-id", f"id-{i}")]))
            await rp.drain_shadows()
            mirrored.append({r.header("x-request-id") or "" for r in b.requests})
            await rp.close()
    # binomial(400, p): the bounds are > 5 standard deviations wide
    assert expected_low <= len(mirrored[0]) <= expected_high
    assert mirrored[0] == mirrored[1]  # same seed, same sample


async def test_multiple_mirrors_are_correlated(run_proxy):
    http = """
- route:
  - destination: {host: httpbin, subset: v1}
  mirrors:
  - destination: {host: httpbin, subset: v2}
    percentage: {value: 30}
  - destination: {host: httpbin, subset: v3}
    percentage: {value: 60}
"""
    async with Recorder("v1") as a, Recorder("v2") as b, Recorder("v3") as c3:
        table = table_from_yaml(registry_yaml({"v1": a.port, "v2": b.port, "v3": c3.port})
                                + virtual_service(http))
        rp = await run_proxy(table, seed=7)
        async with Client(rp.port) as c:
            for i in range(300):
                await c.send(request("GET", "/", headers=[("x-request-id", f"r{i}")]))
        await rp.drain_shadows()
    thirty = {r.header("x-request-id") for r in b.requests}
    sixty = {r.header("x-request-id") for r in c3.requests}
    assert 40 <= len(thirty) <= 140 and 120 <= len(sixty) <= 240
    assert thirty < sixty  # one random value per request drives every policy


async def test_shadow_cap_drops_and_counts(run_proxy):
    release = asyncio.Event()
    async with Recorder("v1") as a, Recorder("v2", delay_event=release) as b:
        rp = await run_proxy(mirror_table(a.port, b.port, MIRROR_V2.replace("  timeout: 2s\n", "")),
                             max_shadow_inflight=2)
        for _ in range(5):
            assert (await get(rp.port, "/")).status == 200
        await b.wait_for(2)
        snap = rp.stats.snapshot()
        assert snap["mirrorsim.shadow_dropped"] == 3
        assert rp.proxy.shadows.inflight == 2
        release.set()
        await rp.drain_shadows()
    assert len(b.requests) == 2


async def test_slow_mirror_is_paced(run_proxy):
    """Copies to a mirror known to be slow go at max_inflight / latency per second;
    the ones over that pace are dropped and counted like copies over the cap."""
    async with Recorder("v1") as a, Recorder("v2") as b:
        rp = await run_proxy(mirror_table(a.port, b.port), max_shadow_inflight=10)
        assert (await get(rp.port, "/fast")).status == 200
        await rp.drain_shadows()
        # the answer's latency feeds the moving average; a fast mirror is never paced
        pacer = rp.proxy.shadows.pacers["outbound|8000|v2|httpbin.default.svc.cluster.local"]
        assert 0 < pacer.latency < 0.05
        pacer.latency = 100.0  # as if its copies took 100 s: 10 slots -> 0.1 copy/s
        pacer.tokens, pacer.refill = 0.0, rp.proxy.loop.time()
        for _ in range(3):
            assert (await get(rp.port, "/paced")).status == 200
        await rp.drain_shadows()
        assert [r.target for r in b.requests] == ["/fast"]
    snap = rp.stats.snapshot()
    assert snap["mirrorsim.shadow_dropped"] == 3
    assert snap["http.async-client.rq_total"] == 1


async def test_local_replies(run_proxy):
    http = """
- match:
  - uri: {prefix: /known}
  route:
  - destination: {host: httpbin, subset: v1}
- match:
  - uri: {prefix: /nosubset}
  route:
  - destination: {host: httpbin, subset: v9}
- match:
  - uri: {prefix: /empty}
  route:
  - destination: {host: httpbin, subset: v2}
"""
    text = registry_yaml({"v1": 1, "v2": 2}).replace("labels: {version: v2}",
                                                    "labels: {version: nobody}")
    table = table_from_yaml(text + virtual_service(http))
    rp = await run_proxy(table)
    nr = await get(rp.port, "/other")
    assert (nr.status, nr.body) == (404, b"")
    nc = await get(rp.port, "/nosubset")
    assert (nc.status, nc.body) == (503, b"")
    uh = await get(rp.port, "/empty")
    assert (uh.status, uh.body) == (503, b"no healthy upstream")
    unknown = await get(rp.port, "/", host="elsewhere.example.com")
    assert unknown.status == 502


async def test_admin_stats_and_ready(run_proxy):
    import aiohttp

    async with Recorder("v1") as a, Recorder("v2") as b:
        rp = await run_proxy(mirror_table(a.port, b.port))
        await get(rp.port, "/")
        await rp.drain_shadows()
        async with aiohttp.ClientSession() as s:
            async with s.get(f"http://127.0.0.1:{rp.admin_port}/ready") as r:
                assert r.status == 200 and (await r.text()).strip() == "LIVE"
            async with s.get(f"http://127.0.0.1:{rp.admin_port}/stats") as r:
                text = await r.text()
    lines = dict(line.split(": ") for line in text.strip().splitlines())
    assert lines[V1 + "upstream_rq_total"] == "1"
    assert lines[V1 + "external.upstream_rq_200"] == "1"
    assert lines[V2 + "internal.upstream_rq_200"] == "1"
    assert lines["http.async-client.rq_total"] == "1"
    assert lines["mirrorsim.shadow_dropped"] == "0"
