"""The admin surface (aiohttp), like Envoy's admin port: /stats, /stats/prometheus, /ready,
/clusters, /config_dump, /server_info, /reset_counters (docs/admin.md)."""

from __future__ import annotations

import ipaddress
import json
import time
from typing import Any

from aiohttp import web

from simulator.build import build_info
from simulator.core.envoy_config import RedirectAction, RouteAction
from simulator.proxy.diff import diffs_view
from simulator.proxy.envoy_admin import cluster_statuses, clusters_text, envoy_config_dump
from simulator.proxy.live.app import add_live_routes
from simulator.proxy.prometheus import FilterError, prometheus_text, select
from simulator.proxy.reload import OK_STAT, REJECTED_STAT, ConfigSource, ConfigState
from simulator.proxy.server import Proxy

PROXY_KEY = web.AppKey("proxy", Proxy)
STATE_KEY = web.AppKey("config_state", ConfigState)
LISTEN_KEY = web.AppKey("listen", tuple)


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
    """Envoy's /stats: ``name: value`` lines, ``?filter=REGEX`` (RE2, partial match),
    ``?usedonly``, ``?format=json``; ``/stats/prometheus`` takes the same filters."""
    snap.setdefault("mirrorsim.shadow_dropped", 0)
    snap.setdefault(OK_STAT, 0)  # before the first reload too (scrapers want the series)
    snap.setdefault(REJECTED_STAT, 0)
    try:
        snap = select(dict(sorted(snap.items())), request.query)
    except FilterError as exc:
        return web.Response(status=400, text=str(exc))
    if request.path.endswith("/prometheus"):
        return web.Response(text=prometheus_text(snap), content_type="text/plain")
    if request.query.get("format") == "json":
        return web.json_response({"stats": [{"name": k, "value": v} for k, v in snap.items()]})
    return web.Response(text="".join(f"{k}: {v}\n" for k, v in snap.items()))


async def stats(request: web.Request) -> web.Response:
    return stats_response(request, proxy_stats(_proxy(request)))


def post_only(request: web.Request) -> web.Response | None:
    """Envoy's admin refuses a GET on an endpoint that changes state."""
    if request.method != "POST":
        return web.Response(status=405, text="This endpoint requires POST\n")
    return None


async def reset_counters(request: web.Request) -> web.Response:
    refused = post_only(request)
    if refused is not None:
        return refused
    _proxy(request).stats.reset_counters()
    return web.Response(text="OK\n")


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
    """Envoy's /clusters (text, or ``?format=json``): circuit breakers and each host with
    its active requests and health flags (``/failed_outlier_check`` while ejected)."""
    proxy = _proxy(request)
    statuses = cluster_statuses(proxy.table, proxy.pools, proxy.loop.time())
    if request.query.get("format") == "json":
        return web.json_response({"cluster_statuses": statuses}, dumps=_indented)
    return web.Response(text=clusters_text(statuses))


async def config_dump(request: web.Request) -> web.Response:
    """Envoy's ConfigDump of the loaded table (the translation ``mirrorsim envoy`` prints);
    ``?format=mirrorsim``: mirrorsim's own view, each route with its FILE:LINE."""
    proxy = _proxy(request)
    if request.query.get("format") != "mirrorsim":
        state = request.app[STATE_KEY]
        host, port = request.app[LISTEN_KEY]
        dump = envoy_config_dump(proxy.table, state, listen=(host, port),
                                 admin=_admin_address(request))
        return web.json_response(dump, dumps=_indented)
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
    return web.json_response({"route_configs": routes, "clusters": cl}, dumps=_indented)


def build_admin_app(proxy: Proxy, started: float | None = None, source: ConfigSource | None = None,
                    listen: tuple[str, int] = ("127.0.0.1", 15001)) -> web.Application:
    app = web.Application()
    app[PROXY_KEY] = proxy
    t0 = started or time.time()
    app[STATE_KEY] = state = source.state if source is not None else ConfigState(loaded_at=t0)
    app[LISTEN_KEY] = listen
    build = build_info()  # "compiled (mypyc)" or "pure Python ..."

    async def server_info(request: web.Request) -> web.Response:
        return web.json_response({"state": server_state(proxy), "uptime_seconds": int(time.time() - t0),
                                  "envoy_semantics": "1.40", "build": build, "config": state.describe()})

    app.router.add_get("/stats", stats)
    app.router.add_get("/stats/prometheus", stats)
    app.router.add_route("*", "/reset_counters", reset_counters)
    app.router.add_get("/ready", ready)
    app.router.add_get("/clusters", clusters)
    app.router.add_get("/config_dump", config_dump)
    app.router.add_get("/server_info", server_info)

    async def diffs(request: web.Request) -> web.Response:  # --diff's mismatches (proxy/diff.py)
        return web.json_response(diffs_view(proxy.diff, request.query.get("n")))

    app.router.add_get("/diffs", diffs)
    # the live page at / (simulator/proxy/live/): redrawn when a reload swaps the table
    hub = add_live_routes(app, proxy.tap, lambda: proxy.table, lambda: f"v{state.version}")
    state.listeners.append(hub.config_attempt)
    if proxy.diff is not None:  # --diff: a mismatch badge on the copy's chip (docs/diff.md)
        proxy.diff.listeners.append(lambda rec: hub.publish({
            "kind": "annotate", "id": rec["x_request_id"], "cluster": rec["cluster"], "fields": {"diff": "mismatch"}}))
    return app


def add_supervisor_routes(app: web.Application, sup: Any) -> None:
    """``--workers``: the parent's /server_info (each worker's config version), /config_dump
    (the parent's table, which every worker loads) and /reset_counters (every worker's)."""
    t0 = time.time()
    build = build_info()

    async def server_info(request: web.Request) -> web.Response:
        snap = await sup.gather_stats()
        state: ConfigState = sup.reloader.state if sup.reloader is not None else ConfigState(loaded_at=t0)
        config = state.describe()
        config["workers"] = {str(s.index): snap.get(f"mirrorsim.worker.{s.index}.config_version")
                             for s in sup.slots}
        return web.json_response({"state": sup.state(), "uptime_seconds": int(time.time() - t0),
                                  "envoy_semantics": "1.40", "build": build, "config": config})

    async def config_dump(request: web.Request) -> web.Response:
        state = sup.reloader.state if sup.reloader is not None else ConfigState(loaded_at=t0)
        dump = envoy_config_dump(sup.table, state, listen=(sup.opts.listen_host, sup.port),
                                 admin=_admin_address(request))
        return web.json_response(dump, dumps=_indented)

    async def reset(request: web.Request) -> web.Response:
        refused = post_only(request)
        if refused is not None:
            return refused
        sup.counters.clear()
        for slot in sup.slots:
            if slot.state == "ready":
                slot.send(b"reset\n")
        return web.Response(text="OK\n")

    app.router.add_get("/server_info", server_info)
    app.router.add_get("/config_dump", config_dump)
    app.router.add_route("*", "/reset_counters", reset)


def _indented(o: object) -> str:
    return json.dumps(o, indent=2)


def _admin_address(request: web.Request) -> tuple[str, int]:
    sock = request.transport.get_extra_info("sockname") if request.transport is not None else None
    return (sock[0], sock[1]) if sock else ("127.0.0.1", 15000)


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
            f"endpoint of the configuration), /clusters, /stats and /server_info, and watch the "
            f"live page at / (every request's method, path and x-request-id as it happens), "
            f"without authentication. Use --admin 127.0.0.1:{port} to keep it on this machine.")
