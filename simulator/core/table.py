"""The compiled route table and the routing decision.  Pure: no I/O, no clock,
no randomness (the per-request random value is an argument).

Theory of operation (Envoy 1.40 as Istio configures a sidecar):

1. The request's port (from the authority, else 80/443 by scheme) selects a
   ``RouteConfiguration``, as the original destination port selects the
   outbound route config ``"8000"`` in a sidecar.
2. The host (port ignored: Istio sets ``ignore_port_in_host_matching``) selects
   a ``VirtualHost``: exact domain, then the longest ``*.suffix`` wildcard, then
   ``*``.  No virtual host: the catch-all answers 502 (Istio's REGISTRY_ONLY
   ``block_all``; mirrorsim never forwards to an undeclared address).
3. Routes are tried in order; the first whose match holds wins.  No route: 404 NR.
4. One uniform 64-bit ``random_value`` per request drives both the weighted
   cluster pick (``random_value % total_weight``) and every mirror policy
   (``random_value % denominator < numerator``), so a 30 % mirror is a subset
   of a 60 % one and sampling is correlated with the split, as in Envoy.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Final

from simulator.core.cors import CorsPolicy
from simulator.core.header_format import FormatContext, Template
from simulator.core.hosts import shadow_host, split_host_port
from simulator.core.matchers import (
    HeaderMatcher,
    PathMatcher,
    QueryParameterMatcher,
    Regex,
    parse_query,
)
from simulator.core.paths import BASE, normalize_path

# --------------------------------------------------------------------------- clusters


@dataclass(slots=True, eq=False)
class Endpoint:
    """An upstream host.  Compared and hashed by identity: each cluster owns its
    endpoint objects, and they key the data plane's per-host pools on the hot path.
    Not changed after it is built."""

    address: str
    port: int
    labels: tuple[tuple[str, str], ...] = ()
    weight: int = 1
    host_port: str = field(init=False, repr=False, default="")  # "address:port", [v6]:port

    def __post_init__(self) -> None:
        a = f"[{self.address}]" if ":" in self.address else self.address
        self.host_port = f"{a}:{self.port}"


UINT32_MAX: Final = 2**32 - 1


@dataclass(frozen=True, slots=True)
class CircuitBreakers:
    """Envoy cluster circuit_breakers.thresholds (Istio always sets them; unset = 2^32-1)."""

    max_connections: int = UINT32_MAX
    max_pending_requests: int = UINT32_MAX
    max_requests: int = UINT32_MAX
    max_retries: int = UINT32_MAX


@dataclass(frozen=True, slots=True)
class OutlierDetectionConfig:
    consecutive_5xx: int = 5
    consecutive_gateway_failure: int | None = None
    interval: float = 10.0
    base_ejection_time: float = 30.0
    max_ejection_percent: int = 10
    min_health_percent: int = 0


@dataclass(frozen=True, slots=True)
class Cluster:
    """An Envoy cluster named like Istio's: ``outbound|8000|v1|httpbin.default.svc.cluster.local``."""

    name: str
    service: str
    port: int
    subset: str = ""
    endpoints: tuple[Endpoint, ...] = ()
    lb_policy: str = "LEAST_REQUEST"
    hash_policy: tuple[tuple[str, str], ...] = ()  # (kind, name) for consistent hashing
    connect_timeout: float = 10.0
    circuit_breakers: CircuitBreakers = CircuitBreakers()
    max_requests_per_connection: int = 0  # 0 = unlimited
    idle_timeout: float = 3600.0
    outlier_detection: OutlierDetectionConfig | None = None


def cluster_name(port: int, subset: str, host: str) -> str:
    return f"outbound|{port}|{subset}|{host}"


# --------------------------------------------------------------------------- routes


@dataclass(frozen=True, slots=True)
class HeaderValueOption:
    name: str  # lower-case
    value: str  # as configured; with no command operator, the value sent (``%%`` read as ``%``)
    append: bool  # True: APPEND_IF_EXISTS_OR_ADD (Istio add); False: OVERWRITE_IF_EXISTS_OR_ADD (set)
    level: int = 0  # Envoy header-mutation level: weighted cluster (0) before route (1)
    template: Template | None = None  # the value's command operators (core/header_format.py)
    source: str = ""  # the value as configured, when it differs from ``value`` (``%`` in it)

    @property
    def configured(self) -> str:
        """The value as written in the VirtualService (what Istio hands Envoy)."""
        return self.source or self.value


