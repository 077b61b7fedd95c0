"""Envoy routes from a VirtualService's HTTP rules, as Istio's route.go translates them:
one route per match block, the route action (weighted clusters, rewrites, timeout,
retry policy, mirror policies with Istio's FractionalPercent) or a redirect / direct
response, header mutations, fault and CORS policies; delegate rules merged in; a
catch-all route ends route generation on the mesh, as in Istio."""

from __future__ import annotations

import dataclasses
from collections.abc import Iterable
from dataclasses import dataclass

from simulator.core import header_format
from simulator.core.cors import CorsPolicy
from simulator.core.delegation import merge_delegate_route
from simulator.core.envoy_config import (
    ISTIO_DEFAULT_RETRY,
    NO_MUTATIONS,
    DirectResponseAction,
    FaultConfig,
    HeaderMutations,
    HeaderValueOption,
    MirrorPolicy,
    RedirectAction,
    RetryPolicy,
    Route,
    RouteAction,
    RouteMatch,
    WeightedCluster,
)
from simulator.core.matchers import (
    HeaderMatcher,
    PathMatcher,
    QueryParameterMatcher,
    StringMatcher,
    compile_regex,
    quote_meta,
)
from simulator.core.options import TranslateOptions
from simulator.core.registry import Registry, gateway_refs
from simulator.model import istio as m
from simulator.model.names import GRPC_STATUS_CODES, MESH

# --------------------------------------------------------------------------- routes


def _string_matcher(sm: m.StringMatch) -> StringMatcher:
    if sm.kind == "regex" and sm.value == "*":
        return StringMatcher.make("present")
    return StringMatcher.make(sm.kind, sm.value)


def translate_match(match: m.HTTPMatchRequest | None, gateway_semantics: bool = False) -> RouteMatch:
    if match is None or match.uri is None:
        path = PathMatcher.make("prefix", "/")
    else:
        kind: str = match.uri.kind if match.uri.kind != "present" else "prefix"
        value = match.uri.value if match.uri.kind != "present" else "/"
        if gateway_semantics and kind == "prefix" and value != "/":
            # route.go translateRouteMatch: path_separated_prefix, trailing "/" trimmed
            kind, value = "sep_prefix", value.removesuffix("/")
        path = PathMatcher.make(kind, value, case_sensitive=not match.ignore_uri_case)
    headers: list[HeaderMatcher] = []
    if match is not None:
        for pseudo, sm in ((":scheme", match.scheme), (":method", match.method),
                           (":authority", match.authority)):
            if sm is not None:
                headers.append(HeaderMatcher(pseudo, _string_matcher(sm)))
        named = [(n, sm, False) for n, sm in match.headers]
        named += [(n, sm, True) for n, sm in match.without_headers]
        for name, sm, invert in sorted(named, key=lambda t: t[0]):
            sm2 = _string_matcher(sm)
            headers.append(HeaderMatcher(
                name.lower(), sm2, invert=invert,
                treat_missing_as_empty=invert and sm2.kind != "present",
            ))
        queries = tuple(
            QueryParameterMatcher(n, _string_matcher(sm)) for n, sm in sorted(match.query_params)
        )
    else:
        queries = ()
    return RouteMatch(path, tuple(headers), queries)


def _header_mutations(ops: m.HeaderOperations | None) -> tuple[HeaderMutations, str | None]:
    """Istio TranslateHeadersOperations; returns (mutations, authority rewrite)."""
    if ops is None:
        return NO_MUTATIONS, None
    authority = None
    adds: list[HeaderValueOption] = []
    for name, value in sorted(ops.add):
        ln = name.lower()
        if ln in (":authority", "host"):
            authority = authority or value
        elif not ln.startswith(":"):
            adds.append(_header_value_option(ln, value, True))
    for name, value in sorted(ops.set):
        ln = name.lower()
        if ln in (":authority", "host"):
            authority = value  # set wins over add
        elif not ln.startswith(":"):
            adds.append(_header_value_option(ln, value, False))
    removes = tuple(n.lower() for n in ops.remove if not n.startswith(":") and n.lower() != "host")
    dynamic = any(a.template is not None for a in adds)
    return HeaderMutations(tuple(adds), removes, dynamic), authority


