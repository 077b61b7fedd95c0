"""Envoy's compiled configuration as mirrorsim holds it: clusters (endpoints, circuit
breakers, outlier detection), route configurations per port, virtual hosts, routes, route
actions (weighted clusters, mirror policies, retry policy, header mutations, faults).
Immutable values built by translation (``translate.py``) and read by the route table
(``table.py``), the proxy and the Envoy export.  Pure: no I/O.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Final

from simulator.core.cors import CorsPolicy
from simulator.core.header_format import FormatContext, Template
from simulator.core.matchers import (
    HeaderMatcher,
    PathMatcher,
    QueryParameterMatcher,
    Regex,
    parse_query,
)
from simulator.model.names import UINT32_MAX

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