@dataclass(frozen=True, slots=True)
class HeaderMutations:
    add: tuple[HeaderValueOption, ...] = ()
    remove: tuple[str, ...] = ()
    dynamic: bool = False  # some value has command operators: resolve() it per request

    def __bool__(self) -> bool:
        return bool(self.add or self.remove)

    def resolve(self, ctx: FormatContext) -> HeaderMutations:
        """These mutations with every value formatted for one request; an operation whose
        value comes out empty is dropped (Envoy adds no empty header, and a ``set`` with
        an empty result leaves the existing lines alone)."""
        if self.remove:
            ctx.removed = self.remove
        out = []
        for a in self.add:
            t = a.template
            if t is None:
                out.append(a)
                continue
            v = t.render(ctx)
            if v:
                out.append(HeaderValueOption(a.name, v, a.append, a.level))
        return HeaderMutations(tuple(out), self.remove)

    def then(self, other: HeaderMutations, *, same_level: bool = False) -> HeaderMutations:
        """These mutations, then ``other``'s.  Levels are applied one after the other
        (Envoy: weighted cluster, then route); ``same_level`` merges ``other`` into
        this level's list, as Istio appends a single destination's operations to
        the route's own."""
        dynamic = self.dynamic or other.dynamic
        if same_level:
            return HeaderMutations(self.add + other.add, self.remove + other.remove, dynamic)
        top = max((a.level for a in self.add), default=-1) + 1
        shifted = tuple(HeaderValueOption(a.name, a.value, a.append, a.level + top, a.template, a.source)
                        for a in other.add)
        return HeaderMutations(self.add + shifted, self.remove + other.remove, dynamic)

    def lines(self) -> list[tuple[str, str]]:
        """The header lines added, in Envoy's order: level by level, each level's
        ``set`` operations (each replacing every earlier line of its name) and then
        its ``add`` operations."""
        out: list[tuple[str, str]] = []
        for level in sorted({a.level for a in self.add}):
            ops = [a for a in self.add if a.level == level]
            for a in ops:
                if not a.append:
                    out = [(n, v) for n, v in out if n != a.name]
                    out.append((a.name, a.value))
            for a in ops:
                if a.append:
                    out.append((a.name, a.value))
        return out


NO_MUTATIONS: Final = HeaderMutations()


@dataclass(frozen=True, slots=True)
class RouteMatch:
    path: PathMatcher
    headers: tuple[HeaderMatcher, ...] = ()
    query_parameters: tuple[QueryParameterMatcher, ...] = ()

    def is_catch_all(self) -> bool:
        return self.path.is_catch_all() and not self.headers and not self.query_parameters

    def first_failure(
        self, path_only: str, headers: Mapping[str, str | tuple[str, ...]], query: str
    ) -> str | None:
        """None when the match holds, else a description of the first failing condition."""
        if not self.path.matches(path_only):
            return self.path.describe()
        for h in self.headers:
            if not h.matches(headers):
                return h.describe()
        if self.query_parameters:
            params = parse_query(query)
            for q in self.query_parameters:
                if not q.matches(params):
                    return q.describe()
        return None


@dataclass(frozen=True, slots=True)
class MirrorPolicy:
    """Envoy RequestMirrorPolicy as Istio emits it (no runtime key, trace_sampled false)."""

    cluster: str
    numerator: int = 100
    denominator: int = 100  # 100 (HUNDRED) or 1_000_000 (MILLION)
    disable_shadow_host_suffix_append: bool = False

    def samples(self, random_value: int) -> bool:
        return random_value % self.denominator < self.numerator

    @property
    def percent(self) -> float:
        return 100.0 * self.numerator / self.denominator


@dataclass(frozen=True, slots=True)
class RetryPolicy:
    num_retries: int
    retry_on: tuple[str, ...]
    retriable_status_codes: tuple[int, ...] = ()
    per_try_timeout: float = 0.0
    previous_hosts: bool = True
    base_interval: float = 0.025


