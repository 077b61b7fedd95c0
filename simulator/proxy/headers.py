"""HTTP/1.1 header handling shared by the downstream and upstream sides.

What Envoy does to a request before routing (observed on 1.40, see
docs/mirroring.md): hop-by-hop headers (``connection``, the names it lists,
``keep-alive``, ``proxy-connection``, ``upgrade``, ``transfer-encoding``) and
``expect`` are removed; ``te`` survives only as ``trailers``; header names go
out lower-cased; duplicate lines stay separate and in order.
"""

from __future__ import annotations

from email.utils import formatdate
from http import HTTPStatus
from typing import Final

HOP_BY_HOP: Final = frozenset({
    b"connection", b"keep-alive", b"proxy-connection", b"transfer-encoding", b"upgrade",
    b"expect", b"host", b"content-length",
})

# Envoy request headers that steer Envoy itself, removed from every request Envoy treats
# as external (ConnectionManagerUtility::cleanInternalHeaders; x-envoy-internal is
# removed from every request by mutateRequestHeaders).  On Istio's sidecar outbound
# listener every request is external: use_remote_address is false and Istio sets no
# internal_address_config, whose Envoy default (since 1.33) holds no address, so even a
# single private address in x-forwarded-for does not make a request internal.  The
# edge-only removals (x-envoy-decorator-operation, x-envoy-downstream-service-cluster,
# x-envoy-downstream-service-node) need use_remote_address: those headers pass.
# x-envoy-upstream-stream-duration-ms is not in that list but goes too: the router
# consumes it (tests/conformance/test_headers.py pins all of this against Envoy 1.40).
ENVOY_CONTROL: Final = frozenset({
    b"x-envoy-internal",
    b"x-envoy-retriable-status-codes", b"x-envoy-retriable-header-names",
    b"x-envoy-retry-on", b"x-envoy-retry-grpc-on", b"x-envoy-max-retries",
    b"x-envoy-upstream-alt-stat-name", b"x-envoy-upstream-rq-timeout-ms",
    b"x-envoy-upstream-rq-per-try-timeout-ms", b"x-envoy-upstream-rq-timeout-alt-response",
    b"x-envoy-expected-rq-timeout-ms", b"x-envoy-force-trace", b"x-envoy-ip-tags",
    b"x-envoy-original-url", b"x-envoy-hedge-on-per-try-timeout",
    b"x-envoy-upstream-stream-duration-ms",
})

# Set by the router on every upstream request (Istio's include_request_attempt_count):
# a client's own lines are replaced, not kept beside it.
ROUTER_SET: Final = frozenset({b"x-envoy-attempt-count"})

SKIP_REQUEST_HEADERS: Final = HOP_BY_HOP | ENVOY_CONTROL | ROUTER_SET

RESPONSE_HOP_BY_HOP: Final = frozenset({
    b"connection", b"keep-alive", b"proxy-connection", b"transfer-encoding", b"upgrade",
    b"date", b"server",
})

# Methods that carry no body: Envoy adds no content-length: 0 for them
# (Http::HeaderUtility::requestShouldHaveNoBody).
BODILESS_METHODS: Final = frozenset({"GET", "HEAD", "DELETE", "TRACE", "CONNECT"})

_REASONS: Final[dict[int, bytes]] = {s.value: s.phrase.encode() for s in HTTPStatus}


_STATUS_LINES: Final[dict[int, bytes]] = {c: b"HTTP/1.1 %d %s\r\n" % (c, r) for c, r in _REASONS.items()}


def status_line(code: int) -> bytes:
    line = _STATUS_LINES.get(code)
    if line is None:
        line = b"HTTP/1.1 %d %s\r\n" % (code, _REASONS.get(code, b"Unknown"))
    return line


class DateCache:
    """The ``date`` and ``server`` header lines that end a response head, with the
    date formatted once per second."""

    __slots__ = ("_sec", "_lines", "server")

    def __init__(self, server: bytes = b"envoy") -> None:
        self._sec = -1
        self._lines = b""
        self.server = server

    def date_server_lines(self, now: float) -> bytes:
        """``date: ...\r\nserver: ...\r\n`` at ``now`` (time.time())"""
        sec = int(now)
        if sec != self._sec:
            self._refresh(sec)
        return self._lines

    def _refresh(self, sec: int) -> None:
        self._sec = sec
        self._lines = b"date: %s\r\nserver: %s\r\n" % (formatdate(sec, usegmt=True).encode(), self.server)


# Header names seen so far (the raw bytes as sent -> lower-cased), so the names of a
# request are one shared object each, whose hash is computed once; bounded in count
# (emptied when full) and name length, so odd clients cannot grow it.
_CANONICAL: Final[dict[bytes, bytes]] = {}
NAME_STR: Final[dict[bytes, str]] = {}  # lower-cased name -> the same as str (latin-1)
CANONICAL_MAX_NAMES: Final = 1024
CANONICAL_MAX_LENGTH: Final = 64


def canonical_name(name: bytes) -> bytes:
    """``name`` lower-cased."""
    c = _CANONICAL.get(name)
    if c is None:
        c = name.lower()
        if len(name) <= CANONICAL_MAX_LENGTH:
            if len(_CANONICAL) >= CANONICAL_MAX_NAMES:
                # full (a client making up names): start again rather than stop sharing
                _CANONICAL.clear()
                NAME_STR.clear()
            c = _CANONICAL.get(c) or c  # "Host" and "host" share one object
            _CANONICAL[name] = c
            _CANONICAL[c] = c
            NAME_STR[c] = c.decode("latin-1")
    return c


NAME_MEMO_SIZE: Final = 32


def memo_name(memo: list[tuple[bytes, bytes]], i: int, name: bytes) -> bytes:
    """canonical_name() of the ``i``-th header name of a message, remembered per
    connection by position: clients and servers send the same names in the same order
    on every message, and comparing bytes is cheaper than hashing them."""
    if i < len(memo):
        raw, c = memo[i]
        if raw == name:
            return c
        c = canonical_name(name)
        if len(name) <= CANONICAL_MAX_LENGTH:
            memo[i] = (name, c)
        return c
    c = canonical_name(name)
    if i == len(memo) and i < NAME_MEMO_SIZE and len(name) <= CANONICAL_MAX_LENGTH:
        memo.append((name, c))
    return c


TE_TRAILERS: Final = b"te: trailers\r\n"


def te_keeps_trailers(headers: list[tuple[bytes, bytes]]) -> bool:
    """Envoy's TE sanitising: the ``te`` lines' values joined, split on commas; when
    one element, whitespace stripped, is exactly ``trailers`` (case-sensitive, no
    parameters) the request goes on with ``te: trailers`` alone; else ``te`` is
    removed."""
    for n, v in headers:
        if n == b"te":
            for t in v.split(b","):
                if t.strip(b" \t") == b"trailers":
                    return True
    return False


def replace_empty_request_id(lines: list[bytes], rid: str) -> None:
    """An empty ``x-request-id`` from the client: Envoy generates one in its place."""
    for i, line in enumerate(lines):
        if line == b"x-request-id: \r\n":
            lines[i] = b"x-request-id: %s\r\n" % rid.encode()
            return


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
