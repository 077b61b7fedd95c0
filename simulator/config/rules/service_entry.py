"""The webhook's rules for a ServiceEntry (hosts, addresses, ports, resolution, endpoints)
and a WorkloadEntry."""

from __future__ import annotations

from simulator.config.rules.fields import (
    HTTP_PROTOCOLS,
    PROTOCOLS,
    TLS_PROTOCOLS,
    check_export_to,
    check_labels,
    check_port,
    protocol_of,
)
from simulator.config.schema import Ctx
from simulator.model import istio as m
from simulator.model.syntax import (
    check_fqdn,
    check_ip_subnet,
    check_wildcard_domain,
    is_dns1123_label,
    is_ip,
)

# ------------------------------------------------------------------ ServiceEntry / WorkloadEntry


def check_service_entry(ctx: Ctx, se: m.ServiceEntry) -> None:
    if se.workload_selector is not None and ctx.has("spec.endpoints"):
        ctx.error(
            "spec.workloadSelector",
            "spec: only one of workloadSelector or endpoints is allowed in ServiceEntry",
        )
    if not se.hosts and ctx.has("spec.hosts"):
        ctx.error("spec.hosts", "spec.hosts: service entry must have at least one host")
    for i, host in enumerate(se.hosts):
        p = f"spec.hosts[{i}]"
        if host == "*":
            ctx.error(p, f'{p}: invalid host "*" (hostname cannot be wildcard)')
            continue
        reason = check_wildcard_domain(host)
        if reason:
            ctx.error(p, f"{p}: {reason}")
        elif "*" in host and not host.startswith("*."):
            ctx.warn(p, f'{p}: partial wildcard "{host}" not allowed')
    cidr = False
    for i, address in enumerate(se.addresses):
        cidr = cidr or "/" in address
        reason = check_ip_subnet(address)
        if reason:
            ctx.error(f"spec.addresses[{i}]", f"spec.addresses[{i}]: {reason}")
    if cidr and se.resolution not in ("NONE", "STATIC"):
        ctx.error(
            "spec.addresses",
            "spec.addresses: CIDR addresses are allowed only for NONE/STATIC resolution types",
        )
    port_names = _check_service_ports(ctx, se)
    _check_se_resolution(ctx, se, port_names)
    if se.resolution != "NONE" and len(se.hosts) > 1:
        for i, port in enumerate(se.ports):
            proto = protocol_of(port.protocol)
            if proto not in HTTP_PROTOCOLS and proto not in TLS_PROTOCOLS:
                ctx.error(
                    f"spec.ports[{i}]",
                    f"spec.ports[{i}]: multiple hosts provided with non-HTTP, non-TLS ports",
                )
                break
    check_export_to(ctx, se.export_to, "spec.exportTo", service_entry=True)
    if se.workload_selector is not None:
        check_labels(ctx, se.workload_selector, "spec.workloadSelector.labels")


def _check_service_ports(ctx: Ctx, se: m.ServiceEntry) -> set[str]:
    names: set[str] = set()
    numbers: set[int] = set()
    for i, port in enumerate(se.ports):
        p = f"spec.ports[{i}]"
        if port.name in names:
            ctx.error(f"{p}.name", f'{p}.name: service entry port name "{port.name}" already defined')
        if port.number in numbers:
            ctx.error(f"{p}.number", f"{p}.number: service entry port {port.number} already defined")
        names.add(port.name)
        numbers.add(port.number)
        if port.name and not is_dns1123_label(port.name):
            ctx.error(f"{p}.name", f'{p}.name: invalid port name "{port.name}" (must be a DNS-1123 label)')
        if port.protocol and not protocol_of(port.protocol):
            ctx.error(
                f"{p}.protocol",
                f'{p}.protocol: unsupported protocol "{port.protocol}"; valid: ' + ", ".join(PROTOCOLS),
            )
        if ctx.has(f"{p}.number"):
            check_port(ctx, port.number, f"{p}.number")
        if port.target_port is not None and port.target_port != 0:
            check_port(ctx, port.target_port, f"{p}.targetPort")
    return names


