"""Translate the Istio input model into the compiled RouteTable, as Istio's pilot
translates VirtualServices into Envoy routes for a sidecar (the "mesh" gateway).

Istio behaviours reproduced here (see docs/config-reference.md):
* services come from ServiceEntries (ports x hosts); endpoints from inline
  ``endpoints`` or WorkloadEntries picked by ``workloadSelector``;
* one Envoy cluster per service port (``outbound|P||host``) and per
  DestinationRule subset (``outbound|P|v1|host``), endpoints filtered by labels;
* one route configuration per port; per service a virtual host whose domains
  are the FQDN and its short forms relative to the client namespace; the VS
  bound to the mesh for that host supplies the routes (oldest wins), otherwise
  the default route to ``outbound|P||host``;
* VS hosts that are not services get a virtual host on port 80 only;
* one Envoy route per match block; a catch-all route ends route generation;
* mirror percentages as FractionalPercent exactly as Istio emits them.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Iterable
from dataclasses import dataclass, field

from simulator.config import model as m
from simulator.core import header_format
from simulator.core.cors import CorsPolicy
from simulator.core.hosts import fqdn, is_ip, wildcard_matches
from simulator.core.matchers import (
    HeaderMatcher,
    PathMatcher,
    QueryParameterMatcher,
    StringMatcher,
    compile_regex,
)
from simulator.core.paths import BASE
from simulator.core.table import (
    ISTIO_DEFAULT_RETRY,
    NO_MUTATIONS,
    UINT32_MAX,
    CircuitBreakers,
    Cluster,
    DirectResponseAction,
    Endpoint,
    FaultConfig,
    HeaderMutations,
    HeaderValueOption,
    MirrorPolicy,
    OutlierDetectionConfig,
    RedirectAction,
    RetryPolicy,
    Route,
    RouteAction,
    RouteConfiguration,
    RouteMatch,
    RouteTable,
    VirtualHost,
    WeightedCluster,
    cluster_name,
)

MESH = "mesh"


@dataclass(frozen=True, slots=True)
class Source:
    """The calling workload: its pod labels and namespace ("" = the default namespace)."""

    labels: tuple[tuple[str, str], ...] = ()
    namespace: str = ""

    def __str__(self) -> str:
        labels = ",".join(f"{k}={v}" for k, v in self.labels) or "no labels"
        return f"{labels} in namespace {self.namespace or '(default)'}"


@dataclass(frozen=True, slots=True)
class TranslateOptions:
    namespace: str = "default"  # the client's (mirrorsim's) namespace, for short host names
    domain: str = "cluster.local"
    shadow_suffix: bool = True  # False = Envoy disable_shadow_host_suffix_append (Istio >= 1.28)
    path_normalization: str = BASE  # meshConfig.pathNormalization.normalization (core/paths.py)
    # The calling workload, the proxy istiod builds these routes for: its pod labels and
    # namespace ("" = ``namespace``).  A match whose sourceLabels / sourceNamespace do not
    # select it is left out at translation time, as istiod's sourceMatchHTTP does.
    source_labels: tuple[tuple[str, str], ...] = ()
    source_namespace: str = ""

    @property
    def client_namespace(self) -> str:
        """The calling workload's namespace (short host names resolve relative to it)."""
        return self.source_namespace or self.namespace

    def selects_source(self, match: m.HTTPMatchRequest) -> bool:
        """Istio's sourceMatchHTTP for a match without ``gateways``: its sourceLabels
        are a subset of the workload's labels and its sourceNamespace (if any) is the
        workload's namespace."""
        if match.source_labels:
            labels = dict(self.source_labels)
            if not all(labels.get(k) == v for k, v in match.source_labels.items()):
                return False
        return not match.source_namespace or match.source_namespace == self.client_namespace


