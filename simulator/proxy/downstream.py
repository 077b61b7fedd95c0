"""The downstream connection (``DownstreamConnection``, an asyncio protocol per client
connection): parses requests with llhttp (httptools), bounds their heads and bodies
(limits.py), and runs them one at a time, in order, each as a ``stream.Stream``
(pipelined requests wait in a short queue; reading pauses when it is full).  An upgrade
hands the connection to the tunnel (tunnel.py); an h2c upgrade is parsed again without it.
server.py's docstring has the map of the data plane."""

from __future__ import annotations

import asyncio
import collections
import time
from typing import Final

import httptools

from simulator.proxy import expect
from simulator.proxy.client import ClientConnection, DownstreamRequest
from simulator.proxy.headers import memo_name
from simulator.proxy.heads import local_reply_bytes
from simulator.proxy.limits import (
    CHUNK_FRAMING,
    HEADER_LINE_OVERHEAD,
    HEADERS_TOO_LARGE_BODY,
    MAX_HEADER_BYTES,
    MAX_HEADERS_COUNT,
    REQUEST_LINE_OVERHEAD,
)
from simulator.proxy.server import Proxy
from simulator.proxy.stream import Stream
from simulator.proxy.tunnel import DownstreamEnd

MAX_PIPELINE: Final = 16
# a C static in the compiled build (a from-import is a module-dict lookup at every call)
wall_time: Final = time.time
# connections being parsed again after an h2c upgrade (by id): what is left to feed them
_refeeding: dict[int, list[bytes]] = {}


class _HeadTooLarge(Exception):
    """Raised from a parser callback when a request head exceeds MAX_HEADER_BYTES or
    MAX_HEADERS_COUNT (simulator/proxy/limits.py)."""


class _UnsupportedEncoding(Exception):
    """Raised from a parser callback for a Transfer-Encoding other than one ``chunked``
    (Envoy's codec answers 501)."""


