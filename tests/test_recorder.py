"""Tests for the raw recording upstream used by the integration tests."""

from __future__ import annotations

import asyncio
import time

import aiohttp
import pytest

from tests.support.recorder import Recorded, Recorder

HOST = "127.0.0.1"


async def read_response(reader: asyncio.StreamReader, *, head: bool = False):
    """Read one HTTP/1.1 response with a Content-Length body: (status, headers, body)."""
    raw = await asyncio.wait_for(reader.readuntil(b"\r\n\r\n"), 5)
    status_line, *lines = raw.decode("latin-1").split("\r\n")[:-2]
    status = int(status_line.split(" ", 2)[1])
    headers = [tuple(x.strip() for x in line.split(":", 1)) for line in lines]
    lengths = [v for k, v in headers if k.lower() == "content-length"]
    body = b""
    if lengths and not head:
        body = await asyncio.wait_for(reader.readexactly(int(lengths[0])), 5)
    return status, headers, body


async def send(port: int, data: bytes):
    reader, writer = await asyncio.open_connection(HOST, port)
    writer.write(data)
    await writer.drain()
    return reader, writer


async def close(writer: asyncio.StreamWriter) -> None:
    writer.close()
    await writer.wait_closed()


async def test_records_request_line_headers_and_body():
    async with Recorder("p", status=201, body=b"created", headers=[("X-Up", "1")]) as rec:
        assert rec.host == HOST and rec.port > 0
        reader, writer = await send(
            rec.port,
            b"POST /a/b?x=1&y=%20 HTTP/1.1\r\nHost: svc:8000\r\nContent-Length: 5\r\n"
            b"Content-Type: text/plain\r\n\r\nhello",
        )
        status, headers, body = await read_response(reader)
        await close(writer)
        [req] = await rec.wait_for(1)
    assert (status, body) == (201, b"created")
    assert ("X-Up", "1") in headers
    assert ("Content-Length", "7") in headers
    assert req.method == "POST"
    assert req.target == "/a/b?x=1&y=%20"
    assert req.version == "1.1"
    assert req.headers == [
        ("host", "svc:8000"),
        ("content-length", "5"),
        ("content-type", "text/plain"),
    ]
    assert req.body == b"hello"
    assert req.chunked is False
    assert req.content_length == 5
    assert req.header("HOST") == "svc:8000"
    assert req.header("missing") is None
    assert req.peer_port == writer.get_extra_info("sockname")[1]


async def test_keep_alive_reuses_one_connection_with_aiohttp():
    async with Recorder() as rec:
        conn = aiohttp.TCPConnector(limit=1)
        async with aiohttp.ClientSession(connector=conn) as s:
            for path in ("/one", "/two", "/three"):
                async with s.get(rec.url + path) as r:
                    assert r.status == 200
                    assert await r.read() == b"ok"
        reqs = await rec.wait_for(3)
    assert [r.target for r in reqs] == ["/one", "/two", "/three"]
    assert len({r.peer_port for r in reqs}) == 1
    assert {r.conn for r in reqs} == {1}
    assert rec.connections == 1


async def test_keep_alive_and_pipelining_on_a_raw_socket():
    async with Recorder() as rec:

        @rec.responder
        def answer(req: Recorded):
            return 200, [("X-Path", req.target)], req.target.encode()

        reader, writer = await send(
            rec.port,
            b"GET /1 HTTP/1.1\r\nHost: a\r\n\r\nGET /2 HTTP/1.1\r\nHost: a\r\n\r\n",
        )
        first = await read_response(reader)
        second = await read_response(reader)
        writer.write(b"GET /3 HTTP/1.1\r\nHost: a\r\n\r\n")
        third = await read_response(reader)
        await close(writer)
        reqs = await rec.wait_for(3)
    assert [r[2] for r in (first, second, third)] == [b"/1", b"/2", b"/3"]
    assert reqs[0].peer_port == reqs[1].peer_port == reqs[2].peer_port
    assert rec.connections == 1


