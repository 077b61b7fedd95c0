"""Field rules shared by several Istio resources (the webhook's pkg/config/validation):
the enumerations Istio accepts and the checks of one field (regex, port, labels, percentage,
``exportTo``)."""

from __future__ import annotations

from typing import Any

from simulator.config.schema import Ctx
from simulator.core.hosts import wildcard_matches
from simulator.model.syntax import (
    RE2_NOTE,
    check_label_key,
    check_label_value,
    check_re2,
    is_dns1123_label,
)

RETRY_ON_POLICIES = (
    "5xx",
    "gateway-error",
    "reset",
    "reset-before-request",
    "connect-failure",
    "retriable-4xx",
    "refused-stream",
    "retriable-status-codes",
    "retriable-headers",
    "envoy-ratelimited",
    "http3-post-connect-failure",
    "cancelled",
    "deadline-exceeded",
    "internal",
    "resource-exhausted",
    "unavailable",
)
# Go net/http StatusText: the codes it knows (a retryOn integer must be one).
HTTP_STATUS_CODES = frozenset(
    [100, 101, 102, 103, 200, 201, 202, 203, 204, 205, 206, 207, 208, 226]
    + [300, 301, 302, 303, 304, 305, 307, 308]
    + list(range(400, 419))
    + [421, 422, 423, 424, 425, 426, 428, 429, 431, 451]
    + [500, 501, 502, 503, 504, 505, 506, 507, 508, 510, 511]
)
CORS_METHODS = ("GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "CONNECT", "OPTIONS", "TRACE", "*")
PROTOCOLS = (
    "HTTP",
    "HTTPS",
    "GRPC",
    "GRPC-WEB",
    "HTTP2",
    "MONGO",
    "REDIS",
    "MYSQL",
    "TCP",
    "TLS",
    "UDP",
    "HTTP_PROXY",
)
HTTP_PROTOCOLS = ("HTTP", "HTTP2", "HTTP_PROXY", "GRPC", "GRPC-WEB")
TLS_PROTOCOLS = ("HTTPS", "TLS")
TRANSLATED_REDIRECT_CODES = (0, 301, 302, 303, 307, 308)
KB, MB = 1024, 1024 * 1024

# ------------------------------------------------------------------ helpers


def check_regex(ctx: Ctx, pattern: str, path: str) -> bool:
    """Report ``pattern`` at ``path`` unless RE2 (the engine Envoy and Istio use) accepts it."""
    reason = check_re2(pattern)
    if reason is None:
        return True
    ctx.error(path, f'{path}: invalid regex "{pattern}": {reason}; {RE2_NOTE}')
    return False


def as_list(value: object) -> list[Any]:
    """A raw (model-kept-as-dict) value as a list; anything else -> []."""
    return value if isinstance(value, list) else []


def check_port(ctx: Ctx, port: int | None, path: str) -> None:
    if port is not None and not 1 <= port <= 65535:
        ctx.error(path, f"{path}: port number {port} must be in the range 1..65535")


def check_labels(ctx: Ctx, labels: dict[str, str] | None, path: str) -> None:
    for key, value in (labels or {}).items():
        p = f"{path}.{key}"
        reason = check_label_key(key) or check_label_value(value)
        if reason:
            ctx.error(p, f"{p}: {reason}")


def check_percentage(ctx: Ctx, value: float | None, path: str) -> None:
    """``validatePercentage``: 0, or within [0.0001, 100]."""
    if value is None:
        return
    if value < 0 or value > 100 or 0 < value < 0.0001:
        ctx.error(path, f"{path}: percentage {value:g} is neither 0.0, nor in range [0.0001, 100.0]")


def protocol_of(name: str) -> str:
    """Istio ``protocol.Parse`` (case-insensitive); "" when unsupported."""
    upper = name.upper()
    return upper if upper in PROTOCOLS else ""


def deprecated(ctx: Ctx, path: str, what: str, instead: str) -> None:
    ctx.warn(path, f'Deprecated: {path}: "{what}" is deprecated, use "{instead}" instead', "IST0002")


def hosts_overlap(a: str, b: str) -> bool:
    """Istio host.Name.Matches: either covers the other (wildcard-aware)."""
    if a.startswith("*") and b.startswith("*"):
        return b[1:].endswith(a[1:]) if len(a) < len(b) else a[1:].endswith(b[1:])
    return wildcard_matches(a, b) or wildcard_matches(b, a)


def check_export_to(ctx: Ctx, export_to: tuple[str, ...], path: str, service_entry: bool = False) -> None:
    seen: set[str] = set()
    for i, entry in enumerate(export_to):
        p = f"{path}[{i}]"
        key = ctx.namespace if entry == "." else entry
        if key in seen:
            ctx.error(p, f"{p}: duplicate entries in exportTo for entry {entry}")
            continue
        seen.add(key)
        if entry in (".", "*") or (service_entry and entry == "~"):
            continue
        if not is_dns1123_label(entry):
            ctx.error(p, f'{p}: invalid exportTo value "{entry}" (a namespace, "." or "*")')
    if "*" in seen and len(export_to) > 1:
        ctx.error(
            path,
            f"{path}: cannot have both public (*) and non-public exportTo values for a resource",
        )
    if "~" in seen and len(export_to) > 1:
        ctx.error(path, f"{path}: cannot export service entry to no one (~) and someone")
