"""The webhook's rules for a DestinationRule: traffic policy, load balancer, locality,
consistent hash, connection pool, outlier detection, client TLS."""

from __future__ import annotations

import math

from simulator.config.rules.fields import check_export_to, check_labels, check_port, deprecated
from simulator.config.schema import Ctx
from simulator.model import istio as m
from simulator.model.syntax import (
    check_wildcard_domain,
    is_dns1123_label,
)

# ------------------------------------------------------------------ DestinationRule


def check_destination_rule(ctx: Ctx, dr: m.DestinationRule) -> None:
    if dr.host:
        reason = check_wildcard_domain(dr.host)
        if reason:
            ctx.error("spec.host", f"spec.host: {reason}")
    names: dict[str, int] = {}
    for i, subset in enumerate(dr.subsets):
        p = f"spec.subsets[{i}]"
        if subset.name in names:
            ctx.error(
                f"{p}.name",
                f'{p}.name: duplicate subset names: "{subset.name}" (also spec.subsets[{names[subset.name]}])',
            )
        elif subset.name:
            names[subset.name] = i
        if subset.name and not is_dns1123_label(subset.name):
            ctx.error(
                f"{p}.name",
                f'{p}.name: subset name "{subset.name}" is invalid (must be a DNS-1123 label)',
            )
        check_labels(ctx, subset.labels, f"{p}.labels")
    check_export_to(ctx, dr.export_to, "spec.exportTo")
    if dr.workload_selector is not None:
        for key, value in dr.workload_selector.items():
            p = f"spec.workloadSelector.matchLabels.{key}"
            if not key or "*" in key or "*" in value:
                ctx.error(p, f"{p}: wildcard or empty label not allowed in workloadSelector")
        if dr.export_to and set(dr.export_to) - {".", ctx.namespace}:
            ctx.error(
                "spec.exportTo",
                "spec.exportTo: destination rule with workload selector cannot have exportTo beyond current namespace",
            )


def check_client_tls(ctx: Ctx, tls: dict[str, object], path: str) -> None:
    """``ValidateTLS`` for DestinationRule client TLS settings."""
    mode = tls.get("mode")
    if tls.get("insecureSkipVerify") is True:
        if mode == "SIMPLE" and (tls.get("caCertificates") or tls.get("credentialName") or "subjectAltNames" in tls):
            ctx.error(
                f"{path}.insecureSkipVerify",
                f"{path}: cannot specify caCertificates or credentialName or "
                "subjectAltNames when insecureSkipVerify is set true",
            )
        if mode == "MUTUAL" and (tls.get("caCertificates") or "subjectAltNames" in tls):
            ctx.error(
                f"{path}.insecureSkipVerify",
                f"{path}: cannot specify caCertificates or subjectAltNames when insecureSkipVerify is set true",
            )
    if mode in ("SIMPLE", "MUTUAL") and tls.get("credentialName"):
        if any(tls.get(k) for k in ("clientCertificate", "caCertificates", "privateKey", "caCrl")):
            ctx.error(
                f"{path}.credentialName",
                f"{path}: cannot specify client certificates or CA certificate or CA CRL if credentialName is set",
            )
        return
    if mode == "MUTUAL":
        for key, what in (("clientCertificate", "client certificate"), ("privateKey", "private key")):
            if not tls.get(key):
                ctx.error(path, f"{path}: {what} ({key}) required for mutual tls (or set credentialName)")


def check_traffic_policy(ctx: Ctx, tp: m.TrafficPolicy, path: str) -> None:
    keys = (
        "loadBalancer",
        "connectionPool",
        "outlierDetection",
        "tls",
        "portLevelSettings",
        "tunnel",
        "proxyProtocol",
        "retryBudget",
    )
    if not any(ctx.has(f"{path}.{k}") for k in keys):
        ctx.error(path, f"{path}: traffic policy must have at least one field")
    if ctx.has(f"{path}.tunnel") and ctx.has(f"{path}.proxyProtocol"):
        ctx.error(f"{path}.tunnel", f"{path}: tunnel and proxyProtocol must not be set together")
    _check_lb(ctx, tp.load_balancer, tp.outlier_detection, f"{path}.loadBalancer")
    for i, pl in enumerate(tp.port_level_settings):
        p = f"{path}.portLevelSettings[{i}]"
        if pl.port is None:
            ctx.error(p, f"{p}: portTrafficPolicy must have valid port")
        else:
            check_port(ctx, pl.port, f"{p}.port.number")
        if pl.load_balancer is None and pl.connection_pool is None and pl.outlier_detection is None and pl.tls is None:
            ctx.error(p, f"{p}: port traffic policy must have at least one field")
        _check_lb(ctx, pl.load_balancer, pl.outlier_detection, f"{p}.loadBalancer")


def _check_lb(ctx: Ctx, lb: m.LoadBalancerSettings | None, od: m.OutlierDetection | None, path: str) -> None:
    if lb is None:
        return
    if lb.simple == "LEAST_CONN":
        deprecated(ctx, f"{path}.simple", "LEAST_CONN", "LEAST_REQUEST")
    loc = lb.locality_lb_setting
    if loc:
        _check_locality(ctx, loc, od, f"{path}.localityLbSetting")
    warm = lb.warmup
    if warm:
        pct = warm.get("minimumPercent")
        if isinstance(pct, int | float) and pct > 100:
            ctx.error(
                f"{path}.warmup.minimumPercent",
                f"{path}.warmup.minimumPercent: minimumPercent value should be less than or equal to 100",
            )
        aggr = warm.get("aggression")
        if isinstance(aggr, int | float) and aggr <= 0:
            ctx.error(
                f"{path}.warmup.aggression",
                f"{path}.warmup.aggression: aggression should be greater than 0",
            )


