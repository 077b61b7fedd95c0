"""Upstream HTTP/1.1 connections and per-cluster connection pools.

Theory of operation
-------------------
* ``UpstreamConnection`` is an ``asyncio.Protocol`` with an llhttp response
  parser (httptools).  It carries one exchange at a time (no upstream
  pipelining, as Envoy's HTTP/1 pool) and reports to the exchange through
  callbacks: ``on_headers``, ``on_body``, ``on_complete``, ``on_reset``.
* ``ClusterPool`` owns the connections of one Envoy cluster and its circuit
  breakers: ``max_connections``, ``max_pending_requests``, ``max_requests``.
  A request that finds no idle connection waits in the pending queue (counted
  in ``upstream_rq_pending_total``); one beyond ``max_pending_requests`` or
  ``max_requests`` overflows (``upstream_rq_pending_overflow``, 503 UO).
* Keep-alive: a connection goes back to the idle list after a complete
  response unless either side said ``Connection: close`` or
  ``max_requests_per_connection`` is reached.
* A connection that closes before a whole response head arrived fails its
  request as Envoy's HTTP/1 codec client does: closed before any response byte,
  reset reason "connection termination" (503 UC; also on a reused keep-alive
  connection, and never re-sent: only a retry policy retries it); closed in the
  middle of a response head, or a response that is not HTTP, "protocol error"
  (502 UPE, ``upstream_cx_protocol_error``).
* A response head over Envoy's HTTP/1 codec client limits, 80 KiB
  (``MAX_RESPONSE_HEADERS_KB``, counted as a request head is: status line, header lines,
  blank line) or more than 100 headers (``max_response_headers_count``), is a protocol
  error too: 502 UPE.  What llhttp buffers of an unfinished head is bounded the same way.
* A ``101 Switching Protocols`` answer to an upgrade request (WebSocket) ends
  the connection's HTTP life: the exchange's ``on_upgraded`` takes the
  transport (simulator/proxy/tunnel.py) and the pool never reuses it.
Nothing here awaits on the hot path: an idle connection is used synchronously;
only establishing a new connection runs as a task.
"""

from __future__ import annotations

import asyncio
import bisect
import collections
import hashlib
import random
import time
from typing import Final

import httptools

from simulator.core.envoy_config import Cluster, Endpoint, OutlierDetectionConfig
from simulator.proxy.headers import memo_name, strip_bodiless_framing
from simulator.proxy.limits import HEADER_LINE_OVERHEAD, MAX_HEADERS_COUNT
from simulator.proxy.stats import ClusterStats
from simulator.proxy.tasks import TaskSet

# a C static in the compiled build (a from-import is a module-dict lookup at every call)
monotonic: Final = time.monotonic

# Envoy's Http::Utility::resetReasonToString for the reasons an HTTP/1 upstream produces
CONNECTION_TERMINATION: Final = "connection termination"
PROTOCOL_ERROR: Final = "protocol error"
REMOTE_CONNECTION_FAILURE: Final = "remote connection failure"  # refused (flag UF)
CONNECTION_TIMEOUT: Final = "connection timeout"  # the cluster's connect_timeout passed (flag UF)
# Envoy's HTTP/1 codec client: MAX_RESPONSE_HEADERS_KB (80, the cluster's
# max_response_headers_kb default) and max_response_headers_count (100)
MAX_RESPONSE_HEADER_BYTES: Final = 80 * 1024
STATUS_LINE_OVERHEAD: Final = len(b"HTTP/1.1 200 \r\n") + 2  # + the reason; + the blank line