@dataclass(slots=True)
class Service:
    host: str  # FQDN
    namespace: str
    ports: tuple[m.ServicePort, ...]
    endpoints: list[tuple[m.WorkloadEntrySpec, str]] = field(default_factory=list)  # (spec, origin)
    resolution: str = "STATIC"
    addresses: tuple[str, ...] = ()  # ServiceEntry addresses (VIPs): also virtual host domains

    def port_by_number(self, n: int) -> m.ServicePort | None:
        for p in self.ports:
            if p.number == n:
                return p
        return None


@dataclass(slots=True)
class Registry:
    services: dict[str, Service]
    destination_rules: dict[str, m.DestinationRule]  # merged, by FQDN host


def build_registry(cfg: m.Config, opts: TranslateOptions) -> Registry:
    services: dict[str, Service] = {}
    for se in cfg.service_entries:
        ns = se.meta.namespace
        specs: list[tuple[m.WorkloadEntrySpec, str]] = [
            (e, f"ServiceEntry {ns}/{se.meta.name}") for e in se.endpoints
        ]
        if se.workload_selector is not None:
            for we in cfg.workload_entries:
                if we.meta.namespace == ns and _labels_match(se.workload_selector, we.spec.labels):
                    specs.append((we.spec, f"WorkloadEntry {ns}/{we.meta.name}"))
        for h in se.hosts:
            host = fqdn(h, ns, opts.domain)
            if host in services:
                continue  # first declaration wins
            services[host] = Service(host, ns, se.ports, list(specs), se.resolution,
                                     tuple(a for a in se.addresses if is_ip(a)))
    drs: dict[str, m.DestinationRule] = {}
    for dr in cfg.destination_rules:
        host = fqdn(dr.host, dr.meta.namespace, opts.domain)
        prev = drs.get(host)
        if prev is None:
            drs[host] = dr
        else:  # merge: subsets concatenated (first name wins), first traffic policy wins
            names = {s.name for s in prev.subsets}
            extra = tuple(s for s in dr.subsets if s.name not in names)
            drs[host] = m.DestinationRule(
                meta=prev.meta, host=prev.host,
                traffic_policy=prev.traffic_policy or dr.traffic_policy,
                subsets=prev.subsets + extra, export_to=prev.export_to, src=prev.src,
            )
    return Registry(services, drs)


def _labels_match(selector: dict[str, str], labels: dict[str, str]) -> bool:
    return all(labels.get(k) == v for k, v in selector.items())


def _find_dr(reg: Registry, host: str) -> m.DestinationRule | None:
    dr = reg.destination_rules.get(host)
    if dr is not None:
        return dr
    best: tuple[int, m.DestinationRule] | None = None
    for pattern, d in reg.destination_rules.items():
        if pattern.startswith("*") and wildcard_matches(pattern, host):
            if best is None or len(pattern) > best[0]:
                best = (len(pattern), d)
    return best[1] if best else None


# --------------------------------------------------------------------------- clusters


def _port_policy(tp: m.TrafficPolicy | None, port: int) -> m.TrafficPolicy | None:
    if tp is None:
        return None
    for pl in tp.port_level_settings:
        if pl.port == port:
            return m.TrafficPolicy(
                load_balancer=pl.load_balancer, connection_pool=pl.connection_pool,
                outlier_detection=pl.outlier_detection, tls=pl.tls,
            )
    return tp


def effective_policy(
    dr: m.DestinationRule | None, subset: m.Subset | None, port: int
) -> m.TrafficPolicy | None:
    """Istio's MergeSubsetTrafficPolicy: port-level (or top-level) DR policy, whose
    whole components a subset policy (itself port-level resolved) replaces."""
    base = _port_policy(dr.traffic_policy if dr else None, port)
    if subset is None or subset.traffic_policy is None:
        return base
    sp = subset.traffic_policy
    for pl in sp.port_level_settings:
        if pl.port == port:
            return m.TrafficPolicy(
                load_balancer=pl.load_balancer, connection_pool=pl.connection_pool,
                outlier_detection=pl.outlier_detection, tls=pl.tls,
            )
    if base is None:
        return sp
    return m.TrafficPolicy(
        load_balancer=sp.load_balancer or base.load_balancer,
        connection_pool=sp.connection_pool or base.connection_pool,
        outlier_detection=sp.outlier_detection or base.outlier_detection,
        tls=sp.tls or base.tls,
    )


