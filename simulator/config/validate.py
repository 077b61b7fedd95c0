"""Cross-resource analysis, like ``istioctl analyze``: problems Istio accepts
but that break or surprise at run time.  All are warnings with their IST codes:

* IST0101 ReferencedResourceNotFound: a destination / mirror subset that no
  DestinationRule defines (-> 503 NC), a destination host that no ServiceEntry
  declares, a ``host:port`` the service does not expose, a Gateway or delegate
  VirtualService that does not exist.
* IST0109 ConflictingMeshGatewayVirtualServiceHosts: one host in several
  mesh-bound VirtualServices (sidecars use the oldest one only).
* IST0112 VirtualServiceDestinationPortSelectorRequired: a multi-port service
  routed to without ``port``.
* IST0173 DestinationRuleSubsetNotSelectPods: a subset whose labels select no
  endpoint (-> 503 UH); IST0174 UnknownDestinationRuleHost.

Every lookup (services, DestinationRules, subsets, endpoints, gateways, delegates) goes
through ``simulator.core.registry``, the one translation uses: a subset reported missing
here is the cluster the route table lacks (503 NC).  Host names are resolved as Istio does,
relative to the namespace of the resource that names them.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterator
from dataclasses import dataclass

from simulator.config.rules.fields import as_list
from simulator.config.schema import Ctx
from simulator.core.registry import Registry, Service, build_registry, gateway_ref, is_mesh_bound
from simulator.diagnostics import Diagnostic
from simulator.model import istio as m
from simulator.model.names import MESH


def resource_name(kind: str, meta: m.Meta) -> str:
    return f"{kind} {meta.namespace}/{meta.name}"


def _ctx(kind: str, obj: m.VirtualService | m.DestinationRule) -> Ctx:
    return Ctx(source=obj.src, resource=resource_name(kind, obj.meta), namespace=obj.meta.namespace)


# ------------------------------------------------------------------ helpers


def _fmt_labels(labels: dict[str, str]) -> str:
    return "{" + ", ".join(f"{k}={v}" for k, v in sorted(labels.items())) + "}"


# ------------------------------------------------------------------ VirtualService destinations


@dataclass(frozen=True, slots=True)
class _Dest:
    dest: m.Destination
    path: str  # path of the Destination object
    mirror: bool


def _destinations(vs: m.VirtualService) -> Iterator[_Dest]:
    for i, r in enumerate(vs.http):
        for j, rd in enumerate(r.route):
            yield _Dest(rd.destination, f"spec.http[{i}].route[{j}].destination", False)
        if r.mirror is not None:
            yield _Dest(r.mirror, f"spec.http[{i}].mirror", True)
        for k, mp in enumerate(r.mirrors):
            yield _Dest(mp.destination, f"spec.http[{i}].mirrors[{k}].destination", True)
    for kind, routes in (("tls", vs.tls), ("tcp", vs.tcp)):
        for i, route in enumerate(routes):
            for j, rd in enumerate(as_list(route.get("route"))):
                d = rd.get("destination") if isinstance(rd, dict) else None
                if isinstance(d, dict) and isinstance(d.get("host"), str):
                    port = d.get("port", {}).get("number") if isinstance(d.get("port"), dict) else None
                    yield _Dest(
                        m.Destination(
                            host=d["host"],
                            subset=str(d.get("subset") or ""),
                            port=port if isinstance(port, int) else None,
                        ),
                        f"spec.{kind}[{i}].route[{j}].destination",
                        False,
                    )


def _check_destination(ctx: Ctx, reg: Registry, d: _Dest) -> None:
    dest = d.dest
    if not dest.host or dest.host == "*":
        return
    host = reg.resolve(dest.host, ctx.namespace)
    what = "mirror host" if d.mirror else "host"
    service = reg.covering_service(host)
    if service is None:
        ctx.warn(
            f"{d.path}.host",
            f'Referenced {what} not found: "{dest.host}" (no ServiceEntry declares {host})',
            "IST0101",
        )
    else:
        _check_port(ctx, dest, host, service, d.path)
    if dest.subset:
        _check_subset(ctx, reg, dest, host, d)


def _check_port(ctx: Ctx, dest: m.Destination, host: str, service: Service, path: str) -> None:
    numbers = [p.number for p in service.ports]
    if dest.port is None:
        if len(numbers) > 1:
            ctx.warn(
                f"{path}.host",
                f'This VirtualService routes to a service "{dest.host}" that exposes multiple '
                f"ports {numbers}. Specifying a port in the destination is required to "
                "disambiguate.",
                "IST0112",
            )
    elif numbers and dest.port not in numbers:
        ctx.warn(
            f"{path}.port.number",
            f'Referenced host:port not found: "{dest.host}:{dest.port}" ({host} exposes ports {numbers})',
            "IST0101",
        )


def _check_subset(ctx: Ctx, reg: Registry, dest: m.Destination, host: str, d: _Dest) -> None:
    if reg.subset(host, dest.subset) is not None:
        return
    defined = reg.subset_names(host)
    known = f"defined: {', '.join(dict.fromkeys(defined))}" if defined else "no DestinationRule for this host"
    what = "mirror+subset" if d.mirror else "host+subset"
    ctx.warn(
        f"{d.path}.subset",
        f'Referenced {what} in destinationrule not found: "{dest.host}+{dest.subset}": subset '
        f'"{dest.subset}" of '
        f"host {host} is not defined by any DestinationRule ({known}); Envoy answers 503 (NC, "
        "cluster not found)",
        "IST0101",
    )


def _check_gateways(ctx: Ctx, reg: Registry, vs: m.VirtualService) -> None:
    refs = [(f"spec.gateways[{i}]", g) for i, g in enumerate(vs.gateways)]
    for i, r in enumerate(vs.http):
        for j, mt in enumerate(r.match):
            refs += [(f"spec.http[{i}].match[{j}].gateways[{k}]", g) for k, g in enumerate(mt.gateways)]
    for path, name in refs:
        if name == MESH or not name:
            continue
        ref = gateway_ref(name, ctx.namespace)
        if reg.gateway(ref) is None:
            ctx.warn(
                path,
                f'Referenced gateway not found: "{name}" (no Gateway {ref} is loaded)',
                "IST0101",
            )


def _check_delegates(ctx: Ctx, reg: Registry, vs: m.VirtualService) -> None:
    for i, r in enumerate(vs.http):
        if r.delegate is None or not r.delegate.name:
            continue
        ns = r.delegate.namespace or ctx.namespace
        target = reg.delegate(ns, r.delegate.name)
        path = f"spec.http[{i}].delegate"
        if target is None:
            ctx.warn(
                f"{path}.name",
                f'Referenced delegate VirtualService not found: "{ns}/{r.delegate.name}"',
                "IST0101",
            )
        elif target.hosts:
            ctx.warn(
                f"{path}.name",
                f"delegate VirtualService {ns}/{r.delegate.name} has hosts; only a "
                "VirtualService without hosts can be a delegate",
            )


# ------------------------------------------------------------------ IST0109


def _conflicting_mesh_hosts(config: m.Config, reg: Registry) -> list[Diagnostic]:
    by_host: dict[str, list[tuple[m.VirtualService, int]]] = defaultdict(list)
    for vs in config.virtual_services:
        if not is_mesh_bound(vs):
            continue
        for i, host in enumerate(dict.fromkeys(vs.hosts)):
            if host and host != "*":
                by_host[reg.resolve(host, vs.meta.namespace)].append((vs, i))
    out: list[Diagnostic] = []
    for host, entries in by_host.items():
        if len({id(vs) for vs, _ in entries}) < 2:
            continue
        winner = reg.mesh_virtual_service(host)
        assert winner is not None  # host is a mesh-bound VirtualService's
        names = ",".join(sorted(f"{vs.meta.namespace}/{vs.meta.name}" for vs, _ in entries))
        for vs, i in entries:
            ctx = _ctx("VirtualService", vs)
            verdict = (
                "this one is used (oldest wins)"
                if vs is winner
                else (
                    f"sidecars use {winner.meta.namespace}/{winner.meta.name} (loaded first: "
                    "oldest wins) and ignore "
                    "this one for that host"
                )
            )
            ctx.warn(
                f"spec.hosts[{i}]",
                f"The VirtualServices {names} associated with mesh gateway define the same "
                f"host {host} which can lead to undefined behavior: {verdict}. Merge the "
                "conflicting VirtualServices into a single resource.",
                "IST0109",
            )
            out += ctx.diagnostics
    return out


# ------------------------------------------------------------------ DestinationRule subsets


def _check_subsets(ctx: Ctx, reg: Registry, dr: m.DestinationRule) -> None:
    host = reg.resolve(dr.host, dr.meta.namespace)
    service = reg.covering_service(host)
    if service is None:
        ctx.warn(
            "spec.host",
            f"The host {dr.host} defined in the DestinationRule does not match any services in "
            f"the mesh (no ServiceEntry declares {host})",
            "IST0174",
        )
        return
    if service.passthrough:
        return  # passthrough services have no endpoint set to select from
    available = [ep.labels for ep in reg.selected(service, None)]
    for i, subset in enumerate(dr.subsets):
        if not subset.name or reg.selected(service, subset.labels):
            continue
        path = f"spec.subsets[{i}].labels" if subset.labels else f"spec.subsets[{i}].name"
        have = ", ".join(dict.fromkeys(_fmt_labels(lb) for lb in available)) or "no endpoints"
        ctx.warn(
            path,
            f"The Subset {subset.name} defined in the DestinationRule does not select any "
            "endpoints "
            f"(labels {_fmt_labels(subset.labels)}; endpoints of {host} have: {have}). Which may "
            "lead "
            "to 503 UH (NoHealthyUpstream).",
            "IST0173",
        )


# ------------------------------------------------------------------ entry point


def analyze(config: m.Config) -> list[Diagnostic]:
    """Run every cross-resource check; returns warnings (unsorted)."""
    reg = build_registry(config)
    out: list[Diagnostic] = []
    for vs in config.virtual_services:
        ctx = _ctx("VirtualService", vs)
        for d in _destinations(vs):
            _check_destination(ctx, reg, d)
        _check_gateways(ctx, reg, vs)
        _check_delegates(ctx, reg, vs)
        out += ctx.diagnostics
    out += _conflicting_mesh_hosts(config, reg)
    for dr in config.destination_rules:
        ctx = _ctx("DestinationRule", dr)
        _check_subsets(ctx, reg, dr)
        out += ctx.diagnostics
    return out
