"""The webhook's rules for a VirtualService's HTTPRoute and what it holds: destinations,
matches, mirrors, header operations, CORS, fault injection, redirect, direct response,
retries and rewrite."""

from __future__ import annotations

import math
from collections.abc import Iterable

from simulator.config.rules.fields import (
    CORS_METHODS,
    HTTP_STATUS_CODES,
    KB,
    MB,
    RETRY_ON_POLICIES,
    TRANSLATED_REDIRECT_CODES,
    check_labels,
    check_percentage,
    check_port,
    check_regex,
    deprecated,
)
from simulator.config.rules.unreachable import route_name
from simulator.config.schema import Ctx
from simulator.core import header_format
from simulator.model import istio as m
from simulator.model.names import GRPC_STATUS_CODES
from simulator.model.syntax import (
    check_fqdn,
    check_header_name,
    check_header_value,
    check_wildcard_domain,
    is_dns1123_label,
)

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
                f"{path}: root HTTP route {route_name(r, path)} must not specify redirect",
            )
        if r.route:
            ctx.error(
                f"{path}.route",
                f"{path}: root HTTP route {route_name(r, path)} must not specify route",
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
        if abort.grpc_status not in GRPC_STATUS_CODES:
            ctx.error(
                f"{path}.grpcStatus",
                f'{path}.grpcStatus: gRPC status "{abort.grpc_status}" is not supported; valid: '
                + ", ".join(GRPC_STATUS_CODES),
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