class Exchange:
    """The receiving side of one upstream request: ``server.Stream`` (a primary) and
    ``mirror.ShadowExchange`` (a shadow copy) derive from it.  A base class, not a
    Protocol, so the compiled build calls these methods natively (a Protocol-typed
    call goes through Python attribute lookup)."""

    __slots__ = ("method", "internal", "upstream_conn")

    def __init__(self, method: str, internal: bool) -> None:
        self.method = method
        self.internal = internal
        self.upstream_conn: UpstreamConnection | None = None

    def on_headers(self, status: int, headers: list[tuple[bytes, bytes]], framing: str) -> None:
        raise NotImplementedError

    def on_body(self, data: bytes) -> None:
        raise NotImplementedError

    def on_complete(self) -> None:
        raise NotImplementedError

    def on_reset(self, reason: str, flag: str) -> None:
        raise NotImplementedError

    def on_data_end(self) -> None:
        raise NotImplementedError

    def upgrading(self) -> bool:
        """Whether the request asked for an upgrade (only then is a 101 a final answer:
        to any other request it is a protocol error, 502 UPE)."""
        return False

    def on_upgraded(self, conn: UpstreamConnection, rest: bytes) -> None:
        """After a 101 response to an upgrade request: ``conn`` is now a raw byte
        tunnel (``rest``: bytes that followed the response head).  By default the
        connection is reset: only upgrade requests expect a 101."""
        conn.abort()

    def on_sent(self) -> None:
        """The request was written to an upstream connection."""

    def on_interim(self, status: int, headers: list[tuple[bytes, bytes]]) -> None:
        """A 1xx response (not 101) before the response (proxy/expect.py relays it)."""


def _hash64(s: str) -> int:
    return int.from_bytes(hashlib.blake2b(s.encode(), digest_size=8).digest(), "big")


class _HeadResponseDone(Exception):
    """Raised from the parser callback to end a bodiless (HEAD) response early."""


class _BadResponseHead(Exception):
    """Raised from the parser callback: a response head over Envoy's limits, or a 101
    to a request that did not ask for an upgrade."""