class DownstreamConnection(ClientConnection):
    """One client connection (an asyncio protocol; its only base class is ClientConnection,
    so the module can be compiled with mypyc: setup.py, simulator/build.py)."""

    def __init__(self, proxy: Proxy) -> None:
        super().__init__()
        self.proxy = proxy
        self.parser = httptools.HttpRequestParser(self)
        self.queue: collections.deque[DownstreamRequest] = collections.deque()
        self.active: Stream | None = None
        self.read_paused = False
        self._url = b""
        self._headers: list[tuple[bytes, bytes]] = []
        self._names: list[tuple[bytes, bytes]] = []  # headers.memo_name
        self._body: list[bytes] = []
        self._size = 0
        self._chunked = False
        self._connection = False
        self._too_big = False
        self._upgrade: bytes | None = None
        self._expect = False  # Expect: 100-continue
        self.continue_pending = False
        self.streaming: Stream | None = None  # an Expect request run from its head (expect.py)
        self._overloaded = False
        self._held = 0  # body bytes of the message being read, taken from proxy.budget
        self._start = 0.0
        self._in_head = False
        self._in_body = False  # after the head: a header now is a trailer
        self._head_bytes = 0
        self._head_raw = 0
        self._seen = 0  # bytes read and accounted for: heads (as counted), bodies, chunk sizes
        self.pending_error: tuple[int, bytes] | None = None  # sent after the requests before it

    # -- asyncio.Protocol
    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = transport  # type: ignore[assignment]
        self.proxy.connections.add(self)
        self.proxy.stats.inc("downstream_cx_total")
        peer = transport.get_extra_info("peername")
        self.peer = peer[0] if peer else ""

    def data_received(self, data: bytes) -> None:
        if self.pending_error is not None:
            return  # the parser failed: nothing more is read
        seen = self._seen
        try:
            self.parser.feed_data(data)
            if self._in_head:
                # still inside a request head (or a chunk header, or trailers) after a whole
                # read: bound what llhttp buffers, the bytes of the reads since it began
                # that the earlier messages' heads and bodies do not account for
                self._head_raw += len(data) - (self._seen - seen)
                if self._head_raw > MAX_HEADER_BYTES:
                    self._error_reply(431, HEADERS_TOO_LARGE_BODY)
        except _HeadTooLarge:
            self._error_reply(431, HEADERS_TOO_LARGE_BODY)
        except httptools.HttpParserCallbackError as exc:
            if isinstance(exc.__context__, _HeadTooLarge):
                self._error_reply(431, HEADERS_TOO_LARGE_BODY)
            elif isinstance(exc.__context__, _UnsupportedEncoding):
                self._error_reply(501, b"Not Implemented")
            elif not self.closed:
                self._error_reply(400, b"Bad Request")
        except httptools.HttpParserUpgrade as exc:
            self._upgraded(data[exc.args[0]:])
        except httptools.HttpParserError as exc:
            if not self.closed:
                self._error_reply(400, b"Bad Request" if not str(exc) else b"Bad Request")

    def connection_lost(self, exc: Exception | None) -> None:
        self.closed = True
        self.proxy.connections.discard(self)
        if self.active is not None:
            self.active.downstream_lost()
        budget = self.proxy.budget
        for req in self.queue:
            budget.give(req.held)
        self.queue.clear()
        self._drop_body()

    def eof_received(self) -> bool:
        # close the transport: Envoy's HTTP connection manager has no half-close either (a
        # client's FIN resets the requests in progress: those already answered got out)
        return False

    def pause_writing(self) -> None:
        self.write_paused = True
        if self.active is not None:
            self.active.pause_upstream()

    def resume_writing(self) -> None:
        self.write_paused = False
        if self.active is not None:
            self.active.resume_upstream()

    # -- httptools callbacks
    def on_message_begin(self) -> None:
        self._in_head = True
        self._in_body = False
        self._head_bytes = REQUEST_LINE_OVERHEAD + 3  # "GET": on_headers_complete corrects it
        self._head_raw = 0
        self._url = b""
        self._headers = []
        self._body = []
        self._size = 0
        self._chunked = False
        self._connection = False
        self._too_big = False
        self._upgrade = None
        self._expect = False
        self._overloaded = False
        self._start = wall_time()

    def on_url(self, url: bytes) -> None:
        self._url += url
        self._head_bytes += len(url)
        if self._head_bytes > MAX_HEADER_BYTES:
            raise _HeadTooLarge

    def on_headers_complete(self) -> None:
        self._in_head = False
        if self._head_bytes > MAX_HEADER_BYTES - 8 and (
                self._head_bytes - 3 + len(self.parser.get_method()) > MAX_HEADER_BYTES):
            raise _HeadTooLarge  # Envoy counts the request line's method too
        self._in_body = True
        self._seen += self._head_bytes
        self._head_bytes = 0  # trailers have a limit of their own
        if self._expect and self.parser.get_http_version() == "1.1":  # 1.0 gets 426 from the codec
            if self.active is None and not self.queue and not self.closed and expect.can_stream(self._headers):
                # Istio's proxy_100_continue (expect.py): run from the head, the body to come
                req = DownstreamRequest(self.parser.get_method().decode("ascii", "replace"), self._url, "1.1",
                                        self._headers, b"", self.parser.should_keep_alive(), False, self._start)
                req.streaming = True
                stream = self.streaming = self.active = Stream(self, self.proxy, req)
                stream.run()
            elif self.active is None and not self.queue:
                self.write(expect.CONTINUE)
            else:
                self.continue_pending = True  # after the responses before it (_next)

    def on_chunk_header(self) -> None:
        self._in_head = True  # until the chunk ends: data_received bounds what is not body
        self._head_raw = 0
        self._seen += CHUNK_FRAMING

    def on_chunk_complete(self) -> None:
        self._in_head = False

    def on_header(self, name: bytes, value: bytes) -> None:
        if self._in_body:
            # a trailer: Envoy's HTTP/1 codec drops them (Istio enables no HTTP/1 trailers),
            # so they reach neither routing nor the upstream; a trailer block over the head
            # size limit is refused
            self._head_bytes += len(name) + len(value) + HEADER_LINE_OVERHEAD
            if self._head_bytes > MAX_HEADER_BYTES:
                raise _HeadTooLarge
            return
        # names are kept lower-case (Envoy's HTTP/1 codec lower-cases them too)
        name = memo_name(self._names, len(self._headers), name)
        self._headers.append((name, value))
        self._head_bytes += len(name) + len(value) + HEADER_LINE_OVERHEAD
        if self._head_bytes > MAX_HEADER_BYTES or len(self._headers) > MAX_HEADERS_COUNT:
            raise _HeadTooLarge
        n = len(name)
        if (n == 10 and name == b"connection") or (n == 16 and name == b"proxy-connection"):
            self._connection = True  # llhttp reads both for keep-alive
        elif n == 17 and name == b"transfer-encoding":
            if self._chunked or value.strip().lower() != b"chunked":
                raise _UnsupportedEncoding  # Envoy: 501 unless it is exactly "chunked"
            self._chunked = True
        elif n == 7 and name == b"upgrade":
            self._upgrade = value
        elif n == 6 and name == b"expect" and value.lower() == b"100-continue":
            self._expect = True

    def on_body(self, body: bytes) -> None:
        n = len(body)
        self._size += n
        self._seen += n
        if self._too_big:
            return
        proxy = self.proxy
        if self._size > proxy.options.max_request_bytes:
            self._too_big = True
            self._drop_body()
        elif proxy.budget.take(n):
            self._held += n
            self._body.append(body)
        else:
            # all bodies held at once would pass --max-buffered-bytes: Envoy's overload
            # manager answer (limits.py); what this one had is let go at once
            self._too_big = self._overloaded = True
            self._drop_body()

    def _drop_body(self) -> None:
        self._body = []
        if self._held:
            self.proxy.budget.give(self._held)
            self._held = 0

    def on_message_complete(self) -> None:
        p = self.parser
        chunks = self._body
        body = b"".join(chunks) if len(chunks) != 1 else chunks[0]
        chunks.clear()  # the connection keeps no reference to the body once the request is done
        keep_alive = p.should_keep_alive()
        # llhttp accepts HTTP/0.9, 1.0, 1.1 and 2.0, and keeps a connection alive without
        # a Connection (or Proxy-Connection) header only for 1.1: get_http_version() (a
        # str.format) is skipped then
        version = "1.1" if keep_alive and not self._connection else p.get_http_version()
        req = DownstreamRequest(
            method=p.get_method().decode("ascii", "replace"),
            target=self._url,
            version=version,
            headers=self._headers,
            body=body,
            keep_alive=keep_alive,
            chunked=self._chunked,
            start=self._start,
            held=self._held,
        )
        self._held = 0
        if self._too_big:
            req.body = b""
            req.keep_alive = False
            req.too_big = True
            req.overloaded = self._overloaded
        if self.streaming is not None:  # the body of an Expect request already forwarded
            stream, self.streaming = self.streaming, None
            expect.body_arrived(stream, req)
            return
        if self._upgrade is not None:
            req.upgrade = self._upgrade
            if self._is_h2c(req):
                return  # parsed again without the upgrade (_upgraded)
        if self.active is None and not self.queue and not self.closed:
            stream = self.active = Stream(self, self.proxy, req)
            stream.run()
            return
        self.queue.append(req)
        self._enqueue_or_run()

    def _enqueue_or_run(self) -> None:
        if self.active is None:
            self._next()
        elif len(self.queue) >= MAX_PIPELINE and not self.read_paused and self.transport:
            self.read_paused = True
            self.transport.pause_reading()

    def _next(self) -> None:
        while self.queue and self.active is None and not self.closed:
            req = self.queue.popleft()
            if self.read_paused and self.transport is not None and self.pending_error is None:
                self.read_paused = False
                self.transport.resume_reading()
            stream = Stream(self, self.proxy, req)
            self.active = stream
            stream.run()
        if self.continue_pending and self.active is None and not self.queue and not self.closed:
            self.continue_pending = False
            self.write(expect.CONTINUE)

    def drain(self) -> None:
        stream = self.active
        if stream is not None and not stream.headers_sent:
            stream.keep_alive = False

    def busy(self) -> bool:
        return self.active is not None or bool(self.queue)

    def stream_done(self, stream: object, keep_alive: bool) -> None:
        if self.active is stream:
            self.active = None
        if not keep_alive:
            self.close()
            return
        self._next()
        if self.pending_error is not None and self.active is None and not self.queue:
            code, body = self.pending_error
            self._error_reply(code, body)

    def _error_reply(self, code: int, body: bytes) -> None:
        """Answer a request the parser refused, and close; after the answers to the
        requests received before it (Envoy answers those first)."""
        if self.active is not None or self.queue:
            if self.pending_error is None and not self.closed and self.transport is not None:
                self.pending_error = (code, body)
                self.read_paused = True
                self.transport.pause_reading()
            return
        if self.transport is not None and not self.closed:
            self.write(local_reply_bytes(self.proxy.dates, wall_time(), code, body, close=True))
            stats = self.proxy.stats
            stats.downstream_response(code, "DPE")
            stats.inc("downstream_cx_protocol_error")  # Envoy counts a codec error in both
            stats.inc("downstream_rq_rx_reset")
            al = self.proxy.access_log
            if al.stream is not None:  # Envoy: "- - HTTP/1.1" 431 DPE 0 31 0 - ...
                al.log(wall_time(), "-", "-", "HTTP/1.1", code, "DPE", 0, len(body), 0, "-",
                       None, None, None, "", "")
        self.close()

    # -- upgrades (tunnel.py)
    def _is_h2c(self, req: DownstreamRequest) -> bool:
        """Whether llhttp stopped at an h2c upgrade that Envoy would ignore (then the request
        is not run: ``_upgraded`` parses its head again without the upgrade)."""
        upgrade = req.upgrade
        return (upgrade is not None and upgrade.strip().lower() == b"h2c" and req.method != "CONNECT"
                and bool(self.parser.should_upgrade()))

    def _upgraded(self, rest: bytes) -> None:
        """llhttp stopped after a request that upgrades the connection (or CONNECT);
        ``rest`` is what the client sent after that request's head."""
        if self.closed or self.transport is None:
            return
        upgrade = self._upgrade
        if upgrade is not None and upgrade.strip().lower() == b"h2c" and self._url:
            # Envoy drops the h2c upgrade: parse the same head again without it
            head = self._head_without_upgrade(self.parser.get_method())
            self.parser = httptools.HttpRequestParser(self)
            pending = _refeeding.get(id(self))
            if pending is not None:  # pipelined h2c requests: the outer loop feeds it, no recursion
                pending.append(head + rest)
                return
            pending = _refeeding[id(self)] = [head + rest]
            try:
                while pending and not self.closed:
                    self.data_received(pending.pop())
            finally:
                del _refeeding[id(self)]
            return
        end = DownstreamEnd(self, rest)
        self.transport.set_protocol(end)  # type: ignore[arg-type]  # duck-typed protocol
        stream = self.active
        if stream is not None and stream.tunnel is not None:
            stream.tunnel.attach_downstream(end)
        elif not self.queue:
            end.discard = True  # CONNECT or a refused upgrade: its reply closes the connection

    def _head_without_upgrade(self, method: bytes) -> bytes:
        drop = {b"upgrade", b"http2-settings"}
        lines = [b"%s %s HTTP/1.1\r\n" % (method, self._url)]
        for n, v in self._headers:
            if n in drop:
                continue
            if n == b"connection":
                tokens = [t for t in v.split(b",") if t.strip().lower() not in (b"upgrade", b"http2-settings")]
                if not tokens:
                    continue
                v = b",".join(tokens).strip()
            lines.append(b"%s: %s\r\n" % (n, v))
        lines.append(b"\r\n")
        return b"".join(lines)
