"""Envoy's header-value command operators (``%REQ(x-user)%``, ``%PROTOCOL%``, ``%%``, ...)
in VirtualService header operations.

Istio passes ``headers.request/response.set/add`` values to Envoy unchanged, and Envoy
reads them as substitution format strings.  :func:`parse` reads a value ONCE, at config
load, the way Envoy's ``SubstitutionFormatParser`` does, and returns either a plain
``str`` (no operator: nothing to do per request) or a :class:`Template`; a value Envoy
would reject raises :class:`FormatError` with Envoy's own message.  :meth:`Template.render`
produces the value for one request from a :class:`FormatContext`.

Envoy skips a header whose formatted value is empty (so ``set`` with an empty result
leaves the client's header alone).  Operators Envoy accepts but mirrorsim does not model
(TLS, timing, metadata, filter state, ...) render empty; :func:`unmodelled` names them
for a validation warning (docs/deviations.md).

Pure: no I/O.  The request and response facts come in through ``FormatContext``.
"""

from __future__ import annotations

import ipaddress
import re
from dataclasses import dataclass
from typing import Final

# The longest value a template renders (the rest is cut): "%REQ(x)%" written 25,000 times
# over a client's 60 KiB x would make 1.5 GB per request.  1 MiB is more than common
# servers take in a whole head (Go's net/http default; an Istio sidecar takes 60 KiB)
MAX_RENDERED_CHARS: Final = 1024 * 1024

# Envoy's command syntax: %NAME%, %NAME(args)%, %NAME(args):LENGTH%
_COMMAND: Final = re.compile(r"%([A-Z0-9_]+)(\([^)]*\))?(:[0-9]+)?%")
# RFC 9110 tchar (header names in REQ/RESP; pseudo-headers start with ':')
_TOKEN: Final = re.compile(r":?[!#$%&'*+\-.^_`|~0-9A-Za-z]+")

# Operators mirrorsim renders (every other operator Envoy accepts renders empty)
MODELLED: Final = frozenset({
    "REQ", "RESP", "TRAILER", "PROTOCOL", "HOSTNAME", "RESPONSE_CODE", "UPSTREAM_CLUSTER",
    "DOWNSTREAM_REMOTE_ADDRESS", "DOWNSTREAM_REMOTE_ADDRESS_WITHOUT_PORT", "DOWNSTREAM_REMOTE_PORT",
    "DOWNSTREAM_DIRECT_REMOTE_ADDRESS", "DOWNSTREAM_DIRECT_REMOTE_ADDRESS_WITHOUT_PORT",
    "DOWNSTREAM_DIRECT_REMOTE_PORT",
    "DOWNSTREAM_LOCAL_ADDRESS", "DOWNSTREAM_LOCAL_ADDRESS_WITHOUT_PORT", "DOWNSTREAM_LOCAL_PORT",
    "UPSTREAM_REMOTE_ADDRESS", "UPSTREAM_REMOTE_ADDRESS_WITHOUT_PORT", "UPSTREAM_REMOTE_PORT",
    "UPSTREAM_HOST",
})

# Operators taking a header name (and an optional length)
_HEADER_OPS: Final = frozenset({"REQ", "RESP", "TRAILER"})