class UpstreamConnection:  # an asyncio protocol (no base class: mypyc-compilable)
    __slots__ = (
        "pool", "endpoint", "transport", "parser", "exchange", "served", "_headers", "_names", "idle_since",
        "_got_bytes", "_framing", "_status", "_head", "closed", "paused", "reusable",
        "_in_head", "_head_bytes", "_head_raw", "_head_began",
    )

    def __init__(self, pool: ClusterPool, endpoint: Endpoint) -> None:
        self.pool = pool
        self.endpoint = endpoint
        self.transport: asyncio.Transport | None = None
        self.parser = httptools.HttpResponseParser(self)
        self.exchange: Exchange | None = None
        self.served = 0
        self._headers: list[tuple[bytes, bytes]] = []
        self._names: list[tuple[bytes, bytes]] = []  # headers.memo_name
        self._got_bytes = False
        self._framing = "close"
        self._status = 0
        self._head = False
        self.closed = False
        self.paused = False
        self.idle_since = 0.0
        self.reusable = True  # False: a request was answered before it was all sent (expect.py)
        self._in_head = False  # a response head is being parsed
        self._head_bytes = 0  # its bytes, as parsed
        self._head_raw = 0  # bytes of the reads since it began (what llhttp may buffer)
        self._head_began = False  # it began in the current read

    # -- asyncio.Protocol
    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = transport  # type: ignore[assignment]

    def data_received(self, data: bytes) -> None:
        self._got_bytes = True
        self._head_began = False
        try:
            self.parser.feed_data(data)
            if self._in_head:
                # an unfinished head after a whole read: bound what llhttp buffers
                if not self._head_began:
                    self._head_raw += len(data)
                if self._head_raw > MAX_RESPONSE_HEADER_BYTES:
                    self._fail(PROTOCOL_ERROR, "UPE")
                    return
            ex = self.exchange
            if ex is not None:
                ex.on_data_end()
        except _HeadResponseDone:
            self._finish(self.parser.should_keep_alive())
            self.parser = httptools.HttpResponseParser(self)
        except httptools.HttpParserCallbackError as exc:
            if isinstance(exc.__context__, _HeadResponseDone):
                self._finish(True)
                self.parser = httptools.HttpResponseParser(self)
            else:
                self._fail(PROTOCOL_ERROR, "UPE")
        except httptools.HttpParserUpgrade as up:
            ex = self.exchange
            if self._status != 101 or ex is None:
                self._fail(PROTOCOL_ERROR, "UPE")
                return
            self.exchange = None
            ex.on_upgraded(self, data[up.args[0]:])
        except httptools.HttpParserError:
            self._fail(PROTOCOL_ERROR, "UPE")

    def eof_received(self) -> bool:
        return False

    def connection_lost(self, exc: Exception | None) -> None:
        self.closed = True
        ex = self.exchange
        self.pool.connection_closed(self)
        if ex is None:
            return
        if self._status and self._framing == "close":
            self.exchange = None
            ex.on_complete()  # read-until-close response ends with the connection
            return
        self.exchange = None
        if self._status:
            ex.on_reset(CONNECTION_TERMINATION, "UC")  # after the head: the client's stream is reset
        elif self._got_bytes:
            # closed in the middle of a response head: Envoy's codec fails to finish parsing it
            self.pool.stats.upstream_cx_protocol_error += 1
            ex.on_reset(PROTOCOL_ERROR, "UPE")
        else:
            ex.on_reset(CONNECTION_TERMINATION, "UC")

    def pause_writing(self) -> None:  # upstream is slow to read our request body: nothing to do
        pass

    def resume_writing(self) -> None:
        pass

    # -- httptools callbacks
    def on_message_begin(self) -> None:
        self._in_head = True
        self._head_began = True
        self._head_raw = 0
        self._head_bytes = STATUS_LINE_OVERHEAD

    def on_status(self, reason: bytes) -> None:
        self._head_bytes += len(reason)

    def on_header(self, name: bytes, value: bytes) -> None:
        name = memo_name(self._names, len(self._headers), name)  # lower-case, as Envoy forwards them
        self._headers.append((name, value))
        self._head_bytes += len(name) + len(value) + HEADER_LINE_OVERHEAD
        if self._head_bytes > MAX_RESPONSE_HEADER_BYTES or len(self._headers) > MAX_HEADERS_COUNT:
            raise _BadResponseHead
        n = len(name)
        if n == 14 and self._framing == "close" and name == b"content-length":
            self._framing = "length"
        elif n == 17 and name == b"transfer-encoding" and b"chunked" in value.lower():
            self._framing = "chunked"

    def on_headers_complete(self) -> None:
        self._in_head = False
        status = self.parser.get_status_code()
        if 100 <= status < 200 and status != 101:
            interim = strip_bodiless_framing(self._headers)  # raises: a protocol error
            self._headers = []
            self._framing = "close"
            ex = self.exchange
            if ex is not None:
                ex.on_interim(status, interim)
            return
        if status == 101 and (self.exchange is None or not self.exchange.upgrading()):
            raise _BadResponseHead  # a protocol switch nobody asked for: protocol error
        self._status = status
        if self._head or status == 204 or status == 304:
            self._framing = "none"
            if status == 204:  # Envoy's codec: no content-length on a 204 (0 removed, others rejected)
                self._headers = strip_bodiless_framing(self._headers)
        framing = self._framing
        ex = self.exchange
        if ex is not None:
            ex.on_headers(status, self._headers, framing)
        if self._head:
            raise _HeadResponseDone

    def on_body(self, body: bytes) -> None:
        ex = self.exchange
        if ex is not None:
            ex.on_body(body)

    def on_message_complete(self) -> None:
        if self._status == 0 or self._status == 101:  # end of a 1xx interim response; an upgrade
            return
        self._finish(self.parser.should_keep_alive())

    # -- driving
    def send(self, exchange: Exchange, payload: tuple[bytes, ...]) -> None:
        self.exchange = exchange
        exchange.upstream_conn = self
        self._headers = []
        self._got_bytes = False
        self._status = 0
        self._framing = "close"
        self._head = exchange.method == "HEAD"
        assert self.transport is not None
        if len(payload) == 1:
            self.transport.write(payload[0])
        else:
            self.transport.writelines(payload)
        exchange.on_sent()

    def _finish(self, keep_alive: bool) -> None:
        ex = self.exchange
        self.exchange = None
        self.served += 1
        if self.closed and ex is None:
            return  # reset while its response was parsed: the pool has let go of it
        self.pool.release(self, keep_alive)
        if ex is not None:
            ex.on_complete()

    def _fail(self, reason: str, flag: str) -> None:
        ex = self.exchange
        if flag == "UPE":
            self.pool.stats.upstream_cx_protocol_error += 1
        self.abort()
        if ex is not None:
            ex.on_reset(reason, flag)

    def abort(self) -> None:
        """Reset the connection (timeout, downstream gone, protocol error)."""
        if not self.closed and self.transport is not None:
            self.closed = True
            self.transport.abort()
            self.pool.connection_closed(self, local=True)
        self.exchange = None

    def pause_reading(self) -> None:
        if not self.paused and self.transport is not None and not self.closed:
            self.paused = True
            self.transport.pause_reading()

    def resume_reading(self) -> None:
        if self.paused and self.transport is not None and not self.closed:
            self.paused = False
            self.transport.resume_reading()


