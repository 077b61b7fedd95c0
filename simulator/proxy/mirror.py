"""Fire-and-forget shadow copies (Envoy request_mirror_policies).

Theory of operation
-------------------
``ShadowDispatcher.submit`` is called synchronously by the primary's stream (stream.py)
for each mirror policy that sampled in, once the primary's request was handed to an
upstream connection (``Stream.release_shadows``: never for a primary not sent), with a
``ShadowRequest``: a plain value holding what the copy is made of (the primary's head
pieces, body, ids, timeout), so that the dispatcher knows nothing of the stream or the
proxy and can be driven alone (tests/proxy/test_shadow_dispatch.py).  It builds the
copy exactly as Envoy 1.40's async client does (see docs/mirroring.md):

* the primary's headers *after* route processing (rewrites, header operations,
  ``x-envoy-original-path``), the same ``x-request-id``;
* Host with ``-shadow`` inserted before the port (unless the suffix is off);
* ``x-envoy-expected-rq-timeout-ms`` = the route's *global* timeout;
* ``x-envoy-internal: true`` appended, then the proxy's own address appended to
  ``x-forwarded-for`` (in place when the header exists);
* the whole body; no retries; the route timeout counted from dispatch.  A route without a
  timeout (Istio's default) still bounds a copy's life: DEFAULT_SHADOW_TIMEOUT (15 s,
  ``--shadow-timeout``), where Envoy waits for ever (docs/deviations.md), so a mirror that
  takes copies and never answers cannot hold the in-flight cap for good.

It never blocks and never delays the primary: the copy goes through the mirror
cluster's own pool (its circuit breakers apply), its response is read and
discarded, and its outcome only shows in the mirror cluster's ``internal.``
stats and the access log.  In-flight copies are capped by count and by body
bytes; a copy over the cap is dropped and counted in
``mirrorsim.shadow_dropped``, so a slow or dead mirror cannot exhaust memory; and for
half a second after a connection to a mirror endpoint failed, copies to it fail at
once (503 UF, ``mirrorsim.shadow_fast_failed``) instead of each trying to connect.
"""

from __future__ import annotations

import time
from typing import TYPE_CHECKING, Final, Protocol

from simulator.core.envoy_config import MirrorPolicy
from simulator.core.grpc_timeout import to_grpc_timeout
from simulator.core.table import Forward
from simulator.proxy.accesslog import AccessLog, protocol
from simulator.proxy.events import DROPPED, FAILED, UNKNOWN_CLUSTER, EventTap, ShadowRecord, shadow_fate
from simulator.proxy.stats import Stats
from simulator.proxy.upstream import ClusterPool, Exchange, UpstreamConnection

if TYPE_CHECKING:
    import asyncio

    from simulator.core.envoy_config import Endpoint
    from simulator.proxy.diff import PrimaryCapture, Side

# C statics in the compiled build (a from-import is a module-dict lookup at every call)
wall_time: Final = time.time
monotonic: Final = time.monotonic
DEFAULT_MAX_INFLIGHT: Final = 1024
# After a failed connection to a mirror endpoint, copies to it fail at once for this long
# (docs/deviations.md): Envoy tries to connect for every copy.
SHADOW_FAST_FAIL_WINDOW: Final = 0.5
DEFAULT_MAX_BYTES: Final = 256 * 1024 * 1024
# The life of a shadow copy on a route without a timeout (Envoy's own default route timeout;
# Istio disables it, and Envoy's shadow then has none: docs/deviations.md).
DEFAULT_SHADOW_TIMEOUT: Final = 15.0
# Copies to a mirror whose answers take longer than this (moving average) are paced
# to max_inflight / latency per second (ShadowPacer); a fast mirror never is.
PACE_ABOVE_LATENCY: Final = 0.05
PACE_BURST: Final = 16.0


class PoolSource:
    """Where the dispatcher gets the pool of a mirror cluster (server.Proxy, which makes
    pools as they are first needed).  A native base class, not a callable: the compiled
    build calls it without going through Python."""

    def pool(self, cluster_name: str) -> ClusterPool | None:
        raise NotImplementedError


class UpgradeCopies(Protocol):
    """The tunnel of an upgrade request (tunnel.Tunnel), as its copies report to it: after
    its 101 a copy gets the client's bytes."""

    def mirror_started(self) -> None: ...

    def mirror_settled(self) -> None: ...

    def add_mirror(self, conn: UpstreamConnection) -> None: ...


