"""``Expect: 100-continue`` under Istio's ``proxy_100_continue: true``
(``ENABLE_100_CONTINUE_HEADERS``, default since Istio 1.23): Envoy does not answer the
``100 Continue`` itself; it forwards the request head, ``Expect`` included, and relays the
upstream's ``100`` (once).  A client such as curl holds its body back until then (1 s at
most), so:

* the upstream answers 100: the client gets it, sends its body, the body follows the head;
* the upstream answers, or resets, before asking for the body: the client gets that final
  response (a reset: ``503 ... reset reason: connection termination``) with
  ``connection: close`` (Envoy closes a connection whose request it has not read), and no
  100; the upstream connection is not reused (its request was never finished).

mirrorsim buffers a request's body before forwarding it (docs/deviations.md 1), so only
this case streams: an HTTP/1.1 request with ``Expect: 100-continue`` and a
``Content-Length`` above 0 that arrives with nothing before it on its connection.  Its
stream runs from the head (``DownstreamConnection.on_headers_complete``, downstream.py); the
body goes to the upstream when it has been read (``body_arrived``), and to the shadow copies
then.  The route timeout starts then too (Envoy counts it from the end of the request).  Other
Expect requests (chunked, pipelined behind another) keep the proxy's own ``100 Continue`` (docs/deviations.md P6).

Nothing here runs for a request without ``Expect: 100-continue``, except ``on_interim``: an
upstream 1xx (rare) is relayed whether the client asked for a 100 or not.  This module knows
the stream only as ``ExpectStream`` (what it uses of it), so it sits below stream.py.
"""

from __future__ import annotations

import asyncio
from typing import Final, Protocol

from simulator.proxy.client import ClientConnection, DownstreamRequest
from simulator.proxy.headers import status_line
from simulator.proxy.server import Proxy
from simulator.proxy.upstream import ClusterPool, UpstreamConnection

CONTINUE: Final = b"HTTP/1.1 100 Continue\r\n\r\n"
RELAYED_1XX: Final = frozenset({100, 102, 103})
# removed from a relayed 1xx (ConnectionManagerUtility::mutateResponseHeaders)
INTERIM_DROPPED: Final = frozenset({b"connection", b"keep-alive", b"proxy-connection", b"transfer-encoding",
                                    b"upgrade"})


class ExpectStream(Protocol):
    """What this module uses of a stream (stream.Stream)."""

    req: DownstreamRequest
    conn: ClientConnection
    proxy: Proxy
    pool: ClusterPool | None
    payload: tuple[bytes, ...]
    timeout: float
    timer: asyncio.TimerHandle | None
    shadow_base: list[bytes] | None
    attempt: int
    flags: str
    keep_alive: bool
    body_owed: bool
    continued: bool
    headers_sent: bool
    done: bool
    internal: bool

    def give_body(self) -> None: ...

    def abandon_attempt(self) -> None: ...

    def finish(self, keep_alive: bool, abort: bool = False) -> None: ...

    def on_timeout(self) -> None: ...

    def current_conn(self) -> UpstreamConnection | None: ...

    def release_shadows(self) -> None: ...


def can_stream(headers: list[tuple[bytes, bytes]]) -> bool:
    """Whether the Expect request whose head was just parsed streams its body (when
    nothing is before it on its connection: the caller checks that)."""
    length = b""
    for n, v in headers:
        if n == b"content-length":
            length = v.strip()
        elif n == b"upgrade" or n == b"transfer-encoding":
            return False
    return length.isdigit() and int(length) > 0


def body_arrived(stream: ExpectStream, req: DownstreamRequest) -> None:
    """The whole body was read (``req`` holds it): send it after the head, unless the
    stream is over (it then closed the connection)."""
    stream.req.body = req.body
    stream.req.held = req.held
    stream.req.streaming = False
    if stream.done:
        stream.give_body()
        return
    if req.too_big:
        # over --max-request-bytes or the body budget after the head went: reset both sides
        stream.req.body = b""
        stream.flags = "DPE"
        stream.abandon_attempt()
        stream.finish(False, abort=True)
        return
    body = req.body
    stream.payload = (body,)
    if stream.timeout > 0 and stream.timer is None and stream.pool is not None:
        stream.timer = stream.proxy.loop.call_later(stream.timeout, stream.on_timeout)
    if stream.body_owed:
        c = stream.current_conn()
        if c is not None and c.transport is not None and not c.closed:
            stream.body_owed = False
            c.transport.write(body)
    if stream.shadow_base is not None and stream.attempt > 0 and not stream.body_owed:
        stream.release_shadows()


def on_sent(stream: ExpectStream) -> None:
    """An attempt's head went to an upstream connection: the body, if it is here already,
    goes after it; the shadow copies go once both have."""
    if stream.req.streaming:
        return
    if stream.body_owed:
        stream.body_owed = False
        c = stream.current_conn()
        if c is not None and c.transport is not None:
            c.transport.writelines(stream.payload)
    if stream.shadow_base is not None:
        stream.release_shadows()


def early_response(stream: ExpectStream) -> None:
    """The upstream answered before it got the body: the client's connection closes after
    this response, and the upstream's is not reused (its request was never finished)."""
    stream.keep_alive = False
    stream.body_owed = False
    c = stream.current_conn()
    if c is not None:
        c.reusable = False


def on_interim(stream: ExpectStream, status: int, headers: list[tuple[bytes, bytes]]) -> None:
    """A 1xx (not 101) from the upstream.  Under proxy_100_continue Envoy relays a 100, 102
    or 103 (HeaderUtility::isSpecial1xx; the router's onUpstream1xxHeaders), asked for or
    not, with the upstream's headers less the hop-by-hop ones, and then retries no more;
    other 1xx are dropped (UpstreamRequest::decodeHeaders).  Only the first 1xx of a request
    goes (as Envoy does, tests/oracle), and no 100 after the proxy's own (a buffered Expect
    request: docs/deviations.md P6)."""
    if status not in RELAYED_1XX or stream.continued or stream.done or stream.headers_sent:
        return
    req = stream.req
    if status == 100 and not req.streaming and any(
            n == b"expect" and v.lower() == b"100-continue" for n, v in req.headers):
        return  # the proxy wrote its own 100 (docs/deviations.md P6)
    stream.continued = True
    # Envoy counts it: cluster upstream_rq_1xx (and _completed), listener downstream_rq_1xx
    if stream.pool is not None:
        stream.pool.stats.response(status, stream.internal)
    codes = stream.proxy.stats.downstream_codes
    codes[status] = codes.get(status, 0) + 1
    if not headers:
        stream.conn.write(CONTINUE if status == 100 else status_line(status) + b"\r\n")
        return
    lines = [status_line(status)]
    lines += [b"%s: %s\r\n" % (n, v) for n, v in headers if n not in INTERIM_DROPPED]
    lines.append(b"\r\n")
    stream.conn.write(b"".join(lines))