# Operators Envoy 1.40 accepts without parameters (checked against the real binary by
# tests/conformance/test_header_format.py)
COMMAND_ONLY: Final = frozenset({
    "ACCESS_LOG_TYPE", "BYTES_RECEIVED", "BYTES_SENT", "CONNECTION_ID", "CONNECTION_TERMINATION_DETAILS",
    "CUSTOM_FLAGS", "DOWNSTREAM_DETECTED_CLOSE_TYPE",
    "DOWNSTREAM_DIRECT_LOCAL_ADDRESS", "DOWNSTREAM_DIRECT_LOCAL_ADDRESS_WITHOUT_PORT",
    "DOWNSTREAM_DIRECT_LOCAL_PORT",
    "DOWNSTREAM_DIRECT_REMOTE_ADDRESS", "DOWNSTREAM_DIRECT_REMOTE_ADDRESS_WITHOUT_PORT",
    "DOWNSTREAM_DIRECT_REMOTE_PORT", "DOWNSTREAM_HANDSHAKE_DURATION",
    "DOWNSTREAM_HEADER_BYTES_RECEIVED", "DOWNSTREAM_HEADER_BYTES_SENT",
    "DOWNSTREAM_LOCAL_ADDRESS", "DOWNSTREAM_LOCAL_ADDRESS_WITHOUT_PORT", "DOWNSTREAM_LOCAL_CLOSE_REASON",
    "DOWNSTREAM_LOCAL_DNS_SAN", "DOWNSTREAM_LOCAL_IP_SAN", "DOWNSTREAM_LOCAL_PORT",
    "DOWNSTREAM_LOCAL_SUBJECT", "DOWNSTREAM_LOCAL_URI_SAN",
    "DOWNSTREAM_PEER_CERT", "DOWNSTREAM_PEER_CERT_V_END", "DOWNSTREAM_PEER_CERT_V_START",
    "DOWNSTREAM_PEER_CHAIN_FINGERPRINTS_256", "DOWNSTREAM_PEER_DNS_SAN", "DOWNSTREAM_PEER_EMAIL_SAN",
    "DOWNSTREAM_PEER_FINGERPRINT_1", "DOWNSTREAM_PEER_FINGERPRINT_256", "DOWNSTREAM_PEER_ISSUER",
    "DOWNSTREAM_PEER_OTHERNAME_SAN", "DOWNSTREAM_PEER_SERIAL", "DOWNSTREAM_PEER_SUBJECT",
    "DOWNSTREAM_PEER_URI_SAN",
    "DOWNSTREAM_REMOTE_ADDRESS", "DOWNSTREAM_REMOTE_ADDRESS_WITHOUT_PORT", "DOWNSTREAM_REMOTE_PORT",
    "DOWNSTREAM_TLS_CIPHER", "DOWNSTREAM_TLS_SESSION_ID", "DOWNSTREAM_TLS_VERSION",
    "DOWNSTREAM_TRANSPORT_FAILURE_REASON", "DOWNSTREAM_WIRE_BYTES_RECEIVED", "DOWNSTREAM_WIRE_BYTES_SENT",
    "DURATION", "EMIT_TIME", "FILTER_CHAIN_NAME", "GRPC_STATUS", "GRPC_STATUS_NUMBER", "HOSTNAME",
    "LOCAL_REPLY_BODY", "PATH", "PROTOCOL", "REQUESTED_SERVER_NAME", "REQUEST_DURATION",
    "REQUEST_HEADERS_BYTES", "REQUEST_TX_DURATION", "RESPONSE_CODE", "RESPONSE_CODE_DETAILS",
    "RESPONSE_DURATION", "RESPONSE_FLAGS", "RESPONSE_FLAGS_LONG", "RESPONSE_HEADERS_BYTES",
    "RESPONSE_TRAILERS_BYTES", "RESPONSE_TX_DURATION", "ROUTE_NAME", "STREAM_ID", "TLS_JA3_FINGERPRINT",
    "TLS_JA4_FINGERPRINT", "TRACE_ID", "UNIQUE_ID", "UPSTREAM_CLUSTER", "UPSTREAM_CLUSTER_RAW",
    "UPSTREAM_CONNECTION_ID", "UPSTREAM_CONNECTION_POOL_READY_DURATION", "UPSTREAM_DETECTED_CLOSE_TYPE",
    "UPSTREAM_HEADER_BYTES_RECEIVED", "UPSTREAM_HEADER_BYTES_SENT", "UPSTREAM_HOST", "UPSTREAM_HOST_NAME",
    "UPSTREAM_HOST_NAME_WITHOUT_PORT", "UPSTREAM_LOCAL_ADDRESS", "UPSTREAM_LOCAL_ADDRESS_WITHOUT_PORT",
    "UPSTREAM_LOCAL_CLOSE_REASON", "UPSTREAM_LOCAL_PORT", "UPSTREAM_LOCAL_URI_SAN", "UPSTREAM_PEER_CERT",
    "UPSTREAM_PEER_CERT_V_END", "UPSTREAM_PEER_CERT_V_START", "UPSTREAM_PEER_ISSUER",
    "UPSTREAM_PEER_SUBJECT", "UPSTREAM_PEER_URI_SAN", "UPSTREAM_PROTOCOL",
    "UPSTREAM_REMOTE_ADDRESS", "UPSTREAM_REMOTE_ADDRESS_WITHOUT_PORT", "UPSTREAM_REMOTE_PORT",
    "UPSTREAM_REQUEST_ATTEMPT_COUNT", "UPSTREAM_TLS_CIPHER", "UPSTREAM_TLS_SESSION_ID",
    "UPSTREAM_TLS_VERSION", "UPSTREAM_TRANSPORT_FAILURE_REASON", "UPSTREAM_WIRE_BYTES_RECEIVED",
    "UPSTREAM_WIRE_BYTES_SENT", "VIRTUAL_CLUSTER_NAME",
})

