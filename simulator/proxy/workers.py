"""``mirrorsim run --workers N``: N processes serving the same ports.

The parent loads the config, binds one listening socket per worker and port with
SO_REUSEPORT (so the kernel spreads connections over the workers), forks the
workers, and serves the admin surface itself.  ``/stats`` there adds up every
worker's counters, fetched over a socketpair per worker, so the numbers mean
what they mean with one process.  Each worker has its own connection pools,
circuit breakers, shadow cap and random generator (seeded ``seed + i``), as each
Envoy worker thread has its own pools and circuit-breaker counters are shared;
see docs/performance.md.
"""

from __future__ import annotations

import asyncio
import json
import os
import signal
import socket
import sys
from collections.abc import Callable, Sequence
from dataclasses import replace

from aiohttp import web

from simulator.core.table import RouteTable
from simulator.proxy.admin import proxy_stats, ready, stats_response
from simulator.proxy.runner import GatewayListener, RunOptions, freeze_startup_objects, start_proxy


def bind_reuseport(host: str, port: int, n: int) -> list[socket.socket]:
    """``n`` listening sockets on one address; port 0 picks a free port for all."""
    socks: list[socket.socket] = []
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    for _ in range(n):
        s = socket.socket(family, socket.SOCK_STREAM)
        s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEPORT, 1)
        s.bind((host, port))
        port = s.getsockname()[1]
        s.listen(1024)
        s.setblocking(False)
        socks.append(s)
    return socks


def _worker(index: int, table: RouteTable, opts: RunOptions, gateways: Sequence[GatewayListener],
            control: socket.socket, loop_factory: Callable[[], asyncio.AbstractEventLoop]) -> None:
    loop = loop_factory()
    asyncio.set_event_loop(loop)

    async def main() -> None:
        rp = await start_proxy(table, opts, gateways)
        freeze_startup_objects()
        stop = asyncio.Event()
        for sig in (signal.SIGINT, signal.SIGTERM):
            loop.add_signal_handler(sig, stop.set)
        control.setblocking(True)

        def on_request() -> None:
            try:
                data = control.recv(64)
            except OSError:
                data = b""
            if not data:
                loop.remove_reader(control.fileno())
                stop.set()
                return
            snap = proxy_stats(rp.proxy)
            control.sendall(json.dumps(snap).encode() + b"\n")

        loop.add_reader(control.fileno(), on_request)
        await stop.wait()
        await rp.close()

    try:
        loop.run_until_complete(main())
    finally:
        loop.close()
        os._exit(0)


def run_workers(n: int, table: RouteTable, opts: RunOptions, gateways: Sequence[GatewayListener],
                loop_factory: Callable[[], asyncio.AbstractEventLoop]) -> int:
    """Fork ``n`` workers and serve the aggregated admin surface; returns at SIGINT/SIGTERM."""
    data_socks = bind_reuseport(opts.listen_host, opts.listen_port, n)
    gw_socks = [bind_reuseport(gw.host, gw.port, n) for gw in gateways]
    port = data_socks[0].getsockname()[1]
    children: list[tuple[int, socket.socket]] = []
    for i in range(n):
        parent_end, child_end = socket.socketpair()
        pid = os.fork()
        if pid == 0:  # worker
            parent_end.close()
            wopts = replace(opts, sock=data_socks[i], admin_port=None,
                            seed=None if opts.seed is None else opts.seed + i)
            wgws = [replace(gw, sock=gw_socks[k][i]) for k, gw in enumerate(gateways)]
            _worker(i, table, wopts, wgws, child_end, loop_factory)
        child_end.close()
        children.append((pid, parent_end))
    for s in data_socks + [s for group in gw_socks for s in group]:
        s.close()

    loop = loop_factory()
    asyncio.set_event_loop(loop)

    async def gather_stats() -> dict[str, int]:
        total: dict[str, int] = {}
        for _, ctl in children:
            reader, writer = await asyncio.open_connection(sock=ctl.dup())
            writer.write(b"stats\n")
            await writer.drain()
            line = await reader.readline()
            writer.close()
            for k, v in json.loads(line or b"{}").items():
                total[k] = total.get(k, 0) + v
        return dict(sorted(total.items()))

    async def stats_handler(request: web.Request) -> web.Response:
        return stats_response(request, await gather_stats())

    async def main() -> None:
        runner = None
        if opts.admin_port is not None:
            app = web.Application()
            app.router.add_get("/stats", stats_handler)
            app.router.add_get("/ready", ready)
            runner = web.AppRunner(app, access_log=None)
            await runner.setup()
            site = web.TCPSite(runner, opts.admin_host, opts.admin_port)
            await site.start()
            aport = site._server.sockets[0].getsockname()[1]  # type: ignore[union-attr]
            admin = f" (admin http://{opts.admin_host}:{aport})"
        else:
            admin = ""
        print(f"mirrorsim listening on http://{opts.listen_host}:{port} with {n} workers{admin}",
              file=sys.stderr, flush=True)
        stop = asyncio.Event()
        for sig in (signal.SIGINT, signal.SIGTERM):
            loop.add_signal_handler(sig, stop.set)
        await stop.wait()
        if runner is not None:
            await runner.cleanup()

    try:
        loop.run_until_complete(main())
    finally:
        for pid, _ in children:
            try:
                os.kill(pid, signal.SIGTERM)
            except ProcessLookupError:
                pass
        for pid, _ in children:
            os.waitpid(pid, 0)
        loop.close()
    return 0