async def test_chunked_body_is_recorded_dechunked():
    async with Recorder() as rec:
        reader, writer = await send(
            rec.port,
            b"POST /up HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\n\r\n"
            b"5\r\nhello\r\n7;ext=1\r\n, world\r\n0\r\nX-Trailer: t\r\n\r\n",
        )
        status, headers, body = await read_response(reader)
        await close(writer)
        [req] = await rec.wait_for(1)
    assert status == 200
    assert req.chunked is True
    assert req.content_length is None
    assert req.body == b"hello, world"
    assert req.header("transfer-encoding") == "chunked"
    assert req.trailers == [("x-trailer", "t")]
    assert "x-trailer" not in req.header_names()


async def test_duplicate_headers_kept_in_wire_order():
    async with Recorder() as rec:
        reader, writer = await send(
            rec.port,
            b"GET / HTTP/1.1\r\nHost: a\r\nX-Dup: one\r\nX-Other: x\r\nx-dup: Two \r\nX-DUP: three,four\r\n\r\n",
        )
        await read_response(reader)
        await close(writer)
        [req] = await rec.wait_for(1)
    assert req.header_names() == ["host", "x-dup", "x-other", "x-dup", "x-dup"]
    # Values are as on the wire (llhttp drops leading whitespace only).
    assert req.header_values("X-Dup") == ["one", "Two ", "three,four"]
    assert req.header("x-dup") == "one"


async def test_refuse_gives_connection_refused():
    async with Recorder(refuse=True) as rec:
        assert rec.port > 0
        with pytest.raises(ConnectionRefusedError):
            await asyncio.open_connection(HOST, rec.port)
        assert rec.requests == []
        assert rec.connections == 0


async def test_delay_event_holds_the_response_until_set():
    release = asyncio.Event()
    async with Recorder(delay_event=release) as rec:
        reader, writer = await send(rec.port, b"GET /held HTTP/1.1\r\nHost: a\r\n\r\n")
        pending = asyncio.ensure_future(read_response(reader))
        [req] = await rec.wait_for(1)  # recorded at once, before any response
        assert req.target == "/held"
        done, _ = await asyncio.wait({pending}, timeout=0.2)
        assert not done, "response was sent before the event was set"
        release.set()
        status, _, body = await asyncio.wait_for(pending, 5)
        await close(writer)
    assert (status, body) == (200, b"ok")


async def test_stop_with_a_held_response_does_not_hang():
    release = asyncio.Event()
    rec = Recorder(delay_event=release)
    await rec.start()
    reader, writer = await send(rec.port, b"GET / HTTP/1.1\r\nHost: a\r\n\r\n")
    await rec.wait_for(1)
    await asyncio.wait_for(rec.stop(), 5)
    assert await asyncio.wait_for(reader.read(), 5) == b""  # closed without a response
    await close(writer)


async def test_delay_postpones_the_response():
    async with Recorder(delay=0.3) as rec:
        start = time.monotonic()
        reader, writer = await send(rec.port, b"GET / HTTP/1.1\r\nHost: a\r\n\r\n")
        await rec.wait_for(1)
        arrived = time.monotonic() - start
        await read_response(reader)
        elapsed = time.monotonic() - start
        await close(writer)
    assert arrived < 0.3
    assert elapsed >= 0.3


async def test_connection_close_request_closes_after_response():
    async with Recorder() as rec:
        reader, writer = await send(rec.port, b"GET / HTTP/1.1\r\nHost: a\r\nConnection: close\r\n\r\n")
        data = await asyncio.wait_for(reader.read(), 5)  # EOF proves the server closed
        await close(writer)
        [req] = await rec.wait_for(1)
    assert data.startswith(b"HTTP/1.1 200 OK\r\n")
    assert b"\r\nConnection: close\r\n" in data
    assert data.endswith(b"\r\n\r\nok")
    assert req.keep_alive is False


async def test_http10_without_keep_alive_closes():
    async with Recorder() as rec:
        reader, writer = await send(rec.port, b"GET /old HTTP/1.0\r\n\r\n")
        data = await asyncio.wait_for(reader.read(), 5)
        await close(writer)
        [req] = await rec.wait_for(1)
    assert data.endswith(b"ok")
    assert req.version == "1.0"
    assert req.keep_alive is False