def _header_value_option(name: str, value: str, append: bool) -> HeaderValueOption:
    """Envoy reads the value as a format string, once (validation reports the values it
    rejects; such a value is kept as it is)."""
    try:
        parsed = header_format.parse(value)
    except header_format.FormatError:
        parsed = value
    source = value if parsed != value else ""
    if isinstance(parsed, str):
        return HeaderValueOption(name, parsed, append, source=source)
    return HeaderValueOption(name, value, append, template=parsed, source=value)


def _percent_fraction(value: float | None, legacy: int | None) -> tuple[int, int] | None:
    """Istio MirrorPercent: mirrorPercentage wins (value*10000/MILLION, 0 = off);
    else the deprecated integer (N/HUNDRED, 0 = off); else 100/HUNDRED."""
    if value is not None:
        if value <= 0:
            return None
        return int(value * 10000), 1_000_000
    if legacy is not None:
        if legacy <= 0:
            return None
        return legacy, 100
    return 100, 100


@dataclass(slots=True)
class _Ctx:
    reg: Registry
    opts: TranslateOptions
    vs: m.VirtualService
    listener_port: int
    gateway: str = MESH

    def cluster_for(self, dest: m.Destination) -> str:
        return self.reg.cluster_for(dest, self.vs.meta.namespace, self.listener_port)


def _consistent_hash(ctx: _Ctx, dest: m.Destination, port: int) -> bool:
    """Istio's HashForHTTPDestination: the destination has a consistent-hash load balancer
    (subset port-level, then subset, then port-level, then top-level policy)."""
    dr = ctx.reg.destination_rule(ctx.reg.resolve(dest.host, ctx.vs.meta.namespace))
    if dr is None:
        return False

    def ch(tp: m.TrafficPolicy | None, port_level: bool) -> bool | None:
        if tp is None:
            return None
        if port_level:
            for pl in tp.port_level_settings:
                if pl.port == port:
                    lb = pl.load_balancer
                    return True if lb is not None and lb.consistent_hash is not None else None
            return None
        lb = tp.load_balancer
        return True if lb is not None and lb.consistent_hash is not None else None

    sub = next((x for x in dr.subsets if x.name == dest.subset), None) if dest.subset else None
    sp = sub.traffic_policy if sub is not None else None
    tp = dr.traffic_policy
    return bool(ch(sp, True) or ch(sp, False) or ch(tp, True) or ch(tp, False))


def _retry_policy(r: m.HTTPRetry | None) -> RetryPolicy | None:
    if r is None:
        return ISTIO_DEFAULT_RETRY
    if r.attempts <= 0:
        return None
    tokens: list[str] = []
    codes: list[int] = []
    if r.retry_on:
        for t in r.retry_on.split(","):
            t = t.strip()
            if t.isdigit():
                codes.append(int(t))
            elif t:
                tokens.append(t)
        if codes and "retriable-status-codes" not in tokens:
            tokens.append("retriable-status-codes")
    else:
        tokens = list(ISTIO_DEFAULT_RETRY.retry_on)
    return RetryPolicy(
        num_retries=r.attempts, retry_on=tuple(tokens), retriable_status_codes=tuple(codes),
        per_try_timeout=r.per_try_timeout or 0.0,
        previous_hosts=r.retry_ignore_previous_hosts is not False,
        base_interval=r.backoff or 0.025,
    )


def _fault(f: m.HTTPFaultInjection | None) -> FaultConfig | None:
    if f is None:
        return None
    delay = delay_num = None
    if f.delay is not None and f.delay.fixed_delay is not None:
        pct = f.delay.percentage
        if pct is None and f.delay.percent is not None:
            pct = float(f.delay.percent)
        delay = f.delay.fixed_delay
        delay_num = int((pct or 0.0) * 10000)
    abort_status = abort_grpc = None
    abort_num = 0
    if f.abort is not None:
        abort_status = f.abort.http_status
        if f.abort.grpc_status:
            abort_grpc = GRPC_STATUS_CODES.get(f.abort.grpc_status.upper())
        abort_num = int((f.abort.percentage or 0.0) * 10000)
    if delay is None and abort_status is None and abort_grpc is None:
        return None
    return FaultConfig(delay=delay, delay_numerator=delay_num or 0, abort_status=abort_status,
                       abort_grpc_status=abort_grpc, abort_numerator=abort_num)


