"""The downstream side as a stream sees it: one parsed request (``DownstreamRequest``) and
the client's connection (``ClientConnection``, which ``downstream.DownstreamConnection``
implements).  Kept apart so that the stream (stream.py), the tunnel (tunnel.py) and the
Expect handling (expect.py) depend on this small module and not on the parser, which
creates the streams: dependencies run one way (downstream -> stream -> client)."""

from __future__ import annotations

import asyncio


class DownstreamRequest:
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


class ClientConnection:
    """A client connection as its streams use it: write to it, close or reset it, and say
    when a request is done.  ``downstream.DownstreamConnection`` is the implementation;
    the methods below that only raise are overridden there."""

    def __init__(self) -> None:
        self.transport: asyncio.Transport | None = None
        self.closed = False
        self.write_paused = False
        self.peer = ""

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

    def drain(self) -> None:
        """The proxy is draining: the response of the request in progress, if it has not
        started, says ``connection: close`` (Proxy.begin_drain)."""
        raise NotImplementedError

    def busy(self) -> bool:
        """A request is in progress or queued."""
        raise NotImplementedError

    def stream_done(self, stream: object, keep_alive: bool) -> None:
        """``stream`` (its active stream) has ended; ``keep_alive``: the connection stays open."""
        raise NotImplementedError

    # asyncio protocol callbacks the tunnel's DownstreamEnd passes on (tunnel.py)
    def connection_lost(self, exc: Exception | None) -> None:
        raise NotImplementedError

    def pause_writing(self) -> None:
        raise NotImplementedError

    def resume_writing(self) -> None:
        raise NotImplementedError
