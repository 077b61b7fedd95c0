"""Launch the data plane: start and stop its listeners (the mesh listener and the gateway
servers) and its admin surface (``start_proxy``, ``RunningProxy``)."""

from __future__ import annotations

import asyncio
import fcntl
import functools
import gc
import socket
import struct
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

from aiohttp import web

from simulator.core.table import RouteTable
from simulator.proxy.accesslog import AccessLog, access_log_for
from simulator.proxy.admin import build_admin_app
from simulator.proxy.diff import DiffOptions, DiffRecorder
from simulator.proxy.downstream import DownstreamConnection
from simulator.proxy.limits import DEFAULT_MAX_BUFFERED_BYTES
from simulator.proxy.mirror import (
    DEFAULT_MAX_BYTES,
    DEFAULT_MAX_INFLIGHT,
    DEFAULT_SHADOW_TIMEOUT,
    ShadowDispatcher,
)
from simulator.proxy.server import Proxy, ProxyOptions
from simulator.proxy.stats import Stats


def envoy_local_address() -> str:
    """The first non-loopback IPv4 address of this machine, as Envoy's local_info
    address (appended to x-forwarded-for on shadow copies); 127.0.0.1 if none."""
    try:
        names = [n for _, n in socket.if_nameindex()]
    except OSError:
        return "127.0.0.1"
    for name in names:
        if name == "lo":
            continue
        s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        try:
            res = fcntl.ioctl(s.fileno(), 0x8915, struct.pack("256s", name[:15].encode()))
            addr = socket.inet_ntoa(res[20:24])
            if not addr.startswith("127."):
                return addr
        except OSError:
            continue
        finally:
            s.close()
    return "127.0.0.1"


@dataclass(slots=True)
class RunOptions:
    listen_host: str = "127.0.0.1"
    listen_port: int = 15001
    admin_host: str = "127.0.0.1"
    admin_port: int | None = 15000  # None = no admin listener
    seed: int | None = None
    access_log: AccessLog | None = None
    access_log_spec: str | None = None  # opened by start_proxy when access_log is None
    local_address: str | None = None
    max_shadow_inflight: int = DEFAULT_MAX_INFLIGHT
    max_shadow_bytes: int = DEFAULT_MAX_BYTES
    shadow_timeout: float = DEFAULT_SHADOW_TIMEOUT  # a copy's life on a route without timeout
    max_request_bytes: int = 64 * 1024 * 1024
    max_buffered_bytes: int = DEFAULT_MAX_BUFFERED_BYTES
    reuse_port: bool = False
    sock: socket.socket | None = None  # a pre-bound listening socket (--workers)
    config_source: Any = None  # reload.ConfigSource: SIGHUP / --watch re-read it (reload.py)
    watch: bool = False
    access_log_format: str = "envoy"  # envoy | istio | json (accesslog.py)
    diff: DiffOptions | None = None  # --diff: compare the copies' responses (proxy/diff.py)


@dataclass(slots=True)
class GatewayListener:
    """A Gateway server served on a local address (``--gateway``)."""

    name: str  # "ns/gateway:port", for messages
    table: RouteTable
    host: str = "127.0.0.1"
    port: int = 0
    sock: socket.socket | None = None  # a pre-bound listening socket (--workers)


def freeze_startup_objects() -> None:
    """The route table and everything loaded at start live as long as the process:
    move them out of the cyclic GC's generations, so collections under load stay
    short (a refused-mirror load showed 180 ms gen-2 pauses without this)."""
    gc.collect()
    gc.freeze()


