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
stream runs from the head (``start``); the body goes to the upstream when it has been read
(``body_arrived``), and to the shadow copies then.  The route timeout starts then too
(Envoy counts it from the end of the request).  Other Expect requests (chunked, pipelined
behind another) keep the proxy's own ``100 Continue`` (docs/deviations.md P6).

Nothing here runs for a request without ``Expect: 100-continue``.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Final

if TYPE_CHECKING:
    from simulator.proxy.server import DownstreamConnection, Request, Stream

CONTINUE: Final = b"HTTP/1.1 100 Continue\r\n\r\n"


def can_stream(conn: DownstreamConnection, headers: list[tuple[bytes, bytes]]) -> bool:
    """Whether the Expect request whose head was just parsed streams its body."""
    if conn.active is not None or conn.queue or conn.closed:
        return False
    length = b""
    for n, v in headers:
        if n == b"content-length":
            length = v.strip()
        elif n == b"upgrade" or n == b"transfer-encoding":
            return False
    return length.isdigit() and int(length) > 0


def start(stream: Stream) -> None:
    """Run ``stream`` (its request's body still to come) from the head."""
    stream.req.streaming = True
    stream.conn.streaming = stream
    stream.conn.active = stream
    stream.run()


def body_arrived(stream: Stream, req: Request) -> None:
    """The whole body was read (``req`` holds it): send it after the head, unless the
    stream is over (it then closed the connection)."""
    stream.req.body = req.body
    stream.req.held = req.held
    stream.req.streaming = False
    if stream.done:
        stream._give_body()
        return
    if req.too_big:
        # over --max-request-bytes or the body budget after the head went: reset both sides
        stream.req.body = b""
        stream.flags = "DPE"
        stream._abandon_attempt()
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


def on_sent(stream: Stream) -> None:
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


def early_response(stream: Stream) -> None:
    """The upstream answered before it got the body: the client's connection closes after
    this response, and the upstream's is not reused (its request was never finished)."""
    stream.keep_alive = False
    stream.body_owed = False
    c = stream.current_conn()
    if c is not None:
        c.reusable = False


def on_interim(stream: Stream, status: int) -> None:
    """A 1xx from the upstream: the first 100 goes to a client still holding its body."""
    if status == 100 and stream.req.streaming and not stream.continued:
        stream.continued = True
        stream.conn.write(CONTINUE)