class ShadowRequest:
    """What one shadow copy is made of, from its primary: a plain value, never changed
    once made.  ``head`` is the primary's request line with host and forwarded headers
    (``lines`` of ``heads.request_head``), ``muts`` the route's header operations, ``tail`` the
    framing; ``payload`` the body as sent (framed), ``body_len`` its length.  ``timeout``
    is the primary's global timeout (the route's, or a gRPC request's; 0: none) and
    ``grpc_timeout_added`` says the primary got a grpc-timeout it did not have;
    ``attempt_line`` is where the client's x-envoy-attempt-count was in ``head`` (-1:
    none).  ``tunnel``: the upgrade's tunnel, for a WebSocket request; ``diff``: with ``run
    --diff``, the primary's capture that each copy's response is compared with (diff.py)."""

    __slots__ = ("forward", "policy", "method", "version", "head", "muts", "tail", "payload", "body_len",
                 "request_id", "xff", "user_agent", "timeout", "grpc_timeout_added", "attempt_line", "tunnel",
                 "diff")

    def __init__(self, forward: Forward, policy: MirrorPolicy, method: str, version: str,
                 head: list[bytes], muts: bytes, tail: bytes, payload: tuple[bytes, ...], body_len: int,
                 request_id: str | None, xff: str | None, user_agent: str | None, timeout: float,
                 grpc_timeout_added: bool, attempt_line: int, tunnel: UpgradeCopies | None,
                 diff: PrimaryCapture | None = None) -> None:
        self.forward: Final = forward
        self.policy: Final = policy
        self.method: Final = method
        self.version: Final = version
        self.head: Final = head  # not changed: submit() copies it
        self.muts: Final = muts
        self.tail: Final = tail
        self.payload: Final = payload
        self.body_len: Final = body_len
        self.request_id: Final = request_id
        self.xff: Final = xff
        self.user_agent: Final = user_agent
        self.timeout: Final = timeout
        self.grpc_timeout_added: Final = grpc_timeout_added
        self.attempt_line: Final = attempt_line
        self.tunnel: Final = tunnel
        self.diff: Final = diff