# Operators Envoy 1.40 accepts with parameters (not checked further here)
WITH_PARAMETERS: Final = frozenset({
    "CEL", "CLUSTER_METADATA", "COMMON_DURATION", "DYNAMIC_METADATA", "ENVIRONMENT", "FILTER_STATE",
    "METADATA", "PER_REQUEST_STATE", "QUERY_PARAM", "UPSTREAM_FILTER_STATE", "UPSTREAM_METADATA",
})


class FormatError(ValueError):
    """A value Envoy rejects (its message)."""


@dataclass(frozen=True, slots=True)
class Command:
    name: str
    args: tuple[str, ...] = ()  # REQ/RESP/TRAILER: the header name and its alternative
    length: int | None = None


@dataclass(slots=True)
class FormatContext:
    """What one request (and, for response headers, its response) looks like to the
    formatter.  Addresses are ``ip:port`` strings (``[v6]:port``)."""

    request_headers: list[tuple[bytes, bytes]]
    authority: str = ""
    path: str = ""
    method: str = ""
    scheme: str = "http"
    downstream_remote: str = ""  # x-forwarded-for's last address (port 0), else the peer
    downstream_direct_remote: str = ""  # the peer
    downstream_local: str = ""
    upstream_host: str = ""  # the endpoint picked, if any
    cluster: str = ""
    response_headers: list[tuple[bytes, bytes]] | None = None  # None: request headers being built
    response_code: int = 0
    # names the same header operations remove: Envoy removes before it adds, so
    # %REQ(x)% (request side) or %RESP(x)% (response side) of a removed header is empty
    removed: tuple[str, ...] = ()
    hostname: str = ""
    request_id: str = ""  # x-request-id as the connection manager left it (generated if absent)


@dataclass(frozen=True, slots=True)
class Template:
    """A parsed value: literal strings and commands, in order."""

    parts: tuple[str | Command, ...]
    source: str

    def render(self, ctx: FormatContext) -> str:
        out = []
        size = 0
        for p in self.parts:
            if isinstance(p, str):
                v = p
            else:
                v = _evaluate(p, ctx)
                if p.length is not None:
                    v = v[: p.length]
            out.append(v)
            size += len(v)
            if size > MAX_RENDERED_CHARS:  # a client's header repeated by the template
                return "".join(out)[:MAX_RENDERED_CHARS]
        return "".join(out)


def parse(value: str) -> str | Template:
    """``value`` as Envoy reads it: a plain ``str`` when it has no operator (``%%``
    already turned into ``%``), else a :class:`Template`.  Raises :class:`FormatError`."""
    if "%" not in value:
        return value
    parts: list[str | Command] = []
    literal: list[str] = []
    pos = 0
    n = len(value)
    while pos < n:
        c = value[pos]
        if c != "%":
            literal.append(c)
            pos += 1
            continue
        if pos + 1 < n and value[pos + 1] == "%":
            literal.append("%")
            pos += 2
            continue
        m = _COMMAND.match(value, pos)
        if m is None:
            raise FormatError(f"Incorrect configuration: {value}. Couldn't find valid command at position {pos}")
        if literal:
            parts.append("".join(literal))
            literal = []
        parts.append(_command(m.group(1), m.group(2), m.group(3)))
        pos = m.end()
    if literal:
        parts.append("".join(literal))
    if all(isinstance(p, str) for p in parts):
        return "".join(p for p in parts if isinstance(p, str))
    return Template(tuple(parts), value)


