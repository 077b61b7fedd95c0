"""Gateway API routes -> VirtualServices, as istiod converts them (istio/istio
pilot/pkg/config/kube/gateway: conversion.go, route_collections.go, conditions.go).

* Each HTTPRoute rule is split into one Istio HTTP route per match
  (``convertHTTPRoute``), named ``<ns>.<name>.<rule index>`` unless the rule has a name.
* A parentRef to a Service binds the route on the mesh: one VirtualService per route
  namespace (and parentRef port) and Service host, ``gateways: [mesh]``, with the port
  added to every match.  A parentRef to a Gateway binds it to that Gateway's listeners:
  one VirtualService per Gateway and route hostname (``*`` without hostnames).
  VirtualServices with the same key from several HTTPRoutes are merged, oldest route
  first, then sorted by ``sortHTTPRoutes`` (Exact > PathPrefix > RegularExpression,
  longer path, method, more headers, more query parameters; rules without a match last).
* Filters: RequestHeaderModifier / ResponseHeaderModifier -> ``headers`` (names
  lower-cased, the first of a repeated name kept), RequestRedirect -> ``redirect`` (port
  derived from the request, or from the scheme when one is set), URLRewrite ->
  ``rewrite`` (ReplacePrefixMatch ``/`` strips the prefix; ReplaceFullPath is
  ``uriRegexRewrite {match: "/.*"}``), every RequestMirror -> one entry of ``mirrors``
  with ``percentage`` ``100 * numerator / denominator`` (or ``percent``; unset = 100 %).
* Timeouts: ``request`` -> ``timeout``; ``backendRequest`` -> ``retries.perTryTimeout``
  when the rule has a ``retry``, else ``timeout`` (it replaces ``request``).
* No backend with a weight > 0 (and no redirect): a direct response 500.  A backend that
  does not resolve keeps its place (Envoy answers 500: cluster_not_found_response_code).
* The generated VirtualServices carry ``semantics="gateway"`` (core/translate.py: path
  separated prefixes, 500 for a missing cluster, the consumer/producer namespace rule).

Problems istiod reports in the route's status (``Accepted`` / ``ResolvedRefs`` false,
with its reasons and messages) are warnings at the line of the parentRef or backendRef.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field

from simulator.config.schema import Ctx
from simulator.core.hosts import fqdn
from simulator.core.matchers import quote_meta
from simulator.diagnostics import Diagnostic
from simulator.model import gatewayapi as g
from simulator.model import istio as m
from simulator.model.names import MESH

ISTIO_CLASSES = ("istio",)
GATEWAY_NAME_LABEL = "gateway.networking.k8s.io/gateway-name"
ISTIO_GROUP = "networking.istio.io"


@dataclass(slots=True)
class Converted:
    virtual_services: list[m.VirtualService] = field(default_factory=list)
    gateways: list[m.Gateway] = field(default_factory=list)
    diagnostics: list[Diagnostic] = field(default_factory=list)


class _RouteError(Exception):
    """A hard conversion error (istiod drops the route for that kind of parent)."""

    def __init__(self, reason: str, message: str, path: str) -> None:
        super().__init__(message)
        self.reason, self.message, self.path = reason, message, path


# ------------------------------------------------------------------ Services, Gateways


def gateway(gw: g.K8sGateway) -> m.Gateway:
    """A Gateway API Gateway as the Istio Gateway istiod makes of it: a server per HTTP(S)
    listener (hosts ``<namespace>/<hostname>``: the Gateway's namespace unless
    allowedRoutes admits All), selecting the pods labeled with its name."""
    servers = []
    for lst in gw.listeners:
        if lst.protocol not in ("HTTP", "HTTPS"):
            continue
        ns = gw.meta.namespace if lst.allowed_from == "Same" else "*"
        tls = m.ServerTLSSettings(mode="SIMPLE") if lst.protocol == "HTTPS" else None
        servers.append(m.Server(port=m.GatewayPort(lst.port, lst.protocol, lst.name),
                                hosts=(f"{ns}/{lst.hostname or '*'}",), tls=tls, name=lst.name))
    return m.Gateway(meta=gw.meta, selector={GATEWAY_NAME_LABEL: gw.meta.name}, servers=tuple(servers), src=gw.src)


# ------------------------------------------------------------------ routes


@dataclass(slots=True)
class _World:
    services: dict[tuple[str, str], m.KubernetesService]
    gateways: dict[tuple[str, str], g.K8sGateway]
    grants: list[g.ReferenceGrant]
    service_entries: tuple[m.ServiceEntry, ...]

    def backend_allowed(self, route_ns: str, backend_ns: str, name: str) -> bool:
        """AllowedReferences.BackendAllowed: a ReferenceGrant in the backend's namespace
        lets HTTPRoutes of ``route_ns`` reference Service ``name`` (or every Service)."""
        return any(
            gr.meta.namespace == backend_ns
            and any(f.group == g.GROUP and f.kind == "HTTPRoute" and f.namespace == route_ns for f in gr.from_)
            and any(t.group in ("", "core") and t.kind == "Service" and t.name in (None, name) for t in gr.to)
            for gr in self.grants)

    def hostname_known(self, host: str) -> bool:
        return any(host in se.hosts for se in self.service_entries)


def convert(routes: list[g.HTTPRoute], gateways: list[g.K8sGateway], services: list[m.KubernetesService],
            service_entries: tuple[m.ServiceEntry, ...] = (), grants: list[g.ReferenceGrant] | None = None,
            ) -> Converted:
    out = Converted()
    world = _World({(s.meta.namespace, s.meta.name): s for s in services},
                    {(gw.meta.namespace, gw.meta.name): gw for gw in gateways}, grants or [], service_entries)
    for gw in gateways:
        ctx = Ctx(source=gw.src, resource=f"Gateway {gw.meta.namespace}/{gw.meta.name}")
        if gw.gateway_class_name not in ISTIO_CLASSES:
            ctx.warn("spec.gatewayClassName", f'Gateway {gw.meta.namespace}/{gw.meta.name} ignored: '
                                              f'gatewayClassName "{gw.gateway_class_name}" is not Istio\'s ("istio")')
        else:
            out.gateways.append(gateway(gw))
            for i, lst in enumerate(gw.listeners):
                if lst.protocol not in ("HTTP", "HTTPS"):
                    ctx.warn(f"spec.listeners[{i}].protocol",
                             f"listener {lst.name}: protocol {lst.protocol} is not simulated (HTTP and HTTPS are)")
                elif lst.allowed_from == "Selector":
                    ctx.warn(f"spec.listeners[{i}].allowedRoutes",
                             f"listener {lst.name}: allowedRoutes.namespaces.from Selector is taken as All "
                             "(mirrorsim reads no Namespace labels)")
        out.diagnostics.extend(ctx.diagnostics)
    merged: dict[str, list[tuple[int, m.HTTPRoute, m.VirtualService]]] = {}
    # sortRoutesByCreationTime: creationTimestamp (unset = the oldest), then namespace/name
    # (the names compared are the generated VirtualServices' "NAME~COUNT~...": "pf-z~" < "pf~")
    for order, route in enumerate(sorted(routes, key=lambda r: (r.created, r.meta.namespace, r.meta.name + "~"))):
        ctx = Ctx(source=route.src, resource=f"HTTPRoute {route.meta.namespace}/{route.meta.name}",
                  namespace=route.meta.namespace)
        for key, vs in _route_virtual_services(route, world, ctx):
            merged.setdefault(key, []).extend((order, r, vs) for r in vs.http)
        # a route bound to the mesh and to a Gateway is converted twice: report once
        out.diagnostics.extend(dict.fromkeys(ctx.diagnostics))
    for key, parts in merged.items():
        first = parts[0][2]
        http = sorted((r for _, r, _ in parts), key=_precedence)
        out.virtual_services.append(dataclasses.replace(
            first, meta=dataclasses.replace(first.meta, name=key.replace("/", "~")), http=tuple(http)))
    return out


def _precedence(r: m.HTTPRoute) -> tuple[int, int, int, bool, int, int]:
    """sortHTTPRoutes as a sort key (Python's sort is stable, as sort.SliceStable)."""
    if not r.match:
        return (1, 0, 0, True, 0, 0)
    mt = r.match[0]
    rank = {"exact": 3, "prefix": 2, "regex": 1}.get(mt.uri.kind, -1) if mt.uri else -1
    length = len(mt.uri.value) if mt.uri else 0
    return (0, -rank, -length, mt.method is None, -len(mt.headers), -len(mt.query_params))


def _route_virtual_services(route: g.HTTPRoute, world: _World, ctx: Ctx) -> list[tuple[str, m.VirtualService]]:
    ns = route.meta.namespace
    out: list[tuple[str, m.VirtualService]] = []
    rules: dict[bool, list[m.HTTPRoute] | None] = {}

    def rules_for(mesh: bool) -> list[m.HTTPRoute] | None:
        if mesh not in rules:
            rules[mesh] = _convert_rules(route, world, ctx, mesh)
        return rules[mesh]

    seen_gw: set[str] = set()
    for i, ref in enumerate(route.parent_refs):
        path = f"spec.parentRefs[{i}]"
        pns = ref.namespace or ns
        if (ref.group in ("", "core") and ref.kind == "Service"
                or ref.group == ISTIO_GROUP and ref.kind == "ServiceEntry"):
            hosts = _parent_hosts(ref, pns, world)
            if hosts is None:
                kind = "service" if ref.kind == "Service" else "service entry"
                _not_accepted(ctx, path, "NoMatchingParent", f'parent {kind}: "{ref.name}" not found')
                continue
            converted = rules_for(True)
            if not converted:
                continue
            http = converted
            key = ns
            if ref.port is not None:
                http = [dataclasses.replace(r, match=tuple(dataclasses.replace(mt, port=ref.port) for mt in r.match)
                                            or (m.HTTPMatchRequest(port=ref.port),)) for r in http]
                key += f"/{ref.port}"
            for host in hosts:  # a ServiceEntry parent: a VirtualService per host
                out.append((f"{key}/{host}", _vs(route, host, MESH, http)))
        elif ref.group == g.GROUP and ref.kind == "Gateway":
            gw = world.gateways.get((pns, ref.name))
            if gw is None or gw.gateway_class_name not in ISTIO_CLASSES:
                _not_accepted(ctx, path, "NoMatchingParent", f'parent gateway "{pns}/{ref.name}" not found '
                                                            "(or not of gatewayClassName istio)")
                continue
            listeners = _gateway_accepts(route, ref, gw, ctx, path)
            converted = rules_for(False) if listeners else None
            if not converted:
                continue
            for lst in listeners:  # istiod: an Istio Gateway per listener, a VirtualService per host
                gw_ref = f"{pns}/{ref.name}/{lst.name}"
                if gw_ref in seen_gw:
                    continue
                seen_gw.add(gw_ref)
                for h in route.hostnames or ("*",):
                    out.append((f"{gw_ref}/{h}", _vs(route, h, gw_ref, converted)))
        else:
            ctx.warn(path, f"{path}: parent {ref.group}/{ref.kind} ignored: Istio binds HTTPRoutes to "
                           "Gateways, Services and ServiceEntries only")
    return out


def _parent_hosts(ref: g.ParentRef, pns: str, world: _World) -> tuple[str, ...] | None:
    """The hosts a mesh parent binds: the Service's, or every host of the ServiceEntry."""
    if ref.kind == "Service":
        if (pns, ref.name) in world.services:
            return (fqdn(ref.name, pns),)
        return None
    for se in world.service_entries:
        if se.meta.namespace == pns and se.meta.name == ref.name:
            return se.hosts
    return None


def _gateway_accepts(route: g.HTTPRoute, ref: g.ParentRef, gw: g.K8sGateway, ctx: Ctx,
                     path: str) -> list[g.Listener]:
    """referenceAllowed for a Gateway parent, per listener (port, sectionName, hostnames,
    namespaces, kind): the listeners the route binds to; none -> a NotAccepted warning."""
    listeners = list(gw.listeners)
    if ref.port is not None:
        listeners = [lst for lst in listeners if lst.port == ref.port]
        if not listeners:
            return _not_accepted(ctx, path, "NoMatchingParent", f"port {ref.port} not found")
    if ref.section_name:
        listeners = [lst for lst in listeners if lst.name == ref.section_name]
        if not listeners:
            return _not_accepted(ctx, path, "NoMatchingParent", f'sectionName "{ref.section_name}" not found')
    hostnames = route.hostnames or ("*",)
    by_host = [lst for lst in listeners if any(_host_overlap(lst.hostname or "*", h) for h in hostnames)]
    if not by_host:
        return _not_accepted(ctx, path, "NoMatchingListenerHostname",
                             f'no hostnames matched parent hostname "{listeners[0].hostname or "*"}"')
    by_ns = [lst for lst in by_host if lst.allowed_from != "Same" or route.meta.namespace == gw.meta.namespace]
    if not by_ns:
        return _not_accepted(ctx, path, "NotAllowedByListeners",
                             f'hostnames matched parent hostname "{by_host[0].hostname or "*"}", but namespace '
                             f'"{route.meta.namespace}" is not allowed by the parent')
    accepted = [lst for lst in by_ns if lst.protocol in ("HTTP", "HTTPS")]
    if not accepted:
        return _not_accepted(ctx, path, "NotAllowedByListeners",
                             f"kind {g.GROUP}/v1, Kind=HTTPRoute is not allowed")
    return accepted


def _host_overlap(a: str, b: str) -> bool:
    """host.Name.Matches: either side's wildcard covers the other."""
    if a == "*" or b == "*" or a == b:
        return True
    if a.startswith("*.") and b.endswith(a[1:]):
        return True
    return b.startswith("*.") and a.endswith(b[1:])


def _not_accepted(ctx: Ctx, path: str, reason: str, message: str) -> list[g.Listener]:
    ctx.warn(path, f"{path}: not accepted by this parent (status Accepted=False, reason {reason}): {message}",
             code=reason)
    return []


def _vs(route: g.HTTPRoute, host: str, gateway_ref: str, http: list[m.HTTPRoute]) -> m.VirtualService:
    return m.VirtualService(meta=route.meta, hosts=(host,), gateways=(gateway_ref,), http=tuple(http),
                            src=route.src, semantics="gateway")


def _convert_rules(route: g.HTTPRoute, world: _World, ctx: Ctx, mesh: bool) -> list[m.HTTPRoute] | None:
    out: list[m.HTTPRoute] = []
    ns, name = route.meta.namespace, route.meta.name
    for n, rule in enumerate(route.rules):
        rpath = f"spec.rules[{n}]"
        matches: list[tuple[g.RouteMatch | None, str]] = (
            [(mt, f"{rpath}.matches[{j}]") for j, mt in enumerate(rule.matches)] or [(None, rpath)])
        for mt, mpath in matches:
            try:
                r = _convert_rule(rule, mt, world, ctx, ns, rpath, mesh)
            except _RouteError as e:
                ctx.warn(e.path, f"{e.path}: the route is dropped (status ResolvedRefs=False, reason {e.reason}): "
                                 f"{e.message}", code=e.reason)
                return None
            out.append(dataclasses.replace(r, name=rule.name or f"{ns}.{name}.{n}",
                                           origin=f"HTTPRoute {ns}/{name}", origin_path=mpath, src=route.src))
    return out


def _match(mt: g.RouteMatch) -> m.HTTPMatchRequest:
    p = mt.path
    if p.type == "PathPrefix":
        uri = m.StringMatch("prefix", p.value if p.value == "/" else p.value.removesuffix("/"))
    else:
        uri = m.StringMatch("exact" if p.type == "Exact" else "regex", p.value)

    def sm(v: g.ValueMatch) -> m.StringMatch:
        return m.StringMatch("exact" if v.type == "Exact" else "regex", v.value)

    return m.HTTPMatchRequest(
        uri=uri, method=m.StringMatch("exact", mt.method) if mt.method else None,
        headers=tuple((h.name.lower(), sm(h)) for h in mt.headers),
        query_params=tuple((q.name, sm(q)) for q in mt.query_params),
    )


def _header_ops(hf: g.HeaderFilter | None, path: str) -> m.HeaderOperations | None:
    if hf is None:
        return None
    for n, v in hf.set + hf.add:
        if any(c != "\t" and (ord(c) < 0x20 or ord(c) == 0x7F) for c in v):
            raise _RouteError("InvalidFilter", f'header "{n}" value contains invalid characters', path)

    def first(items: tuple[tuple[str, str], ...]) -> tuple[tuple[str, str], ...]:
        seen: dict[str, str] = {}
        for n, v in items:
            seen.setdefault(n.lower(), v)  # "Subsequent entries with an equivalent header name MUST be ignored"
        return tuple(seen.items())

    return m.HeaderOperations(set=first(hf.set), add=first(hf.add), remove=hf.remove)


def _convert_rule(rule: g.Rule, mt: g.RouteMatch | None, world: _World, ctx: Ctx, ns: str,
                  rpath: str, mesh: bool) -> m.HTTPRoute:
    headers_req = headers_resp = None
    redirect = rewrite = None
    cors = None
    mirrors: list[m.HTTPMirrorPolicy] = []
    for k, f in enumerate(rule.filters):
        fpath = f"{rpath}.filters[{k}]"
        if f.type == "RequestHeaderModifier":
            headers_req = _header_ops(f.request_header_modifier, fpath)
        elif f.type == "ResponseHeaderModifier":
            headers_resp = _header_ops(f.response_header_modifier, fpath)
        elif f.type == "RequestRedirect" and f.request_redirect is not None:
            redirect = _redirect(f.request_redirect)
        elif f.type == "RequestMirror" and f.request_mirror is not None:
            mf = f.request_mirror
            dest, problem = _destination(mf.backend_ref, world, ns, f"{fpath}.requestMirror.backendRef", mesh)
            if problem is not None:  # the mirror is left out; the route stays
                _unresolved(ctx, *problem)
                continue
            pct = None
            if mf.fraction is not None:
                pct = 100 * mf.fraction.numerator / mf.fraction.denominator
            elif mf.percent is not None:
                pct = float(mf.percent)
            mirrors.append(m.HTTPMirrorPolicy(dest, pct))
        elif f.type == "URLRewrite" and f.url_rewrite is not None:
            rewrite = _rewrite(f.url_rewrite)
        elif f.type == "CORS" and f.cors is not None:
            cors = _cors(f.cors)
        elif f.type not in ("RequestRedirect", "RequestMirror", "URLRewrite", "CORS"):
            raise _RouteError("InvalidFilter", f'unsupported filter type "{f.type}"', fpath)
    retries = None
    if rule.retry is not None:
        retry_on = ["connect-failure", "refused-stream", "unavailable", "cancelled"]
        retry_on += [str(c) for c in rule.retry.codes]
        attempts = 2 if rule.retry.attempts is None else rule.retry.attempts
        retries = m.HTTPRetry(attempts=attempts, retry_on=",".join(retry_on) if attempts else "",
                              backoff=rule.retry.backoff)
    timeout = None
    if rule.timeouts is not None:
        if rule.timeouts.request:
            timeout = rule.timeouts.request
        if rule.timeouts.backend_request:
            if retries is not None:
                retries = dataclasses.replace(retries, per_try_timeout=rule.timeouts.backend_request)
            else:
                timeout = rule.timeouts.backend_request
    headers = m.Headers(headers_req, headers_resp) if headers_req or headers_resp else None
    base = m.HTTPRoute(match=(_match(mt),) if mt is not None else (), redirect=redirect, rewrite=rewrite,
                       timeout=timeout, retries=retries, mirrors=tuple(mirrors), headers=headers,
                       cors_policy=cors)
    if sum(b.weight for b in rule.backend_refs) == 0 and redirect is None:
        return dataclasses.replace(base, direct_response=m.HTTPDirectResponse(500))  # the spec's 500
    if redirect is not None:
        return base
    live = [(i, b) for i, b in enumerate(rule.backend_refs) if b.weight != 0]
    dests = []
    for i, b in live:
        bpath = f"{rpath}.backendRefs[{i}]"
        dest, problem = _destination(b, world, ns, bpath, mesh)
        if problem is not None:
            _unresolved(ctx, *problem)
        bh = None
        for k, f in enumerate(b.filters):
            if f.type == "RequestHeaderModifier":
                bh = m.Headers(_header_ops(f.request_header_modifier, f"{bpath}.filters[{k}]"),
                               bh.response if bh else None)
            elif f.type == "ResponseHeaderModifier":
                bh = m.Headers(bh.request if bh else None,
                               _header_ops(f.response_header_modifier, f"{bpath}.filters[{k}]"))
            else:
                raise _RouteError("InvalidFilter", f'unsupported filter type "{f.type}"', f"{bpath}.filters[{k}]")
        dests.append(m.HTTPRouteDestination(dest, 0 if len(live) == 1 else b.weight, bh))
    return dataclasses.replace(base, route=tuple(dests))


def _unresolved(ctx: Ctx, path: str, reason: str, message: str) -> None:
    ctx.warn(path, f"{path}: status ResolvedRefs=False, reason {reason}: {message} (Envoy answers 500)",
             code=reason)


def _destination(b: g.BackendRef, world: _World, ns: str, path: str,
                 mesh: bool = True) -> tuple[m.Destination, tuple[str, str, str] | None]:
    """buildDestination: the Istio destination of a backendRef and, when it does not
    resolve, (path, reason, message).  A hard error raises _RouteError.  On a Gateway
    (not the mesh) a backendRef to another namespace needs a ReferenceGrant."""
    bns = b.namespace or ns
    if not mesh and b.namespace is not None and b.namespace != ns and not world.backend_allowed(ns, bns, b.name):
        return m.Destination(host=""), (
            path, "RefNotPermitted", f"backendRef {b.name}/{bns} not accessible to a HTTPRoute in namespace "
                                     f'"{ns}" (missing a ReferenceGrant?)')
    if b.group in ("", "core") and b.kind == "Service":
        if "." in b.name:
            raise _RouteError("InvalidDestination",
                              "service name invalid; the name of the Service must be used, not the hostname.", path)
        host = fqdn(b.name, bns)
        problem = None if (bns, b.name) in world.services else (path, "BackendNotFound", f"backend({host}) not found")
    elif b.group == ISTIO_GROUP and b.kind == "Hostname":
        if b.namespace is not None:
            raise _RouteError("InvalidDestination", "namespace may not be set with Hostname type", path)
        host = b.name
        problem = None if world.hostname_known(host) else (path, "BackendNotFound", f"backend({host}) not found")
    else:
        return m.Destination(host=""), (path, "InvalidKind",
                                         f'referencing unsupported backendRef: group "{b.group}" kind "{b.kind}"')
    if b.port is None:
        raise _RouteError("InvalidDestination", "port is required in backendRef", path)
    return m.Destination(host=host, port=b.port), problem


def _redirect(r: g.Redirect) -> m.HTTPRedirect:
    uri = prefix = None
    if r.path is not None:
        if r.path.type == "ReplaceFullPath":
            uri = r.path.replace_full_path
        else:
            prefix = r.path.replace_prefix_match
    derive = None
    if r.port is None:  # "When empty, port (if specified) of the request is used."
        derive = "FROM_PROTOCOL_DEFAULT" if r.scheme is not None else "FROM_REQUEST_PORT"
    return m.HTTPRedirect(uri=uri, authority=r.hostname, port=r.port, derive_port=derive, scheme=r.scheme,
                          redirect_code=r.status_code, prefix_rewrite=prefix)


def _rewrite(r: g.Rewrite) -> m.HTTPRewrite | None:
    uri = None
    regex = None
    if r.path is not None:
        if r.path.type == "ReplacePrefixMatch" and r.path.replace_prefix_match is not None:
            uri = r.path.replace_prefix_match.removesuffix("/") or "/"
        elif r.path.type == "ReplaceFullPath" and r.path.replace_full_path is not None:
            regex = m.RegexRewrite("/.*", r.path.replace_full_path)
    if uri is None and regex is None and not r.hostname:
        return None
    return m.HTTPRewrite(uri=uri, authority=r.hostname, uri_regex_rewrite=regex)


def _cors(c: g.Cors) -> m.CorsPolicy:
    """createCorsFilter: ``*`` is any well-formed origin, an origin without ``*`` is exact,
    one trailing ``*`` a prefix, other wildcards a regex; unmatched preflights IGNORE."""
    origins = []
    for o in c.allow_origins:
        if o == "*":
            origins.append(m.StringMatch("regex", r"^[a-zA-Z][a-zA-Z0-9+.-]*://[^/\s?#]+$"))
        elif "*" not in o:
            origins.append(m.StringMatch("exact", o))
        elif o.count("*") == 1 and o.endswith("*"):
            origins.append(m.StringMatch("prefix", o[:-1]))
        else:
            origins.append(m.StringMatch("regex", "^" + quote_meta(o).replace("\\*", ".*") + "$"))
    return m.CorsPolicy(allow_origins=tuple(origins), allow_methods=c.allow_methods, allow_headers=c.allow_headers,
                        expose_headers=c.expose_headers, max_age=float(c.max_age) if c.max_age > 0 else None,
                        allow_credentials=True if c.allow_credentials else None, unmatched_preflights="IGNORE")

