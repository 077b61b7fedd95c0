"""Single-resource semantic rules: what Istio's validating webhook
(``pkg/config/validation``) rejects (errors) or warns about (warnings), plus
the webhook's unreachable-rule analysis (IST0130 / IST0131) and the
deprecated-field notes (IST0002).

Every function takes the parse context, the model object and the YAML path of
that object, and reports through ``ctx``.  Type and range problems that the
converters already caught do not reach here (the attribute keeps its default).
"""

from __future__ import annotations

import json
import math
from collections.abc import Iterable
from typing import Any

from simulator.config.schema import Ctx
from simulator.core import header_format
from simulator.core.hosts import wildcard_matches
from simulator.model import istio as m
from simulator.model.names import MESH
from simulator.model.syntax import (
    RE2_NOTE,
    check_fqdn,
    check_header_name,
    check_header_value,
    check_ip_subnet,
    check_label_key,
    check_label_value,
    check_re2,
    check_wildcard_domain,
    is_dns1123_label,
    is_ip,
)

RETRY_ON_POLICIES = (
    "5xx",
    "gateway-error",
    "reset",
    "reset-before-request",
    "connect-failure",
    "retriable-4xx",
    "refused-stream",
    "retriable-status-codes",
    "retriable-headers",
    "envoy-ratelimited",
    "http3-post-connect-failure",
    "cancelled",
    "deadline-exceeded",
    "internal",
    "resource-exhausted",
    "unavailable",
)
# Go net/http StatusText: the codes it knows (a retryOn integer must be one).
HTTP_STATUS_CODES = frozenset(
    [100, 101, 102, 103, 200, 201, 202, 203, 204, 205, 206, 207, 208, 226]
    + [300, 301, 302, 303, 304, 305, 307, 308]
    + list(range(400, 419))
    + [421, 422, 423, 424, 425, 426, 428, 429, 431, 451]
    + [500, 501, 502, 503, 504, 505, 506, 507, 508, 510, 511]
)
GRPC_STATUS_NAMES = (
    "OK", "CANCELLED", "UNKNOWN", "INVALID_ARGUMENT", "DEADLINE_EXCEEDED", "NOT_FOUND",
    "ALREADY_EXISTS", "PERMISSION_DENIED", "RESOURCE_EXHAUSTED", "FAILED_PRECONDITION",
    "ABORTED", "OUT_OF_RANGE", "UNIMPLEMENTED", "INTERNAL", "UNAVAILABLE", "DATA_LOSS",
    "UNAUTHENTICATED",
)  # fmt: skip
CORS_METHODS = ("GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "CONNECT", "OPTIONS", "TRACE", "*")
PROTOCOLS = (
    "HTTP",
    "HTTPS",
    "GRPC",
    "GRPC-WEB",
    "HTTP2",
    "MONGO",
    "REDIS",
    "MYSQL",
    "TCP",
    "TLS",
    "UDP",
    "HTTP_PROXY",
)
HTTP_PROTOCOLS = ("HTTP", "HTTP2", "HTTP_PROXY", "GRPC", "GRPC-WEB")
TLS_PROTOCOLS = ("HTTPS", "TLS")
TRANSLATED_REDIRECT_CODES = (0, 301, 302, 303, 307, 308)
KB, MB = 1024, 1024 * 1024

# ------------------------------------------------------------------ helpers


def check_regex(ctx: Ctx, pattern: str, path: str) -> bool:
    """Report ``pattern`` at ``path`` unless RE2 (the engine Envoy and Istio use) accepts it."""
    reason = check_re2(pattern)
    if reason is None:
        return True
    ctx.error(path, f'{path}: invalid regex "{pattern}": {reason}; {RE2_NOTE}')
    return False


def as_list(value: object) -> list[Any]:
    """A raw (model-kept-as-dict) value as a list; anything else -> []."""
    return value if isinstance(value, list) else []


def check_port(ctx: Ctx, port: int | None, path: str) -> None:
    if port is not None and not 1 <= port <= 65535:
        ctx.error(path, f"{path}: port number {port} must be in the range 1..65535")


def check_labels(ctx: Ctx, labels: dict[str, str] | None, path: str) -> None:
    for key, value in (labels or {}).items():
        p = f"{path}.{key}"
        reason = check_label_key(key) or check_label_value(value)
        if reason:
            ctx.error(p, f"{p}: {reason}")


def check_percentage(ctx: Ctx, value: float | None, path: str) -> None:
    """``validatePercentage``: 0, or within [0.0001, 100]."""
    if value is None:
        return
    if value < 0 or value > 100 or 0 < value < 0.0001:
        ctx.error(path, f"{path}: percentage {value:g} is neither 0.0, nor in range [0.0001, 100.0]")


def protocol_of(name: str) -> str:
    """Istio ``protocol.Parse`` (case-insensitive); "" when unsupported."""
    upper = name.upper()
    return upper if upper in PROTOCOLS else ""


def deprecated(ctx: Ctx, path: str, what: str, instead: str) -> None:
    ctx.warn(path, f'Deprecated: {path}: "{what}" is deprecated, use "{instead}" instead', "IST0002")


def _hosts_overlap(a: str, b: str) -> bool:
    """Istio host.Name.Matches: either covers the other (wildcard-aware)."""
    if a.startswith("*") and b.startswith("*"):
        return b[1:].endswith(a[1:]) if len(a) < len(b) else a[1:].endswith(b[1:])
    return wildcard_matches(a, b) or wildcard_matches(b, a)


# ------------------------------------------------------------------ Destination & match


def check_destination(ctx: Ctx, d: m.Destination, path: str) -> None:
    if d.host == "*":
        ctx.error(
            f"{path}.host",
            f'{path}.host: invalid destination host "*" (a destination must name one service)',
        )
    elif d.host:
        reason = check_wildcard_domain(d.host)
        if reason:
            ctx.error(f"{path}.host", f"{path}.host: {reason}")
    if d.subset and not is_dns1123_label(d.subset):
        ctx.error(
            f"{path}.subset",
            f'{path}.subset: subset name "{d.subset}" is invalid (must be a DNS-1123 label: '
            "alphanumerics and '-', at most 63 characters)",
        )
    if d.port is not None:
        check_port(ctx, d.port, f"{path}.port.number")


def check_gateway_names(ctx: Ctx, names: Iterable[str], path: str) -> None:
    for i, name in enumerate(names):
        p = f"{path}[{i}]"
        if "/" in name:
            ns, _, gw = name.partition("/")
            if not ns or not gw:
                ctx.error(p, f'{p}: config namespace and gateway name cannot be empty in "{name}"')
            elif not is_dns1123_label(ns):
                ctx.error(p, f'{p}: invalid value for namespace: "{ns}"')
            elif not is_dns1123_label(gw):
                ctx.error(p, f'{p}: invalid value for gateway name: "{gw}"')
            continue
        if "." in name:
            parts = name.split(".")
            ctx.warn(
                p,
                f'{p}: using legacy gatewayName format "{name}"; prefer the <namespace>/<name> '
                f'format: "{parts[1]}/{parts[0]}"',
            )
        reason = check_fqdn(name)
        if reason:
            ctx.error(p, f"{p}: {reason}")


def check_match(ctx: Ctx, match: m.HTTPMatchRequest, path: str) -> None:
    if match.port:
        check_port(ctx, match.port, f"{path}.port")
    check_labels(ctx, match.source_labels, f"{path}.sourceLabels")
    check_gateway_names(ctx, match.gateways, f"{path}.gateways")
    if match.source_namespace and not is_dns1123_label(match.source_namespace):
        ctx.error(
            f"{path}.sourceNamespace",
            f'{path}.sourceNamespace: sourceNamespace match "{match.source_namespace}" is invalid',
        )
    if match.uri is not None and match.ignore_uri_case and match.uri.kind == "regex":
        ctx.warn(
            f"{path}.ignoreUriCase",
            f"{path}.ignoreUriCase: has no effect on a regex uri match (Envoy ignores it); use (?i) in the regex",
        )
    for name, _ in match.headers:
        if name in ("uri", "scheme", "method", "authority"):
            ctx.warn(
                f"{path}.headers.{name}",
                f'{path}.headers.{name}: the header key "{name}" is documented as ignored; '
                f"use the {name} field of the match instead",
            )


# ------------------------------------------------------------------ HTTPRoute


def check_http_route(ctx: Ctx, r: m.HTTPRoute, path: str) -> None:
    _check_route_shape(ctx, r, path)
    _check_header_operations(ctx, r.headers, f"{path}.headers")
    _check_cors(ctx, r.cors_policy, f"{path}.corsPolicy")
    _check_fault(ctx, r.fault, f"{path}.fault")
    _check_mirrors(ctx, r, path)
    _check_redirect(ctx, r.redirect, r.match, f"{path}.redirect")
    _check_direct_response(ctx, r.direct_response, f"{path}.directResponse")
    _check_retries(ctx, r.retries, f"{path}.retries")
    _check_rewrite(ctx, r.rewrite, f"{path}.rewrite")
    _check_authority_rewrite(ctx, r, path)
    _check_route_destinations(ctx, r.route, f"{path}.route")


def _check_route_shape(ctx: Ctx, r: m.HTTPRoute, path: str) -> None:
    """``validateHTTPRouteConflict``: exactly one of route / redirect /
    directResponse / delegate, and what may be combined with each."""
    if r.delegate is not None:  # a root route: only the delegate may forward
        if r.redirect is not None:
            ctx.error(
                f"{path}.redirect",
                f"{path}: root HTTP route {_route_name(r, path)} must not specify redirect",
            )
        if r.route:
            ctx.error(
                f"{path}.route",
                f"{path}: root HTTP route {_route_name(r, path)} must not specify route",
            )
        if r.direct_response is not None:
            ctx.error(
                f"{path}.directResponse",
                f"{path}: HTTP route cannot contain both delegate and directResponse",
            )
        if not r.delegate.name:
            ctx.error(
                f"{path}.delegate",
                f"{path}.delegate.name: the delegate VirtualService name is required",
            )
        return
    if r.redirect is not None:
        for present, field in (
            (bool(r.route), "route"),
            (r.fault is not None, "fault"),
            (r.rewrite is not None, "rewrite"),
            (r.direct_response is not None, "directResponse"),
        ):
            if present:
                ctx.error(
                    f"{path}.{field}",
                    f"{path}: HTTP route cannot contain both {field} and redirect",
                )
    elif r.direct_response is not None:
        for present, field in (
            (bool(r.route), "route"),
            (r.fault is not None, "fault"),
            (r.rewrite is not None, "rewrite"),
        ):
            if present:
                ctx.error(
                    f"{path}.{field}",
                    f"{path}: HTTP route cannot contain both {field} and directResponse",
                )
    elif not r.route:
        ctx.error(
            path,
            f"{path}: HTTP route, redirect, direct_response or delegate is required "
            "(set exactly one of route, redirect, directResponse, delegate)",
        )
    if r.mirror is not None and r.mirrors:
        ctx.error(f"{path}.mirrors", f"{path}: HTTP route cannot contain both mirror and mirrors")


def _check_mirrors(ctx: Ctx, r: m.HTTPRoute, path: str) -> None:
    for name, value in (("mirrorPercent", r.mirror_percent),):
        if value is None:
            continue
        key = "mirror_percent" if ctx.has(f"{path}.mirror_percent") else name
        p = f"{path}.{key}"
        if value > 100:
            ctx.error(p, f"{p}: mirror_percent must have a max value of 100 (it has {value})")
        deprecated(ctx, p, key, "mirrorPercentage")
    if r.mirror_percentage is not None:
        p = f"{path}.mirrorPercentage.value"
        if not 0 <= r.mirror_percentage <= 100:
            ctx.error(
                p,
                f"{p}: mirrorPercentage must be in the range [0, 100] (it has {r.mirror_percentage:g})",
            )
    for i, mp in enumerate(r.mirrors):
        p = f"{path}.mirrors[{i}].percentage.value"
        if mp.percentage is not None and not 0 <= mp.percentage <= 100:
            ctx.error(
                p,
                f"{p}: mirror percentage must be in the range [0, 100] (it has {mp.percentage:g})",
            )
    if (r.mirror_percentage is not None or r.mirror_percent is not None) and r.mirror is None and not r.mirrors:
        p = f"{path}.mirrorPercentage" if r.mirror_percentage is not None else f"{path}.mirrorPercent"
        ctx.warn(p, f"{p}: has no effect without mirror")


def _check_header_operations(ctx: Ctx, headers: m.Headers | None, path: str) -> None:
    if headers is None:
        return
    for direction, ops in (("request", headers.request), ("response", headers.response)):
        if ops is None:
            continue
        base = f"{path}.{direction}"
        for op, pairs in (("set", ops.set), ("add", ops.add)):
            for name, value in pairs:
                p = f"{base}.{op}.{name}"
                reason = _header_op_name(name, allow_authority=direction == "request")
                reason = reason or check_header_value(value)
                if reason:
                    ctx.error(p, f"{p}: {reason}")
                elif "%" in value and name.lower() not in (":authority", "host"):
                    _check_format(ctx, p, value)
        for i, name in enumerate(ops.remove):
            p = f"{base}.remove[{i}]"
            reason = _header_op_name(name, allow_authority=False)
            if reason:
                ctx.error(p, f"{p}: {reason}")


def _check_format(ctx: Ctx, p: str, value: str) -> None:
    """Envoy reads header values as format strings: a value it rejects (Envoy NACKs the
    route configuration) is an error; operators mirrorsim does not model, a warning."""
    try:
        parsed = header_format.parse(value)
    except header_format.FormatError as exc:
        ctx.error(p, f"{p}: Envoy rejects header value {value!r}: {exc}")
        return
    if isinstance(parsed, header_format.Template):
        missing = header_format.unmodelled(parsed)
        if missing:
            ops = ", ".join(f"%{n}%" for n in missing)
            ctx.warn(p, f"{p}: mirrorsim renders {ops} empty (Envoy fills in the value)")


def _header_op_name(name: str, allow_authority: bool) -> str | None:
    if not name:
        return "header name cannot be empty"
    is_authority = name.lower() in (":authority", "host")
    if allow_authority and is_authority:
        return None
    if name.lower() == "host":
        return f'invalid header "{name}": cannot set Host header'
    if name.startswith(":"):
        return f'invalid header "{name}": header cannot have ":" prefix'
    return None


def _check_authority_rewrite(ctx: Ctx, r: m.HTTPRoute, path: str) -> None:
    current = r.rewrite.authority if r.rewrite and r.rewrite.authority else ""
    req = r.headers.request if r.headers else None
    if req is None:
        return
    for op, pairs in (("set", req.set), ("add", req.add)):
        for name, value in pairs:
            if name.lower() not in (":authority", "host"):
                continue
            p = f"{path}.headers.request.{op}.{name}"
            if current:
                ctx.error(
                    p,
                    f'{p}: authority header cannot be set multiple times: have "{current}", '
                    f'attempting to set "{value}"',
                )
                return
            current = value


def _check_cors(ctx: Ctx, cors: m.CorsPolicy | None, path: str) -> None:
    if cors is None:
        return
    if ctx.has(f"{path}.allowOrigin"):
        deprecated(ctx, f"{path}.allowOrigin", "allowOrigin", "allowOrigins")
    for i, method in enumerate(cors.allow_methods):
        if method not in CORS_METHODS:
            p = f"{path}.allowMethods[{i}]"
            ctx.error(
                p,
                f'{p}: "{method}" is not a supported HTTP method; valid: {", ".join(CORS_METHODS)}',
            )
    for field, names in (
        ("allowHeaders", cors.allow_headers),
        ("exposeHeaders", cors.expose_headers),
    ):
        for i, name in enumerate(names):
            if name != "*":
                reason = check_header_name(name, allow_pseudo=False)
                if reason:
                    ctx.error(f"{path}.{field}[{i}]", f"{path}.{field}[{i}]: {reason}")
    if cors.max_age is not None and cors.max_age != math.floor(cors.max_age):
        ctx.error(
            f"{path}.maxAge",
            f"{path}.maxAge: max_age duration is accurate only to seconds precision",
        )


def _check_fault(ctx: Ctx, fault: m.HTTPFaultInjection | None, path: str) -> None:
    if fault is None:
        return
    if fault.abort is None and fault.delay is None:
        ctx.error(path, f"{path}: HTTP fault injection must have an abort and/or a delay")
    if fault.delay is not None:
        _check_fault_delay(ctx, fault.delay, f"{path}.delay")
    if fault.abort is not None:
        _check_fault_abort(ctx, fault.abort, f"{path}.abort")


def _check_fault_delay(ctx: Ctx, delay: m.FaultDelay, path: str) -> None:
    check_percentage(ctx, delay.percentage, f"{path}.percentage.value")
    if ctx.has(f"{path}.exponentialDelay"):
        ctx.error(
            f"{path}.exponentialDelay",
            f"{path}.exponentialDelay: exponentialDelay not supported yet",
        )
    elif delay.fixed_delay is None and not ctx.has(f"{path}.fixedDelay"):
        ctx.warn(path, f"{path}: delay has no fixedDelay; Istio drops it")
    if delay.percent is not None:
        if not 0 <= delay.percent <= 100:
            ctx.error(
                f"{path}.percent",
                f"{path}.percent: percentage {delay.percent} is not in range 0..100",
            )
        ctx.warn(
            f"{path}.percent",
            f"Deprecated: {path}.percent: HTTPRoute.fault.delay.percent is deprecated, "
            'use "HTTPRoute.fault.delay.percentage" instead',
            "IST0002",
        )
    elif delay.percentage is None:
        ctx.warn(path, f"{path}: percentage is not set, so no request is delayed (set percentage.value)")


def _check_fault_abort(ctx: Ctx, abort: m.FaultAbort, path: str) -> None:
    check_percentage(ctx, abort.percentage, f"{path}.percentage.value")
    if ctx.has(f"{path}.http2Error"):
        ctx.error(
            f"{path}.http2Error",
            f"{path}.http2Error: HTTP/2 abort fault injection not supported yet",
        )
    elif abort.http_status is not None:
        if not 200 <= abort.http_status <= 600:
            ctx.error(
                f"{path}.httpStatus",
                f"{path}.httpStatus: HTTP status {abort.http_status} is not in range 200-599",
            )
    elif abort.grpc_status is not None:
        if abort.grpc_status not in GRPC_STATUS_NAMES:
            ctx.error(
                f"{path}.grpcStatus",
                f'{path}.grpcStatus: gRPC status "{abort.grpc_status}" is not supported; valid: '
                + ", ".join(GRPC_STATUS_NAMES),
            )
    elif not ctx.has(f"{path}.httpStatus") and not ctx.has(f"{path}.grpcStatus"):
        ctx.warn(path, f"{path}: abort configured, but error type not set (httpStatus or grpcStatus)")
    if abort.percentage is None:
        ctx.warn(path, f"{path}: percentage is not set, so no request is aborted (set percentage.value)")


def _check_redirect(ctx: Ctx, rd: m.HTTPRedirect | None, matches: tuple[m.HTTPMatchRequest, ...], path: str) -> None:
    if rd is None:
        return
    if rd.uri and rd.prefix_rewrite:
        ctx.error(
            f"{path}.prefixRewrite",
            f"{path}: redirect may only specify one of uri or prefixRewrite",
        )
    if rd.prefix_rewrite:
        if any(mt.uri is not None and mt.uri.kind != "prefix" for mt in matches):
            ctx.error(
                f"{path}.prefixRewrite",
                f"{path}.prefixRewrite: redirect prefix_rewrite requires all URI matches to use prefix match type",
            )
    if not (
        rd.uri or rd.prefix_rewrite or rd.authority or rd.port is not None or rd.derive_port is not None or rd.scheme
    ):
        ctx.error(path, f"{path}: redirect must specify uri, prefixRewrite, authority, scheme, or port")
    code = rd.redirect_code
    if code and not 300 <= code <= 399:
        ctx.error(
            f"{path}.redirectCode",
            f"{path}.redirectCode: {code} is not a valid redirect code, must be 3xx",
        )
    elif code not in TRANSLATED_REDIRECT_CODES:
        ctx.warn(
            f"{path}.redirectCode",
            f"{path}.redirectCode: {code} passes validation but Istio only translates 301, 302, "
            "303, 307, "
            "308; the route is broken (no action) in Envoy",
        )
    if rd.scheme and rd.scheme not in ("http", "https"):
        ctx.error(
            f"{path}.scheme",
            f'{path}.scheme: invalid redirect scheme "{rd.scheme}", must be "http" or "https"',
        )
    if rd.port:
        check_port(ctx, rd.port, f"{path}.port")


def _check_direct_response(ctx: Ctx, dr: m.HTTPDirectResponse | None, path: str) -> None:
    if dr is None:
        return
    if not 200 <= dr.status <= 600:
        ctx.error(f"{path}.status", f"{path}.status: HTTP status {dr.status} is not in range 200-599")
    size = len(dr.body or b"")
    if size > MB:
        ctx.error(
            f"{path}.body",
            f"{path}.body: large direct_responses may impact control plane performance, "
            f"must be less than 1MB (it is {size} bytes)",
        )
    elif size > 100 * KB:
        ctx.warn(
            f"{path}.body",
            f"{path}.body: large direct_responses may impact control plane performance",
        )


def _check_retries(ctx: Ctx, retries: m.HTTPRetry | None, path: str) -> None:
    if retries is None:
        return
    if retries.attempts < 0:
        ctx.error(f"{path}.attempts", f"{path}.attempts: attempts cannot be negative")
    if retries.attempts == 0 and (
        ctx.has(f"{path}.perTryTimeout") or retries.retry_on or retries.retry_remote_localities is not None
    ):
        ctx.error(
            f"{path}.attempts",
            f"{path}: http retry policy configured when attempts are set to 0 (disabled)",
        )
    if retries.retry_on:
        for policy in retries.retry_on.split(","):
            if policy in RETRY_ON_POLICIES or (policy.isdigit() and int(policy) in HTTP_STATUS_CODES):
                continue
            hint = ' (tokens are not trimmed: remove the spaces around ",")' if policy.strip() != policy else ""
            ctx.error(
                f"{path}.retryOn",
                f'{path}.retryOn: "{policy}" is not a valid retryOn policy{hint}; valid: an HTTP '
                "status code or " + ", ".join(RETRY_ON_POLICIES),
            )


def _check_rewrite(ctx: Ctx, rw: m.HTTPRewrite | None, path: str) -> None:
    if rw is None:
        return
    if rw.uri and rw.uri_regex_rewrite is not None:
        ctx.error(
            f"{path}.uriRegexRewrite",
            f"{path}: rewrite may only contain one of uri or uriRegexRewrite",
        )
    if not rw.uri and rw.uri_regex_rewrite is None and not rw.authority:
        ctx.error(path, f"{path}: rewrite must specify at least one of uri, uriRegexRewrite, or authority")
    rr = rw.uri_regex_rewrite
    if rr is not None:
        p = f"{path}.uriRegexRewrite"
        if not rr.match or not rr.rewrite:
            ctx.error(p, f"{p}: UriRegexRewrite requires both rewrite and match fields to be specified")
        if rr.match:
            check_regex(ctx, rr.match, f"{p}.match")


def _check_route_destinations(ctx: Ctx, dests: tuple[m.HTTPRouteDestination, ...], path: str) -> None:
    total = 0
    for i, d in enumerate(dests):
        p = f"{path}[{i}]"
        _check_header_operations(ctx, d.headers, f"{p}.headers")
        if d.weight < 0:
            ctx.error(f"{p}.weight", f"{p}.weight: weight {d.weight} < 0")
        total += d.weight
    if len(dests) > 1 and total == 0:
        ctx.error(
            path,
            f"{path}: total destination weight = 0 (weights are relative; give at least one destination a weight > 0)",
        )


# ------------------------------------------------------------------ VirtualService


def check_virtual_service(ctx: Ctx, vs: m.VirtualService) -> None:
    is_delegate = not vs.hosts
    if is_delegate:
        for present, field in ((vs.gateways, "gateways"), (vs.tls, "tls"), (vs.tcp, "tcp")):
            if present:
                what = "gateways specified" if field == "gateways" else f"{field} route specified"
                ctx.error(
                    f"spec.{field}",
                    f"spec.{field}: delegate virtual service (no hosts) must have no {what}",
                )
        for i, r in enumerate(vs.http):
            if r.delegate is not None:
                p = f"spec.http[{i}].delegate"
                ctx.error(
                    p,
                    f"{p}: delegate HTTP route cannot contain delegate (only one level of delegation)",
                )
    applies_to_gateway = bool(vs.gateways) and MESH not in vs.gateways
    check_gateway_names(ctx, (g for g in vs.gateways if g != MESH), "spec.gateways")
    if not applies_to_gateway:
        _check_jwt_claims(ctx, vs)
    _check_vs_hosts(ctx, vs, applies_to_mesh=not applies_to_gateway)
    if not vs.http and not vs.tcp and not vs.tls:
        ctx.error("spec", "spec: http, tcp or tls must be provided in virtual service")
    _check_l4_routes(ctx, vs)
    check_export_to(ctx, vs.export_to, "spec.exportTo")
    analyze_unreachable_rules(ctx, vs.http)


def _check_jwt_claims(ctx: Ctx, vs: m.VirtualService) -> None:
    for i, r in enumerate(vs.http):
        for j, mt in enumerate(r.match):
            for field, pairs in (("headers", mt.headers), ("withoutHeaders", mt.without_headers)):
                for name, _ in pairs:
                    if name.startswith("@request.auth.claims"):
                        p = f"spec.http[{i}].match[{j}].{field}.{name}"
                        ctx.error(
                            p,
                            f"{p}: JWT claim based routing (key: {name}) is only supported for "
                            "gateway, "
                            f"found no gateways: {list(vs.gateways)}",
                        )


def _check_vs_hosts(ctx: Ctx, vs: m.VirtualService, applies_to_mesh: bool) -> None:
    all_valid = True
    for i, host in enumerate(vs.hosts):
        p = f"spec.hosts[{i}]"
        reason = check_wildcard_domain(host)
        if reason:
            if not is_ip(host):
                ctx.error(p, f"{p}: {reason}")
                all_valid = False
        elif applies_to_mesh and host == "*":
            ctx.error(
                p,
                f"{p}: wildcard host * is not allowed for virtual services bound to the mesh "
                "gateway "
                '(gateways is empty or lists "mesh")',
            )
            all_valid = False
    if not all_valid:
        return
    for i, a in enumerate(vs.hosts):
        for b in vs.hosts[i + 1 :]:
            if _hosts_overlap(a, b):
                ctx.error(f"spec.hosts[{i}]", f"spec.hosts: duplicate hosts in virtual service: {a} & {b}")


def _check_l4_routes(ctx: Ctx, vs: m.VirtualService) -> None:
    for kind, routes in (("tls", vs.tls), ("tcp", vs.tcp)):
        for i, route in enumerate(routes):
            p = f"spec.{kind}[{i}]"
            matches = route.get("match") or []
            if kind == "tls" and not matches:
                ctx.error(p, f"{p}: TLS route must have at least one match condition")
            for j, match in enumerate(matches if isinstance(matches, list) else []):
                if isinstance(match, dict):
                    _check_l4_match(ctx, vs, kind, match, f"{p}.match[{j}]")
            dests = route.get("route") or []
            if not dests:
                ctx.error(p, f"{p}: {kind.upper()} route is required")
            total = 0
            for j, rd in enumerate(dests if isinstance(dests, list) else []):
                weight = rd.get("weight") if isinstance(rd, dict) else None
                if isinstance(weight, int) and not isinstance(weight, bool):
                    if weight < 0:
                        ctx.error(f"{p}.route[{j}].weight", f"{p}.route[{j}].weight: weight {weight} < 0")
                    total += weight
                dest = rd.get("destination") if isinstance(rd, dict) else None
                if isinstance(dest, dict) and isinstance(dest.get("host"), str):
                    port = dest.get("port", {}).get("number") if isinstance(dest.get("port"), dict) else None
                    check_destination(
                        ctx,
                        m.Destination(
                            host=dest["host"],
                            subset=str(dest.get("subset") or ""),
                            port=port if isinstance(port, int) else None,
                        ),
                        f"{p}.route[{j}].destination",
                    )
            if isinstance(dests, list) and len(dests) > 1 and total == 0:
                ctx.error(f"{p}.route", f"{p}.route: total destination weight = 0")


def _check_l4_match(ctx: Ctx, vs: m.VirtualService, kind: str, match: dict[str, object], path: str) -> None:
    for i, subnet in enumerate(as_list(match.get("destinationSubnets"))):
        if isinstance(subnet, str):
            reason = check_ip_subnet(subnet)
            if reason:
                ctx.error(f"{path}.destinationSubnets[{i}]", f"{path}.destinationSubnets[{i}]: {reason}")
    port = match.get("port")
    if isinstance(port, int) and port:
        check_port(ctx, port, f"{path}.port")
    if kind != "tls":
        return
    sni_hosts = match.get("sniHosts") or []
    if not sni_hosts:
        ctx.error(path, f"{path}: TLS match must have at least one SNI host")
    for i, sni in enumerate(sni_hosts if isinstance(sni_hosts, list) else []):
        if not isinstance(sni, str):
            continue
        p = f"{path}.sniHosts[{i}]"
        reason = check_wildcard_domain(sni)
        if reason:
            if is_ip(sni):
                ctx.warn(
                    p,
                    f'{p}: using an IP address ("{sni}") goes against SNI spec and most clients do not support this',
                )
            else:
                ctx.error(p, f"{p}: {reason}")
            continue
        if not any(sni == h or wildcard_matches(h, sni) for h in vs.hosts):
            ctx.error(
                p,
                f'{p}: SNI host "{sni}" is not a compatible subset of any of the virtual service '
                "hosts: "
                f"[{', '.join(vs.hosts)}]",
            )


def check_export_to(ctx: Ctx, export_to: tuple[str, ...], path: str, service_entry: bool = False) -> None:
    seen: set[str] = set()
    for i, entry in enumerate(export_to):
        p = f"{path}[{i}]"
        key = ctx.namespace if entry == "." else entry
        if key in seen:
            ctx.error(p, f"{p}: duplicate entries in exportTo for entry {entry}")
            continue
        seen.add(key)
        if entry in (".", "*") or (service_entry and entry == "~"):
            continue
        if not is_dns1123_label(entry):
            ctx.error(p, f'{p}: invalid exportTo value "{entry}" (a namespace, "." or "*")')
    if "*" in seen and len(export_to) > 1:
        ctx.error(
            path,
            f"{path}: cannot have both public (*) and non-public exportTo values for a resource",
        )
    if "~" in seen and len(export_to) > 1:
        ctx.error(path, f"{path}: cannot export service entry to no one (~) and someone")


# ------------------------------------------------------------------ IST0130 / IST0131


def _route_name(r: m.HTTPRoute, i: int | str) -> str:
    if r.name:
        return f'"{r.name}"'
    return f"#{i}" if isinstance(i, int) else f"#{i.rsplit('[', 1)[-1].rstrip(']')}"


def _request_name(mt: m.HTTPMatchRequest, j: int) -> str:
    return f'"{mt.name}"' if mt.name else f"#{j}"


def _sm_json(sm: m.StringMatch | None) -> object:
    return None if sm is None else [sm.kind, sm.value]


def match_key(mt: m.HTTPMatchRequest) -> str:
    """A canonical serialization of a match without its name (Istio's asJSON):
    equal keys mean the matches select the same requests."""
    return json.dumps(
        {
            "uri": _sm_json(mt.uri),
            "scheme": _sm_json(mt.scheme),
            "method": _sm_json(mt.method),
            "authority": _sm_json(mt.authority),
            "headers": sorted((k, _sm_json(v)) for k, v in mt.headers),
            "withoutHeaders": sorted((k, _sm_json(v)) for k, v in mt.without_headers),
            "queryParams": sorted((k, _sm_json(v)) for k, v in mt.query_params),
            "ignoreUriCase": mt.ignore_uri_case,
            "port": mt.port or 0,
            "sourceLabels": sorted(mt.source_labels.items()),
            "gateways": list(mt.gateways),
            "sourceNamespace": mt.source_namespace,
            "statPrefix": mt.stat_prefix,
        },
        sort_keys=True,
    )


def _exact_or_prefix(sm: m.StringMatch | None) -> str:
    if sm is not None and sm.kind == "exact" and sm.value:
        return "exact:" + sm.value
    if sm is not None and sm.kind == "prefix" and sm.value:
        return "prefix:" + sm.value
    return ""


class _PrefixMatch:
    """genMatchHTTPRoutes: the parts of a prefix match Istio compares."""

    def __init__(self, r: m.HTTPRoute, i: int, mt: m.HTTPMatchRequest, j: int) -> None:
        assert mt.uri is not None
        self.route, self.match = _route_name(r, i), _request_name(mt, j)
        self.index = i
        self.prefix = mt.uri.value
        self.port = mt.port or 0
        self.method = _exact_or_prefix(mt.method) or "exact:GET"
        self.authority = _exact_or_prefix(mt.authority)
        self.headers = {k: _exact_or_prefix(v) for k, v in mt.headers}
        self.query = {k: _exact_or_prefix(v) for k, v in mt.query_params}
        self.without = {k: _exact_or_prefix(v) for k, v in mt.without_headers}

    def covers(self, b: _PrefixMatch) -> bool:
        """coveredValidation(self, b): the earlier match self hides b."""
        if not b.prefix.startswith(self.prefix) or b.port != self.port:
            return False
        for mine, theirs in ((self.method, b.method), (self.authority, b.authority)):
            if mine != theirs and not mine.startswith(theirs):
                return False
        for mine_map, their_map in (
            (self.headers, b.headers),
            (self.query, b.query),
            (self.without, b.without),
        ):
            if len(mine_map) != len(their_map):
                return False
            for key, mine in mine_map.items():
                if key not in their_map:
                    return False
                if mine != their_map[key] and not mine.startswith(their_map[key]):
                    return False
        return True


def _is_catch_all(mt: m.HTTPMatchRequest) -> bool:
    """Envoy route generation stops after a match that translates to a
    catch-all (route.go IsCatchAllRoute), which the webhook does not report."""
    uri_all = (
        mt.uri is None
        or (mt.uri.kind == "prefix" and mt.uri.value == "/")
        or (mt.uri.kind == "regex" and mt.uri.value == ".*")
    )
    header_like = mt.headers or mt.without_headers or mt.query_params or mt.scheme or mt.method or mt.authority
    config_time = mt.port or mt.source_labels or mt.gateways or mt.source_namespace
    return uri_all and not header_like and not config_time


def analyze_unreachable_rules(ctx: Ctx, routes: tuple[m.HTTPRoute, ...]) -> None:
    """``analyzeUnreachableHTTPRules`` (IST0130 / IST0131), plus rules hidden
    behind a catch-all match (which Envoy never sees)."""
    seen: dict[str, int] = {}
    empty_match_at = -1
    catch_all_at = -1
    prefixes: list[_PrefixMatch] = []
    for i, r in enumerate(routes):
        p = f"spec.http[{i}]"
        if not r.match:
            if empty_match_at >= 0:
                _unreachable(ctx, p, _route_name(r, i), "only the last rule can have no matches")
            empty_match_at = i
            continue
        if catch_all_at >= 0 and empty_match_at < 0:
            _unreachable(
                ctx,
                p,
                _route_name(r, i),
                f"rule {_route_name(routes[catch_all_at], catch_all_at)} matches every request "
                '(uri prefix "/"); Envoy stops at it',
            )
            continue
        duplicates = 0
        for j, mt in enumerate(r.match):
            if empty_match_at >= 0:
                _unreachable(ctx, p, _route_name(r, i), "route without matches defined before")
                continue
            key = match_key(mt)
            if key in seen:
                dup = seen[key]
                ctx.warn(
                    f"{p}.match[{j}]",
                    f"VirtualService rule {_route_name(r, i)} match {_request_name(mt, j)} "
                    f"is not used (duplicate/overlapping match in rule "
                    f"{_route_name(routes[dup], dup)}).",
                    "IST0131",
                )
                duplicates += 1
                continue
            seen[key] = i
            if mt.uri is not None and mt.uri.kind == "prefix" and mt.uri.value:
                prefixes.append(_PrefixMatch(r, i, mt, j))
            if _is_catch_all(mt) and catch_all_at < 0:
                catch_all_at = i
        if duplicates == len(r.match):
            _unreachable(ctx, p, _route_name(r, i), "all matches used by prior rules")
    for a_idx, a in enumerate(prefixes):
        for b in prefixes[a_idx + 1 :]:
            if b.prefix != a.prefix and a.covers(b):
                ctx.warn(
                    f"spec.http[{b.index}]",
                    f"VirtualService rule {b.route} match {b.match} of prefix {b.prefix} is not "
                    "used "
                    f"(duplicate/overlapping match in rule {a.match} of prefix {a.prefix} on "
                    f"{a.route}).",
                    "IST0131",
                )


def _unreachable(ctx: Ctx, path: str, rule: str, reason: str) -> None:
    ctx.warn(path, f"VirtualService rule {rule} not used ({reason}).", "IST0130")


# ------------------------------------------------------------------ DestinationRule


def check_destination_rule(ctx: Ctx, dr: m.DestinationRule) -> None:
    if dr.host:
        reason = check_wildcard_domain(dr.host)
        if reason:
            ctx.error("spec.host", f"spec.host: {reason}")
    names: dict[str, int] = {}
    for i, subset in enumerate(dr.subsets):
        p = f"spec.subsets[{i}]"
        if subset.name in names:
            ctx.error(
                f"{p}.name",
                f'{p}.name: duplicate subset names: "{subset.name}" (also spec.subsets[{names[subset.name]}])',
            )
        elif subset.name:
            names[subset.name] = i
        if subset.name and not is_dns1123_label(subset.name):
            ctx.error(
                f"{p}.name",
                f'{p}.name: subset name "{subset.name}" is invalid (must be a DNS-1123 label)',
            )
        check_labels(ctx, subset.labels, f"{p}.labels")
    check_export_to(ctx, dr.export_to, "spec.exportTo")
    if dr.workload_selector is not None:
        for key, value in dr.workload_selector.items():
            p = f"spec.workloadSelector.matchLabels.{key}"
            if not key or "*" in key or "*" in value:
                ctx.error(p, f"{p}: wildcard or empty label not allowed in workloadSelector")
        if dr.export_to and set(dr.export_to) - {".", ctx.namespace}:
            ctx.error(
                "spec.exportTo",
                "spec.exportTo: destination rule with workload selector cannot have exportTo beyond current namespace",
            )


def check_client_tls(ctx: Ctx, tls: dict[str, object], path: str) -> None:
    """``ValidateTLS`` for DestinationRule client TLS settings."""
    mode = tls.get("mode")
    if tls.get("insecureSkipVerify") is True:
        if mode == "SIMPLE" and (tls.get("caCertificates") or tls.get("credentialName") or "subjectAltNames" in tls):
            ctx.error(
                f"{path}.insecureSkipVerify",
                f"{path}: cannot specify caCertificates or credentialName or "
                "subjectAltNames when insecureSkipVerify is set true",
            )
        if mode == "MUTUAL" and (tls.get("caCertificates") or "subjectAltNames" in tls):
            ctx.error(
                f"{path}.insecureSkipVerify",
                f"{path}: cannot specify caCertificates or subjectAltNames when insecureSkipVerify is set true",
            )
    if mode in ("SIMPLE", "MUTUAL") and tls.get("credentialName"):
        if any(tls.get(k) for k in ("clientCertificate", "caCertificates", "privateKey", "caCrl")):
            ctx.error(
                f"{path}.credentialName",
                f"{path}: cannot specify client certificates or CA certificate or CA CRL if credentialName is set",
            )
        return
    if mode == "MUTUAL":
        for key, what in (("clientCertificate", "client certificate"), ("privateKey", "private key")):
            if not tls.get(key):
                ctx.error(path, f"{path}: {what} ({key}) required for mutual tls (or set credentialName)")


def check_traffic_policy(ctx: Ctx, tp: m.TrafficPolicy, path: str) -> None:
    keys = (
        "loadBalancer",
        "connectionPool",
        "outlierDetection",
        "tls",
        "portLevelSettings",
        "tunnel",
        "proxyProtocol",
        "retryBudget",
    )
    if not any(ctx.has(f"{path}.{k}") for k in keys):
        ctx.error(path, f"{path}: traffic policy must have at least one field")
    if ctx.has(f"{path}.tunnel") and ctx.has(f"{path}.proxyProtocol"):
        ctx.error(f"{path}.tunnel", f"{path}: tunnel and proxyProtocol must not be set together")
    _check_lb(ctx, tp.load_balancer, tp.outlier_detection, f"{path}.loadBalancer")
    for i, pl in enumerate(tp.port_level_settings):
        p = f"{path}.portLevelSettings[{i}]"
        if pl.port is None:
            ctx.error(p, f"{p}: portTrafficPolicy must have valid port")
        else:
            check_port(ctx, pl.port, f"{p}.port.number")
        if pl.load_balancer is None and pl.connection_pool is None and pl.outlier_detection is None and pl.tls is None:
            ctx.error(p, f"{p}: port traffic policy must have at least one field")
        _check_lb(ctx, pl.load_balancer, pl.outlier_detection, f"{p}.loadBalancer")


def _check_lb(ctx: Ctx, lb: m.LoadBalancerSettings | None, od: m.OutlierDetection | None, path: str) -> None:
    if lb is None:
        return
    if lb.simple == "LEAST_CONN":
        deprecated(ctx, f"{path}.simple", "LEAST_CONN", "LEAST_REQUEST")
    loc = lb.locality_lb_setting
    if loc:
        _check_locality(ctx, loc, od, f"{path}.localityLbSetting")
    warm = lb.warmup
    if warm:
        pct = warm.get("minimumPercent")
        if isinstance(pct, int | float) and pct > 100:
            ctx.error(
                f"{path}.warmup.minimumPercent",
                f"{path}.warmup.minimumPercent: minimumPercent value should be less than or equal to 100",
            )
        aggr = warm.get("aggression")
        if isinstance(aggr, int | float) and aggr <= 0:
            ctx.error(
                f"{path}.warmup.aggression",
                f"{path}.warmup.aggression: aggression should be greater than 0",
            )


def _check_locality(ctx: Ctx, loc: dict[str, object], od: m.OutlierDetection | None, path: str) -> None:
    distribute, failover = loc.get("distribute") or [], loc.get("failover") or []
    if distribute and failover:
        ctx.error(path, f"{path}: can not simultaneously specify 'distribute' and 'failover'")
        return
    for i, d in enumerate(distribute if isinstance(distribute, list) else []):
        to = d.get("to") if isinstance(d, dict) else None
        if not isinstance(to, dict):
            continue
        weights = [w for w in to.values() if isinstance(w, int)]
        p = f"{path}.distribute[{i}].to"
        if any(not 1 <= w <= 100 for w in weights):
            ctx.error(p, f"{p}: locality weight must be in range [1, 100]")
        elif sum(weights) != 100:
            ctx.error(p, f"{p}: total locality weight {sum(weights)} != 100")
    if (failover or loc.get("failoverPriority")) and od is None:
        ctx.warn(path, f"{path}: outlier detection policy must be provided for failover")
    for i, f in enumerate(failover if isinstance(failover, list) else []):
        if not isinstance(f, dict):
            continue
        src, dst = str(f.get("from", "")), str(f.get("to", ""))
        p = f"{path}.failover[{i}]"
        if src == dst:
            ctx.error(p, f"{p}: locality lb failover settings must specify different regions")
        if "/" in src or "/" in dst:
            ctx.error(p, f"{p}: locality lb failover only specify region")
        if "*" in src or "*" in dst:
            ctx.error(p, f"{p}: locality lb failover region should not contain '*' wildcard")


def check_consistent_hash(ctx: Ctx, ch: m.ConsistentHashLB, path: str) -> None:
    cookie = ch.http_cookie
    if cookie is not None and not cookie.get("name"):
        ctx.error(f"{path}.httpCookie", f"{path}.httpCookie: name required for HttpCookie")
    if ch.minimum_ring_size:
        deprecated(ctx, f"{path}.minimumRingSize", "minimumRingSize", "ringHash.minimumRingSize")
        if ctx.has(f"{path}.ringHash") or ctx.has(f"{path}.maglev"):
            ctx.error(
                f"{path}.minimumRingSize",
                f"{path}: only one of minimumRingSize or maglev/ringHash can be specified",
            )


def check_maglev(ctx: Ctx, maglev: dict[str, object], path: str) -> None:
    size = maglev.get("tableSize")
    if size is None or isinstance(size, int) and not isinstance(size, bool):
        p = f"{path}.tableSize"
        if not size:
            ctx.error(p if size is not None else path, f"{p}: tableSize must be set for maglev")
        elif size >= 5000011:  # type: ignore[operator]
            ctx.error(p, f"{p}: tableSize must be less than 5000011 for maglev")
        elif not _is_prime(size):  # type: ignore[arg-type]
            ctx.error(p, f"{p}: tableSize must be a prime number for maglev")


def _is_prime(x: int) -> bool:
    if 0 < x < 4:
        return True
    if x % 2 == 0:
        return False
    return all(x % f for f in range(3, math.isqrt(x) + 1, 2))


def check_connection_pool(ctx: Ctx, cp: m.ConnectionPoolSettings, path: str) -> None:
    if cp.http is None and cp.tcp is None:
        ctx.error(path, f"{path}: connection pool must have at least one field (http or tcp)")
    if cp.http is not None:
        h = cp.http
        for name, value in (
            ("http1MaxPendingRequests", h.http1_max_pending_requests),
            ("http2MaxRequests", h.http2_max_requests),
            ("maxRequestsPerConnection", h.max_requests_per_connection),
            ("maxRetries", h.max_retries),
            ("maxConcurrentStreams", h.max_concurrent_streams),
        ):
            if value is not None and value < 0:
                ctx.error(
                    f"{path}.http.{name}",
                    f"{path}.http.{name}: must be non-negative (it is {value})",
                )
        if h.h2_upgrade_policy == "UPGRADE" and h.use_client_protocol:
            ctx.error(
                f"{path}.http.useClientProtocol",
                f"{path}.http.useClientProtocol: use client protocol must not be true when h2UpgradePolicy is UPGRADE",
            )
    if cp.tcp is not None and cp.tcp.max_connections is not None and cp.tcp.max_connections < 0:
        ctx.error(
            f"{path}.tcp.maxConnections",
            f"{path}.tcp.maxConnections: max connections must be non-negative",
        )


def check_outlier_detection(ctx: Ctx, od: m.OutlierDetection, path: str) -> None:
    if od.consecutive_errors:
        ctx.warn(
            f"{path}.consecutiveErrors",
            f"Deprecated: {path}.consecutiveErrors: outlier detection consecutive errors is "
            "deprecated, "
            "use consecutiveGatewayErrors or consecutive5xxErrors instead",
            "IST0002",
        )
    if not od.split_external_local_origin_errors and (od.consecutive_local_origin_failures or 0) > 0:
        ctx.error(
            f"{path}.consecutiveLocalOriginFailures",
            f"{path}.consecutiveLocalOriginFailures: outlier detection consecutive local origin "
            "failures is "
            "specified, but split external local origin errors is set to false",
        )
    for name, value in (
        ("maxEjectionPercent", od.max_ejection_percent),
        ("minHealthPercent", od.min_health_percent),
    ):
        if value is not None and not 0 <= value <= 100:
            ctx.error(f"{path}.{name}", f"{path}.{name}: percentage {value} is not in range 0..100")


# ------------------------------------------------------------------ ServiceEntry / WorkloadEntry


def check_service_entry(ctx: Ctx, se: m.ServiceEntry) -> None:
    if se.workload_selector is not None and ctx.has("spec.endpoints"):
        ctx.error(
            "spec.workloadSelector",
            "spec: only one of workloadSelector or endpoints is allowed in ServiceEntry",
        )
    if not se.hosts and ctx.has("spec.hosts"):
        ctx.error("spec.hosts", "spec.hosts: service entry must have at least one host")
    for i, host in enumerate(se.hosts):
        p = f"spec.hosts[{i}]"
        if host == "*":
            ctx.error(p, f'{p}: invalid host "*" (hostname cannot be wildcard)')
            continue
        reason = check_wildcard_domain(host)
        if reason:
            ctx.error(p, f"{p}: {reason}")
        elif "*" in host and not host.startswith("*."):
            ctx.warn(p, f'{p}: partial wildcard "{host}" not allowed')
    cidr = False
    for i, address in enumerate(se.addresses):
        cidr = cidr or "/" in address
        reason = check_ip_subnet(address)
        if reason:
            ctx.error(f"spec.addresses[{i}]", f"spec.addresses[{i}]: {reason}")
    if cidr and se.resolution not in ("NONE", "STATIC"):
        ctx.error(
            "spec.addresses",
            "spec.addresses: CIDR addresses are allowed only for NONE/STATIC resolution types",
        )
    port_names = _check_service_ports(ctx, se)
    _check_se_resolution(ctx, se, port_names)
    if se.resolution != "NONE" and len(se.hosts) > 1:
        for i, port in enumerate(se.ports):
            proto = protocol_of(port.protocol)
            if proto not in HTTP_PROTOCOLS and proto not in TLS_PROTOCOLS:
                ctx.error(
                    f"spec.ports[{i}]",
                    f"spec.ports[{i}]: multiple hosts provided with non-HTTP, non-TLS ports",
                )
                break
    check_export_to(ctx, se.export_to, "spec.exportTo", service_entry=True)
    if se.workload_selector is not None:
        check_labels(ctx, se.workload_selector, "spec.workloadSelector.labels")


def _check_service_ports(ctx: Ctx, se: m.ServiceEntry) -> set[str]:
    names: set[str] = set()
    numbers: set[int] = set()
    for i, port in enumerate(se.ports):
        p = f"spec.ports[{i}]"
        if port.name in names:
            ctx.error(f"{p}.name", f'{p}.name: service entry port name "{port.name}" already defined')
        if port.number in numbers:
            ctx.error(f"{p}.number", f"{p}.number: service entry port {port.number} already defined")
        names.add(port.name)
        numbers.add(port.number)
        if port.name and not is_dns1123_label(port.name):
            ctx.error(f"{p}.name", f'{p}.name: invalid port name "{port.name}" (must be a DNS-1123 label)')
        if port.protocol and not protocol_of(port.protocol):
            ctx.error(
                f"{p}.protocol",
                f'{p}.protocol: unsupported protocol "{port.protocol}"; valid: ' + ", ".join(PROTOCOLS),
            )
        if ctx.has(f"{p}.number"):
            check_port(ctx, port.number, f"{p}.number")
        if port.target_port is not None and port.target_port != 0:
            check_port(ctx, port.target_port, f"{p}.targetPort")
    return names


def _check_se_resolution(ctx: Ctx, se: m.ServiceEntry, port_names: set[str]) -> None:
    res = se.resolution
    if res == "NONE":
        if se.endpoints:
            ctx.error(
                "spec.endpoints",
                "spec.endpoints: no endpoints should be provided for resolution type NONE "
                "(use resolution: STATIC or DNS)",
            )
        if se.workload_selector is not None:
            ctx.warn(
                "spec.workloadSelector",
                "spec.workloadSelector: should not be set when resolution mode is NONE",
            )
    elif res == "STATIC":
        for i, ep in enumerate(se.endpoints):
            check_workload_entry(ctx, ep, f"spec.endpoints[{i}]", service_ports=port_names, allow_fqdn=False)
    elif res in ("DNS", "DNS_ROUND_ROBIN"):
        if not se.endpoints:
            for i, host in enumerate(se.hosts):
                reason = check_fqdn(host.removeprefix("*.")) if host != "*" else None
                if reason:
                    ctx.error(
                        f"spec.hosts[{i}]",
                        f"spec.hosts[{i}]: hosts must be FQDN if no endpoints are provided "
                        f"for resolution mode {res}: {reason}",
                    )
                    break
        if res == "DNS_ROUND_ROBIN" and len(se.endpoints) > 1:
            ctx.error(
                "spec.endpoints",
                f"spec.endpoints: there must only be 0 or 1 endpoint for resolution mode {res}",
            )
        for i, ep in enumerate(se.endpoints):
            check_workload_entry(ctx, ep, f"spec.endpoints[{i}]", service_ports=port_names, allow_fqdn=True)
    elif res == "DYNAMIC_DNS":
        for i, host in enumerate(se.hosts):
            if not host.startswith("*"):
                ctx.error(
                    f"spec.hosts[{i}]",
                    f"spec.hosts[{i}]: host must be wildcarded for resolution mode {res}",
                )
        if se.endpoints:
            ctx.error(
                "spec.endpoints",
                f"spec.endpoints: endpoints cannot be set for resolution type {res}",
            )


def check_workload_entry(
    ctx: Ctx,
    we: m.WorkloadEntrySpec,
    path: str,
    service_ports: set[str] | None = None,
    allow_fqdn: bool = True,
) -> None:
    addr = we.address
    if not addr:
        if not we.network:
            ctx.error(f"{path}.address", f"{path}.address: address is required")
        else:
            ctx.warn(f"{path}.address", f'{path}.address: address is unset with network "{we.network}"')
    elif addr.startswith("unix://"):
        sock = addr.removeprefix("unix://")
        if not sock.startswith(("/", "@")) or sock.endswith("/"):
            ctx.error(f"{path}.address", f"{path}.address: {sock} is not an absolute path to a file")
        if we.ports:
            ctx.error(f"{path}.ports", f"{path}.ports: unix endpoint {addr} must not include ports")
    elif not is_ip(addr):
        if not allow_fqdn:
            ctx.error(
                f"{path}.address",
                f'{path}.address: endpoint address "{addr}" is not a valid IP address '
                "(resolution STATIC needs IPs or unix:// paths)",
            )
        elif check_fqdn(addr):
            ctx.error(
                f"{path}.address",
                f'{path}.address: endpoint address "{addr}" is not a valid FQDN or an IP address',
            )
    for name, port in we.ports.items():
        p = f"{path}.ports.{name}"
        if service_ports is not None and name not in service_ports:
            valid = ", ".join(sorted(service_ports)) or "none"
            ctx.error(
                p,
                f'{p}: endpoint port name "{name}" is not defined by the service entry ports (defined: {valid})',
            )
        if not is_dns1123_label(name):
            ctx.error(p, f'{p}: invalid port name "{name}"')
        check_port(ctx, port, p)
    check_labels(ctx, we.labels, f"{path}.labels")


# ------------------------------------------------------------------ Gateway


def check_server_tls(ctx: Ctx, tls: m.ServerTLSSettings, path: str) -> None:
    """The main ``validateTLSOptions`` rules (certificate sources by mode)."""
    has = {
        k: ctx.has(f"{path}.{k}")
        for k in (
            "serverCertificate",
            "privateKey",
            "caCertificates",
            "credentialName",
            "credentialNames",
            "tlsCertificates",
        )
    }
    if tls.mode == "ISTIO_MUTUAL":
        for key, present in has.items():
            if present:
                ctx.error(f"{path}.{key}", f"{path}.{key}: ISTIO_MUTUAL TLS cannot have associated {key}")
        return
    sources = sum(
        (
            has["serverCertificate"] and has["privateKey"],
            has["credentialName"],
            has["credentialNames"],
            has["tlsCertificates"],
        )
    )
    if sources > 1:
        ctx.error(
            path,
            f"{path}: only one of credentialName, credentialNames, serverCertificate/privateKey, "
            "tlsCertificates should be specified",
        )
    if tls.mode not in ("SIMPLE", "MUTUAL", "OPTIONAL_MUTUAL") or has["credentialName"] or has["credentialNames"]:
        return
    prefix = "SIMPLE TLS" if tls.mode == "SIMPLE" else "MUTUAL TLS"
    if tls.mode != "SIMPLE" and not has["caCertificates"]:
        ctx.error(path, f"{path}: {prefix} requires a client CA bundle (caCertificates)")
    if not has["tlsCertificates"]:
        for key in ("serverCertificate", "privateKey"):
            if not has[key]:
                ctx.error(path, f"{path}: {prefix} requires {key} (or credentialName)")


def check_gateway(ctx: Ctx, gw: m.Gateway) -> None:
    if not is_dns1123_label(gw.meta.name):
        ctx.error(
            "metadata.name",
            f'metadata.name: invalid gateway name: "{gw.meta.name}" (must be a DNS-1123 label)',
        )
    if not gw.servers:
        ctx.error("spec.servers", "spec.servers: gateway must have at least one server")
    names: dict[str, int] = {}
    for i, server in enumerate(gw.servers):
        p = f"spec.servers[{i}]"
        _check_server(ctx, server, p)
        name = server.port.name
        if name in names:
            ctx.error(
                f"{p}.port.name",
                f'{p}.port.name: port names in servers must be unique: duplicate name "{name}" '
                f"(also spec.servers[{names[name]}])",
            )
        names.setdefault(name, i)
        if (
            server.tls is not None
            and server.tls.https_redirect
            and protocol_of(server.port.protocol) not in HTTP_PROTOCOLS
        ):
            ctx.warn(
                f"{p}.tls.httpsRedirect",
                f"{p}.tls.httpsRedirect: should only be used with http servers",
            )


def _check_server(ctx: Ctx, server: m.Server, path: str) -> None:
    if not server.hosts and ctx.has(f"{path}.hosts"):
        ctx.error(f"{path}.hosts", f"{path}.hosts: server config must contain at least one host")
    for i, host in enumerate(server.hosts):
        _check_gateway_host(ctx, host, f"{path}.hosts[{i}]")
    port, pp = server.port, f"{path}.port"
    if ctx.has(pp):
        proto = protocol_of(port.protocol)
        if port.protocol and not proto:
            ctx.error(
                f"{pp}.protocol",
                f'{pp}.protocol: invalid protocol "{port.protocol}", supported protocols are ' + ", ".join(PROTOCOLS),
            )
        if port.number or not server.bind.startswith("unix://"):
            check_port(ctx, port.number, f"{pp}.number")
        if port.target_port:
            ctx.error(f"{pp}.targetPort", f"{pp}.targetPort: targetPort has no impact on Gateways")
        if proto in TLS_PROTOCOLS and server.tls is None:
            ctx.error(
                f"{path}",
                f"{path}: server must have TLS settings for HTTPS/TLS protocols (port protocol {port.protocol})",
            )
        elif proto and proto not in TLS_PROTOCOLS and server.tls is not None:
            if proto in HTTP_PROTOCOLS:
                if server.tls.mode not in ("", "PASSTHROUGH") or server.tls.credential_name:
                    ctx.error(
                        f"{path}.tls",
                        f"{path}.tls: server cannot have TLS settings for plain text HTTP ports (only httpsRedirect)",
                    )
            else:
                ctx.error(
                    f"{path}.tls",
                    f"{path}.tls: server cannot have TLS settings for non HTTPS/TLS ports",
                )
    if server.bind and not server.bind.startswith("unix://") and not is_ip(server.bind):
        ctx.error(f"{path}.bind", f"{path}.bind: {server.bind} is not a valid IP")


def _check_gateway_host(ctx: Ctx, host: str, path: str) -> None:
    ns, sep, name = host.partition("/")
    if not sep:
        ns, name = "*", host
    if not ns or not name:
        ctx.error(path, f"{path}: config namespace and dnsName in host entry cannot be empty")
        return
    if ns not in ("*", ".") and not is_dns1123_label(ns):
        ctx.error(path, f'{path}: invalid namespace value "{ns}" in gateway')
    if name != "*" and "." not in name:
        ctx.error(path, f'{path}: short names (non FQDN) are not allowed: "{name}"')
    elif check_wildcard_domain(name) and not is_ip(name):
        ctx.error(path, f"{path}: {check_wildcard_domain(name)}")
    if "*" in name and name != "*" and not name.startswith("*."):
        ctx.error(path, f'{path}: partial wildcard "{name}" not allowed')
