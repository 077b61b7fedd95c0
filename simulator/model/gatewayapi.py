"""Gateway API resources (gateway.networking.k8s.io v1 / v1beta1) as read by
``simulator.config.gwapi``, with the API server's defaults applied: HTTPRoute, Gateway,
ReferenceGrant.  ``simulator.config.gwapi_convert`` turns them into Istio resources
(``simulator.model.istio``) as istiod does."""

from __future__ import annotations

from dataclasses import dataclass, field

from simulator.model.istio import Meta, Source

GROUP = "gateway.networking.k8s.io"
API_VERSIONS = ("v1", "v1beta1")
KINDS = ("HTTPRoute", "Gateway", "ReferenceGrant")

# ------------------------------------------------------------------ typed objects


@dataclass(frozen=True, slots=True)
class ParentRef:
    name: str
    group: str = GROUP
    kind: str = "Gateway"
    namespace: str | None = None
    section_name: str | None = None
    port: int | None = None


@dataclass(frozen=True, slots=True)
class HeaderFilter:
    set: tuple[tuple[str, str], ...] = ()
    add: tuple[tuple[str, str], ...] = ()
    remove: tuple[str, ...] = ()


@dataclass(frozen=True, slots=True)
class BackendRef:
    name: str
    group: str = ""
    kind: str = "Service"
    namespace: str | None = None
    port: int | None = None
    weight: int = 1
    filters: tuple[Filter, ...] = ()


@dataclass(frozen=True, slots=True)
class Fraction:
    numerator: int
    denominator: int = 100


@dataclass(frozen=True, slots=True)
class Mirror:
    backend_ref: BackendRef
    percent: int | None = None
    fraction: Fraction | None = None


@dataclass(frozen=True, slots=True)
class PathModifier:
    type: str
    replace_full_path: str | None = None
    replace_prefix_match: str | None = None


@dataclass(frozen=True, slots=True)
class Redirect:
    scheme: str | None = None
    hostname: str | None = None
    path: PathModifier | None = None
    port: int | None = None
    status_code: int = 302


@dataclass(frozen=True, slots=True)
class Rewrite:
    hostname: str | None = None
    path: PathModifier | None = None


@dataclass(frozen=True, slots=True)
class Cors:
    allow_origins: tuple[str, ...] = ()
    allow_credentials: bool = False
    allow_methods: tuple[str, ...] = ()
    allow_headers: tuple[str, ...] = ()
    expose_headers: tuple[str, ...] = ()
    max_age: int = 5  # the CRD's default


@dataclass(frozen=True, slots=True)
class Filter:
    type: str
    request_header_modifier: HeaderFilter | None = None
    response_header_modifier: HeaderFilter | None = None
    request_mirror: Mirror | None = None
    request_redirect: Redirect | None = None
    url_rewrite: Rewrite | None = None
    cors: Cors | None = None


@dataclass(frozen=True, slots=True)
class PathMatch:
    type: str = "PathPrefix"
    value: str = "/"


@dataclass(frozen=True, slots=True)
class ValueMatch:
    name: str
    value: str
    type: str = "Exact"


@dataclass(frozen=True, slots=True)
class RouteMatch:
    path: PathMatch = PathMatch()
    headers: tuple[ValueMatch, ...] = ()
    query_params: tuple[ValueMatch, ...] = ()
    method: str | None = None


@dataclass(frozen=True, slots=True)
class Timeouts:
    request: float | None = None
    backend_request: float | None = None


@dataclass(frozen=True, slots=True)
class Retry:
    codes: tuple[int, ...] = ()
    attempts: int | None = None
    backoff: float | None = None


@dataclass(frozen=True, slots=True)
class Rule:
    name: str | None = None
    matches: tuple[RouteMatch, ...] = (RouteMatch(),)
    filters: tuple[Filter, ...] = ()
    backend_refs: tuple[BackendRef, ...] = ()
    timeouts: Timeouts | None = None
    retry: Retry | None = None


@dataclass(frozen=True, slots=True)
class HTTPRoute:
    meta: Meta
    parent_refs: tuple[ParentRef, ...] = ()
    hostnames: tuple[str, ...] = ()
    rules: tuple[Rule, ...] = (Rule(),)
    src: Source = field(default_factory=Source, compare=False)
    created: str = ""  # metadata.creationTimestamp, RFC 3339 in UTC ("" = unset)


@dataclass(frozen=True, slots=True)
class GrantFrom:
    group: str
    kind: str
    namespace: str


@dataclass(frozen=True, slots=True)
class GrantTo:
    group: str
    kind: str
    name: str | None = None


@dataclass(frozen=True, slots=True)
class ReferenceGrant:
    """Lets routes of ``from`` namespaces reference the ``to`` objects of its own namespace."""

    meta: Meta
    from_: tuple[GrantFrom, ...] = ()
    to: tuple[GrantTo, ...] = ()
    src: Source = field(default_factory=Source, compare=False)


@dataclass(frozen=True, slots=True)
class Listener:
    name: str
    port: int
    protocol: str
    hostname: str | None = None
    allowed_from: str = "Same"  # allowedRoutes.namespaces.from: Same | All | Selector
    tls_mode: str = ""


@dataclass(frozen=True, slots=True)
class K8sGateway:
    meta: Meta
    gateway_class_name: str = ""
    listeners: tuple[Listener, ...] = ()
    src: Source = field(default_factory=Source, compare=False)
