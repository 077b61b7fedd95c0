"""The message heads the proxy writes, from plain values: the upstream request head
(``request_head``), the response head relayed to the client (``response_head``) and a local
reply (``local_reply_bytes``).  The stream (stream.py) decides what goes in them; the
header tables and small helpers are in headers.py."""

from __future__ import annotations

from typing import Final

from simulator.core.cors import set_lines as cors_set_lines
from simulator.core.envoy_config import HeaderMutations
from simulator.core.table import Forward
from simulator.proxy.client import DownstreamRequest
from simulator.proxy.headers import (
    INLINE_REQUEST,
    INLINE_RESPONSE,
    RESPONSE_HOP_BY_HOP,
    RESPONSE_SET_IN_PLACE,
    SKIP_REQUEST_HEADERS,
    TE_TRAILERS,
    DateCache,
    add_mutation_lines,
    connection_tokens,
    referer_ok,
    replace_empty_request_id,
    status_line,
    te_keeps_trailers,
)

# request headers an upgrade forwards as sent (otherwise hop-by-hop or recomputed)
UPGRADE_KEEPS: Final = frozenset({b"connection", b"upgrade", b"content-length"})
_NO_TOKENS: Final[frozenset[bytes]] = frozenset()
_NO_NAMES: Final[frozenset[str]] = frozenset()
_REFERER: Final = frozenset({b"referer"})
_XFP_HTTP: Final = b"x-forwarded-proto: http\r\n"


def request_head(req: DownstreamRequest, hdrs: dict[str, str], d: Forward, mut: HeaderMutations,
                 authority: str, scheme: str, request_id: str, upgrade: bool,
                 ) -> tuple[list[bytes], bytes, bool, int]:
    """(lines, extra, has_length, attempt_line): the request line with host and the
    forwarded headers (``lines``; ``has_length``: a content-length line is among them;
    ``attempt_line``: the index of the client's x-envoy-attempt-count, or -1); and, apart
    (``extra``), the route's
    header operations (``mut``, already resolved for this request) and the
    x-envoy-original-* headers.  The timeout and attempt-count headers go between the two
    (Envoy's order) and differ per attempt and between the primary and its shadow copies.
    ``authority`` is the request's own (before the route's rewrite); ``upgrade``: a
    WebSocket upgrade (tunnel.py)."""
    drop = connection_tokens(req.headers) if "connection" in hdrs and not upgrade else _NO_TOKENS
    if "referer" in hdrs and not referer_ok(hdrs["referer"].encode("latin-1")):
        drop = drop | _REFERER
    new_host = d.authority != authority
    mutated = bool(mut) or d.original_path is not None or new_host
    removes = _NO_NAMES
    overwrite = _NO_NAMES
    if mutated:
        removes = frozenset(mut.remove)
        replaced = {a.name for a in mut.add if not a.append}
        if d.original_path is not None:
            replaced.add("x-envoy-original-path")
        if new_host:  # the router sets it in place of a client's (setReference)
            replaced.add("x-envoy-original-host")
        overwrite = frozenset(replaced)
        mutated = bool(removes or overwrite)
    lines = [b"%s %s HTTP/1.1\r\nhost: %s\r\n" % (
        req.method.encode(), d.path.encode("latin-1"), d.authority.encode("latin-1"))]
    has_length = False
    te_done = False
    attempt_line = -1
    for ln, v in req.headers:
        if ln in SKIP_REQUEST_HEADERS or ln in drop:
            if upgrade and ln in UPGRADE_KEEPS:
                # an upgrade keeps Connection, Upgrade and Content-Length as sent
                lines.append(b"%s: %s\r\n" % (ln, v))
                has_length = has_length or ln == b"content-length"
                continue
            if ln == b"expect" and ln not in drop:
                # Istio sets proxy_100_continue (ENABLE_100_CONTINUE_HEADERS): Envoy
                # forwards Expect, 100-continue included (deviations P2: the 100 is ours)
                lines.append(b"%s: %s\r\n" % (ln, v))
                continue
            if ln == b"content-length" and not req.chunked:
                lines.append(b"content-length: %d\r\n" % len(req.body) if not req.streaming
                             else b"content-length: %s\r\n" % v)  # Expect: the body is to come
                has_length = True
            elif ln == b"x-envoy-attempt-count" and attempt_line < 0:
                # the router sets it in place of the client's (an inline header)
                attempt_line = len(lines)
            continue
        if ln == b"te":
            if not te_done:  # Envoy: one te line, "trailers" or none
                te_done = True
                if te_keeps_trailers(req.headers):
                    lines.append(TE_TRAILERS)
            continue
        if mutated:
            s = ln.decode("latin-1")
            if s in removes or s in overwrite:
                continue
        lines.append(b"%s: %s\r\n" % (ln, v))
    if "x-forwarded-proto" not in hdrs:
        lines.append(_XFP_HTTP if scheme == "http" else b"x-forwarded-proto: %s\r\n" % scheme.encode())
    if "x-request-id" not in hdrs:
        lines.append(b"x-request-id: %s\r\n" % request_id.encode())
    elif not hdrs["x-request-id"]:
        replace_empty_request_id(lines, request_id)
    extra = add_mutation_lines(lines, 1, mut.lines(), INLINE_REQUEST) if mut else b""
    if new_host:
        extra += b"x-envoy-original-host: %s\r\n" % authority.encode("latin-1")
    if d.original_path is not None:
        extra += b"x-envoy-original-path: %s\r\n" % d.original_path.encode("latin-1")
    return lines, extra, has_length, attempt_line  # a tuple: no object to allocate


