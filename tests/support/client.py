"""A raw HTTP/1.1 client for tests: sends exact bytes, parses responses with llhttp."""

from __future__ import annotations

import asyncio
from dataclasses import dataclass, field

import httptools


@dataclass
class Response:
    status: int
    headers: list[tuple[str, str]]
    body: bytes
    keep_alive: bool = True
    trailers: list[tuple[str, str]] = field(default_factory=list)

    def header(self, name: str) -> str | None:
        name = name.lower()
        for k, v in self.headers:
            if k.lower() == name:
                return v
        return None


class _Parser:
    def __init__(self, head_only: list[bool]) -> None:
        self.responses: list[Response] = []
        self._headers: list[tuple[str, str]] = []
        self._body: list[bytes] = []
        self.parser = httptools.HttpResponseParser(self)
        self.head_only = head_only

    def on_message_begin(self) -> None:
        self._headers, self._body = [], []

    def on_header(self, name: bytes, value: bytes) -> None:
        self._headers.append((name.decode("latin-1"), value.decode("latin-1")))

    def on_headers_complete(self) -> None:
        if self.head_only and self.head_only[len(self.responses)]:
            self._done()
            raise StopIteration  # a HEAD response has no body

    def on_body(self, body: bytes) -> None:
        self._body.append(body)

    def on_message_complete(self) -> None:
        self._done()

    def _done(self) -> None:
        self.responses.append(
            Response(
                self.parser.get_status_code(), self._headers, b"".join(self._body), self.parser.should_keep_alive()
            )
        )


class Client:
    """One client connection: ``await c.request(b"GET / HTTP/1.1\\r\\n...")``."""

    def __init__(self, port: int, host: str = "127.0.0.1") -> None:
        self.host, self.port = host, port
        self.reader: asyncio.StreamReader | None = None
        self.writer: asyncio.StreamWriter | None = None

    async def __aenter__(self) -> Client:
        self.reader, self.writer = await asyncio.open_connection(self.host, self.port)
        return self

    async def __aexit__(self, *exc: object) -> None:
        if self.writer is not None:
            self.writer.close()

    async def send(
        self, raw: bytes, n: int = 1, head: list[bool] | None = None, timeout: float = 10.0
    ) -> list[Response]:
        """Write ``raw`` (possibly several pipelined requests), read ``n`` responses."""
        assert self.reader is not None and self.writer is not None
        p = _Parser(head or [False] * n)
        self.writer.write(raw)
        await self.writer.drain()

        async def read() -> None:
            while len(p.responses) < n:
                data = await self.reader.read(1 << 16)  # type: ignore[union-attr]
                if not data:
                    raise ConnectionError(f"closed after {len(p.responses)} of {n} responses")
                try:
                    p.parser.feed_data(data)
                except httptools.HttpParserCallbackError as exc:
                    if not isinstance(exc.__context__, StopIteration):
                        raise
                    p.parser = httptools.HttpResponseParser(p)

        await asyncio.wait_for(read(), timeout)
        return p.responses

    async def closed(self, timeout: float = 5.0) -> bool:
        """True once the server closed the connection."""
        assert self.reader is not None
        data = await asyncio.wait_for(self.reader.read(1), timeout)
        return data == b""


def request(
    method: str = "GET",
    path: str = "/",
    host: str = "httpbin:8000",
    headers: list[tuple[str, str]] | None = None,
    body: bytes | None = None,
) -> bytes:
    lines = [f"{method} {path} HTTP/1.1", f"Host: {host}"]
    for k, v in headers or []:
        lines.append(f"{k}: {v}")
    if body is not None:
        lines.append(f"Content-Length: {len(body)}")
    return ("\r\n".join(lines) + "\r\n\r\n").encode("latin-1") + (body or b"")


async def get(
    port: int,
    path: str = "/",
    host: str = "httpbin:8000",
    headers: list[tuple[str, str]] | None = None,
    method: str = "GET",
    body: bytes | None = None,
) -> Response:
    async with Client(port) as c:
        (resp,) = await c.send(request(method, path, host, headers, body), head=[method == "HEAD"])
        return resp
