"""The shapes of Envoy's ``/clusters`` (text and ``?format=json``) and ``/config_dump``
(``envoy.admin.v3.ConfigDump``) for mirrorsim's loaded table.

The config dump is built from ``simulator.envoy.export.bootstrap``, the translation
``mirrorsim envoy`` prints, so the two never disagree; its resources are listed as Envoy lists
a static bootstrap's (``static_clusters``, ``static_listeners``, ``static_route_configs``),
each ``last_updated`` at the loaded config's time, with the config version as ``version_info``.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

from simulator.core.table import RouteTable
from simulator.envoy.export import bootstrap

if TYPE_CHECKING:
    from simulator.proxy.reload import ConfigState
    from simulator.proxy.upstream import ClusterPool

_TYPES = "type.googleapis.com/envoy."
# Envoy's thresholds for a priority nobody configured (Istio sets only the default one)
_HIGH_PRIORITY_DEFAULTS = {"priority": "HIGH", "max_connections": 1024, "max_pending_requests": 1024,
                           "max_requests": 1024, "max_retries": 3}


def envoy_config_dump(table: RouteTable, state: ConfigState, *, listen: tuple[str, int],
                      admin: tuple[str, int]) -> dict[str, Any]:
    from simulator.proxy.reload import iso_time

    boot = bootstrap(table, listen=listen, admin=admin)
    when = iso_time(state.loaded_at)
    version = str(state.version)
    res = boot["static_resources"]
    listeners = res["listeners"]
    routes = []
    for lst in listeners:
        for chain in lst.get("filter_chains", ()):
            for f in chain.get("filters", ()):
                rc = f.get("typed_config", {}).get("route_config")
                if rc is not None:
                    routes.append(rc)
    return {"configs": [
        {"@type": _TYPES + "admin.v3.BootstrapConfigDump", "bootstrap": boot, "last_updated": when},
        {"@type": _TYPES + "admin.v3.ClustersConfigDump", "version_info": version,
         "static_clusters": [{"cluster": {"@type": _TYPES + "config.cluster.v3.Cluster", **c},
                              "last_updated": when} for c in res["clusters"]]},
        {"@type": _TYPES + "admin.v3.ListenersConfigDump", "version_info": version,
         "static_listeners": [{"listener": {"@type": _TYPES + "config.listener.v3.Listener", **lst},
                               "last_updated": when} for lst in listeners]},
        {"@type": _TYPES + "admin.v3.ScopedRoutesConfigDump"},
        {"@type": _TYPES + "admin.v3.RoutesConfigDump",
         "static_route_configs": [{"route_config": {"@type": _TYPES + "config.route.v3.RouteConfiguration",
                                                    **rc}, "last_updated": when} for rc in routes]},
        {"@type": _TYPES + "admin.v3.SecretsConfigDump"},
    ]}


def _socket_address(host_port: str) -> dict[str, Any]:
    host, _, port = host_port.rpartition(":")
    host = host[1:-1] if host.startswith("[") else host
    return {"socket_address": {"address": host, "port_value": int(port) if port.isdigit() else 0}}


def _stat(name: str, value: int, gauge: bool = False) -> dict[str, Any]:
    """One host stat as Envoy's JSON writes it (a zero value is left out)."""
    out: dict[str, Any] = {"type": "GAUGE"} if gauge else {}
    if value:
        out["value"] = str(value)
    out["name"] = name
    return out


def cluster_statuses(table: RouteTable, pools: Mapping[str, ClusterPool], now: float) -> list[dict[str, Any]]:
    """``/clusters?format=json``'s ``cluster_statuses``: a host that outlier detection ejected
    (and whose ejection has not run out at loop time ``now``) has ``failed_outlier_check``."""
    out = []
    for name, c in sorted(table.clusters.items()):
        pool = pools.get(name)
        hosts = []
        for ep in c.endpoints:
            active = pool.endpoint_active.get(ep, 0) if pool is not None else 0
            cx = sum(1 for conn in pool.connections if conn.endpoint == ep) if pool is not None else 0
            health: dict[str, Any] = {"eds_health_status": "HEALTHY"}
            if pool is not None and pool.ejected.get(ep, 0.0) > now:
                health["failed_outlier_check"] = True
            hosts.append({
                "address": _socket_address(ep.host_port),
                "stats": [_stat("cx_active", cx, True), _stat("rq_active", active, True)],
                "health_status": health,
                "weight": getattr(ep, "weight", 1) or 1,
                "locality": {},
            })
        cb = c.circuit_breakers
        out.append({
            "name": name,
            "host_statuses": hosts,
            "circuit_breakers": {"thresholds": [
                {"max_connections": cb.max_connections, "max_pending_requests": cb.max_pending_requests,
                 "max_requests": cb.max_requests, "max_retries": cb.max_retries},
                dict(_HIGH_PRIORITY_DEFAULTS),
            ]},
            "observability_name": name,
        })
    return out


def _flags(health: Mapping[str, Any]) -> str:
    return "/failed_outlier_check" if health.get("failed_outlier_check") else "healthy"


def clusters_text(statuses: list[dict[str, Any]]) -> str:
    """Envoy's text ``/clusters`` for the same statuses."""
    lines: list[str] = []
    for cs in statuses:
        name = cs["name"]
        lines.append(f"{name}::observability_name::{name}")
        default, high = cs["circuit_breakers"]["thresholds"]
        for prio, t in (("default_priority", default), ("high_priority", high)):
            for k in ("max_connections", "max_pending_requests", "max_requests", "max_retries"):
                lines.append(f"{name}::{prio}::{k}::{t[k]}")
        lines.append(f"{name}::added_via_api::false")
        for h in cs["host_statuses"]:
            sa = h["address"]["socket_address"]
            addr = f"{sa['address']}:{sa['port_value']}"
            for st in h["stats"]:
                lines.append(f"{name}::{addr}::{st['name']}::{st.get('value', '0')}")
            lines.append(f"{name}::{addr}::health_flags::{_flags(h['health_status'])}")
            lines.append(f"{name}::{addr}::weight::{h['weight']}")
    return "\n".join(lines) + "\n" if lines else ""