def _cluster_settings(tp: m.TrafficPolicy | None) -> dict[str, object]:
    out: dict[str, object] = {}
    if tp is None:
        return out
    lb = tp.load_balancer
    if lb is not None:
        if lb.consistent_hash is not None:
            ch = lb.consistent_hash
            out["lb_policy"] = "RING_HASH"
            if ch.http_header_name:
                out["hash_policy"] = (("header", ch.http_header_name.lower()),)
            elif ch.http_cookie:
                out["hash_policy"] = (("cookie", str(ch.http_cookie.get("name", ""))),)
            elif ch.use_source_ip:
                out["hash_policy"] = (("source_ip", ""),)
            elif ch.http_query_parameter_name:
                out["hash_policy"] = (("query_parameter", ch.http_query_parameter_name),)
        elif lb.simple:
            simple = {"UNSPECIFIED": "LEAST_REQUEST", "LEAST_CONN": "LEAST_REQUEST"}.get(
                lb.simple, lb.simple)
            out["lb_policy"] = simple
    cp = tp.connection_pool
    if cp is not None:
        def lim(v: int | None) -> int:
            return UINT32_MAX if not v else v
        tcp, http = cp.tcp, cp.http
        out["circuit_breakers"] = CircuitBreakers(
            max_connections=lim(tcp.max_connections if tcp else None),
            max_pending_requests=lim(http.http1_max_pending_requests if http else None),
            max_requests=lim(http.http2_max_requests if http else None),
            max_retries=lim(http.max_retries if http else None),
        )
        if tcp and tcp.connect_timeout:
            out["connect_timeout"] = tcp.connect_timeout
        if http and http.max_requests_per_connection:
            out["max_requests_per_connection"] = http.max_requests_per_connection
        idle = (http.idle_timeout if http else None) or (tcp.idle_timeout if tcp else None)
        if idle is not None:
            out["idle_timeout"] = idle
    od = tp.outlier_detection
    if od is not None:
        c5 = od.consecutive_5xx_errors
        if c5 is None:
            c5 = od.consecutive_errors if od.consecutive_errors is not None else 5
        out["outlier_detection"] = OutlierDetectionConfig(
            consecutive_5xx=c5,
            consecutive_gateway_failure=od.consecutive_gateway_errors,
            interval=od.interval or 10.0,
            base_ejection_time=od.base_ejection_time or 30.0,
            max_ejection_percent=od.max_ejection_percent if od.max_ejection_percent else 10,
            min_health_percent=od.min_health_percent or 0,
        )
    return out


def _endpoints_for(svc: Service, port: m.ServicePort, labels: dict[str, str] | None) -> tuple[Endpoint, ...]:
    eps: list[Endpoint] = []
    for spec, _ in svc.endpoints:
        if labels is not None and not _labels_match(labels, spec.labels):
            continue
        if spec.address.startswith("unix://"):
            continue
        number = spec.ports.get(port.name) if port.name else None
        if number is None:
            number = port.target_port or port.number
        eps.append(Endpoint(spec.address, number, tuple(sorted(spec.labels.items())), spec.weight or 1))
    if not svc.endpoints and svc.resolution in ("DNS", "DNS_ROUND_ROBIN"):
        eps.append(Endpoint(svc.host, port.target_port or port.number))
    return tuple(eps)


