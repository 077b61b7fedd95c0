"""Oracle, group "basic" (fixture ``g`` in conftest.py): what the client gets for unusual upstream
responses.  The ``custom`` service (no VirtualService: Istio's default route) is a backend that
writes exact bytes (``Backend.raw_response``) and closes."""

from __future__ import annotations

import asyncio

import pytest

from tests.oracle.harness import Group, Observation, req, simple

pytestmark = [pytest.mark.slow, pytest.mark.asyncio(loop_scope="package")]


async def through(g: Group, raw: bytes) -> tuple[Observation, Observation | None]:
    """GET custom:8000/r through both proxies, the upstream answering ``raw``."""
    g.backends["cu"].raw_response = raw
    try:
        return await g.both(simple(req("GET", "/r", host="custom:8000")))
    finally:
        g.backends["cu"].raw_response = None


async def test_response_connection_header_removed(g: Group) -> None:
    e, m = await through(g, b"HTTP/1.1 200 OK\r\nConnection: x-hop\r\nx-hop: 1\r\nKeep-Alive: timeout=5\r\n"
                            b"Content-Length: 2\r\n\r\nok")
    assert e.got.status == 200 and e.got.body == b"ok"
    assert e.got.header("keep-alive") is None and e.got.header("connection") is None
    assert e.got.header("x-hop") == "1"  # a name listed in Connection is kept on responses
    g.compare(e, m)


async def test_response_close_delimited_becomes_chunked(g: Group) -> None:
    e, m = await through(g, b"HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\n\r\nuntil close")
    assert e.got.body == b"until close" and e.got.header("transfer-encoding") == "chunked"
    g.compare(e, m)


async def test_response_trailers_dropped(g: Group) -> None:
    e, m = await through(g, b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n"
                            b"2\r\nok\r\n0\r\nx-resp-trailer: 1\r\n\r\n")
    assert e.got.body == b"ok" and e.got.header("x-resp-trailer") is None
    g.compare(e, m)


async def test_response_http10_upstream(g: Group) -> None:
    e, m = await through(g, b"HTTP/1.0 200 OK\r\nContent-Length: 2\r\n\r\nok")
    assert e.got.status == 200 and e.got.body == b"ok"
    g.compare(e, m)


async def test_response_server_header_overwritten(g: Group) -> None:
    e, m = await through(g, b"HTTP/1.1 200 OK\r\nServer: backend/1.0\r\nContent-Length: 2\r\n\r\nok")
    assert e.got.header("server") == "envoy"  # server_header_transformation OVERWRITE
    g.compare(e, m)


async def test_response_duplicate_headers_kept(g: Group) -> None:
    e, m = await through(g, b"HTTP/1.1 200 OK\r\nSet-Cookie: a=1\r\nSet-Cookie: b=2\r\nContent-Length: 2\r\n\r\nok")
    assert [v for k, v in e.got.headers if k == "set-cookie"] == ["a=1", "b=2"]
    g.compare(e, m)


async def test_response_unsolicited_100_continue(g: Group) -> None:
    e, m = await through(g, b"HTTP/1.1 100 Continue\r\n\r\nHTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok")
    assert e.got.interim == [100] and e.got.status == 200
    g.compare(e, m)


@pytest.mark.parametrize(("first", "relayed"), [
    (b"102 Processing", [102]), (b"103 Early Hints\r\nLink: </s.css>; rel=preload", [103]),
    (b"199 Whatever", []), (b"100 Continue\r\nx-i: 1", [100])])
async def test_response_other_1xx(g: Group, first: bytes, relayed: list[int]) -> None:
    e, m = await through(g, b"HTTP/1.1 %s\r\n\r\nHTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok" % first)
    assert e.got.status == 200 and e.got.body == b"ok" and e.got.interim == relayed
    g.compare(e, m)


