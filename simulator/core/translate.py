"""Translate the Istio input model into the compiled RouteTable, as Istio's pilot
translates VirtualServices into Envoy routes for a sidecar (the "mesh" gateway,
``translate``) and for a Gateway's server (``translate_gateway``).

Istio behaviours reproduced here (see docs/config-reference.md):
* services, DestinationRules and endpoints come from the registry (``registry.py``);
  clusters are built in ``clusters.py``, routes in ``routes.py``;
* one route configuration per port; per service a virtual host whose domains
  are the FQDN and its short forms relative to the client namespace; the VS
  bound to the mesh for that host supplies the routes (oldest wins), otherwise
  the default route to ``outbound|P||host``;
* VS hosts that are not services get a virtual host on port 80 only;
* a Gateway server gets the VirtualServices bound to it whose hosts meet its own.
"""

from __future__ import annotations

import dataclasses

from simulator.core.clusters import build_clusters
from simulator.core.envoy_config import (
    ISTIO_DEFAULT_RETRY,
    Cluster,
    RedirectAction,
    Route,
    RouteAction,
    RouteConfiguration,
    RouteMatch,
    VirtualHost,
    cluster_name,
)
from simulator.core.hosts import is_ip, wildcard_matches
from simulator.core.matchers import (
    PathMatcher,
)
from simulator.core.options import TranslateOptions
from simulator.core.registry import Service, build_registry, gateway_refs
from simulator.core.routes import translate_virtual_service
from simulator.core.table import RouteTable
from simulator.model import istio as m
from simulator.model.names import DEFAULT_NAMESPACE


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


def translate(cfg: m.Config, opts: TranslateOptions | None = None) -> RouteTable:
    """Compile a loaded config into the immutable RouteTable (delegates already merged)."""
    opts = opts or TranslateOptions()
    reg = build_registry(cfg, opts.domain)
    clusters = build_clusters(reg)
    client_ns = opts.client_namespace
    # the services of each port, in registry order (one pass: a Service may list thousands of ports)
    by_port: dict[int, dict[str, Service]] = {80: {}}
    for svc in reg.services.values():
        for p in svc.ports:
            by_port.setdefault(p.number, {}).setdefault(svc.host, svc)
    route_configs: dict[int, RouteConfiguration] = {}
    for port in sorted(by_port):
        vhosts: list[VirtualHost] = []
        seen: set[str] = set()
        for svc in by_port[port].values():
            svc_vs = reg.mesh_virtual_service(svc.host, svc.namespace, client_ns)
            routes = (translate_virtual_service(reg, opts, svc_vs, port)
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
            for h, vs in reg.mesh_hosts:
                if h in seen or h in reg.services:
                    continue
                if reg.mesh_virtual_service(h, client_namespace=client_ns) is not vs:
                    continue
                routes = translate_virtual_service(reg, opts, vs, port)
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
    ns = ns or DEFAULT_NAMESPACE
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
    reg = build_registry(cfg, opts.domain)
    if clusters is None:
        clusters = build_clusters(reg)
    gw_ref = f"{gateway.meta.namespace}/{gateway.meta.name}"
    port = server.port.number
    by_host: dict[str, list[Route]] = {}
    origins: dict[str, list[str]] = {}
    for vs in sorted(cfg.virtual_services, key=lambda v: v.meta.order):
        bound = gateway_refs(vs.gateways, vs)
        # a route from a Gateway API route names the listener it is bound to: ns/gateway/listener
        if gw_ref not in bound and not (server.name and f"{gw_ref}/{server.name}" in bound):
            continue
        for h in vs.hosts:
            for sh in server.hosts:
                host = _server_host_matches(sh, gateway.meta.namespace, vs, h)
                if host is None:
                    continue
                routes = translate_virtual_service(reg, opts, vs, port, gateway=gw_ref,
                                                   stop_at_catch_all=False)
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
