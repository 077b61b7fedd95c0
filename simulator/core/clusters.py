"""Envoy clusters from the registry: one per service port (``outbound|P||host``) and one
per DestinationRule subset and port (``outbound|P|v1|host``), with the endpoints the
subset selects and the traffic policy that applies (Istio's MergeSubsetTrafficPolicy):
load balancer, circuit breakers, timeouts, outlier detection."""

from __future__ import annotations

from simulator.core.envoy_config import CircuitBreakers, Cluster, OutlierDetectionConfig, cluster_name
from simulator.core.registry import Registry
from simulator.model import istio as m
from simulator.model.names import UINT32_MAX

# --------------------------------------------------------------------------- clusters


def _port_level(tp: m.TrafficPolicy, port: int) -> m.TrafficPolicy | None:
    """The policy of ``tp``'s portLevelSettings entry for ``port``, if it has one."""
    for pl in tp.port_level_settings:
        if pl.port == port:
            return m.TrafficPolicy(
                load_balancer=pl.load_balancer, connection_pool=pl.connection_pool,
                outlier_detection=pl.outlier_detection, tls=pl.tls,
            )
    return None


def _port_policy(tp: m.TrafficPolicy | None, port: int) -> m.TrafficPolicy | None:
    if tp is None:
        return None
    return _port_level(tp, port) or tp


def effective_policy(
    dr: m.DestinationRule | None, subset: m.Subset | None, port: int
) -> m.TrafficPolicy | None:
    """Istio's MergeSubsetTrafficPolicy: port-level (or top-level) DR policy, whose
    whole components a subset policy (itself port-level resolved) replaces."""
    base = _port_policy(dr.traffic_policy if dr else None, port)
    if subset is None or subset.traffic_policy is None:
        return base
    sp = subset.traffic_policy
    port_level = _port_level(sp, port)
    if port_level is not None:
        return port_level
    if base is None:
        return sp
    return m.TrafficPolicy(
        load_balancer=sp.load_balancer or base.load_balancer,
        connection_pool=sp.connection_pool or base.connection_pool,
        outlier_detection=sp.outlier_detection or base.outlier_detection,
        tls=sp.tls or base.tls,
    )


def _cluster_settings(tp: m.TrafficPolicy | None) -> dict[str, object]:
    out: dict[str, object] = {}
    if tp is None:
        return out
    lb = tp.load_balancer
    if lb is not None:
        if lb.consistent_hash is not None:
            ch = lb.consistent_hash
            out["lb_policy"] = "RING_HASH"
            if ch.http_header_name:
                out["hash_policy"] = (("header", ch.http_header_name.lower()),)
            elif ch.http_cookie:
                out["hash_policy"] = (("cookie", str(ch.http_cookie.get("name", ""))),)
            elif ch.use_source_ip:
                out["hash_policy"] = (("source_ip", ""),)
            elif ch.http_query_parameter_name:
                out["hash_policy"] = (("query_parameter", ch.http_query_parameter_name),)
        elif lb.simple:
            simple = {"UNSPECIFIED": "LEAST_REQUEST", "LEAST_CONN": "LEAST_REQUEST"}.get(
                lb.simple, lb.simple)
            out["lb_policy"] = simple
    cp = tp.connection_pool
    if cp is not None:
        def lim(v: int | None) -> int:
            return UINT32_MAX if not v else v
        tcp, http = cp.tcp, cp.http
        out["circuit_breakers"] = CircuitBreakers(
            max_connections=lim(tcp.max_connections if tcp else None),
            max_pending_requests=lim(http.http1_max_pending_requests if http else None),
            max_requests=lim(http.http2_max_requests if http else None),
            max_retries=lim(http.max_retries if http else None),
        )
        if tcp and tcp.connect_timeout:
            out["connect_timeout"] = tcp.connect_timeout
        if http and http.max_requests_per_connection:
            out["max_requests_per_connection"] = http.max_requests_per_connection
        idle = (http.idle_timeout if http else None) or (tcp.idle_timeout if tcp else None)
        if idle is not None:
            out["idle_timeout"] = idle
    od = tp.outlier_detection
    if od is not None:
        c5 = od.consecutive_5xx_errors
        if c5 is None:
            c5 = od.consecutive_errors if od.consecutive_errors is not None else 5
        out["outlier_detection"] = OutlierDetectionConfig(
            consecutive_5xx=c5,
            consecutive_gateway_failure=od.consecutive_gateway_errors,
            interval=od.interval or 10.0,
            base_ejection_time=od.base_ejection_time or 30.0,
            max_ejection_percent=od.max_ejection_percent if od.max_ejection_percent else 10,
            min_health_percent=od.min_health_percent or 0,
        )
    return out


def build_clusters(reg: Registry) -> dict[str, Cluster]:
    clusters: dict[str, Cluster] = {}
    for svc in reg.services.values():
        dr = reg.destination_rule(svc.host)
        for port in svc.ports:
            name = cluster_name(port.number, "", svc.host)
            clusters[name] = Cluster(
                name=name, service=svc.host, port=port.number,
                endpoints=reg.endpoints(svc, port, None),
                **_cluster_settings(effective_policy(dr, None, port.number)),  # type: ignore[arg-type]
            )
            if dr is None:
                continue
            for subset in dr.subsets:
                name = cluster_name(port.number, subset.name, svc.host)
                clusters[name] = Cluster(
                    name=name, service=svc.host, port=port.number, subset=subset.name,
                    endpoints=reg.endpoints(svc, port, subset.labels),
                    **_cluster_settings(effective_policy(dr, subset, port.number)),  # type: ignore[arg-type]
                )
    return clusters