def _cors(c: m.CorsPolicy | None) -> CorsPolicy | None:
    """Istio's TranslateCORSPolicy (route.go)."""
    if c is None:
        return None
    return CorsPolicy(
        allow_origins=tuple(StringMatcher.make(o.kind, o.value) for o in c.allow_origins),
        allow_methods=",".join(c.allow_methods),
        allow_headers=",".join(c.allow_headers),
        expose_headers=",".join(c.expose_headers),
        max_age=str(int(c.max_age)) if c.max_age is not None else "",
        allow_credentials=c.allow_credentials,
        forward_not_matching_preflights=c.unmatched_preflights != "IGNORE",
    )


def translate_http_route(ctx: _Ctx, i: int, rule: m.HTTPRoute) -> list[Route]:
    """One Envoy route per match block (only those that apply to this port and the mesh)."""
    vs = ctx.vs
    gw_semantics = vs.semantics == "gateway"
    origin = rule.origin or f"VirtualService {vs.meta.namespace}/{vs.meta.name}"
    src = rule.src or vs.src
    route_headers_req, authority = _header_mutations(rule.headers.request if rule.headers else None)
    route_headers_resp, _ = _header_mutations(rule.headers.response if rule.headers else None)
    action: RouteAction | RedirectAction | DirectResponseAction
    if rule.direct_response is not None:
        action = DirectResponseAction(rule.direct_response.status, rule.direct_response.body or b"")
    elif rule.redirect is not None:
        rd = rule.redirect
        action = RedirectAction(
            # route.go: FROM_REQUEST_PORT is the port the routes are built for (port_redirect);
            # FROM_PROTOCOL_DEFAULT sets nothing (Envoy keeps a non-default request port)
            scheme=rd.scheme, host=rd.authority, derive_port=rd.derive_port,
            port=ctx.listener_port if rd.port is None and rd.derive_port == "FROM_REQUEST_PORT" else rd.port,
            path=rd.uri, prefix_rewrite=rd.prefix_rewrite,
            response_code=rd.redirect_code or 301,
        )
    else:
        mirrors: list[MirrorPolicy] = []
        suffix_off = not ctx.opts.shadow_suffix
        if rule.mirror is not None:
            frac = _percent_fraction(rule.mirror_percentage, rule.mirror_percent)
            if frac is not None:
                mirrors.append(MirrorPolicy(ctx.cluster_for(rule.mirror), *frac,
                                            disable_shadow_host_suffix_append=suffix_off))
        for mp in rule.mirrors:
            frac = _percent_fraction(mp.percentage, None)
            if frac is not None:
                mirrors.append(MirrorPolicy(ctx.cluster_for(mp.destination), *frac,
                                            disable_shadow_host_suffix_append=suffix_off))
        rewrite = rule.rewrite
        prefix_rewrite = rewrite.uri if rewrite else None
        regex_rewrite = None
        regex_src = ""
        if rewrite is not None and rewrite.uri_regex_rewrite is not None:
            regex_src = rewrite.uri_regex_rewrite.match
            regex_rewrite = (compile_regex(regex_src, captures=True), rewrite.uri_regex_rewrite.rewrite)
        elif gw_semantics and prefix_rewrite == "/":
            # route.go: a Gateway API ReplacePrefixMatch "/" removes the matched prefix
            regex_src = f"^{quote_meta(_separated_prefix(rule))}(/?)(.*)"
            regex_rewrite = (compile_regex(regex_src, captures=True, generated=True), "/\\2")
            prefix_rewrite = None
        host_rewrite = (rewrite.authority if rewrite and rewrite.authority else None) or authority
        dests = [d for d in rule.route]
        single = ""
        weighted: tuple[WeightedCluster, ...] = ()
        total = 0
        if len(dests) == 1:
            single = ctx.cluster_for(dests[0].destination)
            dreq, dauth = _header_mutations(dests[0].headers.request if dests[0].headers else None)
            dresp, _ = _header_mutations(dests[0].headers.response if dests[0].headers else None)
            route_headers_req = route_headers_req.then(dreq, same_level=True)
            route_headers_resp = route_headers_resp.then(dresp, same_level=True)
            host_rewrite = dauth or host_rewrite
        else:
            wcs = []
            for d in dests:
                if d.weight <= 0:
                    continue
                dreq, dauth = _header_mutations(d.headers.request if d.headers else None)
                dresp, _ = _header_mutations(d.headers.response if d.headers else None)
                wcs.append(WeightedCluster(ctx.cluster_for(d.destination), d.weight, dreq, dresp, dauth))
            weighted = tuple(wcs)
            total = sum(w.weight for w in wcs)
        retry = _retry_policy(rule.retries)
        if (retry is not None and len(dests) == 1 and _consistent_hash(ctx, dests[0].destination,
                                                                       int(single.split("|")[1]))
                and (rule.retries is None or rule.retries.retry_ignore_previous_hosts is None)):
            # retry.ConvertPolicy(policy, consistentHash): no previous_hosts predicate (a retry
            # goes back to the hashed host) unless retryIgnorePreviousHosts asks for it
            retry = dataclasses.replace(retry, previous_hosts=False)
        action = RouteAction(
            cluster=single, weighted_clusters=weighted, total_weight=total,
            timeout=rule.timeout or 0.0,
            retry_policy=retry,
            prefix_rewrite=prefix_rewrite, regex_rewrite=regex_rewrite,
            regex_rewrite_source=regex_src, host_rewrite=host_rewrite,
            mirror_policies=tuple(mirrors),
            cluster_not_found_status=500 if gw_semantics else 503,
        )
    fault = _fault(rule.fault)
    cors = _cors(rule.cors_policy)
    routes: list[Route] = []
    matches: Iterable[tuple[int, m.HTTPMatchRequest | None]] = (
        list(enumerate(rule.match)) if rule.match else [(-1, None)]
    )
    for j, match in matches:
        if match is not None:
            if match.port is not None and match.port != ctx.listener_port:
                continue
            if match.gateways:  # a match naming gateways is bound by them alone (sourceMatchHTTP)
                if ctx.gateway not in gateway_refs(match.gateways, vs):
                    continue
            elif not ctx.opts.selects_source(match):
                continue
        name = rule.name
        if match is not None and match.name:
            name = f"{rule.name}.{match.name}" if rule.name else match.name
        path = rule.origin_path or f"spec.http[{i}]" + (f".match[{j}]" if j >= 0 else "")
        routes.append(Route(
            name=name, match=translate_match(match, gw_semantics), action=action,
            request_headers=route_headers_req, response_headers=route_headers_resp,
            fault=fault, cors=cors, origin=origin, origin_path=path,
            file=src.file, line=src.line_of(path),
        ))
    return routes


