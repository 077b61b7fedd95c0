"""Istio networking resources: YAML values -> ``simulator.model.istio``.

The tables below list, per Istio message type, every field of the API
(networking.istio.io v1 / v1beta1 / v1alpha3 share one schema) with its
converter and model attribute.  Fields the model does not keep (``attr=""``)
are still type-checked, so a typo anywhere is an error, as the Kubernetes API
server's strict field validation makes it.  Semantic (webhook) rules are
attached as ``check`` hooks and live in ``rules.py``.

Entry point: ``parse_spec(kind, spec, ctx)``.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from simulator.config import rules
from simulator.config.schema import (
    INVALID,
    Ctx,
    F,
    Obj,
    base64_bytes,
    boolean,
    duration,
    enum,
    int32,
    list_of,
    map_of,
    number,
    string,
    string_list,
    string_map,
    uint32,
)
from simulator.model import istio as m
from simulator.model.syntax import check_header_name

DUR = duration()  # >= 1ms, whole milliseconds (Istio's ValidateDuration)

# ------------------------------------------------------------------ StringMatch

_STRING_MATCH_KINDS = ("exact", "prefix", "regex")
_STRING_MATCH = Obj("StringMatch", [F(k, string) for k in _STRING_MATCH_KINDS])


def string_match(where: str) -> Any:
    """A StringMatch converter.  ``where`` selects Istio's per-field rules:

    * ``headers`` / ``queryParams`` / ``withoutHeaders``: ``{}`` is a presence
      match, and so is ``regex: "*"`` (only ``withoutHeaders`` passes the
      webhook with it: for the others ``*`` is not a valid RE2);
    * elsewhere exactly one of exact / prefix / regex is required;
    * ``uri``: an empty prefix is allowed (others must be non-empty);
    * ``allowOrigins``: a non-empty value is required.
    """

    def conv(ctx: Ctx, value: Any, path: str) -> Any:
        fields = _STRING_MATCH(ctx, value, path)
        if fields is INVALID:
            return INVALID
        if len(fields) > 1:
            # _STRING_MATCH has no oneof, so that the error is reported here once
            ctx.error(
                f"{path}.{list(fields)[1]}",
                f"{path}: StringMatch may set only one of exact, prefix, regex (found {' and '.join(fields)})",
            )
            return INVALID
        if not fields:
            if where in ("headers", "withoutHeaders", "queryParams"):
                return m.StringMatch("present")
            if where == "allowOrigins":
                ctx.error(path, f"{path}: '' is not a valid match type for CORS allow origins")
            else:
                ctx.error(path, f"{path}: a {where} match must set exactly one of exact, prefix, regex")
            return INVALID
        kind, text = next(iter(fields.items()))
        return _string_match_value(ctx, where, kind, text, f"{path}.{kind}")

    return conv


def _string_match_value(ctx: Ctx, where: str, kind: str, text: str, path: str) -> Any:
    presence_capable = where in ("headers", "withoutHeaders", "queryParams")
    if kind == "regex" and text == "*" and presence_capable:
        if where != "withoutHeaders":
            ctx.error(
                path,
                f'{path}: invalid regex "*": "*" is not a valid RE2 regex (Istio accepts it as a '
                f'presence match only in withoutHeaders; use {{}} or regex: ".*")',
            )
        return m.StringMatch("present")
    if kind == "prefix" and text == "" and where not in ("uri",):
        ctx.error(path, f'{path}: "{where}" prefix string match should not be empty')
        return INVALID
    if kind == "regex":
        if text == "":
            ctx.error(path, f'{path}: "{where}" regex string match should not be empty')
            return INVALID
        if not rules.check_regex(ctx, text, path):
            return INVALID
    if where == "allowOrigins" and text == "":
        ctx.error(path, f"{path}: '' is not a valid match type for CORS allow origins")
        return INVALID
    return m.StringMatch(kind, text)  # type: ignore[arg-type]


def header_matches(where: str) -> Any:
    """``map<string, StringMatch>`` for headers / withoutHeaders / queryParams:
    -> tuple of (name, StringMatch) in file order, header names lower-cased."""
    item = string_match(where)
    is_header = where != "queryParams"

    def conv(ctx: Ctx, value: Any, path: str) -> Any:
        if not isinstance(value, Mapping):
            ctx.error(path, f"{path}: expected a mapping of name to StringMatch")
            return INVALID
        out = []
        for name, sm in value.items():
            p = f"{path}.{name}"
            if is_header:
                reason = check_header_name(name)
                if reason:
                    ctx.error(p, f"{p}: {reason}")
            if sm is None:
                ctx.error(p, f"{p}: {where} match {name} cannot be null")
                continue
            v = item(ctx, sm, p)
            if v is not INVALID:
                out.append((name.lower() if is_header else name, v))
        return tuple(out)

    return conv


# ------------------------------------------------------------------ small messages


def _percent_value(value: float = 0.0) -> float:
    return value


PERCENT = Obj("Percent", [F("value", number)], build=_percent_value)
PORT_SELECTOR = Obj("PortSelector", [F("number", uint32)], build=lambda number=0: number)


def _pairs(d: dict[str, str] | None = None) -> tuple[tuple[str, str], ...]:
    return tuple((d or {}).items())


HEADER_OPERATIONS = Obj(
    "HeaderOperations",
    [F("set", string_map), F("add", string_map), F("remove", string_list)],
    build=lambda set=None, add=None, remove=(): m.HeaderOperations(  # noqa: A002
        set=_pairs(set), add=_pairs(add), remove=remove
    ),
)
HEADERS = Obj(
    "Headers",
    [F("request", HEADER_OPERATIONS), F("response", HEADER_OPERATIONS)],
    build=m.Headers,
)

DESTINATION = Obj(
    "Destination",
    [F("host", string), F("subset", string), F("port", PORT_SELECTOR)],
    build=m.Destination,
    required=("host",),
    defaults={"host": ""},
    check=rules.check_destination,
)
HTTP_ROUTE_DESTINATION = Obj(
    "HTTPRouteDestination",
    [F("destination", DESTINATION), F("weight", int32), F("headers", HEADERS)],
    build=m.HTTPRouteDestination,
    required=("destination",),
    defaults={"destination": m.Destination(host="")},
)
HTTP_MIRROR_POLICY = Obj(
    "HTTPMirrorPolicy",
    [F("destination", DESTINATION), F("percentage", PERCENT)],
    build=m.HTTPMirrorPolicy,
    required=("destination",),
    defaults={"destination": m.Destination(host="")},
)

# ------------------------------------------------------------------ HTTPMatchRequest

HTTP_MATCH_REQUEST = Obj(
    "HTTPMatchRequest",
    [
        F("name", string),
        F("uri", string_match("uri")),
        F("scheme", string_match("scheme")),
        F("method", string_match("method")),
        F("authority", string_match("authority")),
        F("headers", header_matches("headers")),
        F("withoutHeaders", header_matches("withoutHeaders")),
        F("queryParams", header_matches("queryParams")),
        F("ignoreUriCase", boolean),
        F("port", uint32),
        F("sourceLabels", string_map),
        F("gateways", string_list),
        F("sourceNamespace", string),
        F("statPrefix", string),
    ],
    build=m.HTTPMatchRequest,
    check=rules.check_match,
)

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
    check=rules.check_http_route,
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

# ------------------------------------------------------------------ DestinationRule

CLIENT_TLS = Obj(
    "ClientTLSSettings",
    [
        F("mode", enum("DISABLE", "SIMPLE", "MUTUAL", "ISTIO_MUTUAL")),
        F("clientCertificate", string),
        F("privateKey", string),
        F("caCertificates", string),
        F("credentialName", string),
        F("subjectAltNames", string_list),
        F("sni", string),
        F("insecureSkipVerify", boolean),
        F("caCrl", string),
    ],
    raw=True,
    check=rules.check_client_tls,
)
HTTP_COOKIE = Obj(
    "HTTPCookie",
    [
        F("name", string),
        F("path", string),
        F("ttl", duration(min_1ms=False)),
        F(
            "attributes",
            list_of(Obj("Attribute", [F("name", string), F("value", string)], raw=True)),
        ),
    ],
    raw=True,
)
CONSISTENT_HASH = Obj(
    "ConsistentHashLB",
    [
        F("httpHeaderName", string),
        F("httpCookie", HTTP_COOKIE),
        F("useSourceIp", boolean),
        F("httpQueryParameterName", string),
        F("ringHash", Obj("RingHash", [F("minimumRingSize", uint32)], raw=True), attr=""),
        F(
            "maglev",
            Obj("MagLev", [F("tableSize", uint32)], raw=True, check=rules.check_maglev),
            attr="",
        ),
        F("minimumRingSize", uint32),
    ],
    build=m.ConsistentHashLB,
    oneof=(
        ("httpHeaderName", "httpCookie", "useSourceIp", "httpQueryParameterName"),
        ("ringHash", "maglev"),
    ),
    check=rules.check_consistent_hash,
)
_FAILOVER = Obj("Failover", [F("from", string), F("to", string)], raw=True)
LOCALITY_LB = Obj(
    "LocalityLoadBalancerSetting",
    [
        F(
            "distribute",
            list_of(Obj("Distribute", [F("from", string), F("to", map_of(uint32))], raw=True)),
        ),
        F("failover", list_of(_FAILOVER)),
        F("failoverPriority", string_list),
        F("enabled", boolean),
    ],
    raw=True,
)
ZONE_AWARE_LB = Obj(
    "ZoneAwareLoadBalancerSetting",
    [
        F("enabled", boolean),
        F("failover", list_of(_FAILOVER)),
        F("failoverPriority", string_list),
        F("minClusterSize", uint32),
    ],
    raw=True,
)
WARMUP = Obj(
    "WarmupConfiguration",
    [F("duration", DUR), F("minimumPercent", number), F("aggression", number)],
    required=("duration",),
    raw=True,
)
LOAD_BALANCER = Obj(
    "LoadBalancerSettings",
    [
        F(
            "simple",
            enum("UNSPECIFIED", "LEAST_CONN", "RANDOM", "PASSTHROUGH", "ROUND_ROBIN", "LEAST_REQUEST"),
        ),
        F("consistentHash", CONSISTENT_HASH),
        F("localityLbSetting", LOCALITY_LB),
        F("zoneAwareLbSetting", ZONE_AWARE_LB, attr=""),
        F("warmupDurationSecs", DUR, attr=""),
        F("warmup", WARMUP),
    ],
    build=m.LoadBalancerSettings,
    oneof=(("simple", "consistentHash"), ("localityLbSetting", "zoneAwareLbSetting")),
)
TCP_SETTINGS = Obj(
    "TCPSettings",
    [
        F("maxConnections", int32),
        F("connectTimeout", DUR),
        F(
            "tcpKeepalive",
            Obj("TcpKeepalive", [F("probes", uint32), F("time", DUR), F("interval", DUR)], raw=True),
            attr="",
        ),
        F("maxConnectionDuration", DUR),
        F("idleTimeout", duration(allow_zero=True)),
    ],
    build=m.TCPSettings,
)
HTTP_SETTINGS = Obj(
    "HTTPSettings",
    [
        F("http1MaxPendingRequests", int32, attr="http1_max_pending_requests"),
        F("http2MaxRequests", int32, attr="http2_max_requests"),
        F("maxRequestsPerConnection", int32),
        F("maxRetries", int32),
        F("idleTimeout", DUR),
        F(
            "h2UpgradePolicy",
            enum("DEFAULT", "DO_NOT_UPGRADE", "UPGRADE"),
            attr="h2_upgrade_policy",
        ),
        F("useClientProtocol", boolean),
        F("maxConcurrentStreams", int32),
        F(
            "http2KeepAlive",
            Obj(
                "HTTP2KeepAlive",
                [F("interval", DUR), F("timeout", DUR)],
                required=("interval", "timeout"),
                raw=True,
            ),
            attr="",
        ),
    ],
    build=m.HTTPSettings,
)
CONNECTION_POOL = Obj(
    "ConnectionPoolSettings",
    [F("tcp", TCP_SETTINGS), F("http", HTTP_SETTINGS)],
    build=m.ConnectionPoolSettings,
    check=rules.check_connection_pool,
)
OUTLIER_DETECTION = Obj(
    "OutlierDetection",
    [
        F("consecutiveErrors", int32),
        F("splitExternalLocalOriginErrors", boolean),
        F("consecutiveLocalOriginFailures", uint32),
        F("consecutiveGatewayErrors", uint32),
        F("consecutive5xxErrors", uint32, attr="consecutive_5xx_errors"),
        F("interval", DUR),
        F("baseEjectionTime", DUR),
        F("maxEjectionPercent", int32),
        F("minHealthPercent", int32),
        F("outlierDetectionHttpErrorCodes", list_of(uint32), attr=""),
    ],
    build=m.OutlierDetection,
    check=rules.check_outlier_detection,
)
PORT_TRAFFIC_POLICY = Obj(
    "PortTrafficPolicy",
    [
        F("port", PORT_SELECTOR),
        F("loadBalancer", LOAD_BALANCER),
        F("connectionPool", CONNECTION_POOL),
        F("outlierDetection", OUTLIER_DETECTION),
        F("tls", CLIENT_TLS),
    ],
    build=m.PortTrafficPolicy,
    defaults={"port": None},
)
TRAFFIC_POLICY = Obj(
    "TrafficPolicy",
    [
        F("loadBalancer", LOAD_BALANCER),
        F("connectionPool", CONNECTION_POOL),
        F("outlierDetection", OUTLIER_DETECTION),
        F("tls", CLIENT_TLS),
        F("portLevelSettings", list_of(PORT_TRAFFIC_POLICY)),
        F(
            "tunnel",
            Obj(
                "TunnelSettings",
                [F("protocol", string), F("targetHost", string), F("targetPort", uint32)],
                required=("targetHost", "targetPort"),
                raw=True,
            ),
            attr="",
        ),
        F(
            "proxyProtocol",
            Obj("ProxyProtocol", [F("version", enum("V1", "V2"))], raw=True),
            attr="",
        ),
        F(
            "retryBudget",
            Obj(
                "RetryBudget",
                [F("percent", number), F("minRetryConcurrency", uint32), F("budgetInterval", DUR)],
                raw=True,
            ),
            attr="",
        ),
    ],
    build=m.TrafficPolicy,
    check=rules.check_traffic_policy,
)
SUBSET = Obj(
    "Subset",
    [F("name", string), F("labels", string_map), F("trafficPolicy", TRAFFIC_POLICY)],
    build=m.Subset,
    required=("name",),
    defaults={"name": ""},
)
DESTINATION_RULE_SPEC = Obj(
    "DestinationRule",
    [
        F("host", string),
        F("trafficPolicy", TRAFFIC_POLICY),
        F("subsets", list_of(SUBSET)),
        F("exportTo", string_list),
        F(
            "workloadSelector",
            Obj(
                "WorkloadSelector",
                [F("matchLabels", string_map)],
                build=lambda match_labels=None: match_labels or {},
            ),
        ),
    ],
    required=("host",),
)

# ------------------------------------------------------------------ ServiceEntry / WorkloadEntry

WORKLOAD_ENTRY_SPEC = Obj(
    "WorkloadEntry",
    [
        F("address", string),
        F("ports", map_of(uint32)),
        F("labels", string_map),
        F("network", string),
        F("locality", string),
        F("weight", uint32),
        F("serviceAccount", string),
    ],
    build=m.WorkloadEntrySpec,
)
SERVICE_PORT = Obj(
    "ServicePort",
    [F("number", uint32), F("protocol", string), F("name", string), F("targetPort", uint32)],
    build=m.ServicePort,
    required=("number", "name"),
    defaults={"number": 0},
)
SERVICE_ENTRY_SPEC = Obj(
    "ServiceEntry",
    [
        F("hosts", string_list),
        F("addresses", string_list),
        F("ports", list_of(SERVICE_PORT)),
        F("location", enum("MESH_EXTERNAL", "MESH_INTERNAL")),
        F("resolution", enum("NONE", "STATIC", "DNS", "DNS_ROUND_ROBIN", "DYNAMIC_DNS")),
        F("endpoints", list_of(WORKLOAD_ENTRY_SPEC)),
        F(
            "workloadSelector",
            Obj(
                "WorkloadSelector",
                [F("labels", string_map)],
                build=lambda labels=None: labels or {},
            ),
        ),
        F("exportTo", string_list),
        F("subjectAltNames", string_list, attr=""),
    ],
    required=("hosts",),
)

# ------------------------------------------------------------------ Gateway

GATEWAY_PORT = Obj(
    "Port",
    [F("number", uint32), F("protocol", string), F("name", string), F("targetPort", uint32)],
    build=m.GatewayPort,
    required=("number", "protocol", "name"),
    defaults={"number": 0, "protocol": ""},
)
_TLS_VERSION = enum("TLS_AUTO", "TLSV1_0", "TLSV1_1", "TLSV1_2", "TLSV1_3")
SERVER_TLS = Obj(
    "ServerTLSSettings",
    [
        F("httpsRedirect", boolean),
        F(
            "mode",
            enum(
                "PASSTHROUGH",
                "SIMPLE",
                "MUTUAL",
                "AUTO_PASSTHROUGH",
                "ISTIO_MUTUAL",
                "OPTIONAL_MUTUAL",
            ),
        ),
        F("serverCertificate", string, attr=""),
        F("privateKey", string, attr=""),
        F("caCertificates", string, attr=""),
        F("caCrl", string, attr=""),
        F("credentialName", string),
        F("credentialNames", string_list, attr=""),
        F(
            "tlsCertificates",
            list_of(
                Obj(
                    "TLSCertificate",
                    [
                        F("serverCertificate", string),
                        F("privateKey", string),
                        F("caCertificates", string),
                    ],
                    raw=True,
                )
            ),
            attr="",
        ),
        F("caCertCredentialName", string, attr=""),
        F("subjectAltNames", string_list, attr=""),
        F("verifyCertificateSpki", string_list, attr=""),
        F("verifyCertificateHash", string_list, attr=""),
        F("minProtocolVersion", _TLS_VERSION, attr=""),
        F("maxProtocolVersion", _TLS_VERSION, attr=""),
        F("cipherSuites", string_list, attr=""),
        F("insecureSkipVerify", boolean, attr=""),
    ],
    build=m.ServerTLSSettings,
    check=rules.check_server_tls,
)
SERVER = Obj(
    "Server",
    [
        F("port", GATEWAY_PORT),
        F("bind", string),
        F("hosts", string_list),
        F("tls", SERVER_TLS),
        F("defaultEndpoint", string, attr=""),
        F("name", string),
    ],
    build=m.Server,
    required=("port", "hosts"),
    defaults={"port": m.GatewayPort(number=0, protocol=""), "hosts": ()},
)
GATEWAY_SPEC = Obj(
    "Gateway",
    [F("servers", list_of(SERVER)), F("selector", string_map)],
)

# ------------------------------------------------------------------ resources

SPECS: dict[str, Obj] = {
    "VirtualService": VIRTUAL_SERVICE_SPEC,
    "DestinationRule": DESTINATION_RULE_SPEC,
    "ServiceEntry": SERVICE_ENTRY_SPEC,
    "WorkloadEntry": WORKLOAD_ENTRY_SPEC,
    "Gateway": GATEWAY_SPEC,
}


def parse_spec(kind: str, meta: m.Meta, spec: Any, ctx: Ctx) -> Any:
    """Parse the ``spec`` of one resource into its model object (never raises)."""
    if spec is None:
        spec = {}
    values = SPECS[kind](ctx, spec, "spec")
    if values is INVALID:
        values = {}
    src = ctx.source
    if kind == "VirtualService":
        obj: Any = m.VirtualService(meta=meta, src=src, **values)
        rules.check_virtual_service(ctx, obj)
    elif kind == "DestinationRule":
        obj = m.DestinationRule(meta=meta, src=src, **{"host": "", **values})
        rules.check_destination_rule(ctx, obj)
    elif kind == "ServiceEntry":
        obj = m.ServiceEntry(meta=meta, src=src, **values)
        rules.check_service_entry(ctx, obj)
    elif kind == "WorkloadEntry":
        spec_obj = values if isinstance(values, m.WorkloadEntrySpec) else m.WorkloadEntrySpec()
        obj = m.WorkloadEntry(meta=meta, spec=spec_obj, src=src)
        rules.check_workload_entry(ctx, spec_obj, "spec")
    else:
        obj = m.Gateway(meta=meta, src=src, **values)
        rules.check_gateway(ctx, obj)
    return obj
