"""Upgrades (WebSocket), h2c, CONNECT and odd request targets, as Envoy 1.40's HCM treats
them on the listener Istio builds for a sidecar (``upgrade_configs: [{upgrade_type:
websocket}]``, no CONNECT config).  Observed on the real Envoy 1.40 (docs/mirroring.md,
"Upgrades"); the source is ``source/common/router/upstream_codec_filter.cc`` (the WebSocket
handshake) and ``conn_manager_impl.cc``.

Theory of operation
-------------------
* ``Connection: upgrade`` + ``Upgrade: websocket`` (any case): the request goes to its
  primary (and to its mirrors) with ``connection``, ``upgrade`` and ``content-length`` as
  sent; the route timeout and per-try timeout run until the response head.  The client's
  connection is closed after this request, whatever happens.
* The primary answers ``101``: the 101 head goes to the client (upstream headers, then
  ``date``/``server``; no ``x-envoy-upstream-service-time``), the timeouts stop, and from
  then on bytes flow both ways until either side closes; the other side is then closed
  (flag ``DC`` or ``UC``).  Client bytes sent before the 101 are held and sent after it.
* The primary answers >= 400: that response goes to the client as usual, then the
  connection closes.  Another status (200, 302...): Envoy sends a local reply with that
  status and the upstream's headers and no body, and resets the upstream.
* Each mirror gets the same upgrade request; if it answers 101, it receives every client
  byte (from the start) and its own bytes are discarded; it closes with the tunnel.
* ``Upgrade: h2c``: Envoy's codec drops the upgrade (and ``HTTP2-Settings`` and the
  Connection tokens) and serves the request as plain HTTP/1.1; llhttp stops at the upgrade,
  so the request head is parsed again without it.
* Any other upgrade: 403, no body, connection closed.  ``CONNECT``: 404 ``NR`` (no route
  matches CONNECT without a connect matcher), connection closed, not mirrored.  A target
  that is not a path (``OPTIONS *``): 404, flag ``-``.

Nothing here runs for an ordinary request: the hooks in stream.py are taken only when the
request carries ``Upgrade`` or a target not starting with ``/``; the h2c re-parse and the
switch of the client's connection to the tunnel are the parser's (downstream.py).  This
module knows the stream only as ``UpgradeStream`` (what it uses of it), so it sits below
stream.py.
"""

from __future__ import annotations

import asyncio
from time import time as wall_time
from typing import Final, Protocol

from simulator.core.envoy_config import Endpoint
from simulator.proxy.client import ClientConnection, DownstreamRequest
from simulator.proxy.headers import RESPONSE_HOP_BY_HOP, status_line
from simulator.proxy.server import Proxy
from simulator.proxy.upstream import ClusterPool, UpstreamConnection

# client bytes held for the primary before its 101, or for a mirror before its own
HOLD_LIMIT: Final = 1 << 20
_LOCAL_REPLY_SKIP: Final = RESPONSE_HOP_BY_HOP | {b"content-length"}


class UpgradeStream(Protocol):
    """What this module uses of a stream (stream.Stream)."""

    conn: ClientConnection
    proxy: Proxy
    tunnel: Tunnel | None
    pool: ClusterPool | None
    endpoint: Endpoint | None
    authority: str
    log_path: str
    request_id: str | None
    keep_alive: bool
    flags: str
    response_code: int
    bytes_sent: int
    headers_sent: bool
    done: bool
    internal: bool

    def local_reply(self, code: int, body: bytes, flags: str, extra: tuple[tuple[str, str], ...] = (),
                    content_type: str = "text/plain", *, early: bool = False) -> None: ...

    def finish(self, keep_alive: bool, abort: bool = False) -> None: ...

    def cancel_timer(self) -> None: ...

    def abandon_attempt(self) -> None: ...


def _has_upgrade_token(connection: str | None) -> bool:
    if connection is None:
        return False
    return any(t.strip().lower() == "upgrade" for t in connection.split(","))


def reject_target(stream: UpgradeStream, req: DownstreamRequest, target: str, authority: str) -> bool:
    """A request target that is not a path: CONNECT (404 NR, connection closed: Istio's
    sidecar routes have no connect matcher) or ``*`` and the like (404: Envoy's HCM
    serves relative paths only).  Returns whether the request was answered."""
    stream.authority = authority
    if req.method == "CONNECT":
        stream.log_path = "-"
        stream.request_id = stream.proxy.request_ids.next()
        stream.keep_alive = False
        stream.local_reply(404, b"", "NR")
        return True
    stream.log_path = target
    stream.local_reply(404, b"", "-", early=True)
    return True