def _separated_prefix(rule: m.HTTPRoute) -> str:
    """The path_separated_prefix of a (single-match) Gateway API rule, else ""."""
    uri = rule.match[0].uri if rule.match else None
    if uri is None or uri.kind != "prefix" or uri.value == "/":
        return ""
    return uri.value.removesuffix("/")



def translate_virtual_service(
    reg: Registry, opts: TranslateOptions, vs: m.VirtualService, port: int,
    gateway: str = MESH, stop_at_catch_all: bool = True,
) -> list[Route]:
    routes: list[Route] = []
    for i, rule in enumerate(vs.http):
        if rule.delegate is not None:
            d = reg.delegate(rule.delegate.namespace or vs.meta.namespace, rule.delegate.name)
            if d is None or d.hosts:
                continue  # IST0101 reported by validation; Istio drops the rule
            dctx = _Ctx(reg, opts, d, port, gateway)
            for j, drule in enumerate(d.http):
                for merged in merge_delegate_route(rule, drule):
                    routes.extend(translate_http_route(dctx, j, merged))
            continue
        ctx = _Ctx(reg, opts, vs, port, gateway)
        for r in translate_http_route(ctx, i, rule):
            routes.append(r)
            if stop_at_catch_all and r.match.is_catch_all():
                return routes  # Istio stops generating routes after a catch-all
    return routes
