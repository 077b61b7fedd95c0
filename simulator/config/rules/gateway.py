"""The webhook's rules for a Gateway: servers, ports, hosts and server TLS."""

from __future__ import annotations

from simulator.config.rules.fields import HTTP_PROTOCOLS, PROTOCOLS, TLS_PROTOCOLS, check_port, protocol_of
from simulator.config.schema import Ctx
from simulator.model import istio as m
from simulator.model.syntax import (
    check_wildcard_domain,
    is_dns1123_label,
    is_ip,
)

# ------------------------------------------------------------------ Gateway


def check_server_tls(ctx: Ctx, tls: m.ServerTLSSettings, path: str) -> None:
    """The main ``validateTLSOptions`` rules (certificate sources by mode)."""
    has = {
        k: ctx.has(f"{path}.{k}")
        for k in (
            "serverCertificate",
            "privateKey",
            "caCertificates",
            "credentialName",
            "credentialNames",
            "tlsCertificates",
        )
    }
    if tls.mode == "ISTIO_MUTUAL":
        for key, present in has.items():
            if present:
                ctx.error(f"{path}.{key}", f"{path}.{key}: ISTIO_MUTUAL TLS cannot have associated {key}")
        return
    sources = sum(
        (
            has["serverCertificate"] and has["privateKey"],
            has["credentialName"],
            has["credentialNames"],
            has["tlsCertificates"],
        )
    )
    if sources > 1:
        ctx.error(
            path,
            f"{path}: only one of credentialName, credentialNames, serverCertificate/privateKey, "
            "tlsCertificates should be specified",
        )
    if tls.mode not in ("SIMPLE", "MUTUAL", "OPTIONAL_MUTUAL") or has["credentialName"] or has["credentialNames"]:
        return
    prefix = "SIMPLE TLS" if tls.mode == "SIMPLE" else "MUTUAL TLS"
    if tls.mode != "SIMPLE" and not has["caCertificates"]:
        ctx.error(path, f"{path}: {prefix} requires a client CA bundle (caCertificates)")
    if not has["tlsCertificates"]:
        for key in ("serverCertificate", "privateKey"):
            if not has[key]:
                ctx.error(path, f"{path}: {prefix} requires {key} (or credentialName)")


def check_gateway(ctx: Ctx, gw: m.Gateway) -> None:
    if not is_dns1123_label(gw.meta.name):
        ctx.error(
            "metadata.name",
            f'metadata.name: invalid gateway name: "{gw.meta.name}" (must be a DNS-1123 label)',
        )
    if not gw.servers:
        ctx.error("spec.servers", "spec.servers: gateway must have at least one server")
    names: dict[str, int] = {}
    for i, server in enumerate(gw.servers):
        p = f"spec.servers[{i}]"
        _check_server(ctx, server, p)
        name = server.port.name
        if name in names:
            ctx.error(
                f"{p}.port.name",
                f'{p}.port.name: port names in servers must be unique: duplicate name "{name}" '
                f"(also spec.servers[{names[name]}])",
            )
        names.setdefault(name, i)
        if (
            server.tls is not None
            and server.tls.https_redirect
            and protocol_of(server.port.protocol) not in HTTP_PROTOCOLS
        ):
            ctx.warn(
                f"{p}.tls.httpsRedirect",
                f"{p}.tls.httpsRedirect: should only be used with http servers",
            )


def _check_server(ctx: Ctx, server: m.Server, path: str) -> None:
    if not server.hosts and ctx.has(f"{path}.hosts"):
        ctx.error(f"{path}.hosts", f"{path}.hosts: server config must contain at least one host")
    for i, host in enumerate(server.hosts):
        _check_gateway_host(ctx, host, f"{path}.hosts[{i}]")
    port, pp = server.port, f"{path}.port"
    if ctx.has(pp):
        proto = protocol_of(port.protocol)
        if port.protocol and not proto:
            ctx.error(
                f"{pp}.protocol",
                f'{pp}.protocol: invalid protocol "{port.protocol}", supported protocols are ' + ", ".join(PROTOCOLS),
            )
        if port.number or not server.bind.startswith("unix://"):
            check_port(ctx, port.number, f"{pp}.number")
        if port.target_port:
            ctx.error(f"{pp}.targetPort", f"{pp}.targetPort: targetPort has no impact on Gateways")
        if proto in TLS_PROTOCOLS and server.tls is None:
            ctx.error(
                f"{path}",
                f"{path}: server must have TLS settings for HTTPS/TLS protocols (port protocol {port.protocol})",
            )
        elif proto and proto not in TLS_PROTOCOLS and server.tls is not None:
            if proto in HTTP_PROTOCOLS:
                if server.tls.mode not in ("", "PASSTHROUGH") or server.tls.credential_name:
                    ctx.error(
                        f"{path}.tls",
                        f"{path}.tls: server cannot have TLS settings for plain text HTTP ports (only httpsRedirect)",
                    )
            else:
                ctx.error(
                    f"{path}.tls",
                    f"{path}.tls: server cannot have TLS settings for non HTTPS/TLS ports",
                )
    if server.bind and not server.bind.startswith("unix://") and not is_ip(server.bind):
        ctx.error(f"{path}.bind", f"{path}.bind: {server.bind} is not a valid IP")


def _check_gateway_host(ctx: Ctx, host: str, path: str) -> None:
    ns, sep, name = host.partition("/")
    if not sep:
        ns, name = "*", host
    if not ns or not name:
        ctx.error(path, f"{path}: config namespace and dnsName in host entry cannot be empty")
        return
    if ns not in ("*", ".") and not is_dns1123_label(ns):
        ctx.error(path, f'{path}: invalid namespace value "{ns}" in gateway')
    if name != "*" and "." not in name:
        ctx.error(path, f'{path}: short names (non FQDN) are not allowed: "{name}"')
    elif check_wildcard_domain(name) and not is_ip(name):
        ctx.error(path, f"{path}: {check_wildcard_domain(name)}")
    if "*" in name and name != "*" and not name.startswith("*."):
        ctx.error(path, f'{path}: partial wildcard "{name}" not allowed')
