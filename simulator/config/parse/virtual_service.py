"""The schema of a VirtualService: HTTPRoute and its parts (redirect, direct response,
rewrite, delegate, retries, fault injection, CORS), the TLS and TCP routes (kept raw)."""

from __future__ import annotations

from typing import Any

from simulator.config.parse.messages import (
    DESTINATION,
    DUR,
    HEADERS,
    HTTP_MATCH_REQUEST,
    HTTP_MIRROR_POLICY,
    HTTP_ROUTE_DESTINATION,
    PERCENT,
    string_match,
)
from simulator.config.rules.http_route import check_http_route
from simulator.config.schema import (
    F,
    Obj,
    base64_bytes,
    boolean,
    enum,
    int32,
    list_of,
    string,
    string_list,
    string_map,
    uint32,
)
from simulator.model import istio as m

# ------------------------------------------------------------------ HTTPRoute parts


def _body(string: str | None = None, bytes: bytes | None = None) -> bytes | None:  # noqa: A002
    if string is not None:
        return string.encode("utf-8")
    return bytes


HTTP_BODY = Obj(
    "HTTPBody",
    [F("string", string), F("bytes", base64_bytes)],
    build=_body,
    oneof=(("string", "bytes"),),
)
HTTP_DIRECT_RESPONSE = Obj(
    "HTTPDirectResponse",
    [F("status", uint32), F("body", HTTP_BODY)],
    build=m.HTTPDirectResponse,
    required=("status",),
    defaults={"status": 0},
)
HTTP_REDIRECT = Obj(
    "HTTPRedirect",
    [
        F("uri", string),
        F("authority", string),
        F("port", uint32),
        F("derivePort", enum("FROM_PROTOCOL_DEFAULT", "FROM_REQUEST_PORT")),
        F("scheme", string),
        F("redirectCode", uint32),
        F("prefixRewrite", string),
    ],
    build=m.HTTPRedirect,
    oneof=(("port", "derivePort"),),
)
REGEX_REWRITE = Obj(
    "RegexRewrite",
    [F("match", string), F("rewrite", string)],
    build=lambda match="", rewrite="": m.RegexRewrite(match=match, rewrite=rewrite),
)
HTTP_REWRITE = Obj(
    "HTTPRewrite",
    [F("uri", string), F("authority", string), F("uriRegexRewrite", REGEX_REWRITE)],
    build=m.HTTPRewrite,
)
DELEGATE = Obj(
    "Delegate",
    [F("name", string), F("namespace", string)],
    build=m.Delegate,
    defaults={"name": ""},
)
HTTP_RETRY = Obj(
    "HTTPRetry",
    [
        F("attempts", int32),
        F("perTryTimeout", DUR),
        F("retryOn", string),
        F("retryRemoteLocalities", boolean),
        F("retryIgnorePreviousHosts", boolean),
        F("backoff", DUR),
    ],
    build=m.HTTPRetry,
)
FAULT_DELAY = Obj(
    "Delay",
    [
        F("fixedDelay", DUR),
        F("exponentialDelay", DUR, attr=""),
        F("percentage", PERCENT),
        F("percent", int32),
    ],
    build=m.FaultDelay,
    oneof=(("fixedDelay", "exponentialDelay"),),
)
FAULT_ABORT = Obj(
    "Abort",
    [
        F("httpStatus", int32),
        F("grpcStatus", string),
        F("http2Error", string, attr=""),
        F("percentage", PERCENT),
    ],
    build=m.FaultAbort,
    oneof=(("httpStatus", "grpcStatus", "http2Error"),),
)
HTTP_FAULT_INJECTION = Obj(
    "HTTPFaultInjection",
    [F("delay", FAULT_DELAY), F("abort", FAULT_ABORT)],
    build=m.HTTPFaultInjection,
)


def _cors(allow_origin: tuple[str, ...] = (), **kw: Any) -> m.CorsPolicy:
    # Deprecated allowOrigin (plain strings) is used as exact matches when
    # allowOrigins is unset (route.go TranslateCORSPolicy).
    if allow_origin and not kw.get("allow_origins"):
        kw["allow_origins"] = tuple(m.StringMatch("exact", o) for o in allow_origin)
    return m.CorsPolicy(**kw)


CORS_POLICY = Obj(
    "CorsPolicy",
    [
        F("allowOrigin", string_list),
        F("allowOrigins", list_of(string_match("allowOrigins"))),
        F("allowMethods", string_list),
        F("allowHeaders", string_list),
        F("exposeHeaders", string_list),
        F("maxAge", DUR),
        F("allowCredentials", boolean),
        F("unmatchedPreflights", enum("UNSPECIFIED", "FORWARD", "IGNORE")),
    ],
    build=_cors,
)

HTTP_ROUTE = Obj(
    "HTTPRoute",
    [
        F("name", string),
        F("match", list_of(HTTP_MATCH_REQUEST)),
        F("route", list_of(HTTP_ROUTE_DESTINATION)),
        F("redirect", HTTP_REDIRECT),
        F("directResponse", HTTP_DIRECT_RESPONSE),
        F("delegate", DELEGATE),
        F("rewrite", HTTP_REWRITE),
        F("timeout", DUR),
        F("retries", HTTP_RETRY),
        F("fault", HTTP_FAULT_INJECTION),
        F("mirror", DESTINATION),
        F("mirrorPercent", uint32),
        F("mirror_percent", uint32, attr="mirror_percent", hidden=True),
        F("mirrorPercentage", PERCENT),
        F("mirrors", list_of(HTTP_MIRROR_POLICY)),
        F("corsPolicy", CORS_POLICY),
        F("headers", HEADERS),
    ],
    build=m.HTTPRoute,
    check=check_http_route,
)

# ------------------------------------------------------------------ TCP / TLS routes (kept raw)

_PORT_SELECTOR_RAW = Obj("PortSelector", [F("number", uint32)], raw=True)
_DESTINATION_RAW = Obj(
    "Destination",
    [F("host", string), F("subset", string), F("port", _PORT_SELECTOR_RAW)],
    required=("host",),
    raw=True,
)
_ROUTE_DESTINATION_RAW = Obj(
    "RouteDestination",
    [F("destination", _DESTINATION_RAW), F("weight", int32)],
    required=("destination",),
    raw=True,
)
_L4_MATCH_FIELDS = [
    F("destinationSubnets", string_list),
    F("port", uint32),
    F("sourceLabels", string_map),
    F("gateways", string_list),
    F("sourceNamespace", string),
]
L4_MATCH = Obj("L4MatchAttributes", [*_L4_MATCH_FIELDS, F("sourceSubnet", string, hidden=True)], raw=True)
TLS_MATCH = Obj("TLSMatchAttributes", [F("sniHosts", string_list), *_L4_MATCH_FIELDS], raw=True)
TCP_ROUTE = Obj(
    "TCPRoute",
    [F("match", list_of(L4_MATCH)), F("route", list_of(_ROUTE_DESTINATION_RAW))],
    raw=True,
)
TLS_ROUTE = Obj(
    "TLSRoute",
    [F("match", list_of(TLS_MATCH)), F("route", list_of(_ROUTE_DESTINATION_RAW))],
    required=("match",),
    raw=True,
)

VIRTUAL_SERVICE_SPEC = Obj(
    "VirtualService",
    [
        F("hosts", string_list),
        F("gateways", string_list),
        F("http", list_of(HTTP_ROUTE)),
        F("tls", list_of(TLS_ROUTE)),
        F("tcp", list_of(TCP_ROUTE)),
        F("exportTo", string_list),
    ],
)