class ShadowDispatcher:
    """Sends shadow copies through the pools ``pools`` gives (the proxy's, by cluster
    name), counting in ``stats``, logging to ``access_log`` and telling ``tap``'s sink (the
    live page, events.py); ``local_address`` is appended to x-forwarded-for (Envoy's local
    address)."""

    def __init__(self, pools: PoolSource, stats: Stats, access_log: AccessLog,
                 loop: asyncio.AbstractEventLoop, local_address: str, *, tap: EventTap | None = None,
                 max_inflight: int = DEFAULT_MAX_INFLIGHT, max_bytes: int = DEFAULT_MAX_BYTES,
                 default_timeout: float = DEFAULT_SHADOW_TIMEOUT) -> None:
        self.pools = pools
        self.stats = stats
        self.access_log = access_log
        self.loop = loop
        self.local_address = local_address
        self.tap = tap if tap is not None else EventTap()
        self.max_inflight = max_inflight
        self.max_bytes = max_bytes
        self.default_timeout = default_timeout  # a copy's life when its route has no timeout (0: none)
        self.inflight = 0
        self.inflight_bytes = 0
        self.local_xff = local_address.encode()
        self.pacers: dict[str, ShadowPacer] = {}  # mirror cluster -> its pace
        self._idle_waiters: list[asyncio.Future[None]] = []
        # copies living by default_timeout -> their deadline (time.monotonic()), in the
        # order they started: one timer for all of them (_sweep), not one per copy
        self.bounded: dict[ShadowExchange, float] = {}
        self._sweep_timer: asyncio.TimerHandle | None = None

    def submit(self, req: ShadowRequest) -> None:
        """Send one shadow copy.

        The ways a bad mirror shows up under load are the cheapest paths here: a copy
        over the in-flight cap, or over the slow mirror's pace, is only counted; a copy
        to an endpoint that refused a connection a moment ago is failed and counted
        without building its request."""
        stats = self.stats
        policy = req.policy
        pool = self.pools.pool(policy.cluster)
        if pool is None:
            # Envoy: "shadow cluster 'X' does not exist", debug log only, no stat
            stats.inc("mirrorsim.shadow_unknown_cluster")
            if req.diff is not None:
                req.diff.refused(policy.cluster, "unknown_cluster")
            if self.tap.sink is not None:
                self.tell_unsent(req, UNKNOWN_CLUSTER)
            return
        body_len = req.body_len
        if self.inflight >= self.max_inflight or self.inflight_bytes + body_len > self.max_bytes:
            stats.inc("mirrorsim.shadow_dropped")
            if req.diff is not None:
                req.diff.refused(policy.cluster, "copy_dropped")
            if self.tap.sink is not None:
                self.tell_unsent(req, DROPPED)
            return
        pacer = self.pacers.get(policy.cluster)
        if pacer is None:
            pacer = self.pacers[policy.cluster] = ShadowPacer()
        elif pacer.latency > PACE_ABOVE_LATENCY and not pacer.admit(pool.loop.time(), self.max_inflight):
            stats.inc("mirrorsim.shadow_dropped")
            if req.diff is not None:
                req.diff.refused(policy.cluster, "copy_dropped")
            if self.tap.sink is not None:
                self.tell_unsent(req, DROPPED)
            return
        stats.inc("http.async-client.rq_total")
        endpoint = pool.pick()
        if endpoint is not None and pool.connect_failed_at and self._unreachable(pool, endpoint):
            # a dead mirror must not cost a connection attempt per request (each costs
            # more CPU than proxying the primary): the copy fails at once, as it would;
            # only counted (docs/deviations.md)
            st = pool.stats
            st.upstream_rq_total += 1
            st.response(503, True)
            stats.inc("mirrorsim.shadow_fast_failed")
            if req.diff is not None:
                req.diff.refused(policy.cluster, "fast_failed")
            if self.tap.sink is not None:
                self.tell_unsent(req, FAILED, 503, "UF")
            return
        d = req.forward
        authority = d.shadow_authority(policy)
        lines = list(req.head)
        lines[0] = b"%s %s HTTP/1.1\r\nhost: %s\r\n" % (
            req.method.encode(), d.path.encode("latin-1"), authority.encode("latin-1"))
        xff_done = False
        if req.xff is not None:
            for i in range(1, len(lines)):
                if lines[i].startswith(b"x-forwarded-for:"):
                    lines[i] = lines[i][:-2] + b"," + self.local_xff + b"\r\n"
                    xff_done = True
                    break
        timeout = req.timeout
        if timeout > 0:  # the route's, or a gRPC request's (stream.Stream._grpc_timeout)
            ms = round(timeout * 1000)
            lines.append(b"x-envoy-expected-rq-timeout-ms: %d\r\n" % ms)
            if req.grpc_timeout_added:  # Envoy added grpc-timeout to the request the copy is made of
                lines.append(b"grpc-timeout: %s\r\n" % to_grpc_timeout(ms).encode())
        if req.attempt_line < 0:
            lines.append(b"x-envoy-attempt-count: 1\r\n")
        else:  # in place of the client's, as on the primary
            lines.insert(req.attempt_line, b"x-envoy-attempt-count: 1\r\n")
        lines.append(req.muts)
        lines.append(b"x-envoy-internal: true\r\n")
        if not xff_done:
            lines.append(b"x-forwarded-for: " + self.local_xff + b"\r\n")
        lines.append(req.tail)
        self.inflight += 1
        self.inflight_bytes += body_len
        ShadowExchange(self, pool, pacer, req, authority, (b"".join(lines), *req.payload)).start(endpoint)

    def tell_unsent(self, req: ShadowRequest, fate: str, status: int = 0, flags: str = "-") -> None:
        """The live page's record of a copy not sent (events.py)."""
        sink = self.tap.sink
        if sink is not None:
            d = req.forward
            sink.shadow_done(ShadowRecord(wall_time(), req.method, d.original_path or d.path, req.request_id,
                                          req.policy.cluster, d.shadow_authority(req.policy), status, flags, 0.0,
                                          fate))

    def _unreachable(self, pool: ClusterPool, endpoint: Endpoint) -> bool:
        """Whether a copy to ``endpoint`` fails at once: a connection to it failed less
        than SHADOW_FAST_FAIL_WINDOW ago, or the one attempt let through after that
        window (the probe) has not finished yet.  A successful connection clears it."""
        t = pool.connect_failed_at.get(endpoint)
        if t is None:
            return False
        now = pool.loop.time()
        if now - t < SHADOW_FAST_FAIL_WINDOW:
            return True
        # this copy is the probe: until its connection attempt ends, the others fail
        pool.connect_failed_at[endpoint] = now
        return False

    def bound(self, ex: ShadowExchange) -> None:
        """Reset ``ex`` (on_timeout) default_timeout from now unless it ends first.  The
        copies share one timer, set for the oldest one's deadline: with one timeout for
        all, they expire in the order they started (a call_later per copy, made and
        cancelled for nearly every copy, cost more than the rest of the dispatch)."""
        timeout = self.default_timeout
        self.bounded[ex] = monotonic() + timeout
        if self._sweep_timer is None:
            self._sweep_timer = self.loop.call_later(timeout, self._sweep)

    def _sweep(self) -> None:
        self._sweep_timer = None
        now = monotonic()
        expired: list[ShadowExchange] = []
        for ex, deadline in self.bounded.items():
            if deadline > now:
                break
            expired.append(ex)
        for ex in expired:
            ex.on_timeout()  # takes it out of self.bounded
        if self.bounded and self._sweep_timer is None:
            for deadline in self.bounded.values():  # the oldest copy's
                self._sweep_timer = self.loop.call_later(max(0.0, deadline - now), self._sweep)
                break

    def done(self, nbytes: int) -> None:
        self.inflight -= 1
        self.inflight_bytes -= nbytes
        if self.inflight == 0 and self._idle_waiters:
            for f in self._idle_waiters:
                if not f.done():
                    f.set_result(None)
            self._idle_waiters.clear()

    async def drain(self, timeout: float | None = None) -> None:
        """Wait until no shadow copy is in flight (for shutdown and tests)."""
        import asyncio

        if self.inflight == 0:
            return
        fut: asyncio.Future[None] = self.loop.create_future()
        self._idle_waiters.append(fut)
        await asyncio.wait_for(fut, timeout)