class RunningProxy:
    """A started proxy: ``port`` and ``admin_port`` are the bound ports;
    ``gateway_ports`` maps each gateway listener's name to its bound port."""

    def __init__(self, proxy: Proxy, server: asyncio.AbstractServer,
                 admin: web.AppRunner | None, port: int, admin_port: int | None) -> None:
        self.proxy = proxy
        self.server = server
        self.admin = admin
        self.port = port
        self.admin_port = admin_port
        self.gateway_servers: list[asyncio.AbstractServer] = []
        self.gateway_ports: dict[str, int] = {}
        self.proxies: list[Proxy] = [proxy]  # this listener's and each gateway's
        self.draining = False

    @property
    def stats(self) -> Stats:
        return self.proxy.stats

    async def drain_shadows(self, timeout: float = 5.0) -> None:
        if self.proxy.shadows is not None:
            await self.proxy.shadows.drain(timeout)

    def begin_drain(self) -> None:
        """Start draining as Envoy does under Istio (drain strategy immediate): stop
        accepting connections; every response from now on says ``connection: close``,
        also those of requests in flight whose response has not started."""
        if self.draining:
            return
        self.draining = True
        for gs in self.gateway_servers:
            gs.close()
        self.server.close()
        for p in self.proxies:
            p.begin_drain()

    def in_flight(self) -> int:
        """Downstream requests in progress or queued, and shadow copies in flight."""
        n = sum(p.requests_in_flight() for p in self.proxies)
        shadows = self.proxy.shadows
        return n + (shadows.inflight if shadows is not None else 0)

    async def close(self) -> None:
        for gs in self.gateway_servers:
            gs.close()
        self.server.close()
        for p in self.proxies:
            p.close()
        await self.server.wait_closed()
        if self.admin is not None:
            await self.admin.cleanup()
        await asyncio.sleep(0)  # the closed connections' connection_lost: their access-log lines
        self.proxy.access_log.close()
        if self.proxy.diff is not None:
            self.proxy.diff.close()


def protocol_factory(proxy: Proxy) -> Callable[[], asyncio.BaseProtocol]:
    """What a listener of ``proxy`` makes for each accepted connection (a duck-typed
    asyncio protocol: downstream.py)."""
    return functools.partial(DownstreamConnection, proxy)  # type: ignore[return-value]


async def start_proxy(table: RouteTable, opts: RunOptions | None = None,
                      gateways: Sequence[GatewayListener] = ()) -> RunningProxy:
    opts = opts or RunOptions()
    loop = asyncio.get_running_loop()
    popts = ProxyOptions(
        local_address=opts.local_address or envoy_local_address(),
        seed=opts.seed,
        max_request_bytes=opts.max_request_bytes,
        max_buffered_bytes=opts.max_buffered_bytes,
    )
    access_log = opts.access_log
    if access_log is None:
        access_log = (access_log_for(opts.access_log_spec, loop, opts.access_log_format) if opts.access_log_spec
                      else AccessLog(None, loop))
    proxy = Proxy(table, access_log=access_log, options=popts,
                  loop=loop)
    proxy.shadows = ShadowDispatcher(proxy, proxy.stats, access_log, loop, popts.local_address, tap=proxy.tap,
                                     max_inflight=opts.max_shadow_inflight,
                                     max_bytes=opts.max_shadow_bytes,
                                     default_timeout=opts.shadow_timeout)
    if opts.diff is not None:
        proxy.diff = DiffRecorder(proxy.stats, loop, opts.diff)
    if opts.sock is not None:
        server = await loop.create_server(protocol_factory(proxy), sock=opts.sock, backlog=1024)
    else:
        server = await loop.create_server(
            protocol_factory(proxy), opts.listen_host, opts.listen_port,
            reuse_port=opts.reuse_port or None, backlog=1024,
        )
    port = server.sockets[0].getsockname()[1]
    admin = None
    admin_port = None
    if opts.admin_port is not None:
        app = build_admin_app(proxy, time.time(), opts.config_source, (opts.listen_host, port))
        admin = web.AppRunner(app, access_log=None)
        await admin.setup()
        site = web.TCPSite(admin, opts.admin_host, opts.admin_port)
        await site.start()
        admin_port = site._server.sockets[0].getsockname()[1]  # type: ignore[union-attr]
    running = RunningProxy(proxy, server, admin, port, admin_port)
    for gw in gateways:
        listen_port = gw.sock.getsockname()[1] if gw.sock is not None else gw.port
        sibling = proxy.sibling(gw.table, f"outbound_0.0.0.0_{gw.table.listener_port or listen_port}")
        if gw.sock is not None:
            gs = await loop.create_server(protocol_factory(sibling), sock=gw.sock, backlog=1024)
        else:
            gs = await loop.create_server(protocol_factory(sibling), gw.host, gw.port,
                                          reuse_port=opts.reuse_port or None, backlog=1024)
        running.proxies.append(sibling)
        running.gateway_servers.append(gs)
        running.gateway_ports[gw.name] = gs.sockets[0].getsockname()[1]
    return running