ISTIO_DEFAULT_RETRY: Final = RetryPolicy(
    num_retries=2,
    retry_on=("connect-failure", "refused-stream", "unavailable", "cancelled",
              "retriable-status-codes"),
)


@dataclass(frozen=True, slots=True)
class WeightedCluster:
    name: str
    weight: int
    request_headers: HeaderMutations = NO_MUTATIONS
    response_headers: HeaderMutations = NO_MUTATIONS
    host_rewrite: str | None = None


@dataclass(frozen=True, slots=True)
class RouteAction:
    cluster: str = ""  # set when there is a single destination
    weighted_clusters: tuple[WeightedCluster, ...] = ()
    total_weight: int = 0
    timeout: float = 0.0  # 0 = no timeout
    retry_policy: RetryPolicy | None = None
    prefix_rewrite: str | None = None
    regex_rewrite: tuple[Regex, str] | None = None  # (pattern, RE2 substitution: \1 is group 1)
    regex_rewrite_source: str = ""
    host_rewrite: str | None = None
    mirror_policies: tuple[MirrorPolicy, ...] = ()
    # Envoy cluster_not_found_response_code: istiod sets 500 on Gateway API routes
    cluster_not_found_status: int = 503


@dataclass(frozen=True, slots=True)
class RedirectAction:
    scheme: str | None = None
    host: str | None = None
    port: int | None = None
    derive_port: str | None = None
    path: str | None = None
    prefix_rewrite: str | None = None
    response_code: int = 301


@dataclass(frozen=True, slots=True)
class DirectResponseAction:
    status: int
    body: bytes = b""


@dataclass(frozen=True, slots=True)
class FaultConfig:
    delay: float | None = None
    delay_numerator: int = 0  # out of 1_000_000
    abort_status: int | None = None
    abort_grpc_status: int | None = None
    abort_numerator: int = 0


@dataclass(frozen=True, slots=True)
class Route:
    """One Envoy route (Istio emits one per match block)."""

    name: str  # Istio route name (http.name + "." + match.name), may be ""
    match: RouteMatch
    action: RouteAction | RedirectAction | DirectResponseAction
    request_headers: HeaderMutations = NO_MUTATIONS
    response_headers: HeaderMutations = NO_MUTATIONS
    fault: FaultConfig | None = None
    cors: CorsPolicy | None = None  # Envoy's CORS filter, per route (simulator/core/cors.py)
    # Where it came from, for explain/coverage: "VirtualService default/httpbin", path, file, line
    origin: str = ""
    origin_path: str = ""
    file: str = ""
    line: int = 0


@dataclass(frozen=True, slots=True)
class VirtualHost:
    name: str
    domains: tuple[str, ...]
    routes: tuple[Route, ...]
    origin: str = ""


@dataclass(frozen=True, slots=True)
class RouteConfiguration:
    """All virtual hosts for one port, with Envoy's domain lookup precomputed."""

    port: int
    virtual_hosts: tuple[VirtualHost, ...]
    exact: dict[str, VirtualHost] = field(default_factory=dict, compare=False)
    suffixes: tuple[tuple[str, VirtualHost], ...] = ()  # longest first, "*.x.com" -> ".x.com"
    star: VirtualHost | None = None

    @staticmethod
    def build(port: int, vhosts: tuple[VirtualHost, ...]) -> RouteConfiguration:
        exact: dict[str, VirtualHost] = {}
        suffixes: list[tuple[str, VirtualHost]] = []
        star = None
        for vh in vhosts:
            for d in vh.domains:
                d = d.lower()
                if d == "*":
                    star = star or vh
                elif d.startswith("*"):
                    suffixes.append((d[1:], vh))
                else:
                    exact.setdefault(d, vh)
        suffixes.sort(key=lambda s: -len(s[0]))
        return RouteConfiguration(port, vhosts, exact, tuple(suffixes), star)

    def find_virtual_host(self, host: str) -> VirtualHost | None:
        vh = self.exact.get(host)
        if vh is not None:
            return vh
        for suffix, vh in self.suffixes:
            if host.endswith(suffix) and len(host) > len(suffix):
                return vh
        return self.star


