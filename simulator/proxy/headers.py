"""HTTP/1.1 header handling shared by the downstream and upstream sides.

What Envoy does to a request before routing (observed on 1.40 with Istio's outbound
configuration; tests/conformance/test_headers.py pins each): hop-by-hop headers
(``connection``, the names it lists, ``keep-alive``, ``proxy-connection``, ``upgrade``,
``transfer-encoding``) and ``expect`` are removed; ``te`` survives only as ``trailers``;
the control headers of external requests and ``x-forwarded-client-cert`` are removed;
the lines of an inline header are joined into one, other duplicate lines stay separate
and in order; ``referer`` goes unless valid; header names go out lower-cased.  Chunked
request trailers are dropped.  Upstream responses: inline headers joined the same way,
hop-by-hop headers removed, ``date``, ``server`` and ``x-envoy-upstream-service-time``
set by the proxy (in place of the upstream's).
"""

from __future__ import annotations

import re
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

# Removed from every request: Istio's sidecar outbound HCM keeps Envoy's
# forward_client_cert_details default, SANITIZE (and the client connection has no TLS).
SANITIZED: Final = frozenset({b"x-forwarded-client-cert"})

# Set by the router on every upstream request (Istio's include_request_attempt_count):
# a client's own lines are replaced, not kept beside it.
ROUTER_SET: Final = frozenset({b"x-envoy-attempt-count"})

SKIP_REQUEST_HEADERS: Final = HOP_BY_HOP | ENVOY_CONTROL | SANITIZED | ROUTER_SET

# Envoy's "inline" request headers: its HTTP/1 codec joins the lines of one of these into
# the first line, values separated by "," (other names keep their lines).  The built-in
# ones (source/common/http/headers.h) and those registered by extensions linked into the
# 1.40 binary, as observed (tests/conformance/test_headers.py, hdr-misc).
INLINE_REQUEST: Final = frozenset({
    # built-in
    b"connection", b"content-type", b"x-envoy-decorator-operation", b"keep-alive",
    b"proxy-connection", b"proxy-status", b"x-request-id", b"transfer-encoding", b"upgrade", b"via",
    b"content-length", b"x-envoy-attempt-count", b"x-client-trace-id",
    b"x-envoy-downstream-service-cluster", b"x-envoy-downstream-service-node",
    b"x-envoy-external-address", b"x-envoy-force-trace", b"x-envoy-hedge-on-per-try-timeout",
    b"x-envoy-internal", b"x-envoy-ip-tags", b"x-envoy-retry-on", b"x-envoy-retry-grpc-on",
    b"x-envoy-retriable-status-codes", b"x-envoy-retriable-header-names", b"x-envoy-original-path",
    b"x-envoy-original-url", b"x-envoy-upstream-alt-stat-name",
    b"x-envoy-upstream-rq-timeout-alt-response", b"x-envoy-max-retries",
    b"x-envoy-upstream-rq-timeout-ms", b"x-envoy-upstream-rq-per-try-timeout-ms",
    b"x-envoy-expected-rq-timeout-ms", b"x-envoy-upstream-stream-duration-ms", b"expect",
    b"x-forwarded-client-cert", b"x-forwarded-for", b"x-forwarded-host", b"x-forwarded-proto",
    b"grpc-timeout", b"te", b"user-agent",
    # registered by extensions
    b"accept", b"accept-encoding", b"access-control-request-headers",
    b"access-control-request-method", b"authorization", b"cache-control", b"content-encoding",
    b"grpc-accept-encoding", b"if-match", b"if-modified-since", b"if-none-match", b"if-range",
    b"if-unmodified-since", b"origin", b"pragma", b"referer", b"x-envoy-is-timeout-retry",
    b"x-envoy-original-host", b"x-forwarded-port",
})


# The same for response headers (upstream responses), as observed (hdr-response-repeated).
INLINE_RESPONSE: Final = frozenset({
    # built-in
    b"connection", b"content-type", b"x-envoy-decorator-operation", b"keep-alive",
    b"proxy-connection", b"proxy-status", b"x-request-id", b"transfer-encoding", b"upgrade", b"via",
    b"content-length", b"x-envoy-attempt-count", b"date", b"x-envoy-degraded",
    b"x-envoy-immediate-health-check-fail", b"x-envoy-ratelimited", b"x-envoy-upstream-canary",
    b"x-envoy-upstream-healthchecked-cluster", b"location", b"server", b"x-envoy-upstream-service-time",
    b"grpc-status", b"grpc-message",
    # registered by extensions
    b"access-control-allow-credentials", b"access-control-allow-headers",
    b"access-control-allow-methods", b"access-control-allow-origin", b"access-control-expose-headers",
    b"access-control-max-age", b"age", b"cache-control", b"content-encoding", b"etag", b"expires",
    b"last-modified", b"vary",
})


def coalesce_inline(headers: list[tuple[bytes, bytes]],
                    inline: frozenset[bytes] = INLINE_REQUEST) -> list[tuple[bytes, bytes]]:
    """``headers`` with the lines of each inline header joined into its first line (only
    called for messages that repeat a name)."""
    first: dict[bytes, int] = {}
    out: list[tuple[bytes, bytes]] = []
    for n, v in headers:
        if n in inline and n != b"host":
            i = first.get(n)
            if i is not None:
                out[i] = (n, out[i][1] + b"," + v)
                continue
            first[n] = len(out)
        out.append((n, v))
    return out


def repeats_a_name(headers: list[tuple[bytes, bytes]]) -> bool:
    """Whether a name (lower-case) is on several lines.  A short head is compared pair
    by pair: no set is built per response (most have few headers, each name once)."""
    n = len(headers)
    if n > 8:
        return len({h[0] for h in headers}) != n
    for i in range(1, n):
        name = headers[i][0]
        for j in range(i):
            if headers[j][0] == name:
                return True
    return False


