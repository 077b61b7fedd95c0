"""The data plane's limits (simulator/proxy/limits.py, docs/operations.md): what a client
can make the proxy hold, what it gets when it asks for more, and that after each hostile
input the proxy still answers a normal request promptly with bounded memory.

Envoy 1.40 facts pinned here were observed on the real Envoy with the exported bootstrap
(`mirrorsim envoy`): 431 ``Request Header Fields Too Large`` (flag DPE) for a head over
60 KiB counted over its raw bytes (request line, header lines, blank line: 61,440 bytes
pass, 61,441 do not) or for more than 100 headers; 200 then 400 for a good request
pipelined before garbage; 501 for a Transfer-Encoding other than ``chunked``; request
trailers dropped."""

from __future__ import annotations

import asyncio
import socket
import struct
import time
from pathlib import Path

from simulator.proxy.limits import MAX_HEADER_BYTES
from tests.conftest import registry_yaml, table_from_yaml, virtual_service
from tests.support.client import Client, get, request
from tests.support.recorder import Recorder
from tests.support.subproxy import SubprocessProxy
from tests.support.wait import until

ROUTE = "- route: [{destination: {host: httpbin, subset: v1}}]"
MIRROR = """
- route: [{destination: {host: httpbin, subset: v1}}]
  mirror: {host: httpbin, subset: v2}
"""
MB = 1 << 20


async def assert_serves(port: int, within: float = 2.0) -> None:
    """A normal request is still answered, and promptly."""
    t0 = time.monotonic()
    resp = await asyncio.wait_for(get(port, "/normal"), within)
    assert resp.status == 200, resp
    assert time.monotonic() - t0 < within


async def rss_settles_below(sp: SubprocessProxy, limit_mb: float, timeout: float = 5.0) -> float:
    """RSS of the child once under ``limit_mb`` (the allocator is trimmed at most once
    a second after the bodies are let go); the last reading if it never gets there."""
    deadline = time.monotonic() + timeout
    while True:
        rss = sp.rss_mb()
        if rss < limit_mb or time.monotonic() > deadline:
            return rss
        await asyncio.sleep(0.05)  # an external process's RSS: nothing to wait on but time


# --------------------------------------------------------------------------- 1. bodies


async def test_bodies_leave_memory_when_their_requests_end(tmp_path: Path):
    """Large uploads on keep-alive connections that then stay idle, then close: the
    proxy's RSS comes back (it stayed +300 MB after six 50 MB uploads)."""
    async with Recorder("v1") as a:
        config = registry_yaml({"v1": a.port}) + virtual_service(ROUTE)
        async with SubprocessProxy(tmp_path, config) as sp:
            await assert_serves(sp.port)
            base = sp.rss_mb()
            body = b"x" * (16 * MB)
            clients = [Client(sp.port) for _ in range(4)]
            for c in clients:
                await c.__aenter__()
            try:
                replies = await asyncio.gather(*(c.send(request("POST", "/up", body=body), timeout=30)
                                                 for c in clients))
                assert [r.status for (r,) in replies] == [200] * 4
                a.requests.clear()  # the recorder's own copies
                await assert_serves(sp.port)
                idle = await rss_settles_below(sp, base + 24)
                assert idle < base + 24, f"RSS {base:.0f} MB -> {idle:.0f} MB with idle connections"
            finally:
                for c in clients:
                    await c.__aexit__()
            await assert_serves(sp.port)
            closed = await rss_settles_below(sp, base + 24)
            assert closed < base + 24, f"RSS {base:.0f} MB -> {closed:.0f} MB after closing"
            assert "Traceback" not in sp.stderr()


