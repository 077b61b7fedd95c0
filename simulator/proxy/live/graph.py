"""The picture of the loaded config the live page draws, from the core's RouteTable
(what the proxy serves, not a re-reading of the YAML): client -> proxy -> each route
(its rule's FILE:LINE and match) -> each service's subsets, with the primary routes'
weights and the mirror policies' percentages."""

from __future__ import annotations

import os
from typing import Any

from simulator.core.envoy_config import Cluster, DirectResponseAction, RedirectAction, RouteAction
from simulator.core.table import RouteTable

MAX_ROUTES = 40  # more are summarized as one line ("+N more routes")


def _subset_label(c: Cluster) -> str:
    return c.subset or "(all)"


def picture(table: RouteTable) -> tuple[dict[str, Any], dict[int, str]]:
    """The page's picture, and each route object's id in it (``id(route) -> "r3"``)."""
    routes: list[dict[str, Any]] = []
    ids: dict[int, str] = {}
    used: set[str] = set()
    hidden = 0
    for port, rc in sorted(table.route_configs.items()):
        for vh in rc.virtual_hosts:
            for r in vh.routes:
                rid = f"r{len(ids)}"
                ids[id(r)] = rid
                if len(routes) >= MAX_ROUTES:
                    hidden += 1
                    continue
                a = r.action
                entry: dict[str, Any] = {
                    "id": rid, "port": port, "hosts": [d for d in vh.domains if not d.endswith(".")][:3],
                    "name": r.name, "origin": r.origin,
                    "source": f"{os.path.basename(r.file)}:{r.line}" if r.file else "",
                    "source_path": f"{r.file}:{r.line}" if r.file else "",
                    "match": r.match.path.describe() + (" + headers" if r.match.headers else "")
                    + (" + query" if r.match.query_parameters else ""),
                    "primary": [], "mirrors": [],
                }
                if isinstance(a, RouteAction):
                    entry["kind"] = "route"
                    if a.cluster:
                        entry["primary"].append({"cluster": a.cluster, "weight": 100.0})
                        used.add(a.cluster)
                    else:
                        total = a.total_weight or sum(w.weight for w in a.weighted_clusters) or 1
                        for w in a.weighted_clusters:
                            entry["primary"].append({"cluster": w.name,
                                                     "weight": round(100.0 * w.weight / total, 2)})
                            used.add(w.name)
                    for m in a.mirror_policies:
                        entry["mirrors"].append({"cluster": m.cluster, "percent": round(m.percent, 4)})
                        used.add(m.cluster)
                elif isinstance(a, RedirectAction):
                    entry["kind"] = "redirect"
                    entry["status"] = a.response_code
                elif isinstance(a, DirectResponseAction):
                    entry["kind"] = "direct"
                    entry["status"] = a.status
                routes.append(entry)
    # each service with a cluster some route uses, with all its subsets (an unused subset
    # shows where traffic could go: v2 before the mirror is added)
    services: dict[tuple[str, int], dict[str, Any]] = {}
    used_services = {(c.service, c.port) for name, c in table.clusters.items() if name in used}
    for name, c in sorted(table.clusters.items()):
        key = (c.service, c.port)
        if key not in used_services or (not c.subset and name not in used):
            continue
        svc = services.get(key)
        if svc is None:
            svc = services[key] = {"host": c.service, "port": c.port,
                                   "short": c.service.split(".")[0], "subsets": []}
        svc["subsets"].append({"cluster": name, "subset": _subset_label(c),
                               "endpoints": [e.host_port for e in c.endpoints][:4],
                               "used": name in used})
    unknown = sorted(u for u in used if u not in table.clusters)
    pic: dict[str, Any] = {
        "routes": routes, "hidden_routes": hidden,
        "services": [services[k] for k in sorted(services)],
        "unknown_clusters": unknown,
        "shadow_suffix": table.shadow_suffix,
    }
    return pic, ids
