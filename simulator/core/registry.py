"""The service registry: the one answer, for translation and for analysis alike, to
"which services exist", "which DestinationRule applies to a host", "which endpoints does a
subset select", "which cluster does a destination name" and "which gateways is a
VirtualService bound to".  ``translate`` builds its clusters and routes from it and
``simulator.config.validate`` (``istioctl analyze``) checks the same lookups, so the
warning "undefined subset" (IST0101) and the 503 NC the proxy answers cannot disagree.

Services come from a list of ``Service`` values; ``service_entry_services`` makes them
from the ServiceEntries (and the WorkloadEntries they select), ``kubernetes_services``
from core v1 Services (and the WorkloadEntries their selector selects); ``build_registry``
takes both, Kubernetes first: the first declaration of a host wins.

Hosts are FQDNs (``simulator.core.hosts.fqdn``, relative to the namespace of the
resource that names them).  Not modelled: ``exportTo`` (every resource is visible
from every namespace, in translation and analysis alike).
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import TypeVar

from simulator.core.envoy_config import Endpoint, cluster_name
from simulator.core.hosts import fqdn, is_ip, wildcard_matches
from simulator.model import istio as m
from simulator.model.names import DEFAULT_DOMAIN, MESH

T = TypeVar("T")

DNS_RESOLUTIONS = ("DNS", "DNS_ROUND_ROBIN")


@dataclass(slots=True)
class Service:
    """One host of a service, with its ports and endpoints (Istio's ``model.Service``)."""

    host: str  # FQDN
    namespace: str
    ports: tuple[m.ServicePort, ...]
    endpoints: list[tuple[m.WorkloadEntrySpec, str]] = field(default_factory=list)  # (spec, origin)
    resolution: str = "STATIC"
    addresses: tuple[str, ...] = ()  # VIPs (single IPs): also virtual host domains
    selector: dict[str, str] | None = None  # the workloadSelector that picked the endpoints
    origin: str = ""  # "ServiceEntry ns/name"

    def port_by_number(self, n: int) -> m.ServicePort | None:
        for p in self.ports:
            if p.number == n:
                return p
        return None

    @property
    def passthrough(self) -> bool:
        """Resolution NONE without a selector: no endpoint set (the original destination)."""
        return self.resolution == "NONE" and self.selector is None


def labels_select(selector: dict[str, str], labels: dict[str, str]) -> bool:
    """A label selector (a subset's labels, a workloadSelector) selects ``labels``."""
    return all(labels.get(k) == v for k, v in selector.items())


def service_entry_endpoints(cfg: m.Config, se: m.ServiceEntry) -> list[tuple[m.WorkloadEntrySpec, str]]:
    """The endpoints of a ServiceEntry, each with where it was declared: the inline
    ``endpoints`` and the WorkloadEntries of its namespace its ``workloadSelector`` picks."""
    ns = se.meta.namespace
    specs = [(e, f"ServiceEntry {ns}/{se.meta.name}") for e in se.endpoints]
    if se.workload_selector is not None:
        for we in cfg.workload_entries:
            if we.meta.namespace == ns and labels_select(se.workload_selector, we.spec.labels):
                specs.append((we.spec, f"WorkloadEntry {ns}/{we.meta.name}"))
    return specs


def endpoint_port(spec: m.WorkloadEntrySpec, port: m.ServicePort) -> int:
    """The port an endpoint receives a service port's traffic on: the endpoint's
    ``ports[<port name>]``, else the service port's ``targetPort``, else its number."""
    number = spec.ports.get(port.name) if port.name else None
    return number if number is not None else (port.target_port or port.number)


def service_entry_services(cfg: m.Config, domain: str = DEFAULT_DOMAIN) -> list[Service]:
    """One Service per ServiceEntry host, in load order, with the ServiceEntry's endpoints."""
    out: list[Service] = []
    for se in cfg.service_entries:
        ns = se.meta.namespace
        origin = f"ServiceEntry {ns}/{se.meta.name}"
        specs = service_entry_endpoints(cfg, se)
        addresses = tuple(a for a in se.addresses if is_ip(a))
        for h in se.hosts:
            out.append(Service(fqdn(h, ns, domain), ns, se.ports, list(specs), se.resolution,
                               addresses, se.workload_selector, origin))
    return out


def kubernetes_services(cfg: m.Config, domain: str = DEFAULT_DOMAIN) -> list[Service]:
    """One Service per Kubernetes Service (``name.ns.svc.<domain>``, its TCP ports, its
    ClusterIP as an address); its endpoints are the WorkloadEntries of its namespace that
    its selector selects (the kube controller's serviceInstancesFromWorkloadInstances):
    on a numeric ``targetPort`` (default: the port), or on the WorkloadEntry's port named by
    a named one.  ``endpoints`` looks a WorkloadEntry's port up by the ServicePort's name,
    so the port carries the targetPort's name there, and its number as ``target_port``.
    An ExternalName Service is left out."""
    out: list[Service] = []
    for ks in cfg.kubernetes_services:
        if ks.type == "ExternalName":
            continue
        ns = ks.meta.namespace
        origin = f"Service {ns}/{ks.meta.name}"
        ports = tuple(
            m.ServicePort(number=p.port, protocol=_kube_protocol(p),
                          name=p.target_port if isinstance(p.target_port, str) else "",
                          target_port=p.target_port if isinstance(p.target_port, int) else p.port)
            for p in ks.ports if p.protocol.upper() in ("TCP", "")
        )
        specs: list[tuple[m.WorkloadEntrySpec, str]] = []
        if ks.selector:  # a Service without a selector has no endpoints here (no Endpoints objects)
            specs = [(we.spec, f"WorkloadEntry {ns}/{we.meta.name}") for we in cfg.workload_entries
                     if we.meta.namespace == ns and labels_select(ks.selector, we.spec.labels)]
        addresses = (ks.cluster_ip,) if is_ip(ks.cluster_ip) else ()
        out.append(Service(fqdn(ks.meta.name, ns, domain), ns, ports, specs, "STATIC", addresses,
                           dict(ks.selector) if ks.selector else None, origin))
    return out


def _kube_protocol(p: m.KubernetesServicePort) -> str:
    """Istio's protocol of a Service port: ``appProtocol``, else the port name's prefix."""
    name = (p.app_protocol or p.name.split("-")[0]).lower()
    return {"http": "HTTP", "http2": "HTTP2", "grpc": "GRPC", "https": "HTTPS", "h2c": "HTTP2"}.get(name, "TCP")


def merge_destination_rules(rules: Iterable[m.DestinationRule], domain: str = DEFAULT_DOMAIN,
                            ) -> dict[str, m.DestinationRule]:
    """The DestinationRules by FQDN host; several for one host merge as Istio does: subsets
    concatenated (the first of a name wins), the first traffic policy wins."""
    out: dict[str, m.DestinationRule] = {}
    for dr in rules:
        host = fqdn(dr.host, dr.meta.namespace, domain)
        prev = out.get(host)
        if prev is None:
            out[host] = dr
            continue
        names = {s.name for s in prev.subsets}
        extra = tuple(s for s in dr.subsets if s.name not in names)
        out[host] = m.DestinationRule(
            meta=prev.meta, host=prev.host,
            traffic_policy=prev.traffic_policy or dr.traffic_policy,
            subsets=prev.subsets + extra, export_to=prev.export_to, src=prev.src,
        )
    return out


def _most_specific(index: dict[str, T], host: str) -> T | None:
    """``index[host]``, else the entry of the longest wildcard key covering ``host``."""
    if host in index:
        return index[host]
    best: tuple[int, T] | None = None
    for pattern, value in index.items():
        if pattern.startswith("*") and wildcard_matches(pattern, host):
            if best is None or len(pattern) > best[0]:
                best = (len(pattern), value)
    return best[1] if best else None


# --------------------------------------------------------------------------- gateways


def is_mesh_bound(vs: m.VirtualService) -> bool:
    """The VirtualService applies to sidecars: no ``gateways``, or ``mesh`` among them."""
    return not vs.gateways or MESH in vs.gateways


def gateway_ref(name: str, namespace: str) -> str:
    """Istio's resolveGatewayName: ``name`` -> ``<namespace>/name``; the legacy
    ``name.ns[.svc.cluster.local]`` -> ``ns/name``; ``mesh`` and ``ns/name`` stay."""
    if name == MESH or "/" in name:
        return name
    if "." in name:
        gw, ns = name.split(".")[:2]
        return f"{ns}/{gw}"
    return f"{namespace}/{name}"


def user_gateway_ref(name: str, namespace: str) -> str:
    """A gateway as a user names one (a route test's ``gateway:``, ``--gateway``):
    ``mesh`` and ``ns/name`` stay, ``name`` is in ``namespace``."""
    return name if name == MESH or "/" in name else f"{namespace}/{name}"


def gateway_refs(names: Iterable[str], vs: m.VirtualService) -> set[str]:
    """The gateways (``ns/name`` or ``mesh``) that ``names``, written in ``vs``, bind to."""
    return {gateway_ref(g, vs.meta.namespace) for g in names}


# --------------------------------------------------------------------------- the registry


@dataclass(slots=True)
class Registry:
    services: dict[str, Service]  # by FQDN host; the first declaration wins
    destination_rules: dict[str, m.DestinationRule]  # merged, by FQDN host
    gateways: dict[str, m.Gateway] = field(default_factory=dict)  # by "ns/name"
    virtual_services: dict[tuple[str, str], m.VirtualService] = field(default_factory=dict)
    # (FQDN host, VirtualService) of every mesh-bound VirtualService, oldest first
    mesh_hosts: list[tuple[str, m.VirtualService]] = field(default_factory=list)
    # mesh_hosts ordered for a client namespace (_mesh_hosts_for), computed on first use
    client_mesh_hosts: dict[str, list[tuple[str, m.VirtualService]]] = field(default_factory=dict)
    domain: str = DEFAULT_DOMAIN

    def resolve(self, host: str, namespace: str) -> str:
        """``host`` as written in a resource of ``namespace``, as an FQDN."""
        return fqdn(host, namespace, self.domain)

    def service(self, host: str) -> Service | None:
        """The service declared for exactly ``host`` (what a route's cluster is built from)."""
        return self.services.get(host)

    def covering_service(self, host: str) -> Service | None:
        """The service for ``host``, else the one of the most specific wildcard host that
        covers it (istioctl analyze's GetDestinationHost: such a host is "found")."""
        return _most_specific(self.services, host)

    def destination_rule(self, host: str) -> m.DestinationRule | None:
        """The DestinationRule for ``host``: exact host, else the most specific wildcard."""
        return _most_specific(self.destination_rules, host)

    def subset(self, host: str, name: str) -> m.Subset | None:
        """Subset ``name`` of ``host``'s DestinationRule; None = no cluster (503 NC)."""
        dr = self.destination_rule(host)
        if dr is None:
            return None
        return next((s for s in dr.subsets if s.name == name), None)

    def subset_names(self, host: str) -> list[str]:
        dr = self.destination_rule(host)
        return [s.name for s in dr.subsets] if dr is not None else []

    def destination_port(self, host: str, port: int | None, listener_port: int) -> int:
        """Istio's GetDestinationCluster port: the destination's, else the service's only
        port, else the listener's."""
        if port is not None:
            return port
        svc = self.service(host)
        if svc is not None and len(svc.ports) == 1:
            return svc.ports[0].number
        return listener_port

    def cluster_for(self, dest: m.Destination, namespace: str, listener_port: int) -> str:
        """The cluster name a route to ``dest`` (written in ``namespace``) carries."""
        host = self.resolve(dest.host, namespace)
        return cluster_name(self.destination_port(host, dest.port, listener_port), dest.subset, host)

    def selected(self, svc: Service, labels: dict[str, str] | None) -> list[m.WorkloadEntrySpec]:
        """The endpoints of ``svc`` that ``labels`` (a subset's; None = all) select.  A DNS
        service without endpoints has one, its host, without labels (Istio's
        convertServiceEntryToInstances), so a subset with labels selects nothing there."""
        specs = [spec for spec, _ in svc.endpoints]
        if not specs and svc.resolution in DNS_RESOLUTIONS:
            specs = [m.WorkloadEntrySpec(address=svc.host)]
        return [s for s in specs if labels is None or labels_select(labels, s.labels)]

    def endpoints(self, svc: Service, port: m.ServicePort, labels: dict[str, str] | None,
                  ) -> tuple[Endpoint, ...]:
        """The cluster endpoints of ``svc`` on ``port`` that ``labels`` select, on their
        ``endpoint_port``.  A unix:// address is left out (no unix sockets here)."""
        eps: list[Endpoint] = []
        for spec in self.selected(svc, labels):
            if spec.address.startswith("unix://"):
                continue
            eps.append(Endpoint(spec.address, endpoint_port(spec, port), tuple(sorted(spec.labels.items())),
                                spec.weight or 1))
        return tuple(eps)

    def _mesh_hosts_for(self, client_namespace: str) -> list[tuple[str, m.VirtualService]]:
        """``mesh_hosts`` with the Gateway API routes of ``client_namespace`` first (sorted
        once per client namespace: translation asks for every service on every port)."""
        hosts = self.client_mesh_hosts.get(client_namespace)
        if hosts is None:
            hosts = self.client_mesh_hosts[client_namespace] = sorted(
                self.mesh_hosts,
                key=lambda hv: not (hv[1].semantics == "gateway" and hv[1].meta.namespace == client_namespace))
        return hosts

    def mesh_virtual_service(self, host: str, service_namespace: str | None = None,
                             client_namespace: str | None = None) -> m.VirtualService | None:
        """The VirtualService whose routes sidecars use for ``host``: the oldest mesh-bound one
        naming it exactly, else the one of the most specific wildcard host covering it (the
        oldest of those).  A younger one for the same host is ignored (IST0109).

        Gateway API routes (``semantics == "gateway"``) of ``client_namespace`` come first (the
        consumer override: push_context.go, UnifiedSidecarScoping); one applies only in its
        own namespace, the service's (``service_namespace``) or the client's (route.go), and
        never through a wildcard host (separateVSHostsAndServices)."""
        hosts = self.mesh_hosts if client_namespace is None else self._mesh_hosts_for(client_namespace)
        for h, vs in hosts:
            if h == host:
                if (vs.semantics == "gateway" and service_namespace is not None
                        and vs.meta.namespace not in (service_namespace, client_namespace)):
                    continue
                return vs
        best: tuple[int, m.VirtualService] | None = None
        for h, vs in hosts:
            if vs.semantics == "gateway":
                continue
            if h.startswith("*") and wildcard_matches(h, host):
                if best is None or len(h) > best[0]:
                    best = (len(h), vs)
        return best[1] if best else None

    def gateway(self, ref: str) -> m.Gateway | None:
        """Gateway ``ns/name`` (see ``gateway_ref``)."""
        return self.gateways.get(ref)

    def delegate(self, namespace: str, name: str) -> m.VirtualService | None:
        """The VirtualService ``namespace/name`` a ``delegate`` names (any, with or without hosts)."""
        return self.virtual_services.get((namespace, name))


def build_registry(cfg: m.Config, domain: str = DEFAULT_DOMAIN,
                   services: Iterable[Service] | None = None) -> Registry:
    """The registry of ``cfg``, for ``translate`` and ``analyze`` alike.  ``services``
    (default: ``kubernetes_services(cfg)`` then ``service_entry_services(cfg)``, Kubernetes
    first as in istiod's aggregate registry) is every service in priority order: another
    source writes a function like these and adds its list."""
    if services is None:
        services = kubernetes_services(cfg, domain) + service_entry_services(cfg, domain)
    by_host: dict[str, Service] = {}
    for svc in services:
        by_host.setdefault(svc.host, svc)  # the first declaration wins
    mesh = sorted((vs for vs in cfg.virtual_services if is_mesh_bound(vs) and vs.hosts),
                  key=lambda v: v.meta.order)
    return Registry(
        services=by_host,
        destination_rules=merge_destination_rules(cfg.destination_rules, domain),
        gateways={f"{g.meta.namespace}/{g.meta.name}": g for g in cfg.gateways},
        virtual_services={(v.meta.namespace, v.meta.name): v for v in cfg.virtual_services},
        mesh_hosts=[(fqdn(h, vs.meta.namespace, domain), vs) for vs in mesh for h in vs.hosts],
        domain=domain,
    )
