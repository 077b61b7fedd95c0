"""Oracle, group "basic" (fixture ``g`` in conftest.py): what the client gets for unusual upstream
responses.  The ``custom`` service (no VirtualService: Istio's default route) is a backend that
writes exact bytes (``Backend.raw_response``) and closes."""

from __future__ import annotations

import pytest

from tests.oracle.harness import Group, Observation, req, simple
from tests.oracle.test_basic import differs

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


@differs("an upstream 100 Continue the client did not ask for: Envoy relays it (proxy_100_continue); "
         "mirrorsim drops it")
async def test_response_unsolicited_100_continue(g: Group) -> None:
    e, m = await through(g, b"HTTP/1.1 100 Continue\r\n\r\nHTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok")
    assert e.got.interim == [100] and e.got.status == 200
    g.compare(e, m)


@differs("a 204 from upstream: mirrorsim adds 'content-length: 0', Envoy sends no content-length")
async def test_response_204(g: Group) -> None:
    e, m = await through(g, b"HTTP/1.1 204 No Content\r\nContent-Length: 0\r\n\r\n")
    assert e.got.status == 204 and e.got.header("content-length") is None
    g.compare(e, m)


async def test_response_truncated_body(g: Group) -> None:
    e, m = await through(g, b"HTTP/1.1 200 OK\r\nContent-Length: 10\r\n\r\nshort")
    assert e.got.status == 200 and e.got.error  # headers sent, then the connection is reset
    g.compare(e, m)


async def test_response_unknown_status_code(g: Group) -> None:
    e, m = await through(g, b"HTTP/1.1 299 Whatever Reason\r\nContent-Length: 2\r\n\r\nok")
    assert e.got.status == 299 and e.got.body == b"ok"
    g.compare(e, m)


async def test_response_x_envoy_headers_from_upstream_kept(g: Group) -> None:
    e, m = await through(g, b"HTTP/1.1 200 OK\r\nx-envoy-overloaded: true\r\nx-envoy-degraded: 1\r\n"
                            b"Content-Length: 2\r\n\r\nok")
    assert e.got.header("x-envoy-overloaded") == "true" and e.got.header("x-envoy-degraded") == "1"
    g.compare(e, m)
