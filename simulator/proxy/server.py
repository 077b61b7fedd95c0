"""The data plane: an HTTP/1.1 proxy that executes the core's routing decisions.

Theory of operation
-------------------
* ``DownstreamConnection`` parses client requests with llhttp (httptools).
  Requests are handled one at a time per connection, in order (pipelined
  requests wait in a short queue; reading pauses when it is full).
* The whole request body is buffered before routing (see docs/deviations.md:
  Envoy 1.40 streams it).  Bodies above ``max_request_bytes`` get 413.
* ``Stream`` runs one request: ``RouteTable.route()`` decides; a local reply is
  written at once; a forward sends the primary to an endpoint of its cluster
  through that cluster's ``ClusterPool`` and, once it is written to an upstream
  connection (``Stream.release_shadows``), hands each sampled mirror to the
  ``ShadowDispatcher``, which never blocks and never delays the primary.  The
  primary's response streams back to the client as it arrives, with
  back-pressure both ways (a slow client pauses the upstream read).
* Bodies held at once share the proxy's ``BodyBudget`` (limits.py: 503 over
  ``max_buffered_bytes``); a request's bytes are given back when it ends.
* Rule: nothing on the request path awaits.  Callbacks drive everything; only
  opening a new upstream connection runs as a task.
"""

from __future__ import annotations

import asyncio
import collections
import dataclasses
import random
import time
from array import array
from collections.abc import Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING, Final

import httptools

from simulator.core.cors import set_lines as cors_set_lines
from simulator.core.grpc_timeout import grpc_route_timeout, is_grpc, to_grpc_timeout
from simulator.core.matchers import parse_query
from simulator.core.table import (
    Endpoint,
    FaultConfig,
    Forward,
    HeaderMutations,
    LocalReply,
    RetryPolicy,
    RouteAction,
    RouteTable,
)
from simulator.proxy import expect, header_ops, tunnel
from simulator.proxy.accesslog import AccessLog, protocol
from simulator.proxy.headers import (
    BODILESS_METHODS,
    INLINE_REQUEST,
    INLINE_RESPONSE,
    NAME_STR,
    RESPONSE_HOP_BY_HOP,
    RESPONSE_SET_IN_PLACE,
    SKIP_REQUEST_HEADERS,
    TE_TRAILERS,
    DateCache,
    add_mutation_lines,
    coalesce_inline,
    connection_tokens,
    memo_name,
    referer_ok,
    repeats_a_name,
    replace_empty_request_id,
    status_line,
    te_keeps_trailers,
)
from simulator.proxy.limits import (
    CHUNK_FRAMING,
    DEFAULT_MAX_BUFFERED_BYTES,
    HEADER_LINE_OVERHEAD,
    HEADERS_TOO_LARGE_BODY,
    MAX_HEADER_BYTES,
    MAX_HEADERS_COUNT,
    OVERLOAD_FLAG,
    OVERLOAD_STAT,
    OVERLOADED_BODY,
    REQUEST_LINE_OVERHEAD,
    BodyBudget,
)
from simulator.proxy.stats import Stats
from simulator.proxy.upstream import ClusterPool, Exchange, UpstreamConnection

if TYPE_CHECKING:
    from simulator.proxy.diff import DiffRecorder, PrimaryCapture
    from simulator.proxy.mirror import ShadowDispatcher

UPSTREAM_RESET_PREFIX: Final = "upstream connect error or disconnect/reset before headers. reset reason: "
UPSTREAM_RETRIED_PREFIX: Final = ("upstream connect error or disconnect/reset before headers. "
                           "retried and the latest reset reason: ")
MAX_PIPELINE: Final = 16
# a C static in the compiled build (a from-import is a module-dict lookup at every call)
wall_time: Final = time.time


class _HeadTooLarge(Exception):
    """Raised from a parser callback when a request head exceeds MAX_HEADER_BYTES or
    MAX_HEADERS_COUNT (simulator/proxy/limits.py)."""


class _UnsupportedEncoding(Exception):
    """Raised from a parser callback for a Transfer-Encoding other than one ``chunked``
    (Envoy's codec answers 501)."""


@dataclass(slots=True)
class ProxyOptions:
    server_name: bytes = b"envoy"
    max_request_bytes: int = 64 * 1024 * 1024
    max_buffered_bytes: int = DEFAULT_MAX_BUFFERED_BYTES  # all bodies held at once (limits.py)
    local_address: str = "127.0.0.1"  # appended to x-forwarded-for of shadow copies
    seed: int | None = None


class Request:
    """One parsed downstream request (a plain class: mypyc compiles its __init__)."""

    __slots__ = ("method", "target", "version", "headers", "body", "keep_alive", "chunked", "start", "too_big",
                 "upgrade", "held", "overloaded", "streaming")

    def __init__(self, method: str, target: bytes, version: str, headers: list[tuple[bytes, bytes]],
                 body: bytes, keep_alive: bool, chunked: bool, start: float, too_big: bool = False,
                 upgrade: bytes | None = None, held: int = 0) -> None:
        self.method = method
        self.target = target
        self.version = version
        self.headers = headers
        self.body = body
        self.keep_alive = keep_alive
        self.chunked = chunked
        self.start = start
        self.too_big = too_big
        self.upgrade = upgrade  # the Upgrade header's value (simulator/proxy/tunnel.py)
        self.held = held  # body bytes taken from the proxy's BodyBudget, given back when done
        self.overloaded = False  # refused: the BodyBudget was full (503 envoy overloaded)
        self.streaming = False  # Expect: forwarded from the head, the body still to come (expect.py)