def start_upgrade(stream: UpgradeStream, req: DownstreamRequest, hdrs: dict[str, str]) -> bool:
    """A request with an Upgrade header, before routing.  Returns False when it was
    answered here (an upgrade Envoy is not configured for: 403)."""
    if not _has_upgrade_token(hdrs.get("connection")):
        return True  # a plain request: Upgrade is dropped as hop-by-hop
    upgrade = req.upgrade
    kind = upgrade.strip().lower() if upgrade is not None else b""
    if kind == b"h2c":
        return True
    stream.keep_alive = False  # the request never ends: the connection closes after it
    if kind != b"websocket":
        stream.local_reply(403, b"", "-")
        return False
    stream.proxy.stats.inc("downstream_cx_upgrades_total")
    stream.tunnel = Tunnel(stream)
    return True


def upgrade_response(stream: UpgradeStream, status: int, headers: list[tuple[bytes, bytes]]) -> bool:
    """The primary's response head to an upgrade request.  Returns True when handled
    here (101, or a failed handshake below 400); >= 400 goes through the usual path."""
    if status >= 400:
        return False
    pool = stream.pool
    assert pool is not None
    if stream.endpoint is not None:
        pool.record_outcome(stream.endpoint, status)
    stream.cancel_timer()  # Envoy disables the route and per-try timeouts on the 101
    stream.response_code = status
    if status == 101:
        parts = [status_line(101)]
        for n, v in headers:
            if n != b"date" and n != b"server" and n != b"transfer-encoding":
                parts.append(b"%s: %s\r\n" % (n, v))
        parts.append(stream.proxy.dates.date_server_lines(wall_time()))
        parts.append(b"\r\n")
        stream.headers_sent = True
        stream.conn.write(b"".join(parts))
        return True
    # a failed handshake: Envoy replies with the status and headers, no body, and resets
    pool.stats.response(status, stream.internal)
    stream.abandon_attempt()
    extra = tuple((n.decode("latin-1"), v.decode("latin-1")) for n, v in headers
                  if n not in _LOCAL_REPLY_SKIP)
    stream.local_reply(status, b"", "-", extra)
    return True


class Tunnel:
    """The byte tunnel of one upgraded request: the client, the primary after its 101,
    and the mirrors after theirs."""

    def __init__(self, stream: UpgradeStream) -> None:
        self.stream = stream
        self.down: DownstreamEnd | None = None
        self.up: UpstreamEnd | None = None
        self.held: list[bytes] = []  # client bytes before the primary's 101
        self.held_bytes = 0
        # client bytes so far, for mirrors still waiting for their 101 (None: too many)
        self.history: list[bytes] | None = []
        self.history_bytes = 0
        self.mirrors_waiting = 0
        # the copies go out once the primary is sent (Stream.release_shadows): keep the
        # history for them until then
        self.copies_pending = True
        self.mirrors: list[MirrorEnd] = []
        self.closed = False
        transport = stream.conn.transport
        if transport is not None:
            end = transport.get_protocol()
            if isinstance(end, DownstreamEnd):  # pipelined: the client upgraded already
                self.attach_downstream(end)

    # -- the client
    def attach_downstream(self, end: DownstreamEnd) -> None:
        self.down = end
        end.tunnel = self
        if end.early:
            data = b"".join(end.early)
            end.early = []
            self.from_client(data)

    def from_client(self, data: bytes) -> None:
        up = self.up
        if up is not None:
            up.transport.write(data)
        else:
            self.held.append(data)
            self.held_bytes += len(data)
            if self.held_bytes > HOLD_LIMIT and self.down is not None:
                self.down.pause()  # wait for the 101 before reading more
        for m in self.mirrors:
            m.transport.write(data)
        history = self.history
        if history is not None and (self.mirrors_waiting or self.copies_pending):
            history.append(data)
            self.history_bytes += len(data)
            if self.history_bytes > HOLD_LIMIT:
                self.history = None  # mirrors that switch later are dropped

    def client_closed(self) -> None:
        if self.closed:
            return
        self.stream.flags = "DC"
        self.close()

    # -- the primary
    def upstream_switched(self, conn: UpstreamConnection, rest: bytes) -> None:
        transport = conn.transport
        if self.closed or transport is None:
            conn.abort()
            return
        self.up = UpstreamEnd(self, conn, transport)
        transport.set_protocol(self.up)  # type: ignore[arg-type]  # duck-typed protocol
        if self.held:
            transport.writelines(self.held)
            self.held = []
            self.held_bytes = 0
            if self.down is not None:
                self.down.resume()
        if rest:
            self.to_client(rest)

    def to_client(self, data: bytes) -> None:
        stream = self.stream
        stream.bytes_sent += len(data)
        stream.conn.write(data)

    def upstream_closed(self) -> None:
        if self.closed:
            return
        self.stream.flags = "UC"
        self.close()

    # -- mirrors (mirror.UpgradeCopies)
    def mirror_started(self) -> None:
        """A copy of the request was sent: it may switch too."""
        self.mirrors_waiting += 1

    def add_mirror(self, conn: UpstreamConnection) -> None:
        self.mirrors_waiting -= 1
        transport = conn.transport
        history = self.history
        if self.closed or transport is None or history is None:
            conn.abort()
            _release_upgraded(conn)
        else:
            end = MirrorEnd(self, conn, transport)
            transport.set_protocol(end)  # type: ignore[arg-type]  # duck-typed protocol
            if history:
                transport.writelines(history)
            self.mirrors.append(end)
        self._drop_history()

    def mirror_settled(self) -> None:
        """A mirror of this request ended without switching (or before)."""
        self.mirrors_waiting -= 1
        self._drop_history()

    def copies_dispatched(self) -> None:
        """The stream dispatched its shadow copies (or has none): each counts in
        mirrors_waiting now."""
        self.copies_pending = False
        self._drop_history()

    def _drop_history(self) -> None:
        if self.mirrors_waiting <= 0 and not self.copies_pending:
            self.history = None

    # -- the end
    def close(self) -> None:
        """One side closed: close the others (after what was written reaches them)."""
        self.closed = True
        if self.up is not None:
            self.up.close()
        for m in self.mirrors:
            m.close()
        self.mirrors = []
        self.history = None
        stream = self.stream
        if not stream.done:
            stream.finish(False)  # logs the request, closes the client connection
        elif self.down is not None:
            stream.conn.close()


