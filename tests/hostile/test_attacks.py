"""Attacks on the newer parts of the data plane (upgrades, 1xx, header formatting, CORS,
path normalization, RE2, config size), as a hostile client, backend or config author.
Each test bounds its own time, uses loopback only, and checks afterwards that the proxy
still answers a normal request promptly.  What each one found is in its docstring."""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator, Awaitable, Callable

import pytest

from simulator.proxy.upstream import MAX_RESPONSE_HEADER_BYTES
from tests.conftest import registry_yaml, table_from_yaml, virtual_service
from tests.support.client import get

ROUTE = "- route: [{destination: {host: httpbin, subset: v1}}]"
OK = b"HTTP/1.1 200 OK\r\ncontent-length: 2\r\n\r\nok"
Handler = Callable[[asyncio.StreamReader, asyncio.StreamWriter], Awaitable[None]]


class RawBackend:
    """A loopback server: ``/attack...`` requests go to ``attack`` (a hostile backend),
    every other request gets a 200 ``ok``."""

    def __init__(self, attack: Handler) -> None:
        self.attack = attack
        self.port = 0
        self.tasks: set[asyncio.Task[None]] = set()

    async def __aenter__(self) -> RawBackend:
        self.server = await asyncio.start_server(self._serve, "127.0.0.1", 0)
        self.port = self.server.sockets[0].getsockname()[1]
        return self

    async def __aexit__(self, *exc: object) -> None:
        self.server.close()
        for t in self.tasks:
            t.cancel()

    async def _serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        task = asyncio.current_task()
        assert task is not None
        self.tasks.add(task)
        try:
            while True:
                head = await reader.readuntil(b"\r\n\r\n")
                if head.split(b" ", 2)[1].startswith(b"/attack"):
                    await self.attack(reader, writer)
                    return
                writer.write(OK)
                await writer.drain()
        except (OSError, asyncio.IncompleteReadError, asyncio.LimitOverrunError):
            pass
        finally:
            self.tasks.discard(task)
            writer.close()


async def assert_serves(port: int, within: float = 2.0) -> None:
    t0 = time.monotonic()
    resp = await asyncio.wait_for(get(port, "/normal"), within)
    assert resp.status == 200, resp
    assert time.monotonic() - t0 < within


@pytest.fixture
async def hostile_backend(run_proxy: Callable[..., Awaitable[object]]
                          ) -> AsyncIterator[Callable[[Handler], Awaitable[int]]]:
    """``port = await hostile_backend(handler)``: a proxy whose only upstream is a
    RawBackend running ``handler`` for /attack requests."""
    backends: list[RawBackend] = []

    async def start(handler: Handler) -> int:
        backend = await RawBackend(handler).__aenter__()
        backends.append(backend)
        table = table_from_yaml(registry_yaml({"v1": backend.port}) + virtual_service(ROUTE))
        rp = await run_proxy(table)
        return rp.port  # type: ignore[attr-defined, no-any-return]

    yield start
    for b in backends:
        await b.__aexit__()


# --------------------------------------------------------------------------- upstream heads


async def _endless(writer: asyncio.StreamWriter, first: bytes, piece: bytes, limit: int = 8 << 20) -> None:
    writer.write(first)
    sent = 0
    while sent < limit:  # bounded: the proxy must give up long before
        writer.write(piece)
        sent += len(piece)
        await writer.drain()