class ClusterPool:
    """Connections, circuit breakers and load balancing for one cluster."""

    def __init__(self, cluster: Cluster, stats: ClusterStats, rng: random.Random,
                 loop: asyncio.AbstractEventLoop) -> None:
        self.cluster = cluster
        self.stats = stats
        self.rng = rng
        self.loop = loop
        self.idle: dict[Endpoint, list[UpstreamConnection]] = {}
        self.connections: set[UpstreamConnection] = set()
        self.connecting = 0
        self.active_rq = 0
        self.pending: collections.deque[tuple[Endpoint, Exchange, tuple[bytes, ...]]] = (
            collections.deque())
        self._rr = 0
        self.endpoint_active: dict[Endpoint, int] = {}
        self._ring: tuple[list[int], list[Endpoint]] | None = None
        self.retry_active = 0  # outstanding retries (max_retries circuit breaker)
        self.connect_failed_at: dict[Endpoint, float] = {}  # last failed connect (shadow fast-fail)
        self.ejected: dict[Endpoint, float] = {}  # host -> loop time it returns
        self.consecutive_5xx: dict[Endpoint, int] = {}
        self.consecutive_gw: dict[Endpoint, int] = {}
        self.eject_times: dict[Endpoint, int] = {}
        cb = cluster.circuit_breakers
        self.max_connections = cb.max_connections
        self.max_pending = cb.max_pending_requests
        self.max_requests = cb.max_requests
        self.tasks = TaskSet(loop)  # connection attempts in progress; cancelled by close()
        self.closed = False

    # -- load balancing
    def pick(self, exclude: Endpoint | None = None, hash_key: str | None = None) -> Endpoint | None:
        """Choose an endpoint: outlier-ejected hosts are skipped (unless the healthy share
        falls under the panic threshold, Istio's minHealthPercent), then the cluster's
        load-balancing policy picks; ``exclude`` is the previous attempt's host
        (Envoy's previous_hosts retry predicate)."""
        eps = self.cluster.endpoints
        if self.ejected:
            eps = self._healthy(eps)
        n = len(eps)
        if n == 0:
            return None
        if n == 1:
            return eps[0]
        policy = self.cluster.lb_policy
        if policy == "RING_HASH" and hash_key is not None:
            return self._ring_pick(hash_key, eps)
        candidates = [e for e in eps if e is not exclude] or list(eps)
        if policy == "RANDOM" or policy == "RING_HASH":
            return self.rng.choice(candidates)
        if policy == "LEAST_REQUEST":
            # Envoy's default: power of two random choices, fewer active requests wins
            a, b = self.rng.choice(candidates), self.rng.choice(candidates)
            return a if self.endpoint_active.get(a, 0) <= self.endpoint_active.get(b, 0) else b
        self._rr = (self._rr + 1) % len(candidates)
        return candidates[self._rr]

    # -- consistent hashing (Istio consistentHash -> Envoy RING_HASH)
    def _ring_pick(self, key: str, eps: tuple[Endpoint, ...]) -> Endpoint:
        ring = self._ring
        if ring is None:
            points: list[tuple[int, Endpoint]] = []
            all_eps = self.cluster.endpoints
            per_host = max(1, 1024 // len(all_eps))
            for e in all_eps:
                for i in range(per_host):
                    points.append((_hash64(f"{e.host_port}_{i}"), e))
            points.sort(key=lambda p: p[0])
            ring = self._ring = ([p[0] for p in points], [p[1] for p in points])
        hashes, owners = ring
        i = bisect.bisect_left(hashes, _hash64(key))
        allowed = set(map(id, eps))
        for k in range(len(owners)):
            e = owners[(i + k) % len(owners)]
            if id(e) in allowed:
                return e
        return eps[0]

    # -- outlier detection (consecutive 5xx / gateway errors, ejection with backoff)
    def _healthy(self, eps: tuple[Endpoint, ...]) -> tuple[Endpoint, ...]:
        now = self.loop.time()
        for e, until in list(self.ejected.items()):
            if now >= until:
                del self.ejected[e]
                self.stats.outlier_detection_ejections_active -= 1
        if not self.ejected:
            return eps
        healthy = tuple(e for e in eps if e not in self.ejected)
        od = self.cluster.outlier_detection
        if od is not None and od.min_health_percent and eps and (
                100 * len(healthy) / len(eps) < od.min_health_percent):
            return eps  # panic mode: balance over every host
        return healthy

    def record_outcome(self, endpoint: Endpoint, status: int) -> None:
        """Feed one upstream result (HTTP status, or 503 for a local connect failure)
        to outlier detection."""
        od = self.cluster.outlier_detection
        if od is None:
            return
        if status >= 500:
            n5 = self.consecutive_5xx[endpoint] = self.consecutive_5xx.get(endpoint, 0) + 1
            gw = 0
            if status in (502, 503, 504):
                gw = self.consecutive_gw[endpoint] = self.consecutive_gw.get(endpoint, 0) + 1
            else:
                self.consecutive_gw.pop(endpoint, None)
            if od.consecutive_5xx and n5 >= od.consecutive_5xx:
                self._eject(endpoint, od)
            elif od.consecutive_gateway_failure and gw >= od.consecutive_gateway_failure:
                self._eject(endpoint, od)
        else:
            self.consecutive_5xx.pop(endpoint, None)
            self.consecutive_gw.pop(endpoint, None)

    def _eject(self, endpoint: Endpoint, od: OutlierDetectionConfig) -> None:
        self.consecutive_5xx.pop(endpoint, None)
        self.consecutive_gw.pop(endpoint, None)
        if endpoint in self.ejected:
            return
        total = len(self.cluster.endpoints)
        allowed = max(1, total * od.max_ejection_percent // 100)  # at least one host
        if len(self.ejected) >= allowed:
            return
        times = self.eject_times[endpoint] = self.eject_times.get(endpoint, 0) + 1
        duration = min(od.base_ejection_time * times, max(od.base_ejection_time, 300.0))
        self.ejected[endpoint] = self.loop.time() + duration
        st = self.stats
        st.outlier_detection_ejections_active += 1
        st.outlier_detection_ejections_enforced_total += 1
        st.outlier_detection_ejections_enforced_consecutive_5xx += 1

    # -- requests
    def submit(self, endpoint: Endpoint, exchange: Exchange, payload: tuple[bytes, ...]) -> bool:
        """Start a request.  Returns False on circuit-breaker overflow (nothing sent)."""
        st = self.stats
        if self.active_rq + len(self.pending) >= self.max_requests:
            st.upstream_rq_pending_overflow += 1
            return False
        idle = self.idle.get(endpoint)
        while idle:
            conn = idle.pop()
            if conn.closed:
                continue
            if monotonic() - conn.idle_since > self.cluster.idle_timeout:
                conn.abort()  # Istio connectionPool idleTimeout (default 1 h)
                continue
            self._start(conn, exchange, payload)
            return True
        if len(self.pending) >= self.max_pending:
            st.upstream_rq_pending_overflow += 1
            return False
        st.upstream_rq_pending_total += 1
        self.pending.append((endpoint, exchange, payload))
        if len(self.connections) + self.connecting < self.max_connections:
            self._connect(endpoint)
        else:
            st.upstream_cx_overflow += 1
        return True

    def cancel(self, exchange: Exchange) -> None:
        """Drop a request still waiting in the pending queue."""
        for item in self.pending:
            if item[1] is exchange:
                self.pending.remove(item)
                return

    def _start(self, conn: UpstreamConnection, exchange: Exchange,
               payload: tuple[bytes, ...]) -> None:
        self.active_rq += 1
        self.stats.upstream_rq_total += 1
        self.endpoint_active[conn.endpoint] = self.endpoint_active.get(conn.endpoint, 0) + 1
        conn.send(exchange, payload)

    def _connect(self, endpoint: Endpoint) -> None:
        if self.closed:
            return
        self.connecting += 1
        self.tasks.spawn(self._open(endpoint))

    async def _open(self, endpoint: Endpoint) -> None:
        st = self.stats
        try:
            _, conn = await asyncio.wait_for(
                self.loop.create_connection(lambda: UpstreamConnection(self, endpoint),  # type: ignore[arg-type,type-var]
                                            endpoint.address, endpoint.port),
                self.cluster.connect_timeout,
            )
        except (TimeoutError, OSError) as exc:
            self.connecting -= 1
            st.upstream_cx_connect_fail += 1
            timed_out = isinstance(exc, asyncio.TimeoutError)
            if timed_out:
                st.upstream_cx_connect_timeout += 1
            self.connect_failed_at[endpoint] = self.loop.time()
            self._fail_pending(endpoint, CONNECTION_TIMEOUT if timed_out else REMOTE_CONNECTION_FAILURE)
            return
        self.connecting -= 1
        if self.closed:  # closed while connecting: the connection must not join a dead pool
            conn.closed = True
            if conn.transport is not None:
                conn.transport.abort()
            return
        if self.connect_failed_at:
            self.connect_failed_at.pop(endpoint, None)
        st.upstream_cx_total += 1
        st.upstream_cx_active += 1
        self.connections.add(conn)
        self._dispatch(conn)

    def _fail_pending(self, endpoint: Endpoint, reason: str) -> None:
        # Envoy fails the requests that were waiting for this connection attempt
        for item in list(self.pending):
            if item[0] == endpoint:
                self.pending.remove(item)
                self.stats.upstream_rq_pending_failure_eject += 1
                item[1].on_reset(reason, "UF")
                break

    def _dispatch(self, conn: UpstreamConnection) -> None:
        """Give an available connection to the first pending request for its endpoint."""
        if self.pending:
            for item in self.pending:
                if item[0] is conn.endpoint:
                    self.pending.remove(item)
                    self._start(conn, item[1], item[2])
                    return
            if len(self.connections) + self.connecting <= self.max_connections:
                # waiting requests are for another endpoint: trade this connection for one there
                conn.abort()  # connection_closed() opens one for the first pending request
                return
        conn.idle_since = monotonic()
        idle = self.idle.get(conn.endpoint)
        if idle is None:
            self.idle[conn.endpoint] = [conn]
        else:
            idle.append(conn)

    def release(self, conn: UpstreamConnection, keep_alive: bool) -> None:
        self._request_done(conn.endpoint)
        limit = self.cluster.max_requests_per_connection
        if not keep_alive or conn.closed or not conn.reusable or (limit and conn.served >= limit):
            conn.abort()
            return
        self._dispatch(conn)

    def _request_done(self, endpoint: Endpoint) -> None:
        self.active_rq -= 1
        self.endpoint_active[endpoint] = self.endpoint_active.get(endpoint, 1) - 1

    def connection_closed(self, conn: UpstreamConnection, local: bool = False) -> None:
        if conn not in self.connections:
            return
        self.connections.discard(conn)
        st = self.stats
        st.upstream_cx_active -= 1
        st.upstream_cx_destroy += 1
        if local:
            st.upstream_cx_destroy_local += 1
        else:
            st.upstream_cx_destroy_remote += 1
        if conn.exchange is not None:
            st.upstream_cx_destroy_with_active_rq += 1
            self._request_done(conn.endpoint)
        idle = self.idle.get(conn.endpoint)
        if idle and conn in idle:
            idle.remove(conn)
        if self.pending and len(self.connections) + self.connecting < self.max_connections:
            self._connect(self.pending[0][0])

    def close(self) -> None:
        """Reset every connection and cancel the connection attempts in progress; a
        closed pool opens no connection any more."""
        self.closed = True
        self.tasks.close()
        for conn in list(self.connections):
            conn.abort()
        self.idle.clear()
        self.pending.clear()