async def test_close_after_response_forces_new_connections():
    async with Recorder(close_after_response=True) as rec:
        async with aiohttp.ClientSession(connector=aiohttp.TCPConnector(limit=1)) as s:
            for _ in range(2):
                async with s.get(rec.url + "/") as r:
                    assert r.headers["Connection"].lower() == "close"
                    await r.read()
        a, b = await rec.wait_for(2)
    assert rec.connections == 2
    assert (a.conn, b.conn) == (1, 2)
    assert a.peer_port != b.peer_port


async def test_head_response_has_content_length_but_no_body():
    async with Recorder(body=b"twelve bytes") as rec:
        reader, writer = await send(
            rec.port,
            b"HEAD /h HTTP/1.1\r\nHost: a\r\n\r\nGET /g HTTP/1.1\r\nHost: a\r\n\r\n",
        )
        status, headers, body = await read_response(reader, head=True)
        # The next bytes must be the second response, not a HEAD body.
        status2, _, body2 = await read_response(reader)
        await close(writer)
    assert status == 200 and body == b""
    assert ("Content-Length", "12") in headers
    assert (status2, body2) == (200, b"twelve bytes")


async def test_204_has_no_content_length():
    async with Recorder(status=204, body=b"") as rec:
        reader, writer = await send(rec.port, b"GET / HTTP/1.1\r\nHost: a\r\n\r\n")
        status, headers, _ = await read_response(reader)
        await close(writer)
    assert status == 204
    assert not [k for k, _ in headers if k.lower() == "content-length"]


async def test_async_responder_varies_responses_and_none_means_default():
    async with Recorder(status=202, body="default") as rec:

        async def answer(req: Recorded):
            if req.target == "/teapot":
                return 418, [("X-Kind", "teapot")], "short and stout"
            return None

        assert rec.responder(answer) is answer
        async with aiohttp.ClientSession() as s:
            async with s.get(rec.url + "/teapot") as r:
                assert r.status == 418
                assert r.headers["X-Kind"] == "teapot"
                assert await r.text() == "short and stout"
            async with s.post(rec.url + "/other", data=b"x" * 100) as r:
                assert r.status == 202
                assert await r.text() == "default"
        reqs = await rec.wait_for(2)
    assert reqs[1].body == b"x" * 100
    assert reqs[1].content_length == 100


async def test_expect_100_continue():
    async with Recorder() as rec:
        reader, writer = await send(
            rec.port,
            b"PUT / HTTP/1.1\r\nHost: a\r\nContent-Length: 3\r\nExpect: 100-continue\r\n\r\n",
        )
        interim = await asyncio.wait_for(reader.readuntil(b"\r\n\r\n"), 5)
        writer.write(b"abc")
        status, _, _ = await read_response(reader)
        await close(writer)
        [req] = await rec.wait_for(1)
    assert interim == b"HTTP/1.1 100 Continue\r\n\r\n"
    assert status == 200
    assert req.body == b"abc"


async def test_malformed_request_gets_400_and_close():
    async with Recorder() as rec:
        reader, writer = await send(rec.port, b"NOT HTTP AT ALL\r\n\r\n")
        data = await asyncio.wait_for(reader.read(), 5)
        await close(writer)
        assert rec.requests == []
    assert data.startswith(b"HTTP/1.1 400 ")


async def test_read_body_slowly_still_records_whole_body():
    async with Recorder(read_body_slowly=0.01) as rec:
        payload = bytes(range(256)) * 64
        async with aiohttp.ClientSession() as s:
            async with s.post(rec.url + "/slow", data=payload) as r:
                assert r.status == 200
        [req] = await rec.wait_for(1)
    assert req.body == payload


async def test_wait_for_timeout_lists_what_arrived():
    async with Recorder("mirror") as rec:
        async with aiohttp.ClientSession() as s:
            async with s.get(rec.url + "/only-one", headers={"Host": "h-shadow"}) as r:
                await r.read()
        with pytest.raises(AssertionError) as info:
            await rec.wait_for(2, timeout=0.1)
    msg = str(info.value)
    assert "'mirror'" in msg
    assert "expected 2" in msg and "got 1" in msg
    assert "GET /only-one" in msg and "host=h-shadow" in msg
    assert rec._waiters == []
