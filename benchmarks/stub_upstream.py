"""Tiny loopback upstreams for the benchmark's mirror scenarios.

    python benchmarks/stub_upstream.py slow PORT [DELAY_S]   # answers each request after DELAY_S (2 s)
    python benchmarks/stub_upstream.py blackhole PORT         # reads requests, never answers

nginx serves the fast upstreams; these two exist only because nginx cannot
wait before answering.  Keep-alive HTTP/1.1, request bodies read and dropped,
responses in request order on each connection.  Loopback only; the harness
kills the process when it is done.
"""

from __future__ import annotations

import asyncio
import resource
import sys

import httptools

RESPONSE = b"HTTP/1.1 200 OK\r\ncontent-length: 8\r\ncontent-type: text/plain\r\n\r\nslow ok\n"


class Conn(asyncio.Protocol):
    def __init__(self, delay: float | None) -> None:
        self.delay = delay
        self.parser = httptools.HttpRequestParser(self)
        self.transport: asyncio.Transport | None = None
        self.loop = asyncio.get_running_loop()

    def connection_made(self, transport) -> None:  # type: ignore[no-untyped-def]
        self.transport = transport

    def data_received(self, data: bytes) -> None:
        try:
            self.parser.feed_data(data)
        except httptools.HttpParserError:
            if self.transport is not None:
                self.transport.close()

    def on_message_complete(self) -> None:
        if self.delay is not None:
            self.loop.call_later(self.delay, self._answer)

    def _answer(self) -> None:
        t = self.transport
        if t is not None and not t.is_closing():
            t.write(RESPONSE)

    def connection_lost(self, exc) -> None:  # type: ignore[no-untyped-def]
        self.transport = None


async def serve(mode: str, port: int, delay: float) -> None:
    loop = asyncio.get_running_loop()
    d = delay if mode == "slow" else None
    server = await loop.create_server(lambda: Conn(d), "127.0.0.1", port, backlog=4096, reuse_address=True)
    print(f"stub {mode} listening on 127.0.0.1:{port}", flush=True)
    async with server:
        await server.serve_forever()


def main() -> None:
    mode, port = sys.argv[1], int(sys.argv[2])
    delay = float(sys.argv[3]) if len(sys.argv) > 3 else 2.0
    if mode not in ("slow", "blackhole"):
        raise SystemExit(f"unknown mode {mode!r}")
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))
    try:
        import uvloop
        uvloop.install()
    except ImportError:
        pass
    asyncio.run(serve(mode, port, delay))


if __name__ == "__main__":
    main()
