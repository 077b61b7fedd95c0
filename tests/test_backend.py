"""Tests for the built-in httpbin-like backend (simulator.backend)."""

from __future__ import annotations

import asyncio
import json
import time

import aiohttp
import pytest

from simulator.backend import Backend, ReceivedRequest, create_app, serve

SHADOW = {"Host": "httpbin-shadow:8000", "x-envoy-internal": "true"}


@pytest.fixture
async def backend():
    lines: list[str] = []
    async with Backend("httpbin-v2", log=lines.append) as b:
        b.lines = lines  # type: ignore[attr-defined]
        yield b


@pytest.fixture
async def session():
    async with aiohttp.ClientSession() as s:
        yield s


async def fetch(session, method, url, **kw):
    async with session.request(method, url, **kw) as r:
        return r.status, r.headers, await r.read()


def as_json(body: bytes) -> dict:
    assert body.endswith(b"}\n"), body
    return json.loads(body)


async def test_binds_a_loopback_port(backend):
    assert backend.host == "127.0.0.1"
    assert backend.port > 0
    assert backend.url == f"http://127.0.0.1:{backend.port}"


async def test_get_echoes_args_headers_origin_url(backend, session):
    headers = {**SHADOW, "x-request-id": "abc-123"}
    status, rh, body = await fetch(session, "GET", backend.url + "/get?a=1&a=2&b=x", headers=headers)
    assert status == 200
    assert rh["x-backend"] == "httpbin-v2"
    assert rh["Content-Type"].startswith("application/json")
    data = as_json(body)
    assert data["backend"] == "httpbin-v2"
    assert data["args"] == {"a": ["1", "2"], "b": "x"}
    assert data["headers"]["Host"] == "httpbin-shadow:8000"
    assert data["headers"]["X-Envoy-Internal"] == "true"
    assert data["headers"]["X-Request-Id"] == "abc-123"
    assert "x-envoy-internal" not in data["headers"]
    assert data["origin"] == "127.0.0.1"
    assert data["url"] == "http://httpbin-shadow:8000/get?a=1&a=2&b=x"
    # sorted keys, trailing newline
    assert body.decode() == json.dumps(data, sort_keys=True, indent=2) + "\n"


async def test_headers_endpoint_joins_repeated_values(backend):
    reader, writer = await asyncio.open_connection("127.0.0.1", backend.port)
    writer.write(
        b"GET /headers HTTP/1.1\r\nHost: httpbin:8000\r\nX-Multi: a\r\nx-ONE: 1\r\n"
        b"x-multi: b\r\nConnection: close\r\n\r\n"
    )
    raw = await asyncio.wait_for(reader.read(), 5)
    writer.close()
    await writer.wait_closed()
    head, body = raw.split(b"\r\n\r\n", 1)
    assert head.startswith(b"HTTP/1.1 200 ")
    assert b"\r\nx-backend: httpbin-v2\r\n" in head + b"\r\n"
    data = as_json(body)
    assert set(data) == {"backend", "headers"}
    assert data["headers"] == {
        "Connection": "close",
        "Host": "httpbin:8000",
        "X-Multi": "a,b",
        "X-One": "1",
    }
    assert backend.requests[-1].headers == [
        ("Host", "httpbin:8000"),
        ("X-Multi", "a"),
        ("x-ONE", "1"),
        ("x-multi", "b"),
        ("Connection", "close"),
    ]


async def test_anything_echoes_method_body_and_json(backend, session):
    status, _, body = await fetch(
        session,
        "PUT",
        backend.url + "/anything/deep/path?q=1",
        data=b'{"k": [1, 2]}',
        headers={"Content-Type": "application/json"},
    )
    data = as_json(body)
    assert status == 200
    assert data["method"] == "PUT"
    assert data["args"] == {"q": "1"}
    assert data["data"] == '{"k": [1, 2]}'
    assert data["json"] == {"k": [1, 2]}
    assert data["url"].endswith("/anything/deep/path?q=1")
    assert data["headers"]["Content-Type"] == "application/json"
    assert data["origin"] == "127.0.0.1"