def _check_locality(ctx: Ctx, loc: dict[str, object], od: m.OutlierDetection | None, path: str) -> None:
    distribute, failover = loc.get("distribute") or [], loc.get("failover") or []
    if distribute and failover:
        ctx.error(path, f"{path}: can not simultaneously specify 'distribute' and 'failover'")
        return
    for i, d in enumerate(distribute if isinstance(distribute, list) else []):
        to = d.get("to") if isinstance(d, dict) else None
        if not isinstance(to, dict):
            continue
        weights = [w for w in to.values() if isinstance(w, int)]
        p = f"{path}.distribute[{i}].to"
        if any(not 1 <= w <= 100 for w in weights):
            ctx.error(p, f"{p}: locality weight must be in range [1, 100]")
        elif sum(weights) != 100:
            ctx.error(p, f"{p}: total locality weight {sum(weights)} != 100")
    if (failover or loc.get("failoverPriority")) and od is None:
        ctx.warn(path, f"{path}: outlier detection policy must be provided for failover")
    for i, f in enumerate(failover if isinstance(failover, list) else []):
        if not isinstance(f, dict):
            continue
        src, dst = str(f.get("from", "")), str(f.get("to", ""))
        p = f"{path}.failover[{i}]"
        if src == dst:
            ctx.error(p, f"{p}: locality lb failover settings must specify different regions")
        if "/" in src or "/" in dst:
            ctx.error(p, f"{p}: locality lb failover only specify region")
        if "*" in src or "*" in dst:
            ctx.error(p, f"{p}: locality lb failover region should not contain '*' wildcard")


def check_consistent_hash(ctx: Ctx, ch: m.ConsistentHashLB, path: str) -> None:
    cookie = ch.http_cookie
    if cookie is not None and not cookie.get("name"):
        ctx.error(f"{path}.httpCookie", f"{path}.httpCookie: name required for HttpCookie")
    if ch.minimum_ring_size:
        deprecated(ctx, f"{path}.minimumRingSize", "minimumRingSize", "ringHash.minimumRingSize")
        if ctx.has(f"{path}.ringHash") or ctx.has(f"{path}.maglev"):
            ctx.error(
                f"{path}.minimumRingSize",
                f"{path}: only one of minimumRingSize or maglev/ringHash can be specified",
            )


def check_maglev(ctx: Ctx, maglev: dict[str, object], path: str) -> None:
    size = maglev.get("tableSize")
    if size is None or isinstance(size, int) and not isinstance(size, bool):
        p = f"{path}.tableSize"
        if not size:
            ctx.error(p if size is not None else path, f"{p}: tableSize must be set for maglev")
        elif size >= 5000011:  # type: ignore[operator]
            ctx.error(p, f"{p}: tableSize must be less than 5000011 for maglev")
        elif not _is_prime(size):  # type: ignore[arg-type]
            ctx.error(p, f"{p}: tableSize must be a prime number for maglev")


def _is_prime(x: int) -> bool:
    if 0 < x < 4:
        return True
    if x % 2 == 0:
        return False
    return all(x % f for f in range(3, math.isqrt(x) + 1, 2))


def check_connection_pool(ctx: Ctx, cp: m.ConnectionPoolSettings, path: str) -> None:
    if cp.http is None and cp.tcp is None:
        ctx.error(path, f"{path}: connection pool must have at least one field (http or tcp)")
    if cp.http is not None:
        h = cp.http
        for name, value in (
            ("http1MaxPendingRequests", h.http1_max_pending_requests),
            ("http2MaxRequests", h.http2_max_requests),
            ("maxRequestsPerConnection", h.max_requests_per_connection),
            ("maxRetries", h.max_retries),
            ("maxConcurrentStreams", h.max_concurrent_streams),
        ):
            if value is not None and value < 0:
                ctx.error(
                    f"{path}.http.{name}",
                    f"{path}.http.{name}: must be non-negative (it is {value})",
                )
        if h.h2_upgrade_policy == "UPGRADE" and h.use_client_protocol:
            ctx.error(
                f"{path}.http.useClientProtocol",
                f"{path}.http.useClientProtocol: use client protocol must not be true when h2UpgradePolicy is UPGRADE",
            )
    if cp.tcp is not None and cp.tcp.max_connections is not None and cp.tcp.max_connections < 0:
        ctx.error(
            f"{path}.tcp.maxConnections",
            f"{path}.tcp.maxConnections: max connections must be non-negative",
        )


def check_outlier_detection(ctx: Ctx, od: m.OutlierDetection, path: str) -> None:
    if od.consecutive_errors:
        ctx.warn(
            f"{path}.consecutiveErrors",
            f"Deprecated: {path}.consecutiveErrors: outlier detection consecutive errors is "
            "deprecated, "
            "use consecutiveGatewayErrors or consecutive5xxErrors instead",
            "IST0002",
        )
    if not od.split_external_local_origin_errors and (od.consecutive_local_origin_failures or 0) > 0:
        ctx.error(
            f"{path}.consecutiveLocalOriginFailures",
            f"{path}.consecutiveLocalOriginFailures: outlier detection consecutive local origin "
            "failures is "
            "specified, but split external local origin errors is set to false",
        )
    for name, value in (
        ("maxEjectionPercent", od.max_ejection_percent),
        ("minHealthPercent", od.min_health_percent),
    ):
        if value is not None and not 0 <= value <= 100:
            ctx.error(f"{path}.{name}", f"{path}.{name}: percentage {value} is not in range 0..100")
