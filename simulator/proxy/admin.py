"""The admin surface (aiohttp), like Envoy's admin port: /stats, /ready, /clusters,
/config_dump, /server_info."""

from __future__ import annotations

import ipaddress
import json
import time

from aiohttp import web

from simulator.build import build_info
from simulator.core.table import RedirectAction, RouteAction
from simulator.proxy.live.app import add_live_routes
from simulator.proxy.server import Proxy

PROXY_KEY = web.AppKey("proxy", Proxy)


def _proxy(request: web.Request) -> Proxy:
    return request.app[PROXY_KEY]


def proxy_stats(proxy: Proxy) -> dict[str, int]:
    """Every counter of one proxy process, with the shadow dispatcher's gauges."""
    snap = proxy.stats.snapshot()
    if proxy.shadows is not None:
        snap["mirrorsim.shadow_inflight"] = proxy.shadows.inflight
        snap["mirrorsim.shadow_inflight_bytes"] = proxy.shadows.inflight_bytes
    return snap


def stats_response(request: web.Request, snap: dict[str, int]) -> web.Response:
    """Envoy's /stats: ``name: value`` lines, ``?filter=substring``, ``?format=json``."""
    snap.setdefault("mirrorsim.shadow_dropped", 0)
    snap = dict(sorted(snap.items()))
    flt = request.query.get("filter")
    if flt:
        snap = {k: v for k, v in snap.items() if flt in k}
    if request.query.get("format") == "json":
        return web.json_response({"stats": [{"name": k, "value": v} for k, v in snap.items()]})
    return web.Response(text="".join(f"{k}: {v}\n" for k, v in snap.items()))


async def stats(request: web.Request) -> web.Response:
    return stats_response(request, proxy_stats(_proxy(request)))


def ready_response(state: str) -> web.Response:
    """Envoy's /ready: the server state's name and a newline, 200 when it is LIVE, else 503
    (mirrorsim says DRAINING while it drains, INITIALIZING while a worker is starting or
    restarting: docs/operations.md)."""
    return web.Response(text=state + "\n", status=200 if state == "LIVE" else 503)


def server_state(proxy: Proxy) -> str:
    return "DRAINING" if proxy.draining else "LIVE"


async def ready(request: web.Request) -> web.Response:
    return ready_response(server_state(_proxy(request)))


async def clusters(request: web.Request) -> web.Response:
    proxy = _proxy(request)
    lines = []
    for name, c in sorted(proxy.table.clusters.items()):
        cb = c.circuit_breakers
        lines.append(f"{name}::default_priority::max_connections::{cb.max_connections}")
        lines.append(f"{name}::default_priority::max_pending_requests::{cb.max_pending_requests}")
        lines.append(f"{name}::default_priority::max_requests::{cb.max_requests}")
        lines.append(f"{name}::default_priority::max_retries::{cb.max_retries}")
        for ep in c.endpoints:
            active = proxy.pools[name].endpoint_active.get(ep, 0) if name in proxy.pools else 0
            lines.append(f"{name}::{ep.host_port}::rq_active::{active}")
            lines.append(f"{name}::{ep.host_port}::health_flags::healthy")
    return web.Response(text="\n".join(lines) + "\n")


async def config_dump(request: web.Request) -> web.Response:
    proxy = _proxy(request)
    routes = []
    for port, rc in sorted(proxy.table.route_configs.items()):
        vhosts = []
        for vh in rc.virtual_hosts:
            rs = []
            for r in vh.routes:
                a = r.action
                entry: dict[str, object] = {"name": r.name, "origin": r.origin,
                                            "source": f"{r.file}:{r.line}" if r.file else "",
                                            "match": r.match.path.describe()}
                if isinstance(a, RouteAction):
                    entry["cluster"] = a.cluster or [
                        {"name": w.name, "weight": w.weight} for w in a.weighted_clusters]
                    entry["mirrors"] = [{"cluster": m.cluster, "percent": m.percent}
                                        for m in a.mirror_policies]
                    entry["timeout"] = a.timeout
                elif isinstance(a, RedirectAction):
                    entry["redirect"] = a.response_code
                else:
                    entry["direct_response"] = a.status
                if r.cors is not None:
                    c = r.cors
                    entry["cors"] = {"allow_origins": [m.describe() for m in c.allow_origins],
                                     "allow_methods": c.allow_methods, "allow_headers": c.allow_headers,
                                     "expose_headers": c.expose_headers, "max_age": c.max_age,
                                     "allow_credentials": c.allow_credentials,
                                     "forward_not_matching_preflights": c.forward_not_matching_preflights}
                rs.append(entry)
            vhosts.append({"name": vh.name, "domains": list(vh.domains), "routes": rs})
        routes.append({"name": str(port), "virtual_hosts": vhosts})
    cl = [{"name": c.name, "endpoints": [e.host_port for e in c.endpoints], "lb_policy": c.lb_policy}
          for c in proxy.table.clusters.values()]
    return web.json_response({"route_configs": routes, "clusters": cl},
                             dumps=lambda o: json.dumps(o, indent=2))


def build_admin_app(proxy: Proxy, started: float | None = None) -> web.Application:
    app = web.Application()
    app[PROXY_KEY] = proxy
    t0 = started or time.time()
    build = build_info()  # "compiled (mypyc)" or "pure Python ..."

    async def server_info(request: web.Request) -> web.Response:
        return web.json_response({"state": server_state(proxy), "uptime_seconds": int(time.time() - t0),
                                  "envoy_semantics": "1.40", "build": build})

    app.router.add_get("/stats", stats)
    app.router.add_get("/ready", ready)
    app.router.add_get("/clusters", clusters)
    app.router.add_get("/config_dump", config_dump)
    app.router.add_get("/server_info", server_info)
    add_live_routes(app, proxy.tap, lambda: proxy.table)  # the live page at / (simulator/proxy/live/)
    return app


def exposure_warning(host: str, port: int) -> str | None:
    """The warning ``mirrorsim run`` prints when the admin address is reachable from
    other machines (not loopback), or None."""
    try:
        loopback = ipaddress.ip_address(host.split("%", 1)[0]).is_loopback
    except ValueError:
        loopback = host.lower() in ("localhost", "localhost.")
    if loopback:
        return None
    where = f"[{host}]:{port}" if ":" in host else f"{host}:{port}"
    everywhere = " (every interface)" if host in ("0.0.0.0", "::", "") else ""
    return (f"mirrorsim: warning: the admin interface listens on {where}{everywhere}, not a loopback "
            f"address: anyone who can reach it can read /config_dump (every route, cluster and "
            f"endpoint of the configuration), /clusters, /stats and /server_info, without "
            f"authentication. Use --admin 127.0.0.1:{port} to keep it on this machine.")