# --------------------------------------------------------------------------- decisions


@dataclass(slots=True, init=False)
class Forward:
    """Send the request to ``cluster`` (and copies to ``mirrors``)."""

    route: Route
    virtual_host: VirtualHost
    cluster: str
    path: str  # upstream :path after rewrites, with the query
    authority: str  # upstream Host after rewrites
    original_path: str | None  # set when the path was rewritten (x-envoy-original-path)
    request_headers: HeaderMutations
    response_headers: HeaderMutations
    timeout: float
    retry_policy: RetryPolicy | None
    mirrors: tuple[MirrorPolicy, ...]
    fault: FaultConfig | None

    # Written out, not generated by @dataclass: one is built per request, and mypyc
    # compiles this __init__ while a generated one would run interpreted (~6x the cost).
    def __init__(self, route: Route, virtual_host: VirtualHost, cluster: str, path: str, authority: str,
                 original_path: str | None, request_headers: HeaderMutations,
                 response_headers: HeaderMutations, timeout: float, retry_policy: RetryPolicy | None,
                 mirrors: tuple[MirrorPolicy, ...], fault: FaultConfig | None = None) -> None:
        self.route = route
        self.virtual_host = virtual_host
        self.cluster = cluster
        self.path = path
        self.authority = authority
        self.original_path = original_path
        self.request_headers = request_headers
        self.response_headers = response_headers
        self.timeout = timeout
        self.retry_policy = retry_policy
        self.mirrors = mirrors
        self.fault = fault

    def shadow_authority(self, policy: MirrorPolicy) -> str:
        if policy.disable_shadow_host_suffix_append:
            return self.authority
        return shadow_host(self.authority)


@dataclass(slots=True)
class LocalReply:
    """Answer without going upstream (Envoy local reply / direct response / redirect)."""

    status: int
    body: bytes = b""
    flags: str = "-"
    headers: tuple[tuple[str, str], ...] = ()
    details: str = ""
    route: Route | None = None
    virtual_host: VirtualHost | None = None
    content_type: str = "text/plain"


Decision = Forward | LocalReply


@dataclass(frozen=True, slots=True)
class RouteAttempt:
    """For explain: one route that was tried and why it did not match."""

    route: Route
    failure: str | None


# --------------------------------------------------------------------------- the table


VHOST_CACHE_SIZE: Final = 4096
VHOST_CACHE_MAX_AUTHORITY: Final = 300  # a DNS name (253) and a port
PATH_CACHE_SIZE: Final = 1024
PATH_CACHE_MAX_LENGTH: Final = 256


