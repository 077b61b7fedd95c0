"""A raw recording HTTP/1.1 upstream for integration tests.

:class:`Recorder` is a minimal asyncio.Protocol server (parsing with httptools) that records
exactly what arrived on the wire -- request line, headers in wire order with duplicates, body
bytes, whether the body was chunked, the client's source port -- so tests can assert what a
proxy sent to a primary and to a mirror::

    async with Recorder("mirror", delay_event=release) as rec:
        ...  # point the proxy's mirror cluster at rec.port
        [req] = await rec.wait_for(1)
        assert req.header("host") == "httpbin-shadow:8000"

Loopback only.  Supports keep-alive (several requests per connection, pipelined requests are
answered in order), Content-Length and chunked request bodies (trailers are kept apart),
``Connection: close``, HTTP/1.0, ``Expect: 100-continue`` and HEAD (no response body).
Every response carries Content-Length (except 1xx/204/304, which have no body).
"""

from __future__ import annotations

import asyncio
import inspect
import socket
import time
from collections.abc import Awaitable, Callable, Iterable
from dataclasses import dataclass, field
from http import HTTPStatus
from typing import Any, cast

import httptools

__all__ = ["Recorded", "Recorder", "Response", "ResponderFn"]

Response = tuple[int, Iterable[tuple[str, str]], bytes | str]
ResponderFn = Callable[["Recorded"], "Response | None | Awaitable[Response | None]"]

LOOPBACK = "127.0.0.1"


@dataclass
class Recorded:
    """One request exactly as it arrived."""

    method: str
    target: str  # request-target as sent (path and query, or absolute form)
    version: str  # "1.1" or "1.0"
    # wire order, names lower-cased, values as sent (leading whitespace dropped by the parser,
    # trailing whitespace kept), duplicates kept
    headers: list[tuple[str, str]]
    body: bytes  # de-chunked body bytes
    chunked: bool  # Transfer-Encoding: chunked was used
    content_length: int | None  # the Content-Length header's value, if any
    peer_port: int  # the client's source port (equal ports => same connection)
    conn: int = 0  # 1-based index of the TCP connection it came on
    keep_alive: bool = True  # the request allowed the connection to be reused
    trailers: list[tuple[str, str]] = field(default_factory=list)  # chunked trailers
    time: float = field(default_factory=time.monotonic)

    def header(self, name: str) -> str | None:
        """The first value of header ``name`` (case-insensitive), or None."""
        lname = name.lower()
        for k, v in self.headers:
            if k == lname:
                return v
        return None

    def header_values(self, name: str) -> list[str]:
        """All values of header ``name`` (case-insensitive), in wire order."""
        lname = name.lower()
        return [v for k, v in self.headers if k == lname]

    def header_names(self) -> list[str]:
        """Header names (lower-cased) in wire order, duplicates kept."""
        return [k for k, _ in self.headers]

    def __str__(self) -> str:
        host = self.header("host")
        return f"{self.method} {self.target} (host={host}, {len(self.body)}B, conn {self.conn})"


def _reason(status: int) -> str:
    try:
        return HTTPStatus(status).phrase
    except ValueError:
        return "Unknown"


