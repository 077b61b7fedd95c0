"""HTTP/1.1 header handling shared by the downstream and upstream sides.

What Envoy does to a request before routing (observed on 1.40, see
docs/mirroring.md): hop-by-hop headers (``connection``, the names it lists,
``keep-alive``, ``proxy-connection``, ``upgrade``, ``transfer-encoding``) and
``expect`` are removed; ``te`` survives only as ``trailers``; header names go
out lower-cased; duplicate lines stay separate and in order.
"""

from __future__ import annotations

import time
from email.utils import formatdate
from http import HTTPStatus

HOP_BY_HOP = frozenset({
    b"connection", b"keep-alive", b"proxy-connection", b"transfer-encoding", b"upgrade",
    b"expect", b"host", b"content-length", b"proxy-authorization",
})

# Envoy request headers that steer Envoy itself; a request from outside the mesh
# may not set them (mirrorsim treats every downstream request as external).
ENVOY_CONTROL = frozenset({
    b"x-envoy-upstream-rq-timeout-ms", b"x-envoy-upstream-rq-per-try-timeout-ms",
    b"x-envoy-retry-on", b"x-envoy-retry-grpc-on", b"x-envoy-max-retries",
    b"x-envoy-retriable-status-codes", b"x-envoy-retriable-header-names",
    b"x-envoy-hedge-on-per-try-timeout", b"x-envoy-upstream-alt-stat-name",
    b"x-envoy-upstream-stream-duration-ms", b"x-envoy-internal", b"x-envoy-ip-tags",
    b"x-envoy-downstream-service-cluster", b"x-envoy-downstream-service-node",
    b"x-envoy-expected-rq-timeout-ms",
})

SKIP_REQUEST_HEADERS = HOP_BY_HOP | ENVOY_CONTROL

RESPONSE_HOP_BY_HOP = frozenset({
    b"connection", b"keep-alive", b"proxy-connection", b"transfer-encoding", b"upgrade",
    b"date", b"server",
})

# Methods that carry no body: Envoy adds no content-length: 0 for them
# (Http::HeaderUtility::requestShouldHaveNoBody).
BODILESS_METHODS = frozenset({"GET", "HEAD", "DELETE", "TRACE", "CONNECT"})

_REASONS: dict[int, bytes] = {s.value: s.phrase.encode() for s in HTTPStatus}


def status_line(code: int) -> bytes:
    return b"HTTP/1.1 %d %s\r\n" % (code, _REASONS.get(code, b"Unknown"))


class DateCache:
    """The ``date`` header value, formatted once per second."""

    __slots__ = ("_sec", "_value")

    def __init__(self) -> None:
        self._sec = -1
        self._value = b""

    def get(self) -> bytes:
        sec = int(time.time())
        if sec != self._sec:
            self._sec = sec
            self._value = formatdate(sec, usegmt=True).encode()
        return self._value


def connection_tokens(headers: list[tuple[bytes, bytes]]) -> frozenset[bytes]:
    """Header names listed in ``Connection`` (themselves hop-by-hop)."""
    out: set[bytes] = set()
    for n, v in headers:
        if n.lower() == b"connection":
            for t in v.split(b","):
                t = t.strip().lower()
                if t and t not in (b"close", b"keep-alive"):
                    out.add(t)
    return frozenset(out)