async def test_anything_root_any_method_non_json_and_binary(backend, session):
    _, _, body = await fetch(session, "DELETE", backend.url + "/anything")
    data = as_json(body)
    assert data["method"] == "DELETE" and data["data"] == "" and data["json"] is None
    _, _, body = await fetch(session, "POST", backend.url + "/anything", data=b"\xff\x00")
    data = as_json(body)
    assert data["data"] == "data:application/octet-stream;base64,/wA="
    assert data["json"] is None


async def test_form_body(backend, session):
    _, _, body = await fetch(session, "POST", backend.url + "/post", data={"a": "1", "b": "2"})
    data = as_json(body)
    assert data["form"] == {"a": "1", "b": "2"}
    assert data["files"] == {}


@pytest.mark.parametrize("method", ["POST", "PUT", "PATCH", "DELETE"])
async def test_method_endpoints(backend, session, method):
    path = "/" + method.lower()
    status, rh, body = await fetch(session, method, backend.url + path, data=b"payload")
    data = as_json(body)
    assert status == 200
    assert rh["x-backend"] == "httpbin-v2"
    assert data["data"] == "payload"
    assert data["backend"] == "httpbin-v2"
    # wrong method on a method endpoint
    other = "GET" if method != "GET" else "POST"
    status, rh, body = await fetch(session, other, backend.url + path)
    assert status == 405
    assert method in rh["Allow"]
    assert as_json(body)["status"] == 405


async def test_head_on_get_has_no_body(backend, session):
    status, rh, body = await fetch(session, "HEAD", backend.url + "/get")
    assert status == 200
    assert body == b""
    assert rh["x-backend"] == "httpbin-v2"
    assert int(rh["Content-Length"]) > 0
    assert backend.requests[-1].method == "HEAD"


async def test_status_418(backend, session):
    status, rh, body = await fetch(session, "GET", backend.url + "/status/418")
    assert status == 418
    assert body == b""
    assert rh["x-backend"] == "httpbin-v2"


@pytest.mark.parametrize("code", [200, 204, 503])
async def test_status_codes(backend, session, code):
    status, _, body = await fetch(session, "POST", backend.url + f"/status/{code}")
    assert (status, body) == (code, b"")


@pytest.mark.parametrize("bad", ["abc", "99", "600"])
async def test_status_invalid(backend, session, bad):
    status, _, body = await fetch(session, "GET", backend.url + f"/status/{bad}")
    assert status == 400
    assert "error" in as_json(body)


async def test_delay_fractional(backend, session):
    start = time.monotonic()
    status, _, body = await fetch(session, "GET", backend.url + "/delay/0.1?x=1")
    elapsed = time.monotonic() - start
    assert status == 200
    assert elapsed >= 0.1
    data = as_json(body)
    assert data["args"] == {"x": "1"} and data["backend"] == "httpbin-v2"


@pytest.mark.parametrize("bad", ["-1", "nan", "soon"])
async def test_delay_invalid(backend, session, bad):
    status, _, _ = await fetch(session, "GET", backend.url + f"/delay/{bad}")
    assert status == 400


async def test_ip_index_and_404(backend, session):
    status, rh, body = await fetch(session, "GET", backend.url + "/ip")
    assert status == 200 and as_json(body) == {"origin": "127.0.0.1", "backend": "httpbin-v2"}
    status, rh, body = await fetch(session, "GET", backend.url + "/")
    assert status == 200 and b"httpbin-v2" in body and rh["x-backend"] == "httpbin-v2"
    status, rh, body = await fetch(session, "GET", backend.url + "/no/such/path")
    assert status == 404
    assert rh["x-backend"] == "httpbin-v2"
    data = as_json(body)
    assert data["status"] == 404 and data["backend"] == "httpbin-v2"


async def test_records_requests_as_received_and_logs(backend, session):
    await fetch(session, "GET", backend.url + "/headers", headers=SHADOW)
    await fetch(
        session,
        "POST",
        backend.url + "/anything?z=9",
        data=b"12345",
        headers={"X-Request-Id": "rid-1", "Host": "httpbin:8000"},
    )
    reqs = await backend.wait_for_requests(2)
    first, second = reqs
    assert isinstance(first, ReceivedRequest)
    assert (first.method, first.path, first.body) == ("GET", "/headers", b"")
    # original case and wire order as the client sent them
    assert first.headers[:2] == [("Host", "httpbin-shadow:8000"), ("x-envoy-internal", "true")]
    assert first.header("X-ENVOY-INTERNAL") == "true"
    assert (second.method, second.path, second.body) == ("POST", "/anything?z=9", b"12345")
    assert second.time >= first.time
    assert backend.lines == [
        "[httpbin-v2] GET /headers host=httpbin-shadow:8000 x-envoy-internal=true",
        "[httpbin-v2] POST /anything?z=9 host=httpbin:8000 x-request-id=rid-1 body=5B",
    ]