class ShadowPacer:
    """The pace of copies to one mirror cluster.  A mirror whose copies take ``L``
    seconds can hold ``max_inflight`` copies only at ``max_inflight / L`` copies per
    second; when ``L`` (a moving average) is over PACE_ABOVE_LATENCY, copies are
    admitted at that rate by a token bucket.  Without it, a slow mirror frees its
    slots in bursts (its answers echo the moments the copies were sent) and every
    request of a burst sends a copy, so the primaries of that moment pay for all of
    them at once."""

    __slots__ = ("latency", "tokens", "refill")

    def __init__(self) -> None:
        self.latency = 0.0
        self.tokens = PACE_BURST
        self.refill = 0.0

    def observe(self, seconds: float) -> None:
        """One copy's time to its answer (or to its timeout)."""
        self.latency += (seconds - self.latency) * 0.125

    def admit(self, now: float, max_inflight: int) -> bool:
        tokens = self.tokens + (now - self.refill) * (max_inflight / self.latency)
        self.refill = now
        if tokens > PACE_BURST:
            tokens = PACE_BURST
        if tokens < 1.0:
            self.tokens = tokens
            return False
        self.tokens = tokens - 1.0
        return True


class ShadowExchange(Exchange):
    """One shadow copy in flight (the upstream side's Exchange)."""

    __slots__ = ("dispatcher", "pool", "pacer", "payload",
                 "nbytes", "timer", "status", "finished", "start_time", "authority", "path",
                 "request_id", "xff", "user_agent", "timeout", "upstream_host", "bytes_in",
                 "upstream_time", "version", "tunnel", "bounded", "diff")

    def __init__(self, dispatcher: ShadowDispatcher, pool: ClusterPool, pacer: ShadowPacer, req: ShadowRequest,
                 authority: str, payload: tuple[bytes, ...]) -> None:
        super().__init__(req.method, True)
        self.dispatcher = dispatcher
        self.pool = pool
        self.pacer = pacer
        self.payload = payload
        self.nbytes = req.body_len
        self.timer: asyncio.TimerHandle | None = None
        self.bounded = False  # in dispatcher.bounded (its life is the default timeout)
        self.status = 0
        self.finished = False
        self.start_time = wall_time()
        self.authority = authority
        d = req.forward
        self.path = d.original_path or d.path
        self.request_id = req.request_id
        self.xff = req.xff
        self.user_agent = req.user_agent
        self.timeout = req.timeout
        self.upstream_host = ""
        self.bytes_in = 0
        self.upstream_time = "-"
        self.version = req.version
        # an upgrade (WebSocket): after its 101 the copy gets the client's bytes (tunnel.py)
        self.tunnel: UpgradeCopies | None = req.tunnel
        if self.tunnel is not None:
            self.tunnel.mirror_started()
        # --diff: this copy's response, kept to compare with the primary's (diff.py)
        self.diff: Side | None = None if req.diff is None else req.diff.mirror(pool.cluster.name)

    def start(self, endpoint: Endpoint | None) -> None:
        pool = self.pool
        if endpoint is None:
            pool.stats.upstream_rq_total += 1
            self._end(503, "UH")
            return
        self.upstream_host = endpoint.host_port
        if self.timeout > 0:
            self.timer = self.dispatcher.loop.call_later(self.timeout, self.on_timeout)
        else:
            self.timeout = self.dispatcher.default_timeout
            if self.timeout > 0:
                self.bounded = True
                self.dispatcher.bound(self)
        if not pool.submit(endpoint, self, self.payload):
            self._end(503, "UO")

    # Exchange protocol
    def on_headers(self, status: int, headers: list[tuple[bytes, bytes]], framing: str) -> None:
        self.status = status
        conn = self.upstream_conn
        if conn is not None:
            self.pool.record_outcome(conn.endpoint, status)
        elapsed = wall_time() - self.start_time
        self.upstream_time = str(int(elapsed * 1000))
        self.pacer.observe(elapsed)
        if self.diff is not None:
            self.diff.on_headers(status, headers)

    def on_body(self, data: bytes) -> None:
        self.bytes_in += len(data)  # read and discarded (kept with --diff)
        if self.diff is not None:
            self.diff.on_body(data)

    def on_complete(self) -> None:
        self._end(self.status, "-")

    def on_reset(self, reason: str, flag: str) -> None:
        if self.status and flag != "UF":
            self._end(self.status, flag)
        else:
            self._end(502 if flag == "UPE" else 503, flag)

    def upgrading(self) -> bool:
        return self.tunnel is not None

    def on_upgraded(self, conn: UpstreamConnection, rest: bytes) -> None:
        t = self.tunnel
        self.tunnel = None
        self._end(101, "-")
        if t is None:
            conn.abort()
        else:
            t.add_mirror(conn)  # its bytes (``rest`` and after) are discarded

    def on_data_end(self) -> None:
        pass

    def on_timeout(self) -> None:
        self.timer = None
        if self.bounded:
            self.bounded = False
            self.dispatcher.bounded.pop(self, None)
        if self.finished:
            return
        self.pool.stats.upstream_rq_timeout += 1
        self.pacer.observe(self.timeout)
        conn = self.upstream_conn
        if conn is not None and conn.exchange is self:
            conn.abort()
        else:
            self.pool.cancel(self)
        self._end(504, "UT")

    def _end(self, status: int, flags: str) -> None:
        if self.finished:
            return
        self.finished = True
        if self.timer is not None:
            self.timer.cancel()
            self.timer = None
        elif self.bounded:
            self.bounded = False
            del self.dispatcher.bounded[self]
        if self.tunnel is not None:
            self.tunnel.mirror_settled()
            self.tunnel = None
        self.pool.stats.response(status, True)
        self.dispatcher.done(self.nbytes)
        if self.diff is not None:
            self.diff.ended(status, flags)
        dispatcher = self.dispatcher
        sink = dispatcher.tap.sink
        if sink is not None:  # the live page watches (events.py)
            sink.shadow_done(ShadowRecord(self.start_time, self.method, self.path, self.request_id,
                                          self.pool.cluster.name, self.authority, status, flags,
                                          wall_time() - self.start_time, shadow_fate(status, self.status, flags)))
        al = dispatcher.access_log
        if al.stream is not None:
            now = wall_time()
            local = dispatcher.local_address
            xff = f"{self.xff},{local}" if self.xff else local
            al.log(self.start_time, self.method, self.path, protocol(self.version), status, flags,
                   self.nbytes, self.bytes_in, int((now - self.start_time) * 1000),
                   self.upstream_time, xff, self.user_agent, self.request_id,
                   self.authority, self.upstream_host, self.pool.cluster.name)