async def test_buffered_bytes_cap_refuses_new_bodies_with_503_overloaded(tmp_path: Path):
    """--max-buffered-bytes: a body that would take all bodies held at once over the cap
    gets Envoy's overload-manager answer, counted; the rest of the traffic goes on."""
    release = asyncio.Event()
    async with Recorder("held", delay_event=release) as held, Recorder("v2") as other:
        config = registry_yaml({"v1": held.port, "v2": other.port}) + virtual_service("""
- match: [{uri: {prefix: /held}}]
  route: [{destination: {host: httpbin, subset: v1}}]
- route: [{destination: {host: httpbin, subset: v2}}]
""")
        async with SubprocessProxy(tmp_path, config, "--max-buffered-bytes", str(3 * MB)) as sp:
            body = b"x" * (2 * MB)
            async with Client(sp.port) as first:
                pending = asyncio.create_task(first.send(request("POST", "/held", body=body)))
                await held.wait_for(1)  # its 2 MiB are held by the proxy until it is answered
                async with Client(sp.port) as second:
                    (resp,) = await second.send(request("POST", "/other", body=body))
                    assert (resp.status, resp.body) == (503, b"envoy overloaded")
                    assert resp.header("connection") == "close"
                await assert_serves(sp.port)  # bodiless requests still pass
                async with Client(sp.port) as third:  # a codec refusal, for its log line
                    (r431,) = await third.send(request("GET", "/", headers=[(f"x-{i}", "v") for i in range(100)]))
                    assert r431.status == 431
                release.set()
                (ok,) = await pending
                assert ok.status == 200
            # once the held request ended, its bytes are free again
            again = await get(sp.port, "/other", method="POST", body=body)
            assert again.status == 200
            stats = await get(sp.admin_port, "/stats")
            text = stats.body.decode()
            assert "http.outbound_0.0.0.0_15001.downstream_rq_overload_close: 1\n" in text
            assert "http.outbound_0.0.0.0_15001.mirrorsim_response_flag_OM: 1\n" in text
        assert [r.target for r in other.requests] == ["/normal", "/other"]
        log = sp.access_log.read_text()
        assert '"POST /other HTTP/1.1" 503 OM ' in log
        assert '"- - HTTP/1.1" 431 DPE 0 31 0 - "-" "-" "-" "-" "-"\n' in log  # as Envoy's
        assert "Traceback" not in sp.stderr()


# --------------------------------------------------------------------------- 2. heads


def _head_of(size: int) -> bytes:
    """A GET whose raw head (request line through the blank line) is ``size`` bytes."""
    fixed = len(b"GET / HTTP/1.1\r\nHost: httpbin:8000\r\nx-pad: \r\n\r\n")
    return b"GET / HTTP/1.1\r\nHost: httpbin:8000\r\nx-pad: " + b"v" * (size - fixed) + b"\r\n\r\n"


async def test_header_count_and_size_limits_as_envoy(run_proxy):
    async with Recorder("v1") as a, Recorder("v2") as b:
        rp = await run_proxy(table_from_yaml(registry_yaml({"v1": a.port, "v2": b.port})
                                             + virtual_service(MIRROR)))
        refused = [
            request("GET", "/101", headers=[(f"x-h{i}", "v") for i in range(100)]),  # + host
            request("GET", "/5000", headers=[(f"x-h{i}", "v") for i in range(5000)]),
            b"GET /" + b"a" * (61 * 1024) + b" HTTP/1.1\r\n\r\n",  # a long target, no headers
            _head_of(MAX_HEADER_BYTES + 1),
            b"GET / HTTP/1.1\r\nHost: httpbin:8000\r\n" + b"x" * (61 * 1024) + b": v\r\n\r\n",
        ]
        for raw in refused:
            async with Client(rp.port) as c:
                (resp,) = await c.send(raw)
                assert resp.status == 431, raw[:40]
                assert resp.body == b"Request Header Fields Too Large"
                assert resp.header("connection") == "close" and await c.closed()
            await assert_serves(rp.port)
        # a head that never ends, all in one write: refused, not waited for
        async with Client(rp.port) as c:
            (resp,) = await c.send(b"GET / HTTP/1.1\r\nHost: httpbin:8000\r\nx-big: " + b"v" * 80_000)
            assert resp.status == 431 and await c.closed()
        for raw in (request("GET", "/100", headers=[(f"x-h{i}", "v") for i in range(99)]),
                    _head_of(MAX_HEADER_BYTES)):
            async with Client(rp.port) as c:
                (resp,) = await c.send(raw)
                assert resp.status == 200
        await rp.drain_shadows()
    # neither the primary nor the mirror saw a refused request
    assert [r.target for r in a.requests] == ["/normal"] * 5 + ["/100", "/"]
    assert [r.target for r in b.requests] == ["/normal"] * 5 + ["/100", "/"]
    assert rp.stats.snapshot()["http.outbound_0.0.0.0_15001.mirrorsim_response_flag_DPE"] == 6