@dataclass(frozen=True, slots=True)
class RouteTable:
    route_configs: dict[int, RouteConfiguration]
    clusters: dict[str, Cluster]
    shadow_suffix: bool = True
    # A gateway listener has one route configuration for its server port, whatever
    # port the Host names; a host with no virtual host there gets 404 NR (Istio's
    # blackhole virtual host) instead of the mesh's 502.
    listener_port: int | None = None
    # authority -> its virtual host, for plain-http requests (the port defaults by scheme);
    # at most VHOST_CACHE_SIZE entries (emptied when full) of authorities up to
    # VHOST_CACHE_MAX_AUTHORITY characters, so arbitrary Host values cannot grow it
    vhost_cache: dict[str, VirtualHost] = field(default_factory=dict, compare=False, repr=False)
    # Istio's meshConfig.pathNormalization (simulator/core/paths.py): BASE unless set
    path_normalization: str = BASE
    # request-target -> normalize_path()'s result (a client sends the same few paths:
    # a lookup is ~10x cheaper than checking the path); at most PATH_CACHE_SIZE entries
    # (emptied when full) of targets up to PATH_CACHE_MAX_LENGTH characters
    path_cache: dict[str, str] = field(default_factory=dict, init=False, compare=False, repr=False)

    def normalize_path(self, path: str) -> str | None:
        """The request path as the listener normalizes it before routing and
        forwarding; None when it rejects the request (400 path_normalization_failed)."""
        out = self.path_cache.get(path)
        if out is not None:
            return out
        out = normalize_path(path, self.path_normalization)
        if out is not None and len(path) <= PATH_CACHE_MAX_LENGTH:
            cache = self.path_cache
            if len(cache) >= PATH_CACHE_SIZE:
                cache.clear()  # full (made-up paths): start again
            cache[path] = out
        return out

    def select_virtual_host(
        self, authority: str, scheme: str = "http", port: int | None = None
    ) -> tuple[int, VirtualHost | None]:
        """THE choice of route configuration and virtual host for a request; the
        proxy, ``explain``, ``check`` and the pytest plugin all go through it.

        The route configuration is the listener's port: a Gateway server's port;
        else ``port`` when the caller knows the connection's destination port
        (``explain --port``, ``port:`` in route tests); else the Host's port; else,
        for a Host without a port, the port a client reaching that host connects
        to: 80 (443 for https) when that route configuration knows the host, else
        the lowest port whose route configuration does (a service's only port, as
        ``curl -H 'Host: httpbin' http://httpbin:8000/`` reaches it); an unknown
        host stays on 80/443.  The virtual host is then chosen by host name alone,
        the Host's port ignored (Istio sets ``ignore_port_in_host_matching``)."""
        host, host_port = split_host_port(authority)
        host = host.lower()
        if self.listener_port is not None:
            port = self.listener_port
        elif port is None:
            port = host_port
        if port is not None:
            rc = self.route_configs.get(port)
            return port, rc.find_virtual_host(host) if rc is not None else None
        default = 443 if scheme == "https" else 80
        rc = self.route_configs.get(default)
        vh = rc.find_virtual_host(host) if rc is not None else None
        if vh is not None or default == 443:
            return default, vh
        for p in sorted(self.route_configs):
            if p != default:
                vh = self.route_configs[p].find_virtual_host(host)
                if vh is not None:
                    return p, vh
        return default, None

    def route(
        self,
        method: str,
        authority: str,
        path: str,
        headers: Mapping[str, str | tuple[str, ...]],
        random_value: int,
        scheme: str = "http",
        trace: list[RouteAttempt] | None = None,
        port: int | None = None,
    ) -> Decision:
        """Route one request.  ``headers`` maps lower-case names to values; a header
        sent on several lines may be given as a tuple of its values (Envoy matches
        each line; for its "inline" headers, whose lines its codec joins, the proxy passes
        the joined value instead).  The pseudo-headers ``:authority``, ``:method``, ``:scheme`` and
        ``:path`` are added here.  ``path`` is already normalized (``normalize_path``);
        ``port`` is the connection's destination port when known (see
        ``select_virtual_host``)."""
        cached = scheme == "http" and port is None
        vh = self.vhost_cache.get(authority) if cached else None
        if vh is None:
            vh = self.select_virtual_host(authority, scheme, port)[1]
            if vh is not None and cached and len(authority) <= VHOST_CACHE_MAX_AUTHORITY:
                cache = self.vhost_cache
                if len(cache) >= VHOST_CACHE_SIZE:
                    cache.clear()  # full (made-up hosts on a wildcard): start again
                cache[authority] = vh
        if vh is None:
            if self.listener_port is not None:
                return LocalReply(404, b"", "NR", details="no virtual host on this gateway")
            return LocalReply(502, b"", "-", details="no virtual host (REGISTRY_ONLY block_all)")
        qpos = path.find("?")
        if qpos == -1:
            path_only, query = path, ""
        else:
            path_only, query = path[:qpos], path[qpos + 1 :]
        hdrs = headers
        needs_pseudo = False
        for r in vh.routes:
            if r.match.headers:
                needs_pseudo = True
                break
        if needs_pseudo:
            hdrs = dict(headers)  # type: ignore[assignment]
            hdrs[":authority"] = authority
            hdrs[":method"] = method
            hdrs[":scheme"] = scheme
            hdrs[":path"] = path
        for r in vh.routes:
            failure = r.match.first_failure(path_only, hdrs, query)
            if trace is not None:
                trace.append(RouteAttempt(r, failure))
            if failure is None:
                return self._apply(r, vh, method, authority, path, path_only, query, random_value, scheme)
        return LocalReply(404, b"", "NR", details="route_not_found", virtual_host=vh)

    def _apply(
        self,
        r: Route,
        vh: VirtualHost,
        method: str,
        authority: str,
        path: str,
        path_only: str,
        query: str,
        random_value: int,
        scheme: str = "http",
    ) -> Decision:
        a = r.action
        if isinstance(a, DirectResponseAction):
            return LocalReply(a.status, a.body, "-", details="direct_response", route=r,
                              virtual_host=vh)
        if isinstance(a, RedirectAction):
            return _redirect(a, r, vh, authority, path, path_only, query, scheme)
        request_headers = r.request_headers
        response_headers = r.response_headers
        host_rewrite = a.host_rewrite
        if a.weighted_clusters:
            selected = random_value % a.total_weight
            end = 0
            wc = a.weighted_clusters[-1]
            for c in a.weighted_clusters:
                end += c.weight
                if selected < end:
                    wc = c
                    break
            cluster = wc.name
            if wc.request_headers:
                request_headers = wc.request_headers.then(request_headers)
            if wc.response_headers:
                response_headers = wc.response_headers.then(response_headers)
            if wc.host_rewrite is not None:
                host_rewrite = wc.host_rewrite
        else:
            cluster = a.cluster
        new_path = path
        original_path = None
        if a.prefix_rewrite is not None or a.regex_rewrite is not None:
            new_only = _rewrite_path(r.match.path, a, path_only)
            if new_only != path_only:
                new_path = new_only + ("?" + query if query or path.endswith("?") else "")
            original_path = path  # Envoy sets it even when the rewrite changed nothing
        mirrors: tuple[MirrorPolicy, ...] = ()
        mp = a.mirror_policies
        if mp and method != "CONNECT":
            if len(mp) == 1:  # the common case, without building a new tuple
                if mp[0].samples(random_value):
                    mirrors = mp
            else:
                mirrors = tuple(m for m in mp if m.samples(random_value))
        return Forward(
            route=r,
            virtual_host=vh,
            cluster=cluster,
            path=new_path,
            authority=host_rewrite if host_rewrite is not None else authority,
            original_path=original_path,
            request_headers=request_headers,
            response_headers=response_headers,
            timeout=a.timeout,
            retry_policy=a.retry_policy,
            mirrors=mirrors,
            fault=r.fault,
        )