def build_clusters(reg: Registry) -> dict[str, Cluster]:
    clusters: dict[str, Cluster] = {}
    for svc in reg.services.values():
        dr = _find_dr(reg, svc.host)
        for port in svc.ports:
            name = cluster_name(port.number, "", svc.host)
            clusters[name] = Cluster(
                name=name, service=svc.host, port=port.number,
                endpoints=_endpoints_for(svc, port, None),
                **_cluster_settings(effective_policy(dr, None, port.number)),  # type: ignore[arg-type]
            )
            if dr is None:
                continue
            for subset in dr.subsets:
                name = cluster_name(port.number, subset.name, svc.host)
                clusters[name] = Cluster(
                    name=name, service=svc.host, port=port.number, subset=subset.name,
                    endpoints=_endpoints_for(svc, port, subset.labels),
                    **_cluster_settings(effective_policy(dr, subset, port.number)),  # type: ignore[arg-type]
                )
    return clusters


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

    def resolve(self, host: str) -> str:
        return fqdn(host, self.vs.meta.namespace, self.opts.domain)

    def cluster_for(self, dest: m.Destination) -> str:
        host = self.resolve(dest.host)
        port = dest.port
        if port is None:
            svc = self.reg.services.get(host)
            if svc is not None and len(svc.ports) == 1:
                port = svc.ports[0].number
            else:
                port = self.listener_port
        return cluster_name(port, dest.subset, host)


def _consistent_hash(ctx: _Ctx, dest: m.Destination, port: int) -> bool:
    """Istio's HashForHTTPDestination: the destination has a consistent-hash load balancer
    (subset port-level, then subset, then port-level, then top-level policy)."""
    dr = _find_dr(ctx.reg, ctx.resolve(dest.host))
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


_GRPC_CODES = {
    "OK": 0, "CANCELLED": 1, "UNKNOWN": 2, "INVALID_ARGUMENT": 3, "DEADLINE_EXCEEDED": 4,
    "NOT_FOUND": 5, "ALREADY_EXISTS": 6, "PERMISSION_DENIED": 7, "RESOURCE_EXHAUSTED": 8,
    "FAILED_PRECONDITION": 9, "ABORTED": 10, "OUT_OF_RANGE": 11, "UNIMPLEMENTED": 12,
    "INTERNAL": 13, "UNAVAILABLE": 14, "DATA_LOSS": 15, "UNAUTHENTICATED": 16,
}


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
            abort_grpc = _GRPC_CODES.get(f.abort.grpc_status.upper())
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
            regex_src = f"^{_quote_meta(_separated_prefix(rule))}(/?)(.*)"
            regex_rewrite = (compile_regex(regex_src, captures=True), "/\\2")
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
                if ctx.gateway not in _resolve_gateways(match.gateways, vs):
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


def _quote_meta(s: str) -> str:
    """Go's regexp.QuoteMeta."""
    return "".join("\\" + c if c in "\\.+*?()|[]{}^$" else c for c in s)


def translate_virtual_service(
    reg: Registry, opts: TranslateOptions, vs: m.VirtualService, port: int,
    gateway: str = MESH, delegates: dict[tuple[str, str], m.VirtualService] | None = None,
    stop_at_catch_all: bool = True,
) -> list[Route]:
    routes: list[Route] = []
    for i, rule in enumerate(vs.http):
        if rule.delegate is not None:
            d = (delegates or {}).get((rule.delegate.namespace or vs.meta.namespace,
                                       rule.delegate.name))
            if d is None:
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


_INHERITED = ("rewrite", "direct_response", "timeout", "retries", "fault", "mirror",
              "mirror_percent", "mirror_percentage", "cors_policy", "headers")