async def test_history_is_bounded(session):
    async with Backend("h", log=None, history=3) as b:
        for i in range(5):
            await fetch(session, "GET", f"{b.url}/get?i={i}")
        reqs = await b.wait_for_requests(5)
    assert [r.path for r in reqs] == ["/get?i=2", "/get?i=3", "/get?i=4"]
    assert b.total_requests == 5


async def test_wait_for_requests_is_woken_by_arrival(backend, session):
    waiter = asyncio.ensure_future(backend.wait_for_requests(1, timeout=5))
    assert not waiter.done()
    await fetch(session, "GET", backend.url + "/get")
    reqs = await asyncio.wait_for(waiter, 5)
    assert [r.path for r in reqs] == ["/get"]


async def test_wait_for_requests_timeout_names_what_arrived(backend, session):
    await fetch(session, "GET", backend.url + "/ip")
    start = time.monotonic()
    with pytest.raises(TimeoutError) as info:
        await backend.wait_for_requests(2, timeout=0.1)
    assert time.monotonic() - start < 2
    msg = str(info.value)
    assert "httpbin-v2" in msg and "expected 2" in msg and "got 1" in msg
    assert "GET /ip" in msg


async def test_two_backends_are_distinguishable(session):
    async with Backend("httpbin-v1", log=None) as v1, Backend("httpbin-v2", log=None) as v2:
        _, h1, b1 = await fetch(session, "GET", v1.url + "/get")
        _, h2, b2 = await fetch(session, "GET", v2.url + "/get")
    assert (h1["x-backend"], as_json(b1)["backend"]) == ("httpbin-v1", "httpbin-v1")
    assert (h2["x-backend"], as_json(b2)["backend"]) == ("httpbin-v2", "httpbin-v2")
    assert len(v1.requests) == len(v2.requests) == 1


async def test_create_app_with_aiohttp_client(aiohttp_client):
    lines: list[str] = []
    client = await aiohttp_client(create_app("plain", log=lines.append))
    r = await client.get("/headers")
    assert r.headers["x-backend"] == "plain"
    assert (await r.json())["backend"] == "plain"
    assert len(lines) == 1 and lines[0].startswith("[plain] GET /headers host=")


async def test_stop_during_a_slow_request_is_prompt(session):
    b = Backend("slow", log=None)
    await b.start()
    pending = asyncio.ensure_future(fetch(session, "GET", b.url + "/delay/10"))
    await b.wait_for_requests(1)
    start = time.monotonic()
    await b.stop()
    assert time.monotonic() - start < 5
    with pytest.raises(aiohttp.ClientError):
        await asyncio.wait_for(pending, 5)


async def test_serve_announces_serves_and_stops_on_cancel():
    loop = asyncio.get_running_loop()
    announced: asyncio.Future[str] = loop.create_future()
    lines: list[str] = []

    def log(line: str) -> None:
        lines.append(line)
        if not announced.done():
            announced.set_result(line)

    task = asyncio.ensure_future(serve("httpbin-v9", "127.0.0.1", 0, log=log))
    line = await asyncio.wait_for(announced, 5)
    assert line.startswith("httpbin-v9 listening on http://127.0.0.1:")
    port = int(line.rsplit(":", 1)[1])
    assert port > 0
    async with aiohttp.ClientSession() as s:
        _, rh, _ = await fetch(s, "GET", f"http://127.0.0.1:{port}/get")
    assert rh["x-backend"] == "httpbin-v9"
    assert lines[1].startswith("[httpbin-v9] GET /get host=127.0.0.1:")
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task
    with pytest.raises(aiohttp.ClientConnectionError):
        async with aiohttp.ClientSession() as s:
            await fetch(s, "GET", f"http://127.0.0.1:{port}/get")
