"""Kubernetes resources read beside Istio's: Gateway API ``HTTPRoute`` and ``Gateway``
(gateway.networking.k8s.io v1 / v1beta1) and core ``v1`` ``Service``.

YAML values -> the typed objects below through the one schema toolkit (``schema.py``),
with the API server's defaults applied (a rule without ``matches`` matches ``PathPrefix
/``, a redirect without ``statusCode`` is a 302, a backendRef weighs 1) and the
validation rules of the Gateway API CRDs (kubernetes-sigs/gateway-api
apis/v1/httproute_types.go, shared_types.go: patterns, ranges, enums and the CEL
``XValidation`` rules) reported as errors at their FILE:LINE.  ``gwapi_convert.py`` turns
these objects into VirtualServices, Gateways and registry entries as istiod does.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from typing import Any

from simulator.config.schema import (
    INVALID,
    Ctx,
    F,
    Obj,
    any_value,
    boolean,
    enum,
    int32,
    list_of,
    string,
    string_map,
)
from simulator.model import istio as m
from simulator.model.gatewayapi import (
    BackendRef,
    Cors,
    Filter,
    Fraction,
    GrantFrom,
    GrantTo,
    HeaderFilter,
    HTTPRoute,
    K8sGateway,
    Listener,
    Mirror,
    ParentRef,
    PathMatch,
    PathModifier,
    Redirect,
    ReferenceGrant,
    Retry,
    Rewrite,
    RouteMatch,
    Rule,
    Timeouts,
    ValueMatch,
)
from simulator.model.syntax import RE2_NOTE, check_re2

# ------------------------------------------------------------------ scalar rules

_HOSTNAME = re.compile(r"^(\*\.)?[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*$")
_PRECISE_HOSTNAME = re.compile(r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*$")
_HEADER_NAME = re.compile(r"^[A-Za-z0-9!#$%&'*+\-.^_`|~]+$")
_PATH_CHARS = re.compile(r"^(?:[-A-Za-z0-9/._~!$&'()*+,;=:@]|[%][0-9a-fA-F]{2})+$")
_DURATION = re.compile(r"^([0-9]{1,5}(h|m|s|ms)){1,4}$")
_SECTION = re.compile(r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*$")
_UNIT_S = {"h": 3600.0, "m": 60.0, "s": 1.0, "ms": 0.001}


def _pattern(rx: re.Pattern[str], what: str, max_len: int = 253) -> Any:
    def conv(ctx: Ctx, value: Any, path: str) -> Any:
        v = string(ctx, value, path)
        if v is INVALID:
            return v
        if len(v) > max_len or not rx.match(v):
            ctx.error(path, f'{path}: "{v}" is not a valid {what} (must match {rx.pattern}, '
                            f"at most {max_len} characters)")
            return INVALID
        return v
    return conv


def _ranged(lo: int, hi: int) -> Any:
    def conv(ctx: Ctx, value: Any, path: str) -> Any:
        # an integer past int32 is out of this field's range, not of int32's
        v = value if isinstance(value, int) and not isinstance(value, bool) else int32(ctx, value, path)
        if v is not INVALID and not lo <= v <= hi:
            ctx.error(path, f"{path}: {v} is out of range [{lo}, {hi}]")
            return INVALID
        return v
    return conv


def gw_duration(ctx: Ctx, value: Any, path: str) -> Any:
    """Gateway API Duration (GEP-2257): ``^([0-9]{1,5}(h|m|s|ms)){1,4}$`` -> seconds."""
    v = string(ctx, value, path)
    if v is INVALID:
        return v
    if not _DURATION.match(v):
        ctx.error(path, f'{path}: invalid duration "{v}"; a Gateway API duration is 1 to 4 '
                        'numbers of up to 5 digits each with a unit h, m, s or ms ("10s", "1m30s", "500ms")')
        return INVALID
    return sum(int(n) * _UNIT_S[u] for n, u in re.findall(r"([0-9]+)(ms|h|m|s)", v))


def _unique(key: str, what: str) -> Any:
    """A ``listType=map`` list: ``key`` must be unique (case-insensitively for headers)."""
    def check(ctx: Ctx, items: Any, path: str) -> None:
        seen: set[str] = set()
        for i, item in enumerate(items):
            k = getattr(item, key) if not isinstance(item, tuple) else item[0]
            k = k.lower() if what == "header" else k
            if k in seen:
                ctx.error(f"{path}[{i}]", f'{path}[{i}]: duplicate {what} "{k}" (the list is keyed by {key})')
            seen.add(k)
    return check


def _checked_list(item: Any, max_items: int, check: Any = None) -> Any:
    inner = list_of(item)

    def conv(ctx: Ctx, value: Any, path: str) -> Any:
        if isinstance(value, list) and len(value) > max_items:
            # the API server refuses the object: the items past maxItems are not read (each
            # of thousands would add its own diagnostics and conversion)
            ctx.error(path, f"{path}: must have at most {max_items} items, has {len(value)}")
            value = value[:max_items]
        out = inner(ctx, value, path)
        if out is INVALID:
            return out
        if check is not None:
            check(ctx, out, path)
        return out
    return conv


# ------------------------------------------------------------------ HTTPRoute schema

_METHODS_CORS = ("GET", "HEAD", "POST", "PUT", "DELETE", "CONNECT", "OPTIONS", "TRACE", "PATCH", "*")

_HEADER = Obj("HTTPHeader", [F("name", _pattern(_HEADER_NAME, "header name", 256)), F("value", string)],
              build=lambda name, value: (name, value), required=("name", "value"),
              defaults={"name": "", "value": ""})


def _check_header_filter(ctx: Ctx, hf: HeaderFilter, path: str) -> None:
    names = [n.lower() for n, _ in hf.set] + [n.lower() for n, _ in hf.add]
    if len(names) != len(set(names)):
        ctx.error(path, f"{path}: a header name may appear only once across set and add")


_HEADER_FILTER = Obj(
    "HTTPHeaderFilter",
    [F("set", _checked_list(_HEADER, 16, _unique("name", "header"))),
     F("add", _checked_list(_HEADER, 16, _unique("name", "header"))),
     F("remove", _checked_list(_pattern(_HEADER_NAME, "header name", 256), 16))],
    build=HeaderFilter, check=_check_header_filter,
)


def _check_backend_ref(ctx: Ctx, b: BackendRef, path: str) -> None:
    if b.group == "" and b.kind == "Service" and b.port is None:
        ctx.error(f"{path}.port" if path else "port", f"{path}: Must have port for Service reference")


def _backend_fields(with_filters: bool) -> list[F]:
    out = [
        F("group", string), F("kind", string), F("name", _pattern(re.compile(r"^.+$"), "name")),
        F("namespace", _pattern(_SECTION, "namespace", 63)), F("port", _ranged(1, 65535)),
    ]
    if with_filters:
        out += [F("weight", _ranged(0, 1_000_000)), F("filters", list_of(lambda c, v, p: _FILTER(c, v, p)))]
    return out


_BACKEND_OBJ = Obj("BackendObjectReference", _backend_fields(False), build=BackendRef,
                   required=("name",), defaults={"name": ""}, check=_check_backend_ref)
_HTTP_BACKEND = Obj("HTTPBackendRef", _backend_fields(True), build=BackendRef,
                    required=("name",), defaults={"name": ""}, check=_check_backend_ref)


def _check_fraction(ctx: Ctx, f: Fraction, path: str) -> None:
    if f.numerator > f.denominator:
        ctx.error(path, f"{path}: numerator must be less than or equal to denominator")


_FRACTION = Obj("Fraction", [F("numerator", _ranged(0, 2**31 - 1)), F("denominator", _ranged(1, 2**31 - 1))],
                build=Fraction, required=("numerator",), defaults={"numerator": 0}, check=_check_fraction)
_MIRROR = Obj(
    "HTTPRequestMirrorFilter",
    [F("backendRef", _BACKEND_OBJ), F("percent", _ranged(0, 100)), F("fraction", _FRACTION)],
    build=Mirror, required=("backendRef",), defaults={"backend_ref": BackendRef("")},
    oneof=(("percent", "fraction"),),
)


def _check_path_modifier(ctx: Ctx, p: PathModifier, path: str) -> None:
    for kind, attr, yaml in (("ReplaceFullPath", p.replace_full_path, "replaceFullPath"),
                             ("ReplacePrefixMatch", p.replace_prefix_match, "replacePrefixMatch")):
        if p.type == kind and attr is None:
            ctx.error(path, f"{path}: {yaml} must be specified when type is set to '{kind}'")
        if attr is not None and p.type != kind:
            ctx.error(f"{path}.{yaml}", f"{path}: type must be '{kind}' when {yaml} is set")


_PATH_MODIFIER = Obj(
    "HTTPPathModifier",
    [F("type", enum("ReplaceFullPath", "ReplacePrefixMatch")),
     F("replaceFullPath", string), F("replacePrefixMatch", string)],
    build=PathModifier, required=("type",), defaults={"type": ""}, check=_check_path_modifier,
)
_REDIRECT = Obj(
    "HTTPRequestRedirectFilter",
    [F("scheme", enum("http", "https")), F("hostname", _pattern(_PRECISE_HOSTNAME, "hostname")),
     F("path", _PATH_MODIFIER), F("port", _ranged(1, 65535)),
     F("statusCode", lambda c, v, p: _status(c, v, p))],
    build=Redirect,
)


def _status(ctx: Ctx, value: Any, path: str) -> Any:
    v = int32(ctx, value, path)
    if v is not INVALID and v not in (301, 302, 303, 307, 308):
        ctx.error(path, f"{path}: invalid value {v}; valid values: 301, 302, 303, 307, 308")
        return INVALID
    return v


_REWRITE = Obj("HTTPURLRewriteFilter",
               [F("hostname", _pattern(_PRECISE_HOSTNAME, "hostname")), F("path", _PATH_MODIFIER)],
               build=Rewrite)
def _star_alone(what: str) -> Any:
    def check(ctx: Ctx, items: Any, path: str) -> None:
        if "*" in items and len(items) > 1:
            ctx.error(path, f"{path}: {what} cannot contain '*' alongside other {what[5:].lower()}")
    return check


_ORIGIN = re.compile(r"(^\*$)|(^(http(s)?):\/\/(((\*\.)?([a-zA-Z0-9\-]+\.)*[a-zA-Z0-9-]+|\*)(:([0-9]{1,5}))?)$)")
_CORS = Obj(
    "HTTPCORSFilter",
    [F("allowOrigins", _checked_list(_pattern(_ORIGIN, "origin"), 64, _star_alone("AllowOrigins"))),
     F("allowCredentials", boolean),
     F("allowMethods", _checked_list(enum(*_METHODS_CORS), 9, _star_alone("AllowMethods"))),
     F("allowHeaders", _checked_list(_pattern(_HEADER_NAME, "header name", 256), 64, _star_alone("AllowHeaders"))),
     F("exposeHeaders", _checked_list(_pattern(_HEADER_NAME, "header name", 256), 64)),
     F("maxAge", _ranged(1, 2**31 - 1))],
    build=Cors,
)
_FILTER_TYPES = ("RequestHeaderModifier", "ResponseHeaderModifier", "RequestMirror", "RequestRedirect",
                 "URLRewrite", "ExtensionRef", "CORS")
_FILTER_FIELDS = {"RequestHeaderModifier": "requestHeaderModifier", "ResponseHeaderModifier": "responseHeaderModifier",
                  "RequestMirror": "requestMirror", "RequestRedirect": "requestRedirect", "URLRewrite": "urlRewrite",
                  "ExtensionRef": "extensionRef", "CORS": "cors"}


def _check_filter(ctx: Ctx, value: Any, path: str) -> None:
    if not isinstance(value, Mapping):
        return
    t = value.get("type")
    where = f"{path}." if path else ""
    for ftype, yaml in _FILTER_FIELDS.items():
        if value.get(yaml) is not None and t != ftype:
            ctx.error(f"{where}{yaml}", f"filter.{yaml} must be nil if the filter.type is not {ftype}")
        if value.get(yaml) is None and t == ftype:
            ctx.error(path, f"filter.{yaml} must be specified for {ftype} filter.type")


_FILTER_OBJ = Obj(
    "HTTPRouteFilter",
    [F("type", enum(*_FILTER_TYPES)),
     F("requestHeaderModifier", _HEADER_FILTER), F("responseHeaderModifier", _HEADER_FILTER),
     F("requestMirror", _MIRROR), F("requestRedirect", _REDIRECT), F("urlRewrite", _REWRITE),
     F("extensionRef", any_value, attr=""), F("cors", _CORS)],
    build=Filter, required=("type",), defaults={"type": ""},
)


def _FILTER(ctx: Ctx, value: Any, path: str) -> Any:  # noqa: N802 (a converter like the Obj tables)
    out = _FILTER_OBJ(ctx, value, path)
    _check_filter(ctx, value, path)
    return out


def _check_path_match(ctx: Ctx, p: PathMatch, path: str) -> None:
    v = p.value
    if p.type == "RegularExpression":
        reason = check_re2(v)
        if reason is not None:
            ctx.error(f"{path}.value", f'{path}.value: invalid regex "{v}": {reason}; {RE2_NOTE}')
        return
    for bad, msg in (("//", "contain '//'"), ("/./", "contain '/./'"), ("/../", "contain '/../'"),
                     ("%2f", "contain '%2f'"), ("%2F", "contain '%2F'"), ("#", "contain '#'")):
        if bad in v:
            ctx.error(f"{path}.value", f"{path}.value: must not {msg} when type one of ['Exact', 'PathPrefix']")
    if not v.startswith("/"):
        ctx.error(f"{path}.value", f"{path}.value: value must be an absolute path and start with '/' "
                                   "when type one of ['Exact', 'PathPrefix']")
    if v.endswith(("/..", "/.")):
        ctx.error(f"{path}.value", f"{path}.value: must not end with '/..' or '/.' when type one of "
                                   "['Exact', 'PathPrefix']")
    if not _PATH_CHARS.match(v):
        ctx.error(f"{path}.value", f"{path}.value: must only contain valid characters (matching "
                                   f"{_PATH_CHARS.pattern}) for types ['Exact', 'PathPrefix']")


_PATH_MATCH = Obj("HTTPPathMatch", [F("type", enum("Exact", "PathPrefix", "RegularExpression")),
                                    F("value", lambda c, v, p: _max_string(c, v, p, 1024))],
                  build=PathMatch, check=_check_path_match)


def _max_string(ctx: Ctx, value: Any, path: str, n: int) -> Any:
    v = string(ctx, value, path)
    if v is not INVALID and len(v) > n:
        ctx.error(path, f"{path}: must be at most {n} characters")
        return INVALID
    return v


def _check_value_match(ctx: Ctx, v: ValueMatch, path: str) -> None:
    if v.type == "RegularExpression":
        reason = check_re2(v.value)
        if reason is not None:
            ctx.error(f"{path}.value", f'{path}.value: invalid regex "{v.value}": {reason}; {RE2_NOTE}')


def _value_match(name: str, name_rx: re.Pattern[str], max_value: int) -> Obj:
    return Obj(name, [F("type", enum("Exact", "RegularExpression")),
                      F("name", _pattern(name_rx, "name", 256)),
                      F("value", lambda c, v, p: _max_string(c, v, p, max_value))],
               build=ValueMatch, required=("name", "value"), defaults={"name": "", "value": ""},
               check=_check_value_match)


_METHODS = ("GET", "HEAD", "POST", "PUT", "DELETE", "CONNECT", "OPTIONS", "TRACE", "PATCH")
_MATCH = Obj(
    "HTTPRouteMatch",
    [F("path", _PATH_MATCH),
     F("headers", _checked_list(_value_match("HTTPHeaderMatch", _HEADER_NAME, 4096), 16,
                                _unique("name", "header"))),
     F("queryParams", _checked_list(_value_match("HTTPQueryParamMatch", re.compile(r"^[A-Za-z0-9!#$%&'*+\-.^_`|~]+$"),
                                                 1024), 16, _unique("name", "query parameter"))),
     F("method", enum(*_METHODS))],
    build=RouteMatch,
)


def _check_timeouts(ctx: Ctx, t: Timeouts, path: str) -> None:
    if t.request and t.backend_request is not None and t.backend_request > t.request:
        ctx.error(f"{path}.backendRequest", f"{path}: backendRequest timeout cannot be longer than request timeout")


_TIMEOUTS = Obj("HTTPRouteTimeouts", [F("request", gw_duration), F("backendRequest", gw_duration)],
                build=Timeouts, check=_check_timeouts)
_RETRY = Obj("HTTPRouteRetry", [F("codes", list_of(_ranged(400, 599))), F("attempts", _ranged(0, 2**31 - 1)),
                                F("backoff", gw_duration)], build=Retry)


def _check_rule(ctx: Ctx, r: Rule, path: str) -> None:
    types = [f.type for f in r.filters]
    for t in ("CORS", "RequestHeaderModifier", "ResponseHeaderModifier", "RequestRedirect", "URLRewrite"):
        if types.count(t) > 1:
            ctx.error(f"{path}.filters", f"{path}.filters: {t} filter cannot be repeated")
    if "RequestRedirect" in types and "URLRewrite" in types:
        ctx.error(f"{path}.filters", f"{path}.filters: May specify either httpRouteFilterRequestRedirect "
                                     "or httpRouteFilterRequestRewrite, but not both")
    if "RequestRedirect" in types and r.backend_refs:
        ctx.error(path, f"{path}: RequestRedirect filter must not be used together with backendRefs")
    for f in r.filters:
        pm = (f.request_redirect.path if f.request_redirect else f.url_rewrite.path if f.url_rewrite else None)
        if pm is not None and pm.type == "ReplacePrefixMatch" and pm.replace_prefix_match is not None:
            if len(r.matches) != 1 or r.matches[0].path.type != "PathPrefix":
                what = "RequestRedirect" if f.request_redirect else "URLRewrite"
                ctx.error(f"{path}.matches", f"{path}: When using {what} filter with path.replacePrefixMatch, "
                                             "exactly one PathPrefix match must be specified")


_RULE = Obj(
    "HTTPRouteRule",
    [F("name", _pattern(_SECTION, "rule name")),
     F("matches", _checked_list(_MATCH, 64)),
     F("filters", _checked_list(_FILTER, 16)),
     F("backendRefs", _checked_list(_HTTP_BACKEND, 16)),
     F("timeouts", _TIMEOUTS), F("retry", _RETRY), F("sessionPersistence", any_value, attr="")],
    build=Rule, check=_check_rule,
)


def _check_parent_refs(ctx: Ctx, refs: tuple[ParentRef, ...], path: str) -> None:
    seen: set[tuple[str, str, str, str | None, str | None, int | None]] = set()
    for i, p in enumerate(refs):
        key = (p.group, p.kind, p.name, p.namespace, p.section_name, p.port)
        if key in seen:
            ctx.error(f"{path}[{i}]", f"{path}[{i}]: sectionName or port must be unique when parentRefs "
                                      "includes 2 or more references to the same parent")
        seen.add(key)


_PARENT = Obj(
    "ParentReference",
    [F("group", string), F("kind", string), F("name", string), F("namespace", _pattern(_SECTION, "namespace", 63)),
     F("sectionName", _pattern(_SECTION, "sectionName")), F("port", _ranged(1, 65535))],
    build=ParentRef, required=("name",), defaults={"name": ""},
)


def _check_rules(ctx: Ctx, rules: tuple[Rule, ...], path: str) -> None:
    total = sum(len(r.matches) for r in rules)
    if total > 128:
        ctx.error(path, f"{path}: While 16 rules and 64 matches per rule are allowed, the total number of "
                        f"matches across all rules in a route must be less than 128 (has {total})")
    names = [r.name for r in rules if r.name]
    if len(names) != len(set(names)):
        ctx.error(path, f"{path}: Rule name must be unique within the route")


_HTTPROUTE_SPEC = Obj(
    "HTTPRouteSpec",
    [F("parentRefs", _checked_list(_PARENT, 32, _check_parent_refs)),
     F("hostnames", _checked_list(_pattern(_HOSTNAME, "hostname"), 16)),
     F("rules", _checked_list(_RULE, 16, _check_rules)),
     F("useDefaultGateways", any_value, attr="")],
)

# ------------------------------------------------------------------ Gateway and Service


def _listener(ctx: Ctx, value: Any, path: str) -> Any:
    raw = _LISTENER(ctx, value, path)
    if not isinstance(raw, dict) or "name" not in raw or "port" not in raw:
        return INVALID
    allowed = raw.get("allowed_routes") or {}
    ns = allowed.get("namespaces") if isinstance(allowed, Mapping) else None
    frm = ns.get("from", "Same") if isinstance(ns, Mapping) else "Same"
    tls = raw.get("tls")
    return Listener(name=raw["name"], port=raw["port"], protocol=raw.get("protocol", "HTTP"),
                    hostname=raw.get("hostname"), allowed_from=frm if isinstance(frm, str) else "Same",
                    tls_mode=str(tls.get("mode", "Terminate")) if isinstance(tls, Mapping) else "")


_LISTENER = Obj(
    "Listener",
    [F("name", _pattern(_SECTION, "listener name")), F("hostname", _pattern(_HOSTNAME, "hostname")),
     F("port", _ranged(1, 65535)), F("protocol", string), F("tls", any_value), F("allowedRoutes", any_value)],
    required=("name", "port", "protocol"),
)
_GATEWAY_SPEC = Obj(
    "GatewaySpec",
    [F("gatewayClassName", string), F("listeners", _checked_list(_listener, 64, _unique("name", "listener"))),
     F("addresses", any_value, attr=""), F("infrastructure", any_value, attr=""),
     F("backendTLS", any_value, attr=""), F("allowedListeners", any_value, attr=""), F("tls", any_value, attr="")],
    required=("gatewayClassName",),
)
_SERVICE_PORT = Obj(
    "ServicePort",
    [F("name", string), F("port", _ranged(1, 65535)), F("targetPort", any_value), F("protocol", string),
     F("appProtocol", string), F("nodePort", any_value, attr="")],
    required=("port",), defaults={"port": 0}, build=m.KubernetesServicePort,
)
# Only ports, selector, clusterIP and type of a Service matter here; the rest of its spec
# is left to the API server.


_GRANT_SPEC = Obj(
    "ReferenceGrantSpec",
    [F("from", _checked_list(Obj("ReferenceGrantFrom", [F("group", string), F("kind", string),
                                                         F("namespace", _pattern(_SECTION, "namespace", 63))],
                                 build=GrantFrom, required=("group", "kind", "namespace"),
                                 defaults={"group": "", "kind": "", "namespace": ""}), 16), attr="from_"),
     F("to", _checked_list(Obj("ReferenceGrantTo", [F("group", string), F("kind", string), F("name", string)],
                               build=GrantTo, required=("group", "kind"), defaults={"group": "", "kind": ""}), 16))],
    required=("from", "to"),
)


def parse(kind: str, meta: m.Meta, spec: Any, ctx: Ctx, created: str = "") -> Any:
    """HTTPRoute / Gateway (gateway.networking.k8s.io) or Service (v1) -> typed object."""
    if kind == "Service":
        values = spec if isinstance(spec, Mapping) else {}
        ports = list_of(_SERVICE_PORT)(ctx, values.get("ports", []), "spec.ports")
        selector = values.get("selector")
        sel = string_map(ctx, selector, "spec.selector") if selector is not None else None
        cip = values.get("clusterIP")
        return m.KubernetesService(meta=meta, ports=ports if ports is not INVALID else (),
                          selector=sel if isinstance(sel, dict) else None,
                          cluster_ip=cip if isinstance(cip, str) else "",
                          type=str(values.get("type") or "ClusterIP"), src=ctx.source)
    if spec is None:
        spec = {}
    if kind == "ReferenceGrant":
        v = _GRANT_SPEC(ctx, spec, "spec")
        v = v if isinstance(v, dict) else {}
        return ReferenceGrant(meta=meta, from_=v.get("from_", ()), to=v.get("to", ()), src=ctx.source)
    if kind == "Gateway":
        v = _GATEWAY_SPEC(ctx, spec, "spec")
        v = v if isinstance(v, dict) else {}
        return K8sGateway(meta=meta, gateway_class_name=v.get("gateway_class_name", ""),
                          listeners=v.get("listeners", ()), src=ctx.source)
    v = _HTTPROUTE_SPEC(ctx, spec, "spec")
    v = v if isinstance(v, dict) else {}
    return HTTPRoute(meta=meta, parent_refs=v.get("parent_refs", ()), hostnames=v.get("hostnames", ()),
                     rules=v.get("rules", (Rule(),)), src=ctx.source, created=created)