def _check_se_resolution(ctx: Ctx, se: m.ServiceEntry, port_names: set[str]) -> None:
    res = se.resolution
    if res == "NONE":
        if se.endpoints:
            ctx.error(
                "spec.endpoints",
                "spec.endpoints: no endpoints should be provided for resolution type NONE "
                "(use resolution: STATIC or DNS)",
            )
        if se.workload_selector is not None:
            ctx.warn(
                "spec.workloadSelector",
                "spec.workloadSelector: should not be set when resolution mode is NONE",
            )
    elif res == "STATIC":
        for i, ep in enumerate(se.endpoints):
            check_workload_entry(ctx, ep, f"spec.endpoints[{i}]", service_ports=port_names, allow_fqdn=False)
    elif res in ("DNS", "DNS_ROUND_ROBIN"):
        if not se.endpoints:
            for i, host in enumerate(se.hosts):
                reason = check_fqdn(host.removeprefix("*.")) if host != "*" else None
                if reason:
                    ctx.error(
                        f"spec.hosts[{i}]",
                        f"spec.hosts[{i}]: hosts must be FQDN if no endpoints are provided "
                        f"for resolution mode {res}: {reason}",
                    )
                    break
        if res == "DNS_ROUND_ROBIN" and len(se.endpoints) > 1:
            ctx.error(
                "spec.endpoints",
                f"spec.endpoints: there must only be 0 or 1 endpoint for resolution mode {res}",
            )
        for i, ep in enumerate(se.endpoints):
            check_workload_entry(ctx, ep, f"spec.endpoints[{i}]", service_ports=port_names, allow_fqdn=True)
    elif res == "DYNAMIC_DNS":
        for i, host in enumerate(se.hosts):
            if not host.startswith("*"):
                ctx.error(
                    f"spec.hosts[{i}]",
                    f"spec.hosts[{i}]: host must be wildcarded for resolution mode {res}",
                )
        if se.endpoints:
            ctx.error(
                "spec.endpoints",
                f"spec.endpoints: endpoints cannot be set for resolution type {res}",
            )


def check_workload_entry(
    ctx: Ctx,
    we: m.WorkloadEntrySpec,
    path: str,
    service_ports: set[str] | None = None,
    allow_fqdn: bool = True,
) -> None:
    addr = we.address
    if not addr:
        if not we.network:
            ctx.error(f"{path}.address", f"{path}.address: address is required")
        else:
            ctx.warn(f"{path}.address", f'{path}.address: address is unset with network "{we.network}"')
    elif addr.startswith("unix://"):
        sock = addr.removeprefix("unix://")
        if not sock.startswith(("/", "@")) or sock.endswith("/"):
            ctx.error(f"{path}.address", f"{path}.address: {sock} is not an absolute path to a file")
        if we.ports:
            ctx.error(f"{path}.ports", f"{path}.ports: unix endpoint {addr} must not include ports")
    elif not is_ip(addr):
        if not allow_fqdn:
            ctx.error(
                f"{path}.address",
                f'{path}.address: endpoint address "{addr}" is not a valid IP address '
                "(resolution STATIC needs IPs or unix:// paths)",
            )
        elif check_fqdn(addr):
            ctx.error(
                f"{path}.address",
                f'{path}.address: endpoint address "{addr}" is not a valid FQDN or an IP address',
            )
    for name, port in we.ports.items():
        p = f"{path}.ports.{name}"
        if service_ports is not None and name not in service_ports:
            valid = ", ".join(sorted(service_ports)) or "none"
            ctx.error(
                p,
                f'{p}: endpoint port name "{name}" is not defined by the service entry ports (defined: {valid})',
            )
        if not is_dns1123_label(name):
            ctx.error(p, f'{p}: invalid port name "{name}"')
        check_port(ctx, port, p)
    check_labels(ctx, we.labels, f"{path}.labels")
