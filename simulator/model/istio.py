"""The typed input model: Istio networking resources as frozen dataclasses.

Names follow the Istio API (networking.istio.io v1/v1beta1/v1alpha3, one schema);
fields are the snake_case form of the YAML camelCase keys.  This module holds
data only: parsing lives in ``simulator.config``, cross-resource checks in
``simulator.config.validate``, translation to the compiled route table in ``simulator.core``.

Conventions:
* Durations are float seconds (``"1.5s"`` -> 1.5); ``None`` means "not set".
* Percentages are floats 0..100; ``None`` means "not set" (the default then
  depends on the field: a mirror mirrors 100 %, a fault injects nothing).
* Host names are kept as written; ``simulator.core.hosts`` resolves short names.
* Every resource carries a ``Source`` so later stages can point at a line.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Literal

from simulator.model.names import DEFAULT_NAMESPACE

# --------------------------------------------------------------------------- sources


@dataclass(frozen=True, slots=True)
class Source:
    """Where a resource came from: file, the line of its first key, and a map
    from field path (``spec.http[0].route[0].destination.subset``) to line."""

    file: str = ""
    line: int = 0
    lines: dict[str, int] = field(default_factory=dict, compare=False, hash=False)

    def line_of(self, path: str) -> int:
        """The line of ``path``, or of its nearest ancestor that has one."""
        return line_of(self.lines, path, self.line)


def line_of(lines: dict[str, int], path: str, default: int) -> int:
    """The line of field path ``path`` in ``lines``, or of its nearest ancestor
    (``spec.http[0].route`` for ``spec.http[0].route[1].weight``), else ``default``."""
    p = path
    while p:
        if p in lines:
            return lines[p]
        cut = max(p.rfind("."), p.rfind("["))
        if cut <= 0:
            break
        p = p[:cut]
    return default


@dataclass(frozen=True, slots=True)
class Meta:
    name: str
    namespace: str = DEFAULT_NAMESPACE
    labels: dict[str, str] = field(default_factory=dict, compare=False, hash=False)
    # Order of appearance across all loaded files; stands in for creationTimestamp
    # ("oldest wins" on the mesh listener).
    order: int = 0


# --------------------------------------------------------------------------- VirtualService

MatchKind = Literal["exact", "prefix", "regex", "present"]


@dataclass(frozen=True, slots=True)
class StringMatch:
    """exact / prefix / regex; ``present`` is the presence-only form (``{}`` or
    ``regex: "*"`` for headers and query parameters)."""

    kind: MatchKind
    value: str = ""


@dataclass(frozen=True, slots=True)
class HTTPMatchRequest:
    name: str = ""
    uri: StringMatch | None = None
    scheme: StringMatch | None = None
    method: StringMatch | None = None
    authority: StringMatch | None = None
    headers: tuple[tuple[str, StringMatch], ...] = ()  # lower-cased names, in file order
    without_headers: tuple[tuple[str, StringMatch], ...] = ()
    query_params: tuple[tuple[str, StringMatch], ...] = ()
    ignore_uri_case: bool = False
    port: int | None = None
    source_labels: dict[str, str] = field(default_factory=dict, compare=False, hash=False)
    gateways: tuple[str, ...] = ()
    source_namespace: str = ""
    stat_prefix: str = ""


@dataclass(frozen=True, slots=True)
class Destination:
    host: str
    subset: str = ""
    port: int | None = None


@dataclass(frozen=True, slots=True)
class HeaderOperations:
    set: tuple[tuple[str, str], ...] = ()
    add: tuple[tuple[str, str], ...] = ()
    remove: tuple[str, ...] = ()


@dataclass(frozen=True, slots=True)
class Headers:
    request: HeaderOperations | None = None
    response: HeaderOperations | None = None


@dataclass(frozen=True, slots=True)
class HTTPRouteDestination:
    destination: Destination
    weight: int = 0
    headers: Headers | None = None


@dataclass(frozen=True, slots=True)
class RegexRewrite:
    match: str
    rewrite: str


@dataclass(frozen=True, slots=True)
class HTTPRewrite:
    uri: str | None = None
    authority: str | None = None
    uri_regex_rewrite: RegexRewrite | None = None


@dataclass(frozen=True, slots=True)
class HTTPRedirect:
    uri: str | None = None
    authority: str | None = None
    port: int | None = None
    derive_port: str | None = None  # FROM_PROTOCOL_DEFAULT | FROM_REQUEST_PORT
    scheme: str | None = None
    redirect_code: int = 0  # 0 = unset = 301
    prefix_rewrite: str | None = None


@dataclass(frozen=True, slots=True)
class HTTPDirectResponse:
    status: int
    body: bytes | None = None


@dataclass(frozen=True, slots=True)
class Delegate:
    name: str
    namespace: str = ""


@dataclass(frozen=True, slots=True)
class HTTPRetry:
    attempts: int = 0
    per_try_timeout: float | None = None
    retry_on: str | None = None
    retry_remote_localities: bool | None = None
    retry_ignore_previous_hosts: bool | None = None
    backoff: float | None = None


@dataclass(frozen=True, slots=True)
class FaultDelay:
    fixed_delay: float | None = None
    percentage: float | None = None
    percent: int | None = None  # deprecated integer form


@dataclass(frozen=True, slots=True)
class FaultAbort:
    http_status: int | None = None
    grpc_status: str | None = None
    percentage: float | None = None


@dataclass(frozen=True, slots=True)
class HTTPFaultInjection:
    delay: FaultDelay | None = None
    abort: FaultAbort | None = None


@dataclass(frozen=True, slots=True)
class HTTPMirrorPolicy:
    destination: Destination
    percentage: float | None = None  # None = 100 %


@dataclass(frozen=True, slots=True)
class CorsPolicy:
    allow_origins: tuple[StringMatch, ...] = ()
    allow_methods: tuple[str, ...] = ()
    allow_headers: tuple[str, ...] = ()
    expose_headers: tuple[str, ...] = ()
    max_age: float | None = None
    allow_credentials: bool | None = None
    unmatched_preflights: str = ""


@dataclass(frozen=True, slots=True)
class HTTPRoute:
    name: str = ""
    match: tuple[HTTPMatchRequest, ...] = ()
    route: tuple[HTTPRouteDestination, ...] = ()
    redirect: HTTPRedirect | None = None
    direct_response: HTTPDirectResponse | None = None
    delegate: Delegate | None = None
    rewrite: HTTPRewrite | None = None
    timeout: float | None = None
    retries: HTTPRetry | None = None
    fault: HTTPFaultInjection | None = None
    mirror: Destination | None = None
    mirror_percentage: float | None = None
    mirror_percent: int | None = None  # deprecated integer form
    mirrors: tuple[HTTPMirrorPolicy, ...] = ()
    cors_policy: CorsPolicy | None = None
    headers: Headers | None = None
    # Set on rules translated from a Gateway API HTTPRoute (config/gwapi_convert.py):
    # "HTTPRoute ns/name" and the rule's own source, for FILE:LINE in explain and check.
    origin: str = field(default="", compare=False)
    origin_path: str = field(default="", compare=False)
    src: Source | None = field(default=None, compare=False)


@dataclass(frozen=True, slots=True)
class VirtualService:
    meta: Meta
    hosts: tuple[str, ...] = ()
    gateways: tuple[str, ...] = ()
    http: tuple[HTTPRoute, ...] = ()
    # TCP/TLS routes are parsed for validation only; mirrorsim serves HTTP.
    tls: tuple[dict[str, object], ...] = ()
    tcp: tuple[dict[str, object], ...] = ()
    export_to: tuple[str, ...] = ()
    src: Source = field(default_factory=Source, compare=False)
    # "gateway": istiod's route semantics for VirtualServices it generates from Gateway
    # API routes (constants.RouteSemanticsGateway; core/translate.py applies them).
    semantics: str = ""


# --------------------------------------------------------------------------- DestinationRule


@dataclass(frozen=True, slots=True)
class ConsistentHashLB:
    http_header_name: str | None = None
    http_cookie: dict[str, object] | None = None  # {name, path, ttl}
    use_source_ip: bool | None = None
    http_query_parameter_name: str | None = None
    minimum_ring_size: int | None = None


@dataclass(frozen=True, slots=True)
class LoadBalancerSettings:
    simple: str | None = None  # UNSPECIFIED|LEAST_REQUEST|LEAST_CONN|ROUND_ROBIN|RANDOM|PASSTHROUGH
    consistent_hash: ConsistentHashLB | None = None
    locality_lb_setting: dict[str, object] | None = None
    warmup: dict[str, object] | None = None


@dataclass(frozen=True, slots=True)
class TCPSettings:
    max_connections: int | None = None
    connect_timeout: float | None = None
    idle_timeout: float | None = None
    max_connection_duration: float | None = None


@dataclass(frozen=True, slots=True)
class HTTPSettings:
    http1_max_pending_requests: int | None = None
    http2_max_requests: int | None = None
    max_requests_per_connection: int | None = None
    max_retries: int | None = None
    idle_timeout: float | None = None
    h2_upgrade_policy: str | None = None
    use_client_protocol: bool | None = None
    max_concurrent_streams: int | None = None


@dataclass(frozen=True, slots=True)
class ConnectionPoolSettings:
    tcp: TCPSettings | None = None
    http: HTTPSettings | None = None


@dataclass(frozen=True, slots=True)
class OutlierDetection:
    consecutive_5xx_errors: int | None = None
    consecutive_gateway_errors: int | None = None
    consecutive_errors: int | None = None  # deprecated
    interval: float | None = None
    base_ejection_time: float | None = None
    max_ejection_percent: int | None = None
    min_health_percent: int | None = None
    split_external_local_origin_errors: bool | None = None
    consecutive_local_origin_failures: int | None = None


@dataclass(frozen=True, slots=True)
class PortTrafficPolicy:
    port: int | None
    load_balancer: LoadBalancerSettings | None = None
    connection_pool: ConnectionPoolSettings | None = None
    outlier_detection: OutlierDetection | None = None
    tls: dict[str, object] | None = None


@dataclass(frozen=True, slots=True)
class TrafficPolicy:
    load_balancer: LoadBalancerSettings | None = None
    connection_pool: ConnectionPoolSettings | None = None
    outlier_detection: OutlierDetection | None = None
    tls: dict[str, object] | None = None
    port_level_settings: tuple[PortTrafficPolicy, ...] = ()


@dataclass(frozen=True, slots=True)
class Subset:
    name: str
    labels: dict[str, str] = field(default_factory=dict, compare=False, hash=False)
    traffic_policy: TrafficPolicy | None = None


@dataclass(frozen=True, slots=True)
class DestinationRule:
    meta: Meta
    host: str
    traffic_policy: TrafficPolicy | None = None
    subsets: tuple[Subset, ...] = ()
    export_to: tuple[str, ...] = ()
    workload_selector: dict[str, str] | None = None
    src: Source = field(default_factory=Source, compare=False)


# --------------------------------------------------------------------------- registry


@dataclass(frozen=True, slots=True)
class ServicePort:
    number: int
    protocol: str = ""
    name: str = ""
    target_port: int | None = None


@dataclass(frozen=True, slots=True)
class WorkloadEntrySpec:
    """An endpoint: inline in a ServiceEntry, or the spec of a WorkloadEntry."""

    address: str = ""
    ports: dict[str, int] = field(default_factory=dict, compare=False, hash=False)
    labels: dict[str, str] = field(default_factory=dict, compare=False, hash=False)
    network: str = ""
    locality: str = ""
    weight: int = 0
    service_account: str = ""


@dataclass(frozen=True, slots=True)
class ServiceEntry:
    meta: Meta
    hosts: tuple[str, ...] = ()
    addresses: tuple[str, ...] = ()
    ports: tuple[ServicePort, ...] = ()
    location: str = "MESH_EXTERNAL"
    resolution: str = "NONE"  # NONE|STATIC|DNS|DNS_ROUND_ROBIN|DYNAMIC_DNS
    endpoints: tuple[WorkloadEntrySpec, ...] = ()
    workload_selector: dict[str, str] | None = None
    export_to: tuple[str, ...] = ()
    src: Source = field(default_factory=Source, compare=False)


@dataclass(frozen=True, slots=True)
class WorkloadEntry:
    meta: Meta
    spec: WorkloadEntrySpec
    src: Source = field(default_factory=Source, compare=False)


# --------------------------------------------------------------------------- Gateway


@dataclass(frozen=True, slots=True)
class GatewayPort:
    number: int
    protocol: str
    name: str = ""
    target_port: int | None = None


@dataclass(frozen=True, slots=True)
class ServerTLSSettings:
    https_redirect: bool = False
    mode: str = ""
    credential_name: str = ""


@dataclass(frozen=True, slots=True)
class Server:
    port: GatewayPort
    hosts: tuple[str, ...]
    tls: ServerTLSSettings | None = None
    bind: str = ""
    name: str = ""


@dataclass(frozen=True, slots=True)
class Gateway:
    meta: Meta
    selector: dict[str, str] = field(default_factory=dict, compare=False, hash=False)
    servers: tuple[Server, ...] = ()
    src: Source = field(default_factory=Source, compare=False)


# --------------------------------------------------------------------------- Kubernetes Service


@dataclass(frozen=True, slots=True)
class KubernetesServicePort:
    """A core v1 ServicePort (``targetPort``: a number, a port name, or unset)."""

    port: int
    name: str = ""
    target_port: int | str | None = None
    protocol: str = "TCP"
    app_protocol: str = ""


@dataclass(frozen=True, slots=True)
class KubernetesService:
    """A core v1 Service: a registry source beside ServiceEntries (core/registry.py)."""

    meta: Meta
    ports: tuple[KubernetesServicePort, ...] = ()
    selector: dict[str, str] | None = field(default=None, compare=False, hash=False)
    cluster_ip: str = ""
    type: str = "ClusterIP"
    src: Source = field(default_factory=Source, compare=False)


# --------------------------------------------------------------------------- the whole config


@dataclass(frozen=True, slots=True)
class Config:
    """Everything loaded from the ``-f`` paths, in order of appearance."""

    virtual_services: tuple[VirtualService, ...] = ()
    destination_rules: tuple[DestinationRule, ...] = ()
    service_entries: tuple[ServiceEntry, ...] = ()
    workload_entries: tuple[WorkloadEntry, ...] = ()
    gateways: tuple[Gateway, ...] = ()
    kubernetes_services: tuple[KubernetesService, ...] = ()