class _Conn(asyncio.Protocol):
    """One accepted connection."""

    def __init__(self, rec: Recorder, index: int) -> None:
        self.rec = rec
        self.index = index
        self.parser = httptools.HttpRequestParser(self)
        self.transport: asyncio.Transport | None = None
        self.peer_port = 0
        self.queue: asyncio.Queue[tuple[Recorded, bool] | None] = asyncio.Queue()
        self.writer: asyncio.Task[None] | None = None
        self.failed = False
        self.in_message = False
        self._reset()

    def _reset(self) -> None:
        self.url = bytearray()
        self.headers: list[tuple[str, str]] = []
        self.trailers: list[tuple[str, str]] = []
        self.body = bytearray()
        self.headers_done = False
        self.method = ""
        self.version = ""

    # ---------------------------------------------------------------- transport callbacks

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        # (uvloop's transports are not asyncio.Transport subclasses, so no isinstance check)
        self.transport = cast(asyncio.Transport, transport)
        peer = transport.get_extra_info("peername")
        self.peer_port = peer[1] if peer else 0
        self.rec._conns.add(self)
        self.writer = asyncio.get_running_loop().create_task(self._write_loop())

    def data_received(self, data: bytes) -> None:
        if self.failed:
            return
        try:
            self.parser.feed_data(data)
        except httptools.HttpParserUpgrade:
            self._fail()
        except httptools.HttpParserError:
            self._fail()
        else:
            delay = self.rec.read_body_slowly
            if delay and self.in_message and self.headers_done and self.transport is not None:
                self.transport.pause_reading()
                asyncio.get_running_loop().call_later(delay, self._resume)

    def _resume(self) -> None:
        if self.transport is not None and not self.transport.is_closing():
            self.transport.resume_reading()

    def connection_lost(self, exc: Exception | None) -> None:
        self.rec._conns.discard(self)
        if self.writer is not None:
            self.writer.cancel()
        self.transport = None

    def _fail(self) -> None:
        self.failed = True
        self.queue.put_nowait(None)

    # ---------------------------------------------------------------- parser callbacks

    def on_message_begin(self) -> None:
        self.in_message = True
        self._reset()

    def on_url(self, url: bytes) -> None:
        self.url += url

    def on_header(self, name: bytes, value: bytes) -> None:
        pair = (name.decode("latin-1").lower(), value.decode("latin-1"))
        (self.trailers if self.headers_done else self.headers).append(pair)

    def on_headers_complete(self) -> None:
        self.headers_done = True
        self.method = self.parser.get_method().decode("latin-1")
        self.version = self.parser.get_http_version()
        expect = [v for k, v in self.headers if k == "expect"]
        if (
            self.version == "1.1"
            and any(v.strip().lower() == "100-continue" for v in expect)
            and self.transport is not None
        ):
            self.transport.write(b"HTTP/1.1 100 Continue\r\n\r\n")

    def on_body(self, body: bytes) -> None:
        self.body += body

    def on_message_complete(self) -> None:
        self.in_message = False
        te = ",".join(v for k, v in self.headers if k == "transfer-encoding")
        chunked = "chunked" in [t.strip().lower() for t in te.split(",")]
        cl: int | None = None
        cl_value = next((v for k, v in self.headers if k == "content-length"), None)
        if cl_value is not None:
            try:
                cl = int(cl_value.strip())
            except ValueError:
                cl = None
        keep_alive = self.parser.should_keep_alive()
        rec = Recorded(
            method=self.method,
            target=self.url.decode("latin-1"),
            version=self.version,
            headers=self.headers,
            body=bytes(self.body),
            chunked=chunked,
            content_length=cl,
            peer_port=self.peer_port,
            conn=self.index,
            keep_alive=keep_alive,
            trailers=self.trailers,
        )
        self.rec._record(rec)
        self.queue.put_nowait((rec, keep_alive))

    # ---------------------------------------------------------------- responses

    async def _write_loop(self) -> None:
        while True:
            item = await self.queue.get()
            transport = self.transport
            if item is None:
                if transport is not None:
                    transport.write(b"HTTP/1.1 400 Bad Request\r\nContent-Length: 0\r\nConnection: close\r\n\r\n")
                    transport.close()
                return
            req, keep_alive = item
            status, headers, body = await self.rec._response_for(req)
            transport = self.transport
            if transport is None or transport.is_closing():
                return
            close = not keep_alive or self.rec.close_after_response
            transport.write(self._render(req, status, headers, body, keep_alive, close))
            if close:
                transport.close()
                return

    @staticmethod
    def _render(
        req: Recorded,
        status: int,
        headers: list[tuple[str, str]],
        body: bytes,
        keep_alive: bool,
        close: bool,
    ) -> bytes:
        lines = [f"HTTP/1.1 {status} {_reason(status)}"]
        names = {k.lower() for k, _ in headers}
        lines += [f"{k}: {v}" for k, v in headers]
        bodyless_status = status < 200 or status in (204, 304)
        if not bodyless_status and "content-length" not in names:
            lines.append(f"Content-Length: {len(body)}")
        if close and "connection" not in names:
            lines.append("Connection: close")
        elif keep_alive and req.version == "1.0" and "connection" not in names:
            lines.append("Connection: keep-alive")
        head = ("\r\n".join(lines) + "\r\n\r\n").encode("latin-1")
        if req.method == "HEAD" or bodyless_status:
            return head
        return head + body


