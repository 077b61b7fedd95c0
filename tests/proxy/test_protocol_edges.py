"""Protocol edges of the data plane, each as Envoy 1.40 does it on Istio's sidecar HCM
(observed on the real binary; docs/mirroring.md "Protocol edges"): WebSocket upgrades
tunnelled to the primary and the mirrors, h2c and other upgrades, Expect: 100-continue,
an upstream that closes or answers garbage, CONNECT, a missing Host, ``OPTIONS *``."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable

from tests.conftest import registry_yaml, table_from_yaml, virtual_service
from tests.support.client import Client, get, request
from tests.support.recorder import Recorder

MIRRORED = """
- route: [{destination: {host: httpbin, subset: v1}}]
  mirror: {host: httpbin, subset: v2}
"""
PLAIN = "- route: [{destination: {host: httpbin, subset: v1}}]"
TIMED = """
- route: [{destination: {host: httpbin, subset: v1}}]
  timeout: 0.5s
"""
V1 = "cluster.outbound|8000|v1|httpbin.default.svc.cluster.local."
WS_REQUEST = (b"GET /chat HTTP/1.1\r\nHost: httpbin:8000\r\nConnection: Upgrade\r\n"
              b"Upgrade: websocket\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n\r\n")
SWITCH = b"HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n\r\n"

Handler = Callable[[asyncio.StreamReader, asyncio.StreamWriter], Awaitable[None]]


class RawBackend:
    """A loopback upstream running ``handler`` per connection; keeps what each
    connection received (``received``) and counts heads (``heads``)."""

    def __init__(self, handler: Handler) -> None:
        self.handler = handler
        self.received: list[bytearray] = []
        self.closed = asyncio.Event()
        self.port = 0
        self.server: asyncio.Server | None = None

    async def __aenter__(self) -> RawBackend:
        async def run(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
            try:
                await self.handler(reader, writer)
            except (ConnectionError, asyncio.IncompleteReadError):
                pass
            finally:
                writer.close()
                self.closed.set()

        self.server = await asyncio.start_server(run, "127.0.0.1", 0)
        self.port = self.server.sockets[0].getsockname()[1]
        return self

    async def __aexit__(self, *exc: object) -> None:
        assert self.server is not None
        self.server.close()

    def record(self) -> bytearray:
        buf = bytearray()
        self.received.append(buf)
        return buf


def ws_backend(delay: float = 0.0, name: bytes = b"A") -> RawBackend:
    """Answers an upgrade with 101 (after ``delay``), then echoes each read as
    ``echo:<bytes>``; on ``bye`` says ``closing`` and closes."""

    async def handler(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        buf = backend.record()
        head = await reader.readuntil(b"\r\n\r\n")
        buf += head
        if delay:
            await asyncio.sleep(delay)
        writer.write(SWITCH[:-2] + b"x-backend: " + name + b"\r\n\r\n")
        while data := await reader.read(65536):
            buf += data
            if b"bye" in data:
                writer.write(b"closing")
                await writer.drain()
                return
            writer.write(b"echo:" + data)

    backend = RawBackend(handler)
    return backend


def answering(response: bytes, close: bool = True) -> RawBackend:
    """Reads one request head, writes ``response`` (nothing if empty), then closes."""

    async def handler(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        buf = backend.record()
        buf += await reader.readuntil(b"\r\n\r\n")
        if response:
            writer.write(response)
            await writer.drain()

    backend = RawBackend(handler)
    return backend


async def read_until(reader: asyncio.StreamReader, marker: bytes, got: bytearray | None = None) -> bytes:
    got = bytearray() if got is None else got
    while marker not in got:
        data = await asyncio.wait_for(reader.read(65536), 5)
        if not data:
            raise ConnectionError(f"closed before {marker!r}; got {bytes(got)!r}")
        got += data
    return bytes(got)


async def read_to_eof(reader: asyncio.StreamReader) -> bytes:
    out = bytearray()
    while data := await asyncio.wait_for(reader.read(65536), 5):
        out += data
    return bytes(out)


def head_lines(raw: bytes) -> list[bytes]:
    return raw.split(b"\r\n\r\n", 1)[0].split(b"\r\n")


# --------------------------------------------------------------------------- WebSocket


async def test_websocket_is_tunnelled_to_the_primary_and_copied_to_the_mirror(run_proxy):
    async with ws_backend(name=b"A") as a, ws_backend(name=b"B") as b:
        rp = await run_proxy(table_from_yaml(registry_yaml({"v1": a.port, "v2": b.port})
                                             + virtual_service(MIRRORED)))
        reader, writer = await asyncio.open_connection("127.0.0.1", rp.port)
        writer.write(WS_REQUEST + b"EARLY")  # bytes before the 101 wait for it
        got = await read_until(reader, b"echo:EARLY")
        lines = head_lines(got)
        assert lines[0] == b"HTTP/1.1 101 Switching Protocols"
        assert lines[1:4] == [b"upgrade: websocket", b"connection: Upgrade", b"x-backend: A"]
        assert lines[4].startswith(b"date: ") and lines[5] == b"server: envoy" and len(lines) == 6
        writer.write(b"hello")
        await read_until(reader, b"echo:hello")
        writer.close()  # the client closes: both upstreams are closed
        await asyncio.wait_for(a.closed.wait(), 5)
        await asyncio.wait_for(b.closed.wait(), 5)
        await rp.drain_shadows()
        stats = rp.proxy.stats.snapshot()
    primary, mirror = bytes(a.received[0]), bytes(b.received[0])
    assert primary.startswith(b"GET /chat HTTP/1.1\r\nhost: httpbin:8000\r\nconnection: Upgrade\r\n"
                              b"upgrade: websocket\r\n")
    assert primary.endswith(b"\r\n\r\nEARLYhello")
    assert mirror.startswith(b"GET /chat HTTP/1.1\r\nhost: httpbin-shadow:8000\r\nconnection: Upgrade\r\n"
                             b"upgrade: websocket\r\n")
    assert b"x-envoy-internal: true\r\n" in mirror and mirror.endswith(b"\r\n\r\nEARLYhello")
    assert stats[V1 + "upstream_rq_101"] == 1
    assert stats["http.outbound_0.0.0.0_15001.downstream_cx_upgrades_total"] == 1


async def test_upstream_closing_the_tunnel_closes_the_client(run_proxy):
    async with ws_backend() as a:
        rp = await run_proxy(table_from_yaml(registry_yaml({"v1": a.port}) + virtual_service(TIMED)))
        reader, writer = await asyncio.open_connection("127.0.0.1", rp.port)
        writer.write(WS_REQUEST)
        await read_until(reader, b"\r\n\r\n")
        writer.write(b"bye")
        assert (await read_to_eof(reader)).endswith(b"closing")
        writer.close()
    assert rp.proxy.stats.flags["UC"] == 1


async def test_route_timeout_covers_the_handshake_only(run_proxy):
    async with ws_backend() as fast:
        rp = await run_proxy(table_from_yaml(registry_yaml({"v1": fast.port}) + virtual_service(TIMED)))
        reader, writer = await asyncio.open_connection("127.0.0.1", rp.port)
        writer.write(WS_REQUEST)
        head = await read_until(reader, b"\r\n\r\n")
        assert head.startswith(b"HTTP/1.1 101 ")
        await asyncio.sleep(0.7)  # past the 0.5 s route timeout: Envoy disabled it on the 101
        writer.write(b"late")
        await read_until(reader, b"echo:late")
        writer.close()
    async with ws_backend(delay=1.0) as slow:
        rp = await run_proxy(table_from_yaml(registry_yaml({"v1": slow.port}) + virtual_service(TIMED)))
        async with Client(rp.port) as c:
            (resp,) = await c.send(WS_REQUEST)
            assert (resp.status, resp.body) == (504, b"upstream request timeout")
            assert resp.header("connection") == "close"
            assert await c.closed()


async def test_failed_websocket_handshake(run_proxy):
    # below 400: Envoy's local reply with the upstream's status and headers, no body
    async with answering(b"HTTP/1.1 200 OK\r\nx-app: yes\r\ncontent-length: 2\r\n\r\nok") as a:
        rp = await run_proxy(table_from_yaml(registry_yaml({"v1": a.port}) + virtual_service(TIMED)))
        async with Client(rp.port) as c:
            (resp,) = await c.send(WS_REQUEST)
            assert (resp.status, resp.body) == (200, b"")
            assert [k for k, _ in resp.headers] == ["x-app", "date", "server", "connection", "content-length"]
            assert resp.header("content-length") == "0" and await c.closed()
    # 400 and above: passed through (body too), then the connection closes
    async with answering(b"HTTP/1.1 403 Forbidden\r\ncontent-length: 4\r\n\r\nnope") as a:
        rp = await run_proxy(table_from_yaml(registry_yaml({"v1": a.port}) + virtual_service(TIMED)))
        async with Client(rp.port) as c:
            (resp,) = await c.send(WS_REQUEST)
            assert (resp.status, resp.body) == (403, b"nope")
            assert resp.header("x-envoy-upstream-service-time") is None
            assert resp.header("connection") == "close" and await c.closed()


async def test_other_upgrades_are_refused_and_h2c_is_ignored(run_proxy):
    async with Recorder("v1") as a:
        rp = await run_proxy(table_from_yaml(registry_yaml({"v1": a.port}) + virtual_service(TIMED)))
        async with Client(rp.port) as c:
            (resp,) = await c.send(request("GET", "/", headers=[("Connection", "Upgrade"), ("Upgrade", "foo")]))
            assert (resp.status, resp.body, resp.header("connection")) == (403, b"", "close")
            assert await c.closed()
        h2c = [("Connection", "Upgrade, HTTP2-Settings"), ("Upgrade", "h2c"),
               ("HTTP2-Settings", "AAMAAABkAARAAAAAAAIAAAAA")]
        async with Client(rp.port) as c:
            (first,) = await c.send(request("POST", "/one", headers=h2c, body=b"abc"))
            (second,) = await c.send(request("GET", "/two"))  # the connection stays HTTP/1.1
        assert first.status == second.status == 200
        one, _ = await a.wait_for(2)
    assert one.body == b"abc"
    assert [k for k, _ in one.headers] == ["host", "content-length", "x-forwarded-proto", "x-request-id",
                                           "x-envoy-expected-rq-timeout-ms", "x-envoy-attempt-count"]


# --------------------------------------------------------------------------- Expect


async def test_expect_100_continue_is_answered_before_the_body(run_proxy):
    async with Recorder("v1") as a:
        rp = await run_proxy(table_from_yaml(registry_yaml({"v1": a.port}) + virtual_service(TIMED)))
        reader, writer = await asyncio.open_connection("127.0.0.1", rp.port)
        writer.write(b"POST /up HTTP/1.1\r\nHost: httpbin:8000\r\nExpect: 100-Continue\r\n"
                     b"Content-Length: 5\r\n\r\n")
        # the interim response comes before any body byte is sent (curl waits for it)
        assert await read_until(reader, b"\r\n\r\n") == b"HTTP/1.1 100 Continue\r\n\r\n"
        writer.write(b"hello")
        assert (await read_until(reader, b"\r\n\r\n")).startswith(b"HTTP/1.1 200 OK\r\n")
        writer.close()
        other = await get(rp.port, "/other", method="POST", headers=[("Expect", "something")], body=b"x")
        assert other.status == 200
        up, other_up = await a.wait_for(2)
    assert up.body == b"hello" and up.header("expect") == "100-Continue"  # Istio: proxy_100_continue
    assert other_up.header("expect") == "something"  # forwarded as sent


async def test_expect_head_goes_first_and_the_upstream_says_continue(run_proxy):
    """proxy_100_continue (simulator/proxy/expect.py): the head, Expect included, reaches the
    upstream before the client sends its body; the upstream's 100 is relayed, then the body
    goes to the primary and to the mirror."""
    heads: list[bytes] = []

    async def handler(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        head = await reader.readuntil(b"\r\n\r\n")
        heads.append(head)
        writer.write(b"HTTP/1.1 100 Continue\r\n\r\n")
        body = await reader.readexactly(5)
        writer.write(b"HTTP/1.1 200 OK\r\ncontent-length: 5\r\n\r\n" + body)
        await writer.drain()
        await reader.read()

    async with RawBackend(handler) as up, Recorder("v2") as m:
        rp = await run_proxy(table_from_yaml(registry_yaml({"v1": up.port, "v2": m.port})
                                             + virtual_service(MIRRORED)))
        reader, writer = await asyncio.open_connection("127.0.0.1", rp.port)
        writer.write(b"POST /up HTTP/1.1\r\nHost: httpbin:8000\r\nExpect: 100-continue\r\n"
                     b"Content-Length: 5\r\n\r\n")
        assert await read_until(reader, b"\r\n\r\n") == b"HTTP/1.1 100 Continue\r\n\r\n"
        assert len(heads) == 1 and b"expect: 100-continue" in heads[0]  # sent before the body
        writer.write(b"hello")
        resp = await read_until(reader, b"hello")
        assert resp.startswith(b"HTTP/1.1 200 OK\r\n") and b"connection: close" not in resp
        writer.close()
        (copy,) = await m.wait_for(1)
    assert copy.body == b"hello"


async def test_expect_answered_before_the_body_closes_the_connection(run_proxy):
    """The upstream answers (or resets) without asking for the body: no 100, the answer
    with connection: close, and that upstream connection is not reused."""
    async def handler(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        buf = backend.record()
        buf += await reader.readuntil(b"\r\n\r\n")
        if b"/reset" in buf:
            return
        writer.write(b"HTTP/1.1 417 Expectation Failed\r\ncontent-length: 2\r\n\r\nno")
        await writer.drain()
        buf += await reader.read()

    backend = RawBackend(handler)
    async with backend:
        rp = await run_proxy(table_from_yaml(registry_yaml({"v1": backend.port}) + virtual_service(PLAIN)))
        for path, status in ((b"/reset", b"503"), (b"/417", b"417")):
            reader, writer = await asyncio.open_connection("127.0.0.1", rp.port)
            writer.write(b"POST %s HTTP/1.1\r\nHost: httpbin:8000\r\nExpect: 100-continue\r\n"
                         b"Content-Length: 5\r\n\r\n" % path)
            got = await read_until(reader, b"\r\n\r\n")
            assert got.startswith(b"HTTP/1.1 %s " % status) and b"connection: close\r\n" in got
            assert await asyncio.wait_for(reader.read(), 5) in (b"", b"no", b"upstream connect error or "
                                                                b"disconnect/reset before headers. reset "
                                                                b"reason: connection termination")
            writer.close()
        assert (await get(rp.port, "/after")).status == 417  # a new upstream connection
    assert len(backend.received) == 3


# --------------------------------------------------------------------------- upstream failures


async def test_upstream_closing_before_the_response_is_not_resent(run_proxy):
    """503 UC ``connection termination``; Istio's default retry policy does not retry it,
    also not a GET on a reused keep-alive connection."""
    async def handler(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        # answers the first request of each connection, then closes on the next one
        buf = backend.record()
        buf += await reader.readuntil(b"\r\n\r\n")
        writer.write(b"HTTP/1.1 200 OK\r\ncontent-length: 2\r\n\r\nok")
        await writer.drain()
        buf += await reader.readuntil(b"\r\n\r\n")

    backend = RawBackend(handler)
    async with backend:
        rp = await run_proxy(table_from_yaml(registry_yaml({"v1": backend.port}) + virtual_service(PLAIN)))
        async with Client(rp.port) as c:
            (ok,) = await c.send(request("GET", "/a"))
            (reused,) = await c.send(request("GET", "/b"))
            (ok2,) = await c.send(request("GET", "/c"))
            (post,) = await c.send(request("POST", "/d", body=b"x"))
    assert ok.status == ok2.status == 200
    for resp in (reused, post):
        assert resp.status == 503
        assert resp.body == (b"upstream connect error or disconnect/reset before headers. "
                             b"reset reason: connection termination")
    heads = b"".join(backend.received)
    assert heads.count(b"GET /b ") == 1 and heads.count(b"POST /d ") == 1  # never sent twice
    assert rp.proxy.stats.flags["UC"] == 2


async def test_response_that_is_not_http_is_a_protocol_error(run_proxy):
    for response in (b"GARBAGE\r\n\r\n", b"HTTP/1.1 200 OK\r\nContent-Le"):  # the second: closed mid-head
        async with answering(response) as a:
            rp = await run_proxy(table_from_yaml(registry_yaml({"v1": a.port}) + virtual_service(TIMED)))
            resp = await get(rp.port, "/")
            assert resp.status == 502
            assert resp.body == (b"upstream connect error or disconnect/reset before headers. "
                                 b"reset reason: protocol error")
            stats = rp.proxy.stats.snapshot()
            assert stats[V1 + "upstream_cx_protocol_error"] == 1 and stats[V1 + "upstream_rq_502"] == 1
            assert rp.proxy.stats.flags["UPE"] == 1


# --------------------------------------------------------------------------- odd requests


async def test_connect_is_404_and_never_mirrored(run_proxy):
    async with Recorder("v1") as a, Recorder("v2") as b:
        rp = await run_proxy(table_from_yaml(registry_yaml({"v1": a.port, "v2": b.port})
                                             + virtual_service(MIRRORED)))
        for target in ("httpbin:8000", "example.com:443"):
            async with Client(rp.port) as c:
                (resp,) = await c.send(f"CONNECT {target} HTTP/1.1\r\nHost: {target}\r\n\r\n".encode())
                assert (resp.status, resp.body, resp.header("connection")) == (404, b"", "close")
                assert await c.closed()
        assert rp.proxy.stats.flags["NR"] == 2
        assert rp.proxy.stats.snapshot().get("http.async-client.rq_total", 0) == 0
    assert a.requests == [] and b.requests == []


async def test_missing_host_is_400_and_empty_host_is_routed(run_proxy):
    async with Recorder("v1") as a:
        rp = await run_proxy(table_from_yaml(registry_yaml({"v1": a.port}) + virtual_service(TIMED)))
        async with Client(rp.port) as c:
            (resp,) = await c.send(b"GET /x HTTP/1.1\r\n\r\n")
            assert (resp.status, resp.body) == (400, b"")
            assert [k for k, _ in resp.headers] == ["date", "server", "connection", "content-length"]
            assert await c.closed()
        async with Client(rp.port) as c:
            (empty,) = await c.send(b"GET /x HTTP/1.1\r\nHost:\r\n\r\n")  # no such host: Istio's 502
            (star,) = await c.send(b"OPTIONS * HTTP/1.1\r\nHost: httpbin:8000\r\n\r\n")
        assert (empty.status, star.status, star.body) == (502, 404, b"")
    assert a.requests == []


async def test_unsupported_transfer_coding_and_http_version(run_proxy):
    async with Recorder("v1") as a:
        rp = await run_proxy(table_from_yaml(registry_yaml({"v1": a.port}) + virtual_service(TIMED)))
        async with Client(rp.port) as c:
            (resp,) = await c.send(b"POST /x HTTP/1.1\r\nHost: httpbin:8000\r\n"
                                   b"Transfer-Encoding: gzip, chunked\r\n\r\n3\r\nabc\r\n0\r\n\r\n")
            assert (resp.status, resp.body, resp.header("connection")) == (501, b"Not Implemented", "close")
        async with Client(rp.port) as c:
            (resp,) = await c.send(b"GET /x HTTP/2.0\r\nHost: httpbin:8000\r\n\r\n")
            assert (resp.status, resp.body) == (426, b"Upgrade Required")
    assert a.requests == []


async def test_connect_timeout_reason(run_proxy):
    """A connection attempt that times out: Envoy's reset reason is ``connection timeout``
    (a refused one: ``remote connection failure``)."""
    import socket

    listener = socket.socket()
    listener.bind(("127.0.0.1", 0))
    listener.listen(0)
    port = listener.getsockname()[1]
    fillers = []
    for _ in range(3):  # fill the accept queue: further SYNs are dropped, connects time out
        s = socket.socket()
        s.setblocking(False)
        try:
            s.connect(("127.0.0.1", port))
        except BlockingIOError:
            pass
        fillers.append(s)
    policy = "  trafficPolicy: {connectionPool: {tcp: {connectTimeout: 0.2s}}}\n  subsets:"
    http = "- route: [{destination: {host: httpbin, subset: v1}}]\n  retries: {attempts: 0}"
    try:
        text = registry_yaml({"v1": port}).replace("  subsets:", policy) + virtual_service(http)
        rp = await run_proxy(table_from_yaml(text))
        resp = await get(rp.port, "/")
    finally:
        for s in fillers:
            s.close()
        listener.close()
    assert resp.status == 503
    assert resp.body == b"upstream connect error or disconnect/reset before headers. reset reason: connection timeout"
    assert rp.proxy.stats.flags["UF"] == 1