def merge_delegate_route(root: m.HTTPRoute, delegate: m.HTTPRoute) -> list[m.HTTPRoute]:
    """Istio's mergeHTTPRoute: the delegate rule inherits what it leaves unset
    from the root rule, and its matches are AND-ed with the root's; a delegate
    match that is not within a root match is dropped."""
    changes: dict[str, object] = {}
    for f in _INHERITED:
        if getattr(delegate, f) in (None, ()) and getattr(root, f) not in (None, ()):
            changes[f] = getattr(root, f)
    if not delegate.mirrors and root.mirrors and "mirror" not in changes and delegate.mirror is None:
        changes["mirrors"] = root.mirrors
    if root.match:
        merged: list[m.HTTPMatchRequest] = []
        for rm in root.match:
            for dm in delegate.match or (m.HTTPMatchRequest(),):
                mm = _merge_match(rm, dm)
                if mm is not None:
                    merged.append(mm)
        if not merged:
            return []
        changes["match"] = tuple(merged)
    return [dataclasses.replace(delegate, **changes)] if changes else [delegate]  # type: ignore[arg-type]


def _merge_match(root: m.HTTPMatchRequest, d: m.HTTPMatchRequest) -> m.HTTPMatchRequest | None:
    uri = d.uri
    if root.uri is not None:
        if uri is None:
            uri = root.uri
        elif root.uri.kind == "prefix" and uri.kind in ("prefix", "exact"):
            if not uri.value.startswith(root.uri.value):
                return None
        elif root.uri != uri:
            return None
    fields: dict[str, object] = {"uri": uri}
    for f in ("scheme", "method", "authority"):
        rv, dv = getattr(root, f), getattr(d, f)
        if rv is not None and dv is not None and rv != dv:
            return None
        fields[f] = dv if dv is not None else rv
    for f in ("headers", "without_headers", "query_params"):
        rmap, dmap = dict(getattr(root, f)), dict(getattr(d, f))
        for k, v in rmap.items():
            if k in dmap and dmap[k] != v:
                return None
        fields[f] = tuple({**rmap, **dmap}.items())
    if root.port is not None and d.port is not None and root.port != d.port:
        return None
    fields["port"] = d.port if d.port is not None else root.port
    fields["ignore_uri_case"] = d.ignore_uri_case or root.ignore_uri_case
    return dataclasses.replace(d, **fields)  # type: ignore[arg-type]


def _default_route(host: str, port: int) -> Route:
    return Route(
        name="default", match=RouteMatch(PathMatcher.make("prefix", "/")),
        action=RouteAction(cluster=cluster_name(port, "", host), retry_policy=ISTIO_DEFAULT_RETRY),
        origin=f"default route for {host}:{port}",
    )


def service_domains(host: str, client_ns: str, domain: str, addresses: tuple[str, ...] = ()) -> tuple[str, ...]:
    """Istio's generateVirtualHostDomains with ports ignored (IgnorePortInHostMatching), in its
    order: the FQDN, its absolute form ``fqdn.`` (PILOT_ENABLE_ABSOLUTE_FQDN_VHOST_DOMAIN, on by
    default), the short forms of a Kubernetes-style host (``name``, ``name.ns.svc``, ``name.ns``
    in the client's namespace; ``name.ns``, ``name.ns.svc`` in another), then the service's
    addresses."""
    doms = [host]
    if not is_ip(host) and host != "*" and not host.endswith("."):
        doms.append(host + ".")
    suffix = f".svc.{domain}"
    if host.endswith(suffix):
        name_ns = host[: -len(suffix)]
        name, _, ns = name_ns.rpartition(".")
        if name:
            if ns == client_ns:
                doms += [name, f"{name_ns}.svc", name_ns]
            else:
                doms += [name_ns, f"{name_ns}.svc"]
    doms += [f"[{a}]" if ":" in a else a for a in addresses]
    return tuple(doms)


def vs_origin(vs: m.VirtualService) -> str:
    """``VirtualService ns/name``, or the HTTPRoutes a generated one was made from."""
    routes = dict.fromkeys(r.origin for r in vs.http if r.origin)
    return ", ".join(routes) if routes else f"VirtualService {vs.meta.namespace}/{vs.meta.name}"


def _mesh_bound(vs: m.VirtualService) -> bool:
    return not vs.gateways or MESH in vs.gateways