class Proxy:
    """Shared state of the data plane: the route table, pools, stats, logs."""

    def __init__(
        self,
        table: RouteTable,
        *,
        stats: Stats | None = None,
        access_log: AccessLog | None = None,
        options: ProxyOptions | None = None,
        loop: asyncio.AbstractEventLoop | None = None,
    ) -> None:
        self.table = table
        self.stats = stats or Stats()
        self.options = options or ProxyOptions()
        self.loop = loop or asyncio.get_event_loop()
        self.access_log = access_log or AccessLog(None, self.loop)
        self.rng = random.Random(self.options.seed)
        # request ids come from their own generator, so whether clients send ids does not
        # shift the sequence of routing/sampling random values
        self.random_values = RandomValues(self.rng)
        self.request_ids = RequestIds(random.Random(None if self.options.seed is None else self.options.seed + 1))
        self.pools: dict[str, ClusterPool] = {}
        self.dates = DateCache(self.options.server_name)
        self.shadows: ShadowDispatcher | None = None
        self.diff: DiffRecorder | None = None  # --diff (proxy/diff.py)
        self.connections: set[DownstreamConnection] = set()
        self.budget = BodyBudget(self.options.max_buffered_bytes, self.loop)
        self.draining = False  # shutting down: every response says connection: close (lifecycle.py)

    def sibling(self, table: RouteTable, http_prefix: str, server_name: bytes = b"istio-envoy") -> Proxy:
        """A proxy for another listener (a gateway server) sharing this one's
        connection pools, circuit breakers, cluster stats, shadow dispatcher and logs,
        with its own HTTP stat prefix and server name (Istio's gateways say istio-envoy)."""
        options = dataclasses.replace(self.options, server_name=server_name)
        other = Proxy(table, stats=self.stats.listener(http_prefix), access_log=self.access_log,
                      options=options, loop=self.loop)
        other.pools = self.pools
        other.shadows = self.shadows
        other.diff = self.diff
        other.budget = self.budget
        return other

    def pool(self, cluster_name: str) -> ClusterPool | None:
        pool = self.pools.get(cluster_name)
        if pool is None:
            cluster = self.table.clusters.get(cluster_name)
            if cluster is None:
                return None
            pool = self.pools[cluster_name] = ClusterPool(
                cluster, self.stats.cluster(cluster_name), self.rng, self.loop)
        return pool

    def protocol_factory(self) -> asyncio.BaseProtocol:
        return DownstreamConnection(self)  # type: ignore[return-value]  # duck-typed protocol

    def close(self) -> None:
        for conn in list(self.connections):
            conn.close()
        for pool in self.pools.values():
            pool.close()