class Recorder:
    """A recording upstream on 127.0.0.1; use as ``async with Recorder(...) as rec``.

    - ``status``, ``body``, ``headers``: the default response.
    - ``delay``: seconds to wait before responding (the request is recorded at once).
    - ``delay_event``: wait until this event is set before responding (tests release it).
    - ``refuse``: reserve a port but do not listen, so connecting to it is refused.
    - ``close_after_response``: send ``Connection: close`` and close after each response.
    - ``read_body_slowly``: seconds to pause reading after each chunk of a request body
      arrives (to exercise slow upstreams / backpressure).
    """

    host = LOOPBACK

    def __init__(
        self,
        name: str = "rec",
        *,
        status: int = 200,
        body: bytes | str = b"ok",
        headers: Iterable[tuple[str, str]] = (),
        delay: float = 0.0,
        delay_event: asyncio.Event | None = None,
        refuse: bool = False,
        close_after_response: bool = False,
        read_body_slowly: float | None = None,
    ) -> None:
        self.name = name
        self.status = status
        self.body = body.encode() if isinstance(body, str) else body
        self.headers = list(headers)
        self.delay = delay
        self.delay_event = delay_event
        self.refuse = refuse
        self.close_after_response = close_after_response
        self.read_body_slowly = read_body_slowly
        self.port = 0
        self.requests: list[Recorded] = []
        self.connections = 0
        self._responder: ResponderFn | None = None
        self._server: asyncio.Server | None = None
        self._conns: set[_Conn] = set()
        self._waiters: list[tuple[int, asyncio.Future[None]]] = []

    # ---------------------------------------------------------------- lifecycle

    @property
    def url(self) -> str:
        return f"http://{self.host}:{self.port}"

    @property
    def address(self) -> tuple[str, int]:
        return (self.host, self.port)

    async def start(self) -> None:
        if self.refuse:
            with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
                s.bind((self.host, 0))
                self.port = s.getsockname()[1]
            return
        loop = asyncio.get_running_loop()
        self._server = await loop.create_server(self._accept, self.host, 0)
        self.port = self._server.sockets[0].getsockname()[1]

    def _accept(self) -> _Conn:
        self.connections += 1
        return _Conn(self, self.connections)

    async def stop(self) -> None:
        server, self._server = self._server, None
        if server is not None:
            server.close()
        writers = []
        for conn in list(self._conns):
            if conn.transport is not None:
                conn.transport.close()
            if conn.writer is not None:
                conn.writer.cancel()
                writers.append(conn.writer)
        if writers:
            await asyncio.gather(*writers, return_exceptions=True)
        if server is not None:
            await server.wait_closed()
        for _, fut in self._waiters:
            if not fut.done():
                fut.cancel()

    async def __aenter__(self) -> Recorder:
        await self.start()
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.stop()

    # ---------------------------------------------------------------- responses

    def responder(self, fn: ResponderFn) -> ResponderFn:
        """Use ``fn(recorded) -> (status, headers, body)`` (or None for the default response;
        may be async) to answer each request.  Usable as a decorator."""
        self._responder = fn
        return fn

    async def _response_for(self, req: Recorded) -> tuple[int, list[tuple[str, str]], bytes]:
        if self.delay_event is not None:
            await self.delay_event.wait()
        if self.delay > 0:
            await asyncio.sleep(self.delay)
        status, headers, body = self.status, self.headers, self.body
        if self._responder is not None:
            result: Any = self._responder(req)
            if inspect.isawaitable(result):
                result = await result
            if result is not None:
                status, headers, body = result
        if isinstance(body, str):
            body = body.encode()
        return status, list(headers), body

    # ---------------------------------------------------------------- recording

    def _record(self, req: Recorded) -> None:
        self.requests.append(req)
        n = len(self.requests)
        for want, fut in self._waiters:
            if want <= n and not fut.done():
                fut.set_result(None)

    async def wait_for(self, n: int, timeout: float = 5.0) -> list[Recorded]:
        """Wait until at least ``n`` requests arrived; returns all recorded so far.

        Raises AssertionError listing what did arrive on timeout."""
        if len(self.requests) < n:
            fut: asyncio.Future[None] = asyncio.get_running_loop().create_future()
            entry = (n, fut)
            self._waiters.append(entry)
            try:
                await asyncio.wait_for(fut, timeout)
            except TimeoutError:
                got = "\n  ".join(str(r) for r in self.requests) or "(nothing)"
                raise AssertionError(
                    f"recorder {self.name!r} on port {self.port}: expected {n} request(s) "
                    f"within {timeout}s, got {len(self.requests)}:\n  {got}"
                ) from None
            finally:
                self._waiters.remove(entry)
        return list(self.requests)

    def __repr__(self) -> str:
        return f"<Recorder {self.name!r} {self.url} requests={len(self.requests)}>"