def response_head(status: int, headers: list[tuple[bytes, bytes]], mut: HeaderMutations,
                  cors_lines: tuple[tuple[str, str], ...], dates: DateCache, now: float, ms: str,
                  timed: bool, chunked: bool, keep_alive: bool) -> bytes:
    """The head relayed to the client for an upstream response: its headers less the
    hop-by-hop ones, date, server and x-envoy-upstream-service-time (``ms``; only when
    ``timed``) set in place or appended, the route's response header operations (``mut``,
    resolved), the CORS filter's lines, then the framing (``chunked``) and
    ``connection: close`` unless ``keep_alive``."""
    parts = [status_line(status)]
    removes = set(mut.remove) if mut else ()
    overwrite = {a.name for a in mut.add if not a.append} if mut else ()
    placed: set[bytes] | None = None
    for ln, v in headers:  # names lower-case (UpstreamConnection.on_header)
        if ln in RESPONSE_HOP_BY_HOP:
            if ln in RESPONSE_SET_IN_PLACE:
                # Envoy overwrites the upstream's date, server and service time where they are
                if placed is None:
                    placed = set()
                if ln not in placed:
                    placed.add(ln)
                    parts.append(dates.line(ln, now, ms))
            continue
        if mut:
            s = ln.decode("latin-1")
            if s in removes or s in overwrite:
                continue
        parts.append(b"%s: %s\r\n" % (ln, v))
    if placed is None:
        if timed:
            parts.append(b"x-envoy-upstream-service-time: %s\r\n" % ms.encode())
        if mut:
            parts.append(add_mutation_lines(parts, 1, mut.lines(), INLINE_RESPONSE))
        if cors_lines:
            parts = [cors_set_lines(b"".join(parts), cors_lines)]
        parts.append(dates.date_server_lines(now))
    else:
        if timed and b"x-envoy-upstream-service-time" not in placed:
            parts.append(b"x-envoy-upstream-service-time: %s\r\n" % ms.encode())
        if mut:
            parts.append(add_mutation_lines(parts, 1, mut.lines(), INLINE_RESPONSE))
        if cors_lines:
            parts = [cors_set_lines(b"".join(parts), cors_lines)]
        for n in (b"date", b"server"):
            if n not in placed:
                parts.append(dates.line(n, now, ms))
    if chunked:
        parts.append(b"transfer-encoding: chunked\r\n")
    if not keep_alive:
        parts.append(b"connection: close\r\n")
    parts.append(b"\r\n")
    return b"".join(parts)


def local_reply_bytes(
    dates: DateCache, now: float, code: int, body: bytes, *, close: bool, head: bool = False,
    extra: tuple[tuple[str, str], ...] = (), content_type: str = "text/plain",
) -> bytes:
    """An Envoy local reply, with its header order as observed on Envoy 1.40:
    with a body ``content-length, content-type, date, server``; without one
    ``date, server, [connection: close,] content-length: 0``; to HEAD without a body
    ``date, server, transfer-encoding: chunked``."""
    parts = [status_line(code)]
    for n, v in extra:
        parts.append(b"%s: %s\r\n" % (n.encode(), v.encode()))
    date_server = dates.date_server_lines(now)
    if body:
        parts.append(b"content-length: %d\r\ncontent-type: %s\r\n" % (len(body), content_type.encode()))
        parts.append(date_server)
        if close:
            parts.append(b"connection: close\r\n")
    else:
        parts.append(date_server)
        if close:
            parts.append(b"connection: close\r\n")
        if head:
            parts.append(b"transfer-encoding: chunked\r\n")
        elif code not in (204, 304):
            parts.append(b"content-length: 0\r\n")
    parts.append(b"\r\n")
    if body and not head:
        parts.append(body)
    return b"".join(parts)


def apply_response_mutations_str(
    extra: tuple[tuple[str, str], ...], mut: HeaderMutations
) -> tuple[tuple[str, str], ...]:
    """A local reply's extra headers after the route's response header operations."""
    replaced = {a.name for a in mut.add if not a.append}
    out = [(n, v) for n, v in extra if n not in mut.remove and n not in replaced]
    for n, v in mut.lines():
        if n.encode() in INLINE_RESPONSE:  # an add joins the inline header's line (add_mutation_lines)
            i = next((i for i, (m, _) in enumerate(out) if m == n), -1)
            if i != -1:
                out[i] = (n, out[i][1] + "," + v)
                continue
        out.append((n, v))
    return tuple(out)