class DownstreamEnd:
    """The client's connection once llhttp stopped at an upgrade (asyncio protocol)."""

    def __init__(self, conn: ClientConnection, rest: bytes) -> None:
        self.conn = conn
        self.tunnel: Tunnel | None = None
        self.early: list[bytes] = [rest] if rest else []
        self.discard = False
        self.paused = False

    def data_received(self, data: bytes) -> None:
        t = self.tunnel
        if t is not None:
            t.from_client(data)
        elif not self.discard:
            self.early.append(data)
            if sum(map(len, self.early)) > HOLD_LIMIT:
                self.pause()

    def eof_received(self) -> bool:
        return False

    def connection_lost(self, exc: Exception | None) -> None:
        t = self.tunnel
        if t is not None:
            t.client_closed()
        self.conn.connection_lost(exc)

    def pause_writing(self) -> None:
        t = self.tunnel
        if t is not None and t.up is not None:
            t.up.transport.pause_reading()
        else:
            self.conn.pause_writing()

    def resume_writing(self) -> None:
        t = self.tunnel
        if t is not None and t.up is not None:
            if not t.closed:
                t.up.transport.resume_reading()
        else:
            self.conn.resume_writing()

    def pause(self) -> None:
        transport = self.conn.transport
        if not self.paused and transport is not None and not self.conn.closed:
            self.paused = True
            transport.pause_reading()

    def resume(self) -> None:
        transport = self.conn.transport
        if self.paused and transport is not None and not self.conn.closed:
            self.paused = False
            transport.resume_reading()


class UpstreamEnd:
    """The primary's connection after its 101 (asyncio protocol)."""

    def __init__(self, tunnel: Tunnel, conn: UpstreamConnection, transport: asyncio.Transport) -> None:
        self.tunnel = tunnel
        self.conn = conn
        self.transport = transport
        self.done = False

    def data_received(self, data: bytes) -> None:
        self.tunnel.to_client(data)

    def eof_received(self) -> bool:
        return False

    def connection_lost(self, exc: Exception | None) -> None:
        self._release()
        self.tunnel.upstream_closed()

    def pause_writing(self) -> None:  # the upstream reads slowly: stop reading the client
        down = self.tunnel.down
        if down is not None:
            down.pause()

    def resume_writing(self) -> None:
        down = self.tunnel.down
        if down is not None:
            down.resume()

    def close(self) -> None:
        self.transport.close()

    def _release(self) -> None:
        if not self.done:
            self.done = True
            self.conn.pool.stats.response(101, False)  # Envoy counts the 101 when it ends
            _release_upgraded(self.conn)


class MirrorEnd:
    """A mirror's connection after its 101: gets every client byte, its own are dropped.
    A mirror that stops reading (its write buffer over the high-water mark) is closed:
    it never slows the tunnel down."""

    def __init__(self, tunnel: Tunnel, conn: UpstreamConnection, transport: asyncio.Transport) -> None:
        self.tunnel = tunnel
        self.conn = conn
        self.transport = transport
        self.done = False

    def data_received(self, data: bytes) -> None:
        pass

    def eof_received(self) -> bool:
        return False

    def connection_lost(self, exc: Exception | None) -> None:
        if not self.done:
            self.done = True
            _release_upgraded(self.conn)
        if self in self.tunnel.mirrors:
            self.tunnel.mirrors.remove(self)

    def pause_writing(self) -> None:
        self.transport.abort()

    def resume_writing(self) -> None:
        pass

    def close(self) -> None:
        self.transport.close()


def _release_upgraded(conn: UpstreamConnection) -> None:
    """An upgraded upstream connection ended: the pool forgets it and its request."""
    pool = conn.pool
    if conn in pool.connections:
        pool._request_done(conn.endpoint)
    conn.closed = True
    pool.connection_closed(conn)