class DownstreamConnection:
    """One client connection (an asyncio protocol; no base class, so the module can
    be compiled with mypyc: setup.py, simulator/build.py)."""

    def __init__(self, proxy: Proxy) -> None:
        self.proxy = proxy
        self.transport: asyncio.Transport | None = None
        self.parser = httptools.HttpRequestParser(self)
        self.queue: collections.deque[Request] = collections.deque()
        self.active: Stream | None = None
        self.closed = False
        self.write_paused = False
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
        self.peer = ""

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
            tunnel.downstream_upgraded(self, data[exc.args[0]:])
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
            if expect.can_stream(self, self._headers):  # Istio's proxy_100_continue (expect.py)
                expect.start(Stream(self, Request(self.parser.get_method().decode("ascii", "replace"), self._url,
                                                  "1.1", self._headers, b"", self.parser.should_keep_alive(),
                                                  False, self._start)))
            elif self.active is None and not self.queue:
                self.write(tunnel.CONTINUE)
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
        req = Request(
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
            if tunnel.is_h2c(self, req):
                return  # parsed again without the upgrade (tunnel.downstream_upgraded)
        if self.active is None and not self.queue and not self.closed:
            stream = self.active = Stream(self, req)
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
            stream = Stream(self, req)
            self.active = stream
            stream.run()
        if self.continue_pending and self.active is None and not self.queue and not self.closed:
            self.continue_pending = False
            self.write(tunnel.CONTINUE)

    def stream_done(self, stream: Stream, keep_alive: bool) -> None:
        if self.active is stream:
            self.active = None
        if not keep_alive:
            self.close()
            return
        self._next()
        if self.pending_error is not None and self.active is None and not self.queue:
            code, body = self.pending_error
            self._error_reply(code, body)

    def write(self, data: bytes) -> None:
        if self.transport is not None and not self.closed:
            self.transport.write(data)

    def close(self) -> None:
        if not self.closed and self.transport is not None:
            self.closed = True
            self.transport.close()

    def abort(self) -> None:
        if self.transport is not None:
            self.closed = True
            self.transport.abort()

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
            self.write(_local_reply_bytes(self.proxy, code, body, close=True))
            stats = self.proxy.stats
            stats.downstream_response(code, "DPE")
            stats.inc("downstream_cx_protocol_error")  # Envoy counts a codec error in both
            stats.inc("downstream_rq_rx_reset")
            al = self.proxy.access_log
            if al.stream is not None:  # Envoy: "- - HTTP/1.1" 431 DPE 0 31 0 - ...
                al.log(wall_time(), "-", "-", "HTTP/1.1", code, "DPE", 0, len(body), 0, "-",
                       None, None, None, "", "")
        self.close()


def _local_reply_bytes(
    proxy: Proxy, code: int, body: bytes, *, close: bool, head: bool = False,
    extra: tuple[tuple[str, str], ...] = (), content_type: str = "text/plain",
) -> bytes:
    """An Envoy local reply, with its header order as observed on Envoy 1.40:
    with a body ``content-length, content-type, date, server``; without one
    ``date, server, [connection: close,] content-length: 0``; to HEAD without a body
    ``date, server, transfer-encoding: chunked``."""
    parts = [status_line(code)]
    for n, v in extra:
        parts.append(b"%s: %s\r\n" % (n.encode(), v.encode()))
    date_server = proxy.dates.date_server_lines(wall_time())
    if body:
        parts.append(b"content-length: %d\r\ncontent-type: %s\r\n" % (len(body), content_type.encode()))
        parts.append(date_server)
        if close:
            parts.append(b"connection: close\r\n")
    else:
        parts.append(date_server)
        if close:
            parts.append(b"connection: close\r\n")
        if head:
            parts.append(b"transfer-encoding: chunked\r\n")
        elif code not in (204, 304):
            parts.append(b"content-length: 0\r\n")
    parts.append(b"\r\n")
    if body and not head:
        parts.append(body)
    return b"".join(parts)


class Stream(Exchange):
    """One downstream request: route it, send the primary, stream the response back."""

    __slots__ = (
        "conn", "proxy", "req", "path", "authority", "decision",
        "headers_sent", "response_code", "bytes_sent", "flags", "upstream_host", "upstream_start",
        "upstream_time", "timer", "pool", "attempt", "done", "chunked_out",
        "request_id", "xff", "user_agent", "payload", "endpoint", "keep_alive", "head",
        "log_path", "fault_flags", "hdrs", "per_try_timer", "pending_head", "retry_held",
        "retry_overflow", "head_base", "head_muts", "head_tail", "first_start", "has_length",
        "scheme", "body_pending", "attempt_at", "attempt_line", "tunnel", "shadow_base", "cors_lines",
        "timeout", "grpc_at", "grpc_len", "body_owed", "continued", "diff",
    )

    def __init__(self, conn: DownstreamConnection, req: Request) -> None:
        super().__init__(req.method, False)
        self.conn = conn
        self.proxy = conn.proxy
        self.req = req
        self.path = ""
        self.authority = ""
        self.decision: Forward | LocalReply | None = None
        self.headers_sent = False
        self.response_code = 0
        self.bytes_sent = 0
        self.flags = "-"
        self.upstream_host = ""
        self.upstream_start = 0.0
        self.upstream_time = "-"
        self.timer: asyncio.TimerHandle | None = None
        self.pool: ClusterPool | None = None
        self.attempt = 0
        self.done = False
        self.chunked_out = False
        self.request_id: str | None = None
        self.xff: str | None = None
        self.user_agent: str | None = None
        self.payload: tuple[bytes, ...] = ()
        self.endpoint: Endpoint | None = None
        self.keep_alive = req.keep_alive and not conn.proxy.draining
        self.head = req.method == "HEAD"
        self.log_path = ""
        self.fault_flags = ""
        self.hdrs: dict[str, str] = {}
        self.per_try_timer: asyncio.TimerHandle | None = None
        self.pending_head = b""
        self.retry_held = False
        self.retry_overflow = False
        self.head_base = b""
        self.attempt_at = -1  # where in head_base the client had x-envoy-attempt-count
        self.attempt_line = -1  # ... and at which of its lines
        self.head_muts = b""
        self.head_tail = b""
        self.first_start = 0.0
        self.has_length = False
        self.scheme = "http"
        # a local reply sent while Envoy would not yet have read the body closes the connection
        self.body_pending = req.chunked or bool(req.body)
        self.tunnel: tunnel.Tunnel | None = None  # a WebSocket upgrade
        # the shadow copies' head lines, held until the primary is handed to an upstream
        # connection (release_shadows): a copy never goes out for a primary never sent
        self.shadow_base: list[bytes] | None = None
        self.cors_lines: tuple[tuple[str, str], ...] = ()  # set on the response (core/cors.py)
        self.timeout = 0.0  # the global timeout: the route's, or a gRPC request's (forward)
        self.grpc_at = -2  # gRPC: where in head_base the client's grpc-timeout line is (-1: none)
        self.grpc_len = 0  # ... and its length
        self.body_owed = False  # Expect: this attempt's head went without the body (expect.py)
        self.continued = False  # an upstream 1xx was relayed (expect.on_interim)
        self.diff: PrimaryCapture | None = None  # --diff: the response kept for the copies' (diff.py)

    # ------------------------------------------------------------------ routing
    def run(self) -> None:
        req = self.req
        proxy = self.proxy
        proxy.stats.downstream_rq_total += 1
        if req.version != "1.1":
            # Envoy's codec rejects HTTP/1.0 unless accept_http_10 is set (Istio does not set
            # it), and any other version (llhttp also takes "HTTP/2.0") on an HTTP/1 connection
            self.keep_alive = False
            self.log_path = "-"
            self.local_reply(426, b"Upgrade Required", "DPE")
            return
        target = req.target.decode("latin-1")  # a #fragment is cut off by normalize_path below
        authority = ""
        scheme = ""
        if target.startswith(("http://", "https://")):
            # absolute-form (mirrorsim used as an HTTP proxy): the URI's authority wins
            scheme, _, rest = target.partition("://")
            slash = rest.find("/")
            authority, target = (rest, "/") if slash == -1 else (rest[:slash], rest[slash:])
        elif req.method == "CONNECT":
            authority = target
        hdrs: dict[str, str] = {}
        repeated: dict[str, tuple[str, ...]] | None = None
        for n, v in req.headers:
            name = NAME_STR.get(n) or n.decode("latin-1")
            if name in hdrs:
                value = v.decode("latin-1")
                hdrs[name] = hdrs[name] + "," + value
                if n in INLINE_REQUEST:
                    continue  # Envoy's codec joined these lines: routing sees one value
                if repeated is None:
                    repeated = {}
                repeated[name] = repeated.get(name, (hdrs[name][: -len(value) - 1],)) + (value,)
            else:
                hdrs[name] = v.decode("latin-1")
        if not scheme:
            # Envoy takes :scheme from x-forwarded-proto when the client sends one
            xfp = hdrs.get("x-forwarded-proto")
            scheme = xfp if xfp in ("http", "https") else "http"
        self.scheme = scheme
        if not authority:
            host = hdrs.get("host")
            if host is None:
                # Envoy's HCM: an HTTP/1.1 request without Host gets 400, no body, connection closed
                self.log_path = target
                self.keep_alive = False
                self.local_reply(400, b"", "-")
                return
            authority = host  # an empty Host is routed as is (to the catch-all: 502)
        if target[:1] != "/":
            if tunnel.reject_target(self, req, target, authority):
                return
        normalized = proxy.table.normalize_path(target)  # Envoy's HCM, before routing (core/paths.py)
        if normalized is None:
            self.path = self.log_path = target
            self.authority = authority
            self.local_reply(400, b"", "-", early=True)
            return
        target = normalized
        self.path = target
        self.log_path = target
        self.authority = authority
        self.request_id = hdrs.get("x-request-id") or proxy.request_ids.next()
        self.xff = hdrs.get("x-forwarded-for")
        self.user_agent = hdrs.get("user-agent")
        if req.too_big:
            if req.overloaded:
                proxy.stats.inc(OVERLOAD_STAT)
                self.local_reply(503, OVERLOADED_BODY, OVERLOAD_FLAG)
                return
            self.local_reply(413, b"Payload Too Large", "-")
            return
        if req.upgrade is not None and not tunnel.start_upgrade(self, req, hdrs):
            return
        rv = proxy.random_values.next()
        route_headers: Mapping[str, str | tuple[str, ...]] = hdrs if repeated is None else {**hdrs, **repeated}
        decision = proxy.table.route(req.method, authority, target, route_headers, rv, scheme)
        self.decision = decision
        if isinstance(decision, LocalReply):
            self.local_reply(decision.status, decision.body, decision.flags, decision.headers,
                             decision.content_type, early=True)
            return
        fault = decision.fault
        if fault is not None:
            self.inject_fault(decision, fault, hdrs)
            return
        self.forward(decision, hdrs)

    # ------------------------------------------------------------------ faults
    def inject_fault(self, d: Forward, fault: FaultConfig, hdrs: dict[str, str]) -> None:
        """Envoy's fault filter, which runs before the router: an optional delay
        (flag DI), then an optional abort (flag FI, body "fault filter abort").
        Each is an independent draw against its FractionalPercent (of a million)."""
        proxy = self.proxy
        if fault.delay is not None and proxy.rng.getrandbits(64) % 1_000_000 < fault.delay_numerator:
            self.fault_flags = "DI"
            proxy.stats.inc("fault.delays_injected")
            self.timer = proxy.loop.call_later(fault.delay, self._after_fault_delay, d, fault, hdrs)
            return
        self._after_fault_delay(d, fault, hdrs)

    def _after_fault_delay(self, d: Forward, fault: FaultConfig, hdrs: dict[str, str]) -> None:
        self.timer = None
        if self.done:
            return
        proxy = self.proxy
        aborts = fault.abort_status is not None or fault.abort_grpc_status is not None
        if aborts and proxy.rng.getrandbits(64) % 1_000_000 < fault.abort_numerator:
            proxy.stats.inc("fault.aborts_injected")
            # without a delay the abort comes from decodeHeaders, before any body was read
            early = not self.fault_flags
            self.fault_flags = (self.fault_flags + ",FI") if self.fault_flags else "FI"
            if fault.abort_grpc_status is not None:
                # Envoy's fault filter aborts with 200 and the gRPC status; sendLocalReply
                # uses the gRPC status only for a gRPC request (content-type application/grpc*)
                if hdrs.get("content-type", "").startswith("application/grpc"):
                    self.local_reply(200, b"", "-", (("content-type", "application/grpc"),
                                                     ("grpc-status", str(fault.abort_grpc_status)),
                                                     ("grpc-message", "fault filter abort")), early=early)
                else:
                    self.local_reply(200, b"fault filter abort", "-", early=early)
                return
            assert fault.abort_status is not None
            self.local_reply(fault.abort_status, b"fault filter abort", "-", early=early)
            return
        self.forward(d, hdrs)

    def forward(self, d: Forward, hdrs: dict[str, str]) -> None:
        proxy = self.proxy
        if d.route.cors is not None:  # Envoy's CORS filter: after the fault filter, before the router
            cors = d.route.cors.evaluate(self.method, hdrs)
            if cors is not None:
                proxy.stats.inc("cors.origin_valid" if cors.allowed else "cors.origin_invalid")
                if cors.preflight is not None:
                    # answered before the router: no route header operations, no rewrite logged
                    self.decision = None
                    self.local_reply(200, b"", "-", cors.preflight, early=True)
                    return
                self.cors_lines = cors.response
        self.hdrs = hdrs
        pool = proxy.pool(d.cluster)
        base, muts = self._build_headers(d, hdrs)
        req = self.req
        body = req.body
        # framing: chunked stays chunked (even empty); a client content-length stays where
        # it was sent (kept in ``base``); a body-less POST/PUT/OPTIONS gets content-length: 0
        if req.chunked:
            tail = b"transfer-encoding: chunked\r\n\r\n"
            payload: tuple[bytes, ...] = ((b"%x\r\n" % len(body), body, b"\r\n0\r\n\r\n") if body
                                          else (b"0\r\n\r\n",))
        elif body or self.method not in BODILESS_METHODS:
            tail = b"\r\n" if self.has_length else b"content-length: %d\r\n\r\n" % len(body)
            payload = (body,) if body else ()
        else:
            tail = b"\r\n"
            payload = ()
        self.head_base = b"".join(base)
        if self.attempt_line >= 0:
            self.attempt_at = sum(map(len, base[: self.attempt_line]))
        self.head_muts = muts
        self.head_tail = tail
        self.payload = payload
        self.first_start = wall_time()
        self.timeout = d.timeout
        ct = hdrs.get("content-type")
        if ct is not None and is_grpc(ct):
            self._grpc_timeout(d, hdrs.get("grpc-timeout"), base)
        if pool is None:
            action = d.route.action  # 500 on Gateway API routes (cluster_not_found_response_code)
            status = action.cluster_not_found_status if isinstance(action, RouteAction) else 503
            self.local_reply(status, b"", "NC", early=True)  # Envoy: no copy either
        else:
            self.pool = pool
            if self.timeout > 0 and not req.streaming:  # Expect: from the body's end (expect.py)
                self.timer = proxy.loop.call_later(self.timeout, self.on_timeout)
            if d.mirrors and proxy.shadows is not None:
                self.shadow_base = base
                if proxy.diff is not None and self.tunnel is None:
                    self.diff = proxy.diff.begin(self, d)
            elif self.tunnel is not None:
                self.tunnel.copies_dispatched()  # none to wait for
            self.send_attempt()

    def _grpc_timeout(self, d: Forward, header: str | None, base: list[bytes]) -> None:
        """A gRPC request: its grpc-timeout header sets the timeout (Istio's max_grpc_timeout
        is the route timeout: core/grpc_timeout.py); the header is rewritten per attempt,
        in place (the shadow copies get the first attempt's)."""
        self.timeout = grpc_route_timeout(d.timeout, header)
        if not self.timeout:
            return  # no timeout: grpc-timeout (if any) goes as sent
        line = b"grpc-timeout: %s\r\n" % to_grpc_timeout(round(self.timeout * 1000)).encode()
        self.grpc_at = -1
        if header is not None:
            i = next(i for i, ln in enumerate(base) if ln.startswith(b"grpc-timeout:"))
            base[i] = line
            self.head_base = b"".join(base)
            self.grpc_at = sum(map(len, base[:i]))
            self.grpc_len = len(line)
            if self.attempt_at > self.grpc_at:
                self.attempt_at = sum(map(len, base[: self.attempt_line]))

    def on_sent(self) -> None:
        """The primary was written to an upstream connection (UpstreamConnection.send)."""
        if self.body_owed:
            expect.on_sent(self)
        elif self.shadow_base is not None:
            self.release_shadows()

    def on_interim(self, status: int, headers: list[tuple[bytes, bytes]]) -> None:
        expect.on_interim(self, status, headers)

    def release_shadows(self) -> None:
        """Dispatch the shadow copies, once: when the primary's request was handed to an
        upstream connection, or the upstream refused it (connect failure, circuit
        breaker: Envoy dispatches the copies right after creating the primary's upstream
        request, whatever happens to it then).  Never when the stream ended first
        (client gone, timeout, no healthy upstream): finish() drops them."""
        if self.req.streaming:
            return  # Expect: the copies go with the body (expect.py), or never
        base = self.shadow_base
        self.shadow_base = None
        shadows = self.proxy.shadows
        d = self.decision
        if base is None or shadows is None or not isinstance(d, Forward):
            return
        for policy in d.mirrors:
            shadows.submit(self, d, policy, base, self.head_muts, self.head_tail, self.payload)
        if self.tunnel is not None:
            self.tunnel.copies_dispatched()

    def _build_headers(self, d: Forward, hdrs: dict[str, str]) -> tuple[list[bytes], bytes]:
        """The request line with host and the forwarded headers; and, apart, the route's
        header operations and the x-envoy-original-* headers.  The timeout and
        attempt-count headers go between the two (Envoy's order) and differ per attempt
        and between the primary and its shadow copies."""
        req = self.req
        if len(hdrs) != len(req.headers):  # a name on several lines: Envoy joins inline ones
            req.headers = coalesce_inline(req.headers)
        upgrade = self.tunnel is not None
        drop = connection_tokens(req.headers) if "connection" in hdrs and not upgrade else _NO_TOKENS
        if "referer" in hdrs and not referer_ok(hdrs["referer"].encode("latin-1")):
            drop = drop | _REFERER
        mut = d.request_headers
        if mut.dynamic:
            mut = header_ops.request_mutations(self, mut)
        new_host = d.authority != self.authority
        mutated = bool(mut) or d.original_path is not None or new_host
        removes = _NO_NAMES
        overwrite = _NO_NAMES
        if mutated:
            removes = frozenset(mut.remove)
            replaced = {a.name for a in mut.add if not a.append}
            if d.original_path is not None:
                replaced.add("x-envoy-original-path")
            if new_host:  # the router sets it in place of a client's (setReference)
                replaced.add("x-envoy-original-host")
            overwrite = frozenset(replaced)
            mutated = bool(removes or overwrite)
        lines = [b"%s %s HTTP/1.1\r\nhost: %s\r\n" % (
            req.method.encode(), d.path.encode("latin-1"), d.authority.encode("latin-1"))]
        has_length = False
        te_done = False
        for ln, v in req.headers:
            if ln in SKIP_REQUEST_HEADERS or ln in drop:
                if upgrade and ln in tunnel.UPGRADE_KEEPS:
                    # an upgrade keeps Connection, Upgrade and Content-Length as sent
                    lines.append(b"%s: %s\r\n" % (ln, v))
                    has_length = has_length or ln == b"content-length"
                    continue
                if ln == b"expect" and ln not in drop:
                    # Istio sets proxy_100_continue (ENABLE_100_CONTINUE_HEADERS): Envoy
                    # forwards Expect, 100-continue included (deviations P2: the 100 is ours)
                    lines.append(b"%s: %s\r\n" % (ln, v))
                    continue
                if ln == b"content-length" and not req.chunked:
                    lines.append(b"content-length: %d\r\n" % len(req.body) if not req.streaming
                                 else b"content-length: %s\r\n" % v)  # Expect: the body is to come
                    has_length = True
                elif ln == b"x-envoy-attempt-count" and self.attempt_line < 0:
                    # the router sets it in place of the client's (an inline header)
                    self.attempt_line = len(lines)
                continue
            if ln == b"te":
                if not te_done:  # Envoy: one te line, "trailers" or none
                    te_done = True
                    if te_keeps_trailers(req.headers):
                        lines.append(TE_TRAILERS)
                continue
            if mutated:
                s = ln.decode("latin-1")
                if s in removes or s in overwrite:
                    continue
            lines.append(b"%s: %s\r\n" % (ln, v))
        self.has_length = has_length
        if "x-forwarded-proto" not in hdrs:
            lines.append(_XFP_HTTP if self.scheme == "http" else b"x-forwarded-proto: %s\r\n" % self.scheme.encode())
        rid: str = self.request_id or ""
        if "x-request-id" not in hdrs:
            lines.append(b"x-request-id: %s\r\n" % rid.encode())
        elif not hdrs["x-request-id"]:
            replace_empty_request_id(lines, rid)
        extra = add_mutation_lines(lines, 1, mut.lines(), INLINE_REQUEST) if mut else b""
        if new_host:
            extra += b"x-envoy-original-host: %s\r\n" % self.authority.encode("latin-1")
        if d.original_path is not None:
            extra += b"x-envoy-original-path: %s\r\n" % d.original_path.encode("latin-1")
        return lines, extra

    # ------------------------------------------------------------------ upstream
    def _attempt_head(self, d: Forward) -> bytes:
        """This attempt's request head: Envoy sends x-envoy-expected-rq-timeout-ms as
        the time left of the route timeout (the per-try timeout if smaller) and
        x-envoy-attempt-count (Istio sets include_request_attempt_count)."""
        timeout_line = b""
        base = self.head_base
        timeout = self.timeout
        if timeout > 0:
            ms = max(int((timeout - (wall_time() - self.first_start)) * 1000), 1) if self.attempt > 1 else round(
                timeout * 1000)
            rp = d.retry_policy
            if rp is not None and rp.per_try_timeout and rp.per_try_timeout * 1000 < ms:
                ms = int(rp.per_try_timeout * 1000)
            timeout_line = b"x-envoy-expected-rq-timeout-ms: %d\r\n" % ms
            if self.grpc_at > -2:  # a gRPC request: grpc-timeout says the same (core/grpc_timeout.py)
                grpc_line = b"grpc-timeout: %s\r\n" % to_grpc_timeout(ms).encode()
                if self.grpc_at < 0:
                    timeout_line += grpc_line
                else:
                    g = self.grpc_at
                    base = base[:g] + grpc_line + base[g + self.grpc_len:]
                    if self.attempt_at > g:
                        self.attempt_at += len(grpc_line) - self.grpc_len
                    self.grpc_len = len(grpc_line)
                    self.head_base = base
        at = self.attempt_at
        if at >= 0:
            return b"%sx-envoy-attempt-count: %d\r\n%s%s%s%s" % (
                base[:at], self.attempt, base[at:], timeout_line, self.head_muts, self.head_tail)
        return b"%s%sx-envoy-attempt-count: %d\r\n%s%s" % (
            base, timeout_line, self.attempt, self.head_muts, self.head_tail)

    def send_attempt(self) -> None:
        pool = self.pool
        assert pool is not None
        d = self.decision
        assert isinstance(d, Forward)
        rp = d.retry_policy
        exclude = self.endpoint if rp is not None and rp.previous_hosts else None
        key = self._hash_key(pool.cluster.hash_policy) if pool.cluster.hash_policy else None
        endpoint = pool.pick(exclude, key)
        if endpoint is None:
            if pool.cluster.endpoints:
                pool.stats.upstream_rq_total += 1
            self.cancel_timer()
            self.local_reply(503, b"no healthy upstream", "UH", early=self.attempt == 0)
            return
        self.endpoint = endpoint
        self.upstream_host = endpoint.host_port
        self.upstream_start = self.first_start if self.attempt == 0 else wall_time()
        self.attempt += 1
        head = self._attempt_head(d)
        payload = self.payload
        self.body_owed = self.req.streaming  # Expect: the head goes alone, the body once read (expect.py)
        if not pool.submit(endpoint, self, (head,) + payload if payload else (head,)):
            if self.shadow_base is not None:
                self.release_shadows()
            self.cancel_timer()
            self.local_reply(503, (UPSTREAM_RESET_PREFIX + "overflow").encode(), "UO",
                             (("x-envoy-overloaded", "true"),), early=self.attempt == 1)
            return
        if rp is not None and rp.per_try_timeout and (not self.timeout or rp.per_try_timeout < self.timeout):
            self.per_try_timer = self.proxy.loop.call_later(rp.per_try_timeout, self.on_per_try_timeout)

    def _hash_key(self, policy: tuple[tuple[str, str], ...]) -> str | None:
        kind, name = policy[0]
        if kind == "header":
            return self.hdrs.get(name)
        if kind == "source_ip":
            return self.conn.peer
        if kind == "cookie":
            for part in self.hdrs.get("cookie", "").replace(",", ";").split(";"):
                k, _, v = part.strip().partition("=")
                if k == name:
                    return v
            return None
        if kind == "query_parameter":
            q = self.path.partition("?")[2]
            return parse_query(q).get(name)
        return None

    def on_per_try_timeout(self) -> None:
        """Envoy per_try_timeout: reset this attempt; retried as a 504 would be."""
        self.per_try_timer = None
        if self.done or self.headers_sent:
            return
        pool = self.pool
        assert pool is not None
        pool.stats.upstream_rq_per_try_timeout += 1
        self._abandon_attempt()
        d = self.decision
        assert isinstance(d, Forward)
        rp = d.retry_policy
        self._release_retry()
        if rp is not None and self.attempt <= rp.num_retries and (
                "5xx" in rp.retry_on or "gateway-error" in rp.retry_on or "reset" in rp.retry_on
        ) and self._try_retry(rp):
            return
        self.cancel_timer()
        self.local_reply(504, b"upstream request timeout", "UT")

    def _cancel_per_try(self) -> None:
        if self.per_try_timer is not None:
            self.per_try_timer.cancel()
            self.per_try_timer = None

    # Exchange protocol (called by UpstreamConnection)
    def on_headers(self, status: int, headers: list[tuple[bytes, bytes]], framing: str) -> None:
        if self.done:
            return
        if len(headers) > 1 and repeats_a_name(headers):
            headers = coalesce_inline(headers, INLINE_RESPONSE)  # Envoy's codec joins these
        if self.tunnel is not None and tunnel.upgrade_response(self, status, headers):
            return
        self._cancel_per_try()
        if self.req.streaming or self.body_owed:
            expect.early_response(self)
        proxy = self.proxy
        d = self.decision
        assert isinstance(d, Forward)
        pool = self.pool
        assert pool is not None
        if self.endpoint is not None:
            pool.record_outcome(self.endpoint, status)
        rp = d.retry_policy
        self._release_retry()
        retriable = rp is not None and _retriable_response(rp, status, headers)
        if rp is not None and retriable and self.attempt <= rp.num_retries and self._try_retry(rp):
            # Envoy resets the upstream stream and tries again after a backoff
            self._abandon_attempt()
            pool.stats.retry_codes[status] += 1  # Envoy: cluster.<c>.retry.upstream_rq_<code>
            return
        if self.attempt > 1:
            if not retriable:
                pool.stats.upstream_rq_retry_success += 1
            else:
                pool.stats.upstream_rq_retry_limit_exceeded += 1
                self.flags = "URX"
        if retriable and self.retry_overflow:
            self.flags = "UO"
        self.response_code = status
        if self.diff is not None:
            self.diff.on_headers(status, headers)
        now = wall_time()
        ms = str(int((now - self.upstream_start) * 1000))
        self.upstream_time = ms
        parts = [status_line(status)]
        mut = d.response_headers
        if mut.dynamic:
            mut = header_ops.response_mutations(self, mut, headers, status)
        removes = set(mut.remove) if mut else ()
        overwrite = {a.name for a in mut.add if not a.append} if mut else ()
        placed: set[bytes] | None = None
        for ln, v in headers:  # names lower-case (UpstreamConnection.on_header)
            if ln in RESPONSE_HOP_BY_HOP:
                if ln in RESPONSE_SET_IN_PLACE:
                    # Envoy overwrites the upstream's date, server and service time where they are
                    if placed is None:
                        placed = set()
                    if ln not in placed:
                        placed.add(ln)
                        parts.append(proxy.dates.line(ln, now, ms))
                continue
            if mut:
                s = ln.decode("latin-1")
                if s in removes or s in overwrite:
                    continue
            parts.append(b"%s: %s\r\n" % (ln, v))
        # Envoy times x-envoy-upstream-service-time from the request's end, which an upgrade lacks
        timed = self.tunnel is None
        if placed is None:
            if timed:
                parts.append(b"x-envoy-upstream-service-time: %s\r\n" % ms.encode())
            if mut:
                parts.append(add_mutation_lines(parts, 1, mut.lines(), INLINE_RESPONSE))
            if self.cors_lines:
                parts = [cors_set_lines(b"".join(parts), self.cors_lines)]
            parts.append(proxy.dates.date_server_lines(now))
        else:
            if timed and b"x-envoy-upstream-service-time" not in placed:
                parts.append(b"x-envoy-upstream-service-time: %s\r\n" % ms.encode())
            if mut:
                parts.append(add_mutation_lines(parts, 1, mut.lines(), INLINE_RESPONSE))
            if self.cors_lines:
                parts = [cors_set_lines(b"".join(parts), self.cors_lines)]
            for n in (b"date", b"server"):
                if n not in placed:
                    parts.append(proxy.dates.line(n, now, ms))
        if framing == "chunked" or (framing == "close" and not self.head):
            parts.append(b"transfer-encoding: chunked\r\n")
            self.chunked_out = True
        if not self.keep_alive:
            parts.append(b"connection: close\r\n")
        parts.append(b"\r\n")
        self.headers_sent = True
        self.bytes_sent = 0
        # held until the first body bytes or the end of this read, so a small response
        # leaves in one write, as Envoy's codec flushes once per read
        self.pending_head = b"".join(parts)

    def on_body(self, data: bytes) -> None:
        if self.done or not self.headers_sent:
            return
        self.bytes_sent += len(data)
        raw = data
        if self.chunked_out:
            data = b"%x\r\n%s\r\n" % (len(data), data)
        head = self.pending_head
        if head:
            self.pending_head = b""
            self.conn.write(head + data)
            if self.conn.write_paused:
                self.pause_upstream()
        else:
            self.conn.write(data)
        if self.diff is not None:  # after the client's write
            self.diff.on_body(raw)

    def on_data_end(self) -> None:
        """End of one upstream read: send response headers still held back."""
        head = self.pending_head
        if head:
            self.pending_head = b""
            self.conn.write(head)
            if self.conn.write_paused:
                self.pause_upstream()

    def on_complete(self) -> None:
        if self.done or not self.headers_sent:
            return  # given up on (timeout, downstream gone) or an attempt being retried
        head = self.pending_head
        if head:
            self.pending_head = b""
        if self.chunked_out:
            self.conn.write(head + b"0\r\n\r\n")
        elif head:
            self.conn.write(head)
        pool = self.pool
        assert pool is not None
        pool.stats.response(self.response_code, self.internal)
        self.finish(self.keep_alive)

    def upgrading(self) -> bool:
        return self.tunnel is not None

    def on_upgraded(self, conn: UpstreamConnection, rest: bytes) -> None:
        t = self.tunnel
        if t is None or self.done:
            conn.abort()
            return
        t.upstream_switched(conn, rest)

    def on_reset(self, reason: str, flag: str) -> None:
        if self.done:
            return
        if self.shadow_base is not None:
            self.release_shadows()  # the upstream failed the primary: Envoy has sent the copies
        self._cancel_per_try()
        self._release_retry()
        if self.pool is not None and self.endpoint is not None and not self.headers_sent:
            self.pool.record_outcome(self.endpoint, 503)
        if self.headers_sent:
            # reset after the response started: Envoy resets the downstream stream
            self.flags = flag
            self.finish(False, abort=True)
            return
        d = self.decision
        assert isinstance(d, Forward)
        rp = d.retry_policy
        connect_failure = flag == "UF"  # refused or timed out (upstream.py)
        if rp is not None and self.attempt <= rp.num_retries and (
            (connect_failure and "connect-failure" in rp.retry_on)
            or (not connect_failure and ("reset" in rp.retry_on or "5xx" in rp.retry_on
                                         or "gateway-error" in rp.retry_on))
        ) and self._try_retry(rp):
            return
        self.cancel_timer()
        flags = flag
        if self.attempt > 1:
            flags = "URX," + flag  # Envoy lists flags in the order they were set: URX, then the reset's
        # Envoy's router: a protocol error (a response that is not HTTP) is a 502, other resets 503
        code = 502 if flag == "UPE" else 503
        self.pool.stats.response(code, self.internal)  # type: ignore[union-attr]
        prefix = UPSTREAM_RESET_PREFIX if self.attempt == 1 else UPSTREAM_RETRIED_PREFIX
        self.local_reply(code, (prefix + reason).encode(), flags)

    def _try_retry(self, rp: RetryPolicy) -> bool:
        """Schedule the next attempt unless the cluster's max_retries circuit breaker
        is full (then Envoy gives up on retrying: upstream_rq_retry_overflow, flag UO)."""
        if self.continued:
            return False  # Envoy's router drops its retry state once a 1xx went to the client
        pool = self.pool
        assert pool is not None
        if pool.retry_active >= pool.cluster.circuit_breakers.max_retries:
            pool.stats.upstream_rq_retry_overflow += 1
            self.retry_overflow = True
            return False
        pool.retry_active += 1
        self.retry_held = True
        pool.stats.upstream_rq_retry += 1
        self._retry_later(rp.base_interval)
        return True

    def _release_retry(self) -> None:
        if self.retry_held:
            self.retry_held = False
            self.pool.retry_active -= 1  # type: ignore[union-attr]

    def _retry_later(self, base: float) -> None:
        # Envoy: fully jittered exponential backoff, base 25 ms, max 10x base
        k = min(self.attempt, 10)
        limit = min(base * (2**k - 1), base * 10)
        delay = self.proxy.rng.uniform(0, limit)
        self.proxy.loop.call_later(delay, self._retry_now)

    def _retry_now(self) -> None:
        if not self.done:
            self.send_attempt()

    def current_conn(self) -> UpstreamConnection | None:
        c = self.upstream_conn
        return c if c is not None and c.exchange is self else None

    def pause_upstream(self) -> None:
        c = self.current_conn()
        if c is not None:
            c.pause_reading()

    def resume_upstream(self) -> None:
        c = self.current_conn()
        if c is not None:
            c.resume_reading()

    def on_timeout(self) -> None:
        self.timer = None
        if self.done:
            return
        pool = self.pool
        if pool is not None:
            pool.stats.upstream_rq_timeout += 1
            self._abandon_attempt()
        if self.headers_sent:
            self.flags = "UT"
            self.finish(False, abort=True)
            return
        if pool is not None:
            pool.stats.response(504, self.internal)
        self.local_reply(504, b"upstream request timeout", "UT")

    def _abandon_attempt(self) -> None:
        """Give up on the attempt in flight: reset its upstream connection, or take it
        out of the pending queue if it never got one."""
        conn = self.current_conn()
        if conn is not None:
            conn.abort()
        elif self.pool is not None:
            self.pool.cancel(self)

    def cancel_timer(self) -> None:
        if self.timer is not None:
            self.timer.cancel()
            self.timer = None
        if self.per_try_timer is not None:
            self.per_try_timer.cancel()
            self.per_try_timer = None

    def downstream_lost(self) -> None:
        if self.done:
            return
        self.done = True
        self.shadow_base = None
        self._give_body()
        self.cancel_timer()
        self._abandon_attempt()
        self.flags = "DC"
        if self.diff is not None:
            self.diff.end(False, "DC")
        self._release_retry()
        self.response_code = self.response_code or 0
        self._log()

    # ------------------------------------------------------------------ replies
    def local_reply(
        self, code: int, body: bytes, flags: str,
        extra: tuple[tuple[str, str], ...] = (), content_type: str = "text/plain",
        *, early: bool = False,
    ) -> None:
        """Answer locally.  ``early``: Envoy would answer from decodeHeaders, before
        reading a request body, and so closes the connection when there is one."""
        if (early and self.body_pending) or self.req.streaming:
            self.keep_alive = False  # Envoy closes a connection whose request it has not read
        self.response_code = code
        self.flags = flags
        self.bytes_sent = 0 if self.head else len(body)
        d = self.decision
        if d is not None:
            # the route's response header operations apply to local replies too (Envoy's
            # router and HCM finalize a local reply's headers with the route's)
            mut = d.response_headers if isinstance(d, Forward) else (
                d.route.response_headers if d.route is not None else None)
            if mut:
                if mut.dynamic:
                    mut = header_ops.response_mutations(self, mut, [], code)
                extra = _apply_response_mutations_str(extra, mut)
        data = _local_reply_bytes(self.proxy, code, body, close=not self.keep_alive,
                                  head=self.head, extra=extra, content_type=content_type)
        if self.cors_lines:
            end = data.index(b"\r\n\r\n") + 2
            data = cors_set_lines(data[:end], self.cors_lines, b"date:") + data[end:]
        self.conn.write(data)
        self.headers_sent = True
        self.finish(self.keep_alive)

    def finish(self, keep_alive: bool, abort: bool = False) -> None:
        if self.done:
            return
        self.done = True
        self.shadow_base = None
        if self.diff is not None:
            self.diff.end(not abort, self.flags)
        self._give_body()
        self.cancel_timer()
        self._release_retry()
        self._log()
        if abort:
            self.conn.abort()
            self.conn.stream_done(self, False)
            return
        self.conn.stream_done(self, keep_alive)

    def _give_body(self) -> None:
        req = self.req
        if req.held:
            self.proxy.budget.give(req.held)
            req.held = 0

    def _log(self) -> None:
        proxy = self.proxy
        flags = self.flags
        if self.fault_flags:
            flags = self.fault_flags if flags == "-" else f"{self.fault_flags},{flags}"
        proxy.stats.downstream_response(self.response_code, flags)
        al = proxy.access_log
        if al.stream is None:
            return
        req = self.req
        d = self.decision
        path = self.log_path
        if isinstance(d, Forward) and d.original_path is not None:
            path = d.original_path
        now = wall_time()
        al.log(req.start, req.method, path, protocol(req.version), self.response_code,
               flags, len(req.body), self.bytes_sent, int((now - req.start) * 1000),
               self.upstream_time, self.xff, self.user_agent, self.request_id, self.authority,
               self.upstream_host, d.cluster if isinstance(d, Forward) else "",
               d.route.name if d is not None and d.route is not None else "")


_NO_TOKENS: Final[frozenset[bytes]] = frozenset()
_NO_NAMES: Final[frozenset[str]] = frozenset()
_REFERER: Final = frozenset({b"referer"})
_XFP_HTTP: Final = b"x-forwarded-proto: http\r\n"
_DRAWS_PER_REFILL: Final = 256  # RandomValues and RequestIds draw this many at a time


class RandomValues:
    """The routing core's random values (weighted clusters, mirror and fault sampling),
    64 bits each, drawn from ``rng`` 256 at a time."""

    __slots__ = ("rng", "values", "pos")

    def __init__(self, rng: random.Random) -> None:
        self.rng = rng
        self.values = array("Q")
        self.pos = 0

    def next(self) -> int:
        i = self.pos
        if i >= len(self.values):
            self.values = array("Q", self.rng.randbytes(8 * _DRAWS_PER_REFILL))
            i = 0
        self.pos = i + 1
        return self.values[i]


_UUID_VARIANT: Final = {c: "89ab"[int(c, 16) & 3] for c in "0123456789abcdef"}


class RequestIds:
    """x-request-id values: version-4 UUID strings (what Envoy generates) from a seeded
    generator, its random bytes hex-encoded 256 ids at a time (cheaper than uuid.UUID or
    a big integer per request)."""

    __slots__ = ("rng", "hex", "pos")

    def __init__(self, rng: random.Random) -> None:
        self.rng = rng
        self.hex = ""
        self.pos = 0

    def next(self) -> str:
        h = self.hex
        i = self.pos
        if i >= len(h):
            h = self.hex = self.rng.randbytes(16 * _DRAWS_PER_REFILL).hex()
            i = 0
        self.pos = i + 32
        # xxxxxxxx-xxxx-4xxx-Vxxx-xxxxxxxxxxxx, V one of 8 9 a b (RFC 9562 variant)
        return (f"{h[i:i + 8]}-{h[i + 8:i + 12]}-4{h[i + 13:i + 16]}-"
                f"{_UUID_VARIANT[h[i + 16]]}{h[i + 17:i + 20]}-{h[i + 20:i + 32]}")


_GRPC_RETRY_ON: Final = {b"1": "cancelled", b"4": "deadline-exceeded", b"8": "resource-exhausted",
                  b"13": "internal", b"14": "unavailable"}


def _retriable_response(rp: RetryPolicy, status: int, headers: list[tuple[bytes, bytes]]) -> bool:
    """Envoy's retry-on conditions for a response (x-envoy-retry-on / x-envoy-retry-grpc-on)."""
    on = rp.retry_on
    if status >= 409:
        if status >= 500 and "5xx" in on:
            return True
        if (status == 502 or status == 503 or status == 504) and "gateway-error" in on:
            return True
        if status == 409 and "retriable-4xx" in on:
            return True
        if "retriable-status-codes" in on and status in rp.retriable_status_codes:
            return True
        if status == 429 and "envoy-ratelimited" in on:
            return any(n.lower() == b"x-envoy-ratelimited" for n, _ in headers)
        return False
    for n, v in headers:  # gRPC errors come as a trailers-only 200 with grpc-status
        if len(n) == 11 and n.lower() == b"grpc-status":
            token = _GRPC_RETRY_ON.get(v.strip())
            return token is not None and token in on
    return False


def _apply_response_mutations_str(
    extra: tuple[tuple[str, str], ...], mut: HeaderMutations
) -> tuple[tuple[str, str], ...]:
    replaced = {a.name for a in mut.add if not a.append}
    out = [(n, v) for n, v in extra if n not in mut.remove and n not in replaced]
    for n, v in mut.lines():
        if n.encode() in INLINE_RESPONSE:  # an add joins the inline header's line (add_mutation_lines)
            i = next((i for i, (m, _) in enumerate(out) if m == n), -1)
            if i != -1:
                out[i] = (n, out[i][1] + "," + v)
                continue
        out.append((n, v))
    return tuple(out)
