"""The forwarding half of one downstream request (``Forwarding``, the base of
``stream.Stream``): each attempt sent through the cluster's pool (``send_attempt``), the
route and per-try timers, retries as the route's policy says (core/retry_policy.py) with
Envoy's backoff and retry circuit breaker, the response streamed back as it arrives with
back-pressure both ways (the ``Exchange`` callbacks), the shadow copies released once the
primary is written (``release_shadows``: mirror.ShadowRequest values), local replies, and
the end (``finish``, which gives the body back and writes the access-log line in ``_log``:
the one place every request ends, a hook for per-request observers)."""

from __future__ import annotations

import asyncio
import time
from typing import TYPE_CHECKING, Final

from simulator.core.cors import set_lines as cors_set_lines
from simulator.core.envoy_config import Endpoint, RetryPolicy
from simulator.core.grpc_timeout import to_grpc_timeout
from simulator.core.matchers import parse_query
from simulator.core.retry_policy import retriable_per_try_timeout, retriable_reset, retriable_response
from simulator.core.table import Forward, LocalReply
from simulator.proxy import expect, header_ops, tunnel
from simulator.proxy.accesslog import protocol
from simulator.proxy.client import ClientConnection, DownstreamRequest
from simulator.proxy.events import RequestRecord
from simulator.proxy.headers import INLINE_RESPONSE, coalesce_inline, repeats_a_name
from simulator.proxy.heads import apply_response_mutations_str, local_reply_bytes, response_head
from simulator.proxy.mirror import ShadowRequest
from simulator.proxy.server import Proxy
from simulator.proxy.upstream import ClusterPool, Exchange, UpstreamConnection

if TYPE_CHECKING:
    from simulator.proxy.diff import PrimaryCapture

UPSTREAM_RESET_PREFIX: Final = "upstream connect error or disconnect/reset before headers. reset reason: "
UPSTREAM_RETRIED_PREFIX: Final = ("upstream connect error or disconnect/reset before headers. "
                           "retried and the latest reset reason: ")
# a C static in the compiled build (a from-import is a module-dict lookup at every call)
wall_time: Final = time.time


class Forwarding(Exchange):
    """One downstream request once routed (stream.Stream runs it up to here): its attempts
    upstream, retries and timers, the response relayed, local replies, and its end."""

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

    def __init__(self, conn: ClientConnection, proxy: Proxy, req: DownstreamRequest) -> None:
        super().__init__(req.method, False)
        self.conn = conn
        self.proxy = proxy
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
        self.keep_alive = req.keep_alive and not proxy.draining
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
        req = self.req
        for policy in d.mirrors:
            shadows.submit(ShadowRequest(
                d, policy, req.method, req.version, base, self.head_muts, self.head_tail, self.payload,
                len(req.body), self.request_id, self.xff, self.user_agent, self.timeout, self.grpc_at == -1,
                self.attempt_line, self.tunnel, self.diff))
        if self.tunnel is not None:
            self.tunnel.copies_dispatched()

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
        self.abandon_attempt()
        d = self.decision
        assert isinstance(d, Forward)
        rp = d.retry_policy
        self._release_retry()
        if rp is not None and self.attempt <= rp.num_retries and retriable_per_try_timeout(rp) and self._try_retry(rp):
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
        retriable = rp is not None and retriable_response(rp, status, headers)
        if rp is not None and retriable and self.attempt <= rp.num_retries and self._try_retry(rp):
            # Envoy resets the upstream stream and tries again after a backoff
            self.abandon_attempt()
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
        mut = d.response_headers
        if mut.dynamic:
            mut = header_ops.response_mutations(self, mut, headers, status)
        chunked = framing == "chunked" or (framing == "close" and not self.head)
        self.chunked_out = chunked
        # Envoy times x-envoy-upstream-service-time from the request's end, which an upgrade lacks
        head = response_head(status, headers, mut, self.cors_lines, proxy.dates, now, ms,
                             self.tunnel is None, chunked, self.keep_alive)
        self.headers_sent = True
        self.bytes_sent = 0
        # held until the first body bytes or the end of this read, so a small response
        # leaves in one write, as Envoy's codec flushes once per read
        self.pending_head = head

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
        if rp is not None and self.attempt <= rp.num_retries and retriable_reset(rp, connect_failure) and \
                self._try_retry(rp):
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
            self.abandon_attempt()
        if self.headers_sent:
            self.flags = "UT"
            self.finish(False, abort=True)
            return
        if pool is not None:
            pool.stats.response(504, self.internal)
        self.local_reply(504, b"upstream request timeout", "UT")

    def abandon_attempt(self) -> None:
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
        self.give_body()
        self.cancel_timer()
        self.abandon_attempt()
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
                extra = apply_response_mutations_str(extra, mut)
        data = local_reply_bytes(self.proxy.dates, wall_time(), code, body, close=not self.keep_alive,
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
        self.give_body()
        self.cancel_timer()
        self._release_retry()
        self._log()
        if abort:
            self.conn.abort()
            self.conn.stream_done(self, False)
            return
        self.conn.stream_done(self, keep_alive)

    def give_body(self) -> None:
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
        req = self.req
        sink = proxy.tap.sink
        if sink is not None:  # the live page watches (events.py)
            sink.request_done(RequestRecord(req.start, req.method, self.log_path, self.authority, self.decision,
                                            self.response_code, flags, wall_time() - req.start, self.request_id))
        al = proxy.access_log
        if al.stream is None:
            return
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