def _rewrite_path(pm: PathMatcher, a: RouteAction, path_only: str) -> str:
    if a.regex_rewrite is not None:
        pattern, sub = a.regex_rewrite
        return pattern.sub(sub, path_only)
    assert a.prefix_rewrite is not None
    if pm.kind == "prefix" or pm.kind == "sep_prefix":
        return a.prefix_rewrite + path_only[len(pm.value) :]
    # exact and regex path matches: the whole path is replaced
    return a.prefix_rewrite


def _redirect(
    a: RedirectAction,
    r: Route,
    vh: VirtualHost,
    authority: str,
    path: str,
    path_only: str,
    query: str,
    scheme: str = "http",
) -> LocalReply:
    """Envoy's redirect (RouteEntryImplBase::newUri): the host and port come from
    ``host_redirect`` when set (no port there means none), else from the request;
    ``port_redirect`` / ``derive_port`` override the port; ports that are the new
    scheme's default are dropped; ``path_redirect`` keeps the request's query."""
    new_scheme = a.scheme or scheme
    host, port = split_host_port(authority)
    if a.host is not None:
        host, port = split_host_port(a.host)
    if a.port is not None:  # translation sets FROM_REQUEST_PORT's: the listener port
        port = a.port
    if port is not None and ((new_scheme == "http" and port == 80) or (new_scheme == "https" and port == 443)):
        port = None
    if a.path is not None:
        new_path = a.path
        if query and "?" not in a.path:
            new_path += "?" + query
    elif a.prefix_rewrite is not None and r.match.path.kind in ("prefix", "sep_prefix"):
        new_path = a.prefix_rewrite + path_only[len(r.match.path.value):]
        if query:
            new_path += "?" + query
    else:
        new_path = path
    location = f"{new_scheme}://{host}{'' if port is None else ':' + str(port)}{new_path}"
    return LocalReply(a.response_code, b"", "-", headers=(("location", location),),
                      details="redirect", route=r, virtual_host=vh)