def _resolve_gateways(names: Iterable[str], vs: m.VirtualService) -> set[str]:
    """Istio resolveGatewayName: ``name`` -> ``<vs ns>/name``; legacy ``name.ns[.svc...]``
    -> ``ns/name``; ``mesh`` stays."""
    out = set()
    for g in names:
        if g == MESH or "/" in g:
            out.add(g)
        elif "." in g:
            name, ns = g.split(".")[:2]
            out.add(f"{ns}/{name}")
        else:
            out.add(f"{vs.meta.namespace}/{g}")
    return out


def _delegate_index(cfg: m.Config) -> dict[tuple[str, str], m.VirtualService]:
    return {(vs.meta.namespace, vs.meta.name): vs for vs in cfg.virtual_services if not vs.hosts}


def translate(cfg: m.Config, opts: TranslateOptions | None = None) -> RouteTable:
    """Compile a loaded config into the immutable RouteTable (delegates already merged)."""
    opts = opts or TranslateOptions()
    reg = build_registry(cfg, opts)
    clusters = build_clusters(reg)
    delegates = _delegate_index(cfg)
    client_ns = opts.client_namespace
    # Gateway API routes from the client's own namespace come first (the consumer
    # override: push_context.go, UnifiedSidecarScoping), then the oldest
    mesh_vs = sorted((vs for vs in cfg.virtual_services if _mesh_bound(vs) and vs.hosts),
                     key=lambda v: (not (v.semantics == "gateway" and v.meta.namespace == client_ns),
                                    v.meta.order))
    vs_hosts: list[tuple[str, m.VirtualService]] = []
    for vs in mesh_vs:
        for h in vs.hosts:
            vs_hosts.append((fqdn(h, vs.meta.namespace, opts.domain), vs))

    def vs_for(host: str, svc_ns: str | None = None) -> m.VirtualService | None:
        for h, vs in vs_hosts:  # oldest exact match wins
            if h == host:
                # route.go: a Gateway API route applies only in its own namespace or
                # the destination service's
                if (vs.semantics == "gateway" and svc_ns is not None
                        and vs.meta.namespace not in (svc_ns, client_ns)):
                    continue
                return vs
        best: tuple[int, m.VirtualService] | None = None
        for h, vs in vs_hosts:
            if vs.semantics == "gateway":
                continue  # no wildcard hosts on the mesh (separateVSHostsAndServices)
            if h.startswith("*") and wildcard_matches(h, host):
                if best is None or len(h) > best[0]:
                    best = (len(h), vs)
        return best[1] if best else None

    ports: set[int] = {p.number for s in reg.services.values() for p in s.ports}
    ports.add(80)
    route_configs: dict[int, RouteConfiguration] = {}
    for port in sorted(ports):
        vhosts: list[VirtualHost] = []
        seen: set[str] = set()
        for svc in reg.services.values():
            if svc.port_by_number(port) is None:
                continue
            svc_vs = vs_for(svc.host, svc.namespace)
            routes = (translate_virtual_service(reg, opts, svc_vs, port, delegates=delegates)
                      if svc_vs is not None else [])
            origin = (vs_origin(svc_vs)
                      if svc_vs and routes else "")
            if not routes:
                routes = [_default_route(svc.host, port)]
            vhosts.append(VirtualHost(f"{svc.host}:{port}",
                                      service_domains(svc.host, opts.client_namespace, opts.domain, svc.addresses),
                                      tuple(routes), origin))
            seen.add(svc.host)
        if port == 80:  # non-service VS hosts ("gross HACK" in Istio: port 80 only)
            for h, vs in vs_hosts:
                if h in seen or h in reg.services:
                    continue
                if vs_for(h) is not vs:
                    continue
                routes = translate_virtual_service(reg, opts, vs, port, delegates=delegates)
                vhosts.append(VirtualHost(
                    f"{h}:{port}", (h,), tuple(routes),
                    vs_origin(vs)))
                seen.add(h)
        route_configs[port] = RouteConfiguration.build(port, tuple(vhosts))
    return RouteTable(route_configs, clusters, opts.shadow_suffix,
                      path_normalization=opts.path_normalization)