async def test_trailers_are_dropped_and_other_transfer_codings_get_501(run_proxy):
    async with Recorder("v1") as a:
        rp = await run_proxy(table_from_yaml(registry_yaml({"v1": a.port}) + virtual_service(ROUTE)))
        async with Client(rp.port) as c:
            (resp,) = await c.send(b"POST /t HTTP/1.1\r\nHost: httpbin:8000\r\nTransfer-Encoding: chunked"
                                   b"\r\n\r\n5\r\nhello\r\n0\r\nHost: evil\r\nx-trailer: t\r\n\r\n")
            assert resp.status == 200
        for te in (b"gzip", b"gzip, chunked"):
            async with Client(rp.port) as c:
                (resp,) = await c.send(b"POST /te HTTP/1.1\r\nHost: httpbin:8000\r\nTransfer-Encoding: "
                                       + te + b"\r\n\r\n5\r\nhello\r\n0\r\n\r\n")
                assert (resp.status, resp.body) == (501, b"Not Implemented")
        await assert_serves(rp.port)
    (t, _) = a.requests
    assert t.body == b"hello" and t.header("x-trailer") is None
    assert [v for n, v in t.headers if n == "host"] == ["httpbin:8000"]


# --------------------------------------------------------------------------- 3. errors


async def test_requests_before_a_parse_error_are_answered_first(run_proxy):
    async with Recorder("v1") as a, Recorder("v2") as b:
        rp = await run_proxy(table_from_yaml(registry_yaml({"v1": a.port, "v2": b.port})
                                             + virtual_service(MIRROR)))
        good = request("GET", "/good")
        cases = [
            (good + b"\x01\x02 garbage\r\n\r\n", [200, 400]),
            (good + request("GET", "/g2") + b"@@@\r\n\r\n", [200, 200, 400]),
            (good + request("GET", "/101", headers=[(f"x-h{i}", "v") for i in range(100)]), [200, 431]),
            (good + b"POST /cl HTTP/1.1\r\nHost: a\r\nContent-Length: 1\r\nContent-Length: 2\r\n\r\nab",
             [200, 400]),
        ]
        for raw, statuses in cases:
            async with Client(rp.port) as c:
                got = await c.send(raw, n=len(statuses))
                assert [r.status for r in got] == statuses, raw[:60]
                assert got[-1].header("connection") == "close" and await c.closed()
            await assert_serves(rp.port)
        # a 70 KB POST and, in the same write, the start of the next request's head
        async with Client(rp.port) as c:
            second = request("GET", "/second")
            post = request("POST", "/big", body=b"p" * 70_000)
            assert c.writer is not None
            c.writer.write(post + second[:10])
            (r1, r2) = await c.send(second[10:], n=2)
            assert (r1.status, r2.status) == (200, 200)
        # the same with a body of 20,000 one-byte chunks (their framing is not a head either)
        async with Client(rp.port) as c:
            chunked = (b"POST /chunks HTTP/1.1\r\nHost: httpbin:8000\r\nTransfer-Encoding: chunked\r\n\r\n"
                       + b"1\r\nc\r\n" * 20_000 + b"0\r\n\r\n")
            assert c.writer is not None
            c.writer.write(chunked + second[:10])
            (r1, r2) = await c.send(second[10:], n=2)
            assert (r1.status, r2.status) == (200, 200)
        await rp.drain_shadows()
    # every request the primary got, the mirror got, and no other
    assert [r.target for r in a.requests] == [r.target for r in b.requests]
    assert [r.target for r in a.requests].count("/good") == 4


async def test_no_shadow_copy_for_a_primary_never_sent(run_proxy):
    """The primary waits for a pool connection (maxConnections 1, held by another
    request) and its client goes away: the primary is never sent, nor is its copy."""
    release = asyncio.Event()
    async with Recorder("v1", delay_event=release) as a, Recorder("v2") as b:
        rp = await run_proxy(table_from_yaml(registry_yaml({"v1": a.port, "v2": b.port}).replace(
            "  subsets:", "  trafficPolicy: {connectionPool: {tcp: {maxConnections: 1}}}\n  subsets:")
            + virtual_service(MIRROR)))
        first = asyncio.create_task(get(rp.port, "/first"))
        await a.wait_for(1)
        (pool,) = [p for n, p in rp.proxy.pools.items() if "|v1|" in n]
        _, writer = await asyncio.open_connection("127.0.0.1", rp.port)
        writer.write(request("GET", "/never"))
        await until(lambda: len(pool.pending) == 1, "the second request pending")
        # the client resets its connection (a FIN alone would be a half-close: answered)
        writer.get_extra_info("socket").setsockopt(socket.SOL_SOCKET, socket.SO_LINGER,
                                                   struct.pack("ii", 1, 0))
        writer.transport.abort()
        await until(lambda: not pool.pending, "the pending primary cancelled")
        release.set()
        assert (await first).status == 200
        assert (await get(rp.port, "/after")).status == 200
        await rp.drain_shadows()
    assert [r.target for r in a.requests] == ["/first", "/after"]
    assert [r.target for r in b.requests] == ["/first", "/after"]
