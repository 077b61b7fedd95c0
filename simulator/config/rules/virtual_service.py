"""The webhook's rules for a VirtualService as a whole: hosts, gateways, exportTo,
JWT-claim routes, TLS and TCP routes; its HTTP rules are in http_route.py and the
unreachable-rule analysis in unreachable.py."""

from __future__ import annotations

from simulator.config.rules.fields import as_list, check_export_to, check_port, hosts_overlap
from simulator.config.rules.http_route import check_destination, check_gateway_names
from simulator.config.rules.unreachable import analyze_unreachable_rules
from simulator.config.schema import Ctx
from simulator.core.hosts import wildcard_matches
from simulator.model import istio as m
from simulator.model.names import MESH
from simulator.model.syntax import (
    check_ip_subnet,
    check_wildcard_domain,
    is_ip,
)

# ------------------------------------------------------------------ VirtualService


def check_virtual_service(ctx: Ctx, vs: m.VirtualService) -> None:
    is_delegate = not vs.hosts
    if is_delegate:
        for present, field in ((vs.gateways, "gateways"), (vs.tls, "tls"), (vs.tcp, "tcp")):
            if present:
                what = "gateways specified" if field == "gateways" else f"{field} route specified"
                ctx.error(
                    f"spec.{field}",
                    f"spec.{field}: delegate virtual service (no hosts) must have no {what}",
                )
        for i, r in enumerate(vs.http):
            if r.delegate is not None:
                p = f"spec.http[{i}].delegate"
                ctx.error(
                    p,
                    f"{p}: delegate HTTP route cannot contain delegate (only one level of delegation)",
                )
    applies_to_gateway = bool(vs.gateways) and MESH not in vs.gateways
    check_gateway_names(ctx, (g for g in vs.gateways if g != MESH), "spec.gateways")
    if not applies_to_gateway:
        _check_jwt_claims(ctx, vs)
    _check_vs_hosts(ctx, vs, applies_to_mesh=not applies_to_gateway)
    if not vs.http and not vs.tcp and not vs.tls:
        ctx.error("spec", "spec: http, tcp or tls must be provided in virtual service")
    _check_l4_routes(ctx, vs)
    check_export_to(ctx, vs.export_to, "spec.exportTo")
    analyze_unreachable_rules(ctx, vs.http)


def _check_jwt_claims(ctx: Ctx, vs: m.VirtualService) -> None:
    for i, r in enumerate(vs.http):
        for j, mt in enumerate(r.match):
            for field, pairs in (("headers", mt.headers), ("withoutHeaders", mt.without_headers)):
                for name, _ in pairs:
                    if name.startswith("@request.auth.claims"):
                        p = f"spec.http[{i}].match[{j}].{field}.{name}"
                        ctx.error(
                            p,
                            f"{p}: JWT claim based routing (key: {name}) is only supported for "
                            "gateway, "
                            f"found no gateways: {list(vs.gateways)}",
                        )


def _check_vs_hosts(ctx: Ctx, vs: m.VirtualService, applies_to_mesh: bool) -> None:
    all_valid = True
    for i, host in enumerate(vs.hosts):
        p = f"spec.hosts[{i}]"
        reason = check_wildcard_domain(host)
        if reason:
            if not is_ip(host):
                ctx.error(p, f"{p}: {reason}")
                all_valid = False
        elif applies_to_mesh and host == "*":
            ctx.error(
                p,
                f"{p}: wildcard host * is not allowed for virtual services bound to the mesh "
                "gateway "
                '(gateways is empty or lists "mesh")',
            )
            all_valid = False
    if not all_valid:
        return
    for i, a in enumerate(vs.hosts):
        for b in vs.hosts[i + 1 :]:
            if hosts_overlap(a, b):
                ctx.error(f"spec.hosts[{i}]", f"spec.hosts: duplicate hosts in virtual service: {a} & {b}")


def _check_l4_routes(ctx: Ctx, vs: m.VirtualService) -> None:
    for kind, routes in (("tls", vs.tls), ("tcp", vs.tcp)):
        for i, route in enumerate(routes):
            p = f"spec.{kind}[{i}]"
            matches = route.get("match") or []
            if kind == "tls" and not matches:
                ctx.error(p, f"{p}: TLS route must have at least one match condition")
            for j, match in enumerate(matches if isinstance(matches, list) else []):
                if isinstance(match, dict):
                    _check_l4_match(ctx, vs, kind, match, f"{p}.match[{j}]")
            dests = route.get("route") or []
            if not dests:
                ctx.error(p, f"{p}: {kind.upper()} route is required")
            total = 0
            for j, rd in enumerate(dests if isinstance(dests, list) else []):
                weight = rd.get("weight") if isinstance(rd, dict) else None
                if isinstance(weight, int) and not isinstance(weight, bool):
                    if weight < 0:
                        ctx.error(f"{p}.route[{j}].weight", f"{p}.route[{j}].weight: weight {weight} < 0")
                    total += weight
                dest = rd.get("destination") if isinstance(rd, dict) else None
                if isinstance(dest, dict) and isinstance(dest.get("host"), str):
                    port = dest.get("port", {}).get("number") if isinstance(dest.get("port"), dict) else None
                    check_destination(
                        ctx,
                        m.Destination(
                            host=dest["host"],
                            subset=str(dest.get("subset") or ""),
                            port=port if isinstance(port, int) else None,
                        ),
                        f"{p}.route[{j}].destination",
                    )
            if isinstance(dests, list) and len(dests) > 1 and total == 0:
                ctx.error(f"{p}.route", f"{p}.route: total destination weight = 0")


def _check_l4_match(ctx: Ctx, vs: m.VirtualService, kind: str, match: dict[str, object], path: str) -> None:
    for i, subnet in enumerate(as_list(match.get("destinationSubnets"))):
        if isinstance(subnet, str):
            reason = check_ip_subnet(subnet)
            if reason:
                ctx.error(f"{path}.destinationSubnets[{i}]", f"{path}.destinationSubnets[{i}]: {reason}")
    port = match.get("port")
    if isinstance(port, int) and port:
        check_port(ctx, port, f"{path}.port")
    if kind != "tls":
        return
    sni_hosts = match.get("sniHosts") or []
    if not sni_hosts:
        ctx.error(path, f"{path}: TLS match must have at least one SNI host")
    for i, sni in enumerate(sni_hosts if isinstance(sni_hosts, list) else []):
        if not isinstance(sni, str):
            continue
        p = f"{path}.sniHosts[{i}]"
        reason = check_wildcard_domain(sni)
        if reason:
            if is_ip(sni):
                ctx.warn(
                    p,
                    f'{p}: using an IP address ("{sni}") goes against SNI spec and most clients do not support this',
                )
            else:
                ctx.error(p, f"{p}: {reason}")
            continue
        if not any(sni == h or wildcard_matches(h, sni) for h in vs.hosts):
            ctx.error(
                p,
                f'{p}: SNI host "{sni}" is not a compatible subset of any of the virtual service '
                "hosts: "
                f"[{', '.join(vs.hosts)}]",
            )