async def test_response_two_1xx_only_the_first_relayed(g: Group) -> None:
    e, m = await through(g, b"HTTP/1.1 100 Continue\r\n\r\nHTTP/1.1 103 Early Hints\r\n\r\n"
                            b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok")
    assert e.got.status == 200 and e.got.interim == [100]
    g.compare(e, m)


async def test_response_204(g: Group) -> None:
    e, m = await through(g, b"HTTP/1.1 204 No Content\r\nContent-Length: 0\r\n\r\n")
    assert e.got.status == 204 and e.got.header("content-length") is None
    g.compare(e, m)


async def test_response_204_without_length(g: Group) -> None:
    e, m = await through(g, b"HTTP/1.1 204 No Content\r\nx-b: 1\r\n\r\n")
    assert e.got.status == 204 and e.got.header("content-length") is None and e.got.header("x-b") == "1"
    g.compare(e, m)


@pytest.mark.parametrize("framing", ["Content-Length: 2", "Transfer-Encoding: chunked"])
async def test_response_204_with_body_framing_is_protocol_error(g: Group, framing: str) -> None:
    e, m = await through(g, b"HTTP/1.1 204 No Content\r\n%s\r\n\r\n" % framing.encode())
    assert e.got.status == 502
    g.compare(e, m)


async def test_response_304_length_kept(g: Group) -> None:
    e, m = await through(g, b"HTTP/1.1 304 Not Modified\r\nContent-Length: 7\r\n\r\n")
    assert e.got.status == 304
    g.compare(e, m)


async def test_response_truncated_body(g: Group) -> None:
    e, m = await through(g, b"HTTP/1.1 200 OK\r\nContent-Length: 10\r\n\r\nshort")
    assert e.got.status == 200 and e.got.error  # headers sent, then the connection is reset
    g.compare(e, m)


async def test_response_unknown_status_code(g: Group) -> None:
    e, m = await through(g, b"HTTP/1.1 299 Whatever Reason\r\nContent-Length: 2\r\n\r\nok")
    assert e.got.status == 299 and e.got.body == b"ok"
    g.compare(e, m)


@pytest.mark.parametrize("code", [101, 103, 413, 414, 416, 418, 422, 425, 451])
async def test_response_reason_phrase(g: Group, code: int) -> None:
    """Envoy writes its own reason phrase (CodeUtility::toString), "Unknown" for a code it
    has none for; the client's status line is compared byte for byte."""
    if code == 101:
        raw = b"HTTP/1.1 101 X\r\nConnection: Upgrade\r\nUpgrade: websocket\r\n\r\n"
        extra = b"Connection: Upgrade\r\nUpgrade: websocket\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n"
    else:
        raw = (b"HTTP/1.1 103 X\r\n\r\nHTTP/1.1 200 OK\r\nContent-Length: 0\r\n\r\n" if code == 103
               else b"HTTP/1.1 %d X\r\nContent-Length: 0\r\n\r\n" % code)
        extra = b""
    g.backends["cu"].raw_response = raw
    lines = []
    try:
        for p in (g.envoy, g.mirrorsim):
            r, w = await asyncio.open_connection("127.0.0.1", p.port)
            w.write(b"GET /r HTTP/1.1\r\nHost: custom:8000\r\n%s\r\n" % extra)
            lines.append(await asyncio.wait_for(r.readline(), 5))
            w.close()
    finally:
        g.backends["cu"].raw_response = None
    assert lines[0].startswith(b"HTTP/1.1 %d " % code)
    assert lines[1] == lines[0]


async def test_response_x_envoy_headers_from_upstream_kept(g: Group) -> None:
    e, m = await through(g, b"HTTP/1.1 200 OK\r\nx-envoy-overloaded: true\r\nx-envoy-degraded: 1\r\n"
                            b"Content-Length: 2\r\n\r\nok")
    assert e.got.header("x-envoy-overloaded") == "true" and e.got.header("x-envoy-degraded") == "1"
    g.compare(e, m)
