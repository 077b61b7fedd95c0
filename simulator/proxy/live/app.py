"""The live page's routes on the admin app: ``/`` (the page), ``/live/static/NAME`` (its
script and style, served from the package: nothing from a CDN), ``/live/config`` (the
picture as JSON) and ``/live/events`` (server-sent events: ``config`` when the loaded
table changes, ``batch`` every tick with events and counts, ``lost`` when this page fell
behind)."""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from pathlib import Path
from typing import Final

from aiohttp import web

from simulator.core.table import RouteTable
from simulator.proxy.events import EventTap
from simulator.proxy.live import hub as hubmod
from simulator.proxy.live.hub import LiveHub, sse

STATIC_DIR: Final = Path(__file__).resolve().parent / "static"
STATIC: Final = {"live.js": "text/javascript", "live.css": "text/css", "index.html": "text/html"}
HUB_KEY: Final = web.AppKey("live_hub", LiveHub)


def _hub(request: web.Request) -> LiveHub:
    return request.app[HUB_KEY]


async def page(request: web.Request) -> web.Response:
    return _static_response("index.html")


async def static(request: web.Request) -> web.Response:
    name = request.match_info["name"]
    if name not in STATIC:
        raise web.HTTPNotFound()
    return _static_response(name)


def _static_response(name: str) -> web.Response:
    return web.Response(body=(STATIC_DIR / name).read_bytes(), content_type=STATIC[name],
                        charset="utf-8", headers={"Cache-Control": "no-cache"})


async def config(request: web.Request) -> web.Response:
    hub = _hub(request)
    hub.refresh_config()
    return web.json_response(hub.picture)


async def events(request: web.Request) -> web.StreamResponse:
    hub = _hub(request)
    w = hub.add_watcher()
    if w is None:
        return web.Response(status=503, text="too many live pages open\n")
    resp = web.StreamResponse(headers={"Content-Type": "text/event-stream", "Cache-Control": "no-cache",
                                       "X-Accel-Buffering": "no"})
    try:
        await resp.prepare(request)
        await asyncio.wait_for(resp.write(b"retry: 2000\n\n" + hub.config_message()), hubmod.WRITE_TIMEOUT)
        lost = 0
        while not w.closed:
            data = await w.next(hubmod.KEEPALIVE)
            if w.closed:
                break
            if data is None:
                data = b": keepalive\n\n"
            if w.lost != lost:
                lost = w.lost
                data = sse("lost", {"lost": lost}) + data
            await asyncio.wait_for(resp.write(data), hubmod.WRITE_TIMEOUT)
    except (ConnectionError, TimeoutError):
        pass  # the page went away, or stalled: its EventSource reconnects if it is still there
    finally:
        hub.remove_watcher(w)
    return resp


def add_live_routes(app: web.Application, tap: EventTap, table: Callable[[], RouteTable],
                    version: Callable[[], str | None] | None = None, workers: int = 1) -> LiveHub:
    """Serve the live page on ``app`` (the admin surface), watching ``tap``."""
    hub = LiveHub(tap, table, version, workers)
    app[HUB_KEY] = hub

    async def on_shutdown(app: web.Application) -> None:
        hub.close()

    app.on_shutdown.append(on_shutdown)
    app.router.add_get("/", page)
    app.router.add_get("/live/static/{name}", static)
    app.router.add_get("/live/config", config)
    app.router.add_get("/live/events", events)
    return hub