@pytest.mark.parametrize("kind", ["many headers", "one endless value", "101 headers", "a head over 80 KiB"])
async def test_upstream_response_head_is_bounded(hostile_backend, kind: str):
    """A backend sending an endless response head (headers for ever, or one header value
    that never ends) made the proxy buffer it all: +40 MB of RSS in 8 s and the client
    waited until the backend gave up.  Envoy's HTTP/1 codec client refuses a response head
    over 80 KiB or with more than 100 headers: protocol error, 502 UPE."""

    async def attack(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        if kind == "many headers":
            await _endless(writer, b"HTTP/1.1 200 OK\r\n", b"".join(b"x-h%d: v\r\n" % i for i in range(500)))
        elif kind == "one endless value":
            await _endless(writer, b"HTTP/1.1 200 OK\r\nx-a: ", b"a" * 4096)
        elif kind == "101 headers":
            writer.write(b"HTTP/1.1 200 OK\r\n" + b"".join(b"x-h%d: v\r\n" % i for i in range(101))
                         + b"content-length: 2\r\n\r\nok")
            await reader.read(1)  # until the proxy closes
        else:
            writer.write(b"HTTP/1.1 200 OK\r\nx-a: " + b"a" * MAX_RESPONSE_HEADER_BYTES
                         + b"\r\ncontent-length: 2\r\n\r\nok")
            await reader.read(1)

    port = await hostile_backend(attack)
    t0 = time.monotonic()
    resp = await asyncio.wait_for(get(port, "/attack"), 5)
    assert resp.status == 502, resp
    assert resp.body.endswith(b"reset reason: protocol error")
    assert time.monotonic() - t0 < 2.0
    await assert_serves(port)


async def test_upstream_head_just_under_the_limits_passes(hostile_backend):
    """The bound is Envoy's, not lower: 100 headers and a 70 KB head get through."""

    async def attack(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        writer.write(b"HTTP/1.1 200 OK\r\nx-a: " + b"a" * 70_000 + b"\r\n"
                     + b"".join(b"x-h%d: v\r\n" % i for i in range(97))
                     + b"connection: close\r\ncontent-length: 2\r\n\r\nok")
        await reader.read(1)

    port = await hostile_backend(attack)
    resp = await asyncio.wait_for(get(port, "/attack"), 5)
    assert (resp.status, resp.body) == (200, b"ok")
    await assert_serves(port)


async def test_101_to_a_request_that_did_not_upgrade_is_a_protocol_error(hostile_backend):
    """A backend answering 101 (and then bytes) to a plain GET: the proxy dropped the
    upstream connection and never answered the client (it waited for ever, its stream
    stayed active).  Now 502 UPE, as the HTTP WG and Envoy's maintainers say an
    intermediary should (envoyproxy/envoy#29071)."""

    async def attack(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        writer.write(b"HTTP/1.1 101 Switching Protocols\r\nupgrade: websocket\r\nconnection: upgrade\r\n\r\nzzzz")
        await reader.read(1)

    port = await hostile_backend(attack)
    resp = await asyncio.wait_for(get(port, "/attack"), 5)
    assert resp.status == 502, resp
    await assert_serves(port)


async def test_endless_100_continue_stream_is_dropped_as_it_comes(hostile_backend):
    """A backend sending ``100 Continue`` 16 MB long: the first interim head is relayed
    (Istio's proxy_100_continue; Envoy relays one 1xx per request), every later one is
    dropped as it arrives, nothing accumulates; the backend closing in the middle of the
    stream is a protocol error, 502 UPE, as in Envoy.  Held."""

    async def attack(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await _endless(writer, b"", b"HTTP/1.1 100 Continue\r\n\r\n" * 400, limit=16 << 20)
        writer.write(b"HTTP/1.1 100")  # and closes in the middle of a head

    port = await hostile_backend(attack)
    t0 = time.monotonic()
    raw = await _exchange(port, b"GET /attack HTTP/1.1\r\nHost: httpbin:8000\r\nConnection: close\r\n\r\n", timeout=15)
    assert raw.startswith(b"HTTP/1.1 100 Continue\r\n\r\nHTTP/1.1 502 "), raw[:200]
    assert raw.count(b"HTTP/1.1 100") == 1
    assert time.monotonic() - t0 < 15
    await assert_serves(port)


# --------------------------------------------------------------------------- client side


async def _exchange(port: int, data: bytes, timeout: float = 5.0) -> bytes:
    """Send ``data``, read until the proxy closes (or ``timeout``)."""
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    writer.write(data)
    out = b""
    try:
        while True:
            d = await asyncio.wait_for(reader.read(1 << 20), timeout)
            if not d:
                break
            out += d
    except (TimeoutError, ConnectionResetError):
        pass
    finally:
        writer.close()
    return out


async def test_pipelined_h2c_upgrades_do_not_recurse(hostile_backend):
    """2,000 pipelined ``Upgrade: h2c`` requests in one write: each was parsed again by a
    nested call, and at about 200 the proxy hit RecursionError (traceback, connection
    reset, no answers).  Every one is answered now, in order."""

    async def attack(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        pass  # not used: the requests go to /h2c

    port = await hostile_backend(attack)
    n = 2000
    one = b"GET /h2c HTTP/1.1\r\nhost: httpbin\r\nconnection: upgrade\r\nupgrade: h2c\r\n\r\n"
    last = b"GET /h2c HTTP/1.1\r\nhost: httpbin\r\nconnection: close\r\n\r\n"
    t0 = time.monotonic()
    out = await _exchange(port, one * (n - 1) + last, timeout=20)
    assert out.count(b"HTTP/1.1 200 OK\r\n") == n, out[-300:]
    assert time.monotonic() - t0 < 20
    await assert_serves(port)


# --------------------------------------------------------------------------- config


def _regex_routes(patterns: list[str]) -> str:
    return registry_yaml({"v1": 1}) + virtual_service("".join(
        f"""
- match: [{{uri: {{regex: '{p}'}}}}]
  route: [{{destination: {{host: httpbin, subset: v1}}}}]""" for p in patterns))


def test_regex_program_size_is_capped_as_envoy_under_istio():
    r"""A 9-character pattern such as ``\pL{200}`` compiled to 240,000 RE2 instructions
    (0.3 s and ~4 MB each, twice: checked, then compiled), and was accepted; Envoy under
    Istio refuses a program over 32,768 instructions (runtime
    ``re2.max_program_size.error_level``).  Now refused with Envoy's message at FILE:LINE,
    in ~15-80 ms whatever the pattern."""
    from simulator.config import load_text

    patterns = [r"\pL{50}", r"\pL{200}", r"(\pL{100}){10}", ".{1000}.{1000}.{1000}.{1000}.{1000}"]
    t0 = time.monotonic()
    result = load_text(_regex_routes(patterns), "big.yaml")
    elapsed = time.monotonic() - t0
    errors = [d for d in result.diagnostics if d.severity == "error"]
    assert len(errors) == len(patterns), [d.format() for d in result.diagnostics]
    assert all(d.file == "big.yaml" and d.line > 0 for d in errors)
    text = "\n".join(d.format() for d in errors)
    assert "RE2 program size of 59804 > max program size of 32768 set for the error level threshold" in text
    assert "RE2 program size of 40004 > max program size of 32768" in text
    assert elapsed < 1.5, f"{elapsed:.2f}s"
    # the largest program Envoy accepts still compiles
    ok = load_text(_regex_routes([".{1000}.{1000}.{1000}.{1000}"]), "ok.yaml")
    assert not [d for d in ok.diagnostics if d.severity == "error"]


def test_header_template_output_is_bounded():
    """``%REQ(x-a)%`` written 10,000 times in a header ``set`` (150 KB of YAML) over a
    client's 60 KB ``x-a``: each request built a 600 MB header value (4 such requests
    took the proxy's RSS past 2 GB and more than a minute).  A rendered value is cut at
    1 MiB now (docs/deviations.md A3)."""
    from simulator.core.header_format import MAX_RENDERED_CHARS, FormatContext, Template, parse

    template = parse("%REQ(x-a)%" * 10_000)
    assert isinstance(template, Template)
    ctx = FormatContext(request_headers=[(b"x-a", b"a" * 60_000)])
    t0 = time.monotonic()
    value = template.render(ctx)
    assert len(value) == MAX_RENDERED_CHARS
    assert time.monotonic() - t0 < 0.5
    assert parse("<%REQ(x-a)%>").render(ctx) == "<" + "a" * 60_000 + ">"  # below the cap: whole