def _command(name: str, paren: str | None, length_text: str | None) -> Command:
    args = paren[1:-1] if paren is not None else None
    length = int(length_text[1:]) if length_text is not None else None
    if name in _HEADER_OPS:
        if not args:
            raise FormatError(f"{name} requires parameters")
        names = args.split("?")
        if len(names) > 2:
            raise FormatError(f"More than 1 alternative header specified in token: {args}")
        for h in names:
            if h and not _TOKEN.fullmatch(h):
                raise FormatError("Invalid header configuration. Format string contains invalid characters.")
        return Command(name, tuple(h.lower() for h in names), length)
    if name == "START_TIME":
        if length is not None:
            raise FormatError("START_TIME does not allow length to be specified.")
        return Command(name, (args,) if args else ())
    if name in COMMAND_ONLY:
        if args is not None or length is not None:
            raise FormatError(f"{name} does not take any parameters or length")
        return Command(name)
    if name in WITH_PARAMETERS:
        return Command(name, (args or "",), length)
    raise FormatError(f"Not supported field in StreamInfo: {name}")


def unmodelled(template: Template) -> list[str]:
    """The operators of ``template`` that mirrorsim renders empty."""
    return sorted({p.name for p in template.parts if isinstance(p, Command) and p.name not in MODELLED})


# --------------------------------------------------------------------------- evaluation

def _header(headers: list[tuple[bytes, bytes]] | None, name: str) -> str | None:
    if headers is None:
        return None
    key = name.encode("latin-1")
    for n, v in headers:
        if n == key:
            return v.decode("latin-1")
    return None


def _request_header(ctx: FormatContext, name: str) -> str | None:
    if ctx.response_headers is None and name in ctx.removed:
        return None
    if name.startswith(":"):
        pseudo = {":authority": ctx.authority, ":path": ctx.path, ":method": ctx.method,
                  ":scheme": ctx.scheme}.get(name)
        return pseudo or None
    if name == "host":
        return ctx.authority or None
    v = _header(ctx.request_headers, name)
    if not v:  # set by the connection manager before the router formats anything
        if name == "x-request-id":
            return ctx.request_id or v
        if name == "x-forwarded-proto" and v is None:
            return ctx.scheme
    return v


def _without_port(addr: str) -> str:
    if addr.startswith("["):
        return addr[1:addr.find("]")]
    host, sep, _ = addr.rpartition(":")
    return host if sep else addr


def _port(addr: str) -> str:
    host, sep, port = addr.rpartition(":")
    return port if sep and host else ""


def _evaluate(c: Command, ctx: FormatContext) -> str:
    name = c.name
    if name == "REQ" or name == "RESP":
        for h in c.args:
            if not h:
                continue
            if name == "REQ":
                v = _request_header(ctx, h)
            else:
                v = None if h in ctx.removed else _header(ctx.response_headers, h)
            if v is not None:
                return v
        return ""
    if name == "PROTOCOL":
        return "HTTP/1.1"
    if name == "HOSTNAME":
        return ctx.hostname
    if name == "RESPONSE_CODE":  # 0 while the request headers are built
        return str(ctx.response_code) if ctx.response_headers is not None else "0"
    if name == "UPSTREAM_CLUSTER":
        return ctx.cluster
    if name.startswith("DOWNSTREAM_"):
        kind = name[len("DOWNSTREAM_"):]
        if kind.startswith("DIRECT_REMOTE_"):
            addr, kind = ctx.downstream_direct_remote, kind[len("DIRECT_REMOTE_"):]
        elif kind.startswith("REMOTE_"):
            addr, kind = ctx.downstream_remote, kind[len("REMOTE_"):]
        else:
            addr, kind = ctx.downstream_local, kind[len("LOCAL_"):]
        return _address(addr, kind)
    if name.startswith("UPSTREAM_REMOTE_") or name == "UPSTREAM_HOST":
        # known only once the router picked an endpoint: never while request headers are built
        addr = ctx.upstream_host if ctx.response_headers is not None else ""
        return addr if name == "UPSTREAM_HOST" else _address(addr, name[len("UPSTREAM_REMOTE_"):])
    return ""


def _address(addr: str, kind: str) -> str:
    if not addr:
        return ""
    if kind == "ADDRESS":
        return addr
    if kind == "ADDRESS_WITHOUT_PORT":
        return _without_port(addr)
    return _port(addr)


def address_from_xff(xff: str | None) -> str | None:
    """Envoy's downstream remote address when use_remote_address is false: the last
    address of x-forwarded-for (port 0), or None when there is none or it is not an IP."""
    if not xff:
        return None
    last = xff.rpartition(",")[2].strip()
    try:
        ip = ipaddress.ip_address(last)
    except ValueError:
        return None
    return f"{ip}:0" if ip.version == 4 else f"[{ip}]:0"