def add_mutation_lines(lines: list[bytes], start: int, adds: list[tuple[str, str]],
                       inline: frozenset[bytes]) -> bytes:
    """The route's header lines ``adds`` (HeaderMutations.lines()) for a message whose header
    lines, one per item, are ``lines[start:]``: an inline header already there (or added
    just before) gets the value appended to its line, after a ",", as Envoy's header map
    does for any add of an inline header (HeaderMapImpl::insertByKey); the others are
    returned, in order, to go after the message's own."""
    out: list[bytes] = []
    for n, v in adds:
        name = n.encode()
        line = b"%s: %s\r\n" % (name, v.encode("latin-1"))
        if name in inline:
            prefix = name + b":"
            i = next((i for i in range(start, len(lines)) if lines[i].startswith(prefix)), -1)
            if i != -1:
                lines[i] = b"%s,%s\r\n" % (lines[i][:-2], line[len(prefix) + 1:-2])
                continue
            j = next((j for j in range(len(out)) if out[j].startswith(prefix)), -1)
            if j != -1:
                out[j] = b"%s,%s\r\n" % (out[j][:-2], line[len(prefix) + 1:-2])
                continue
        out.append(line)
    return b"".join(out)


# Envoy's Utility::isValidRefererValue: an absolute URL as http_parser reads one (letters
# for a scheme, "//", a host of letters, digits, "." and "-" or an IPv6 literal, a port up
# to 65535, printable ASCII after it) without fragment or userinfo; else a relative
# reference of RFC 3986 query characters with no ":" before the first "/".
_ABSOLUTE_URL: Final = re.compile(
    rb"[A-Za-z]+://(?P<userinfo>[A-Za-z0-9\-._~%;:&=+$,!*'()]*@)?"
    rb"(?:[A-Za-z0-9.\-]+|\[[0-9A-Fa-f:.]+\])(?::(?P<port>[0-9]{1,5}))?(?P<rest>[/?#][\x21-\x7e]*)?")
_RELATIVE_CHARS: Final = frozenset(
    b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-._~!$&'()*+,;=:@/?%")


def referer_ok(value: bytes) -> bool:
    """Whether Envoy keeps a (joined) ``referer`` value."""
    m = _ABSOLUTE_URL.fullmatch(value)
    if m is not None and (m.group("port") is None or int(m.group("port")) <= 0xFFFF):
        return m.group("userinfo") is None and b"#" not in value
    seen_slash = False
    for c in value:
        if c == 0x2F:
            seen_slash = True
        elif c == 0x3A and not seen_slash:
            return False
        elif c not in _RELATIVE_CHARS:
            return False
    return True

RESPONSE_HOP_BY_HOP: Final = frozenset({
    b"connection", b"keep-alive", b"proxy-connection", b"transfer-encoding", b"upgrade",
    b"date", b"server",
    b"x-envoy-upstream-service-time",  # the router sets its own
})
# ... and these three Envoy sets in the upstream's line when there is one
RESPONSE_SET_IN_PLACE: Final = frozenset({b"date", b"server", b"x-envoy-upstream-service-time"})

class BodilessFramingError(ValueError):
    """A 1xx or 204 response with framing headers Envoy's codec rejects."""


def strip_bodiless_framing(headers: list[tuple[bytes, bytes]]) -> list[tuple[bytes, bytes]]:
    """A 1xx (not 101) or 204 response's headers as Envoy's HTTP/1 client codec passes
    them on (ClientConnectionImpl::onHeadersCompleteBase): ``content-length: 0`` is
    removed; any transfer-encoding, or another content-length, is a protocol error
    (raises BodilessFramingError: 502 UPE, as for any unparsable response)."""
    kept = headers
    for i, (n, v) in enumerate(headers):
        if n == b"transfer-encoding" or (n == b"content-length" and v.strip() != b"0"):
            raise BodilessFramingError(n.decode("latin-1"))
        if n == b"content-length":
            if kept is headers:
                kept = headers[:i]
            continue
        if kept is not headers:
            kept.append((n, v))
    return kept


# Methods that carry no body: Envoy adds no content-length: 0 for them
# (Http::HeaderUtility::requestShouldHaveNoBody).
BODILESS_METHODS: Final = frozenset({"GET", "HEAD", "DELETE", "TRACE", "CONNECT"})

# Envoy's reason phrases (CodeUtility::toString, observed on 1.40 in tests/oracle) where
# Python's differ or Envoy has none ("Unknown"): also pins 413/422 across Python versions.
_ENVOY_REASONS: Final[dict[int, bytes]] = {
    102: b"Unknown", 103: b"Unknown", 413: b"Payload Too Large", 414: b"URI Too Long",
    416: b"Range Not Satisfiable", 418: b"Unknown", 422: b"Unprocessable Entity", 451: b"Unknown",
}
_REASONS: Final[dict[int, bytes]] = {s.value: s.phrase.encode() for s in HTTPStatus} | _ENVOY_REASONS


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

    def line(self, name: bytes, now: float, ms: str) -> bytes:
        """One of the lines Envoy sets in a response: ``date``, ``server`` or
        ``x-envoy-upstream-service-time`` (``ms``)."""
        if name == b"server":
            return b"server: %s\r\n" % self.server
        if name == b"date":
            lines = self.date_server_lines(now)
            return lines[: lines.index(b"\r\n") + 2]
        return b"x-envoy-upstream-service-time: %s\r\n" % ms.encode()

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
