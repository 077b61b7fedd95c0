"""Host names the Istio way: short-name resolution and host matching.

``fqdn("httpbin", "default")`` -> ``httpbin.default.svc.cluster.local``: Istio's
``ResolveShortnameToFQDN`` appends ``.<namespace>.svc.<domain>`` only when the
name has no dot; ``*`` and IP addresses are left alone, and a name with a dot
(``reviews.prod``) is taken literally.
"""

from __future__ import annotations

from simulator.model.names import DEFAULT_DOMAIN
from simulator.model.syntax import is_ip as _is_address


def is_ip(name: str) -> bool:
    """An IP address, an IPv6 one with or without brackets (``[::1]``)."""
    return _is_address(name.strip("[]"))


def fqdn(name: str, namespace: str, domain: str = DEFAULT_DOMAIN) -> str:
    """Resolve a short host name to an FQDN relative to ``namespace``."""
    if not name or name == "*" or "." in name or is_ip(name):
        return name.lower() if "." in name or name == "*" else name
    return f"{name}.{namespace}.svc.{domain}".lower()


def wildcard_matches(pattern: str, host: str) -> bool:
    """True when ``host`` is covered by ``pattern`` (``*.example.com`` or ``*``)."""
    if pattern == "*":
        return True
    if pattern.startswith("*"):
        return host.endswith(pattern[1:])
    return pattern == host


def split_host_port(authority: str) -> tuple[str, int | None]:
    """Split ``host:port`` (IPv6 literals in brackets) into host and port."""
    i = authority.rfind(":")
    if i == -1 or authority.rfind("]") > i:
        return authority, None
    port_s = authority[i + 1 :]
    if not port_s.isdigit():
        return authority[:i], None
    return authority[:i], int(port_s)


def shadow_host(host: str) -> str:
    """Envoy's shadowAppendedHost: insert ``-shadow`` before the last ``:``
    unless a ``]`` follows it (IPv6 literal), else append it."""
    i = host.rfind(":")
    if i == -1 or host.rfind("]") > i:
        return host + "-shadow"
    return host[:i] + "-shadow" + host[i:]