# --------------------------------------------------------------------------- gateways


def _server_host_matches(server_host: str, gw_ns: str, vs: m.VirtualService, host: str) -> str | None:
    """The host a VS host gets on a Gateway server (``[ns/]dnsName``), or None."""
    ns, _, dns = server_host.rpartition("/")
    if ns not in ("", "*") and not (ns == "." and vs.meta.namespace == gw_ns) and ns != vs.meta.namespace:
        return None
    if wildcard_matches(dns, host):
        return host
    if host.startswith("*") and wildcard_matches(host, dns.lstrip("*") if dns.startswith("*") else dns):
        return dns  # a wider VS host is narrowed to the server's host
    return None


def gateway_servers(cfg: m.Config, ref: str) -> tuple[m.Gateway, list[m.Server]]:
    """Find Gateway ``[ns/]name`` (namespace default: "default"). Raises KeyError."""
    ns, _, name = ref.rpartition("/")
    ns = ns or "default"
    for gw in cfg.gateways:
        if gw.meta.name == name and gw.meta.namespace == ns:
            return gw, list(gw.servers)
    raise KeyError(ref)


def translate_gateway(
    cfg: m.Config, gateway: m.Gateway, server: m.Server, opts: TranslateOptions | None = None,
    clusters: dict[str, Cluster] | None = None,
) -> RouteTable:
    """The route table of one Gateway server, as Istio builds it for an ingress gateway:
    the VirtualServices bound to the gateway whose hosts intersect the server's hosts,
    merged per host (catch-all routes moved last), ``httpsRedirect`` as a 301 to https;
    a host with no virtual host gets 404 NR."""
    opts = opts or TranslateOptions()
    # the proxy is the gateway's own pod: its labels are what the Gateway selects
    opts = dataclasses.replace(opts, source_labels=tuple(sorted(gateway.selector.items())),
                               source_namespace=gateway.meta.namespace)
    reg = build_registry(cfg, opts)
    if clusters is None:
        clusters = build_clusters(reg)
    delegates = _delegate_index(cfg)
    gw_ref = f"{gateway.meta.namespace}/{gateway.meta.name}"
    port = server.port.number
    by_host: dict[str, list[Route]] = {}
    origins: dict[str, list[str]] = {}
    for vs in sorted(cfg.virtual_services, key=lambda v: v.meta.order):
        bound = _resolve_gateways(vs.gateways, vs)
        # a route from a Gateway API route names the listener it is bound to: ns/gateway/listener
        if gw_ref not in bound and not (server.name and f"{gw_ref}/{server.name}" in bound):
            continue
        for h in vs.hosts:
            for sh in server.hosts:
                host = _server_host_matches(sh, gateway.meta.namespace, vs, h)
                if host is None:
                    continue
                routes = translate_virtual_service(reg, opts, vs, port, gateway=gw_ref,
                                                   delegates=delegates, stop_at_catch_all=False)
                by_host.setdefault(host, []).extend(routes)
                origins.setdefault(host, []).append(vs_origin(vs))
                break
    vhosts = []
    for host, routes in by_host.items():
        routes = [r for r in routes if not r.match.is_catch_all()] + [
            r for r in routes if r.match.is_catch_all()]
        if server.tls is not None and server.tls.https_redirect:
            routes = [Route(name="https_redirect", match=RouteMatch(PathMatcher.make("prefix", "/")),
                            action=RedirectAction(scheme="https", response_code=301),
                            origin=f"Gateway {gw_ref} httpsRedirect")]
        vhosts.append(VirtualHost(f"{host}:{port}", (host,), tuple(routes), ", ".join(origins[host])))
    rc = RouteConfiguration.build(port, tuple(vhosts))
    return RouteTable({port: rc}, clusters, opts.shadow_suffix, listener_port=port,
                      path_normalization=opts.path_normalization)
