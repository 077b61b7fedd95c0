"""``mirrorsim demo --web``: istio.io's mirroring task in two steps, for a class watching
the live page (docs/teaching.md).

Starts httpbin v1 and v2 and the proxy (admin and live page on ``--admin``, 127.0.0.1:15000
unless taken), prints the page's URL, and sends a request every ``--interval`` seconds
while it walks the task's two steps, waiting for Enter before each change:

1. every request to v1 (the task's first VirtualService: no mirror);
2. the same route with ``mirror: v2`` and ``mirrorPercentage: 100`` (the bundled config):
   the dashed edge to v2 appears and every request gets a shadow copy.

The proxy's route table is swapped in place between the steps (requests in flight finish
on the table they started with).  Enter after step 2 (or Ctrl-C, or the end of stdin)
stops it.
"""

from __future__ import annotations

import asyncio
import dataclasses
import errno
import os
import sys
from pathlib import Path

import aiohttp

from simulator.backend import Backend
from simulator.config import load
from simulator.core.table import RouteTable
from simulator.core.translate import TranslateOptions, translate
from simulator.demo import DEMO_DIR, rebind_endpoints
from simulator.model import istio as m
from simulator.proxy.launch import RunningProxy, RunOptions, start_proxy
from simulator.proxy.tasks import TaskSet

STEP1_YAML = """\
  http:
  - route:
    - destination: {host: httpbin, subset: v1}
      weight: 100"""
STEP2_YAML = """\
  http:
  - route:
    - destination: {host: httpbin, subset: v1}
      weight: 100
    mirror: {host: httpbin, subset: v2}
    mirrorPercentage: {value: 100.0}"""


def without_mirrors(cfg: m.Config) -> m.Config:
    """The config with every VirtualService's mirrors removed (the task's first step)."""
    vss = []
    for vs in cfg.virtual_services:
        http = tuple(dataclasses.replace(h, mirror=None, mirror_percentage=None, mirror_percent=None, mirrors=())
                     for h in vs.http)
        vss.append(dataclasses.replace(vs, http=http))
    return dataclasses.replace(cfg, virtual_services=tuple(vss))


class EnterKey:
    """Lines typed on stdin, read without a thread (a blocked reader thread would keep the
    process from exiting); the end of stdin counts as Enter."""

    def __init__(self, loop: asyncio.AbstractEventLoop) -> None:
        self.loop = loop
        self.fd = sys.stdin.fileno() if sys.stdin is not None else -1
        self.lines = 0
        self.eof = self.fd < 0
        self.waiter: asyncio.Future[None] | None = None
        if not self.eof:
            try:
                loop.add_reader(self.fd, self._readable)
            except (OSError, ValueError, NotImplementedError):  # e.g. a regular file
                self.eof = True

    def _readable(self) -> None:
        try:
            data = os.read(self.fd, 4096)
        except OSError as exc:
            if exc.errno == errno.EAGAIN:
                return
            data = b""
        if not data:
            self.eof = True
            self.loop.remove_reader(self.fd)
        self.lines += data.count(b"\n")
        if self.waiter is not None and not self.waiter.done() and (self.lines or self.eof):
            self.waiter.set_result(None)

    async def wait(self) -> None:
        if not self.lines and not self.eof:
            self.waiter = self.loop.create_future()
            await self.waiter
        if self.lines:
            self.lines -= 1

    def close(self) -> None:
        if not self.eof:
            self.loop.remove_reader(self.fd)


async def _traffic(port: int, interval: float, sent: list[int]) -> None:
    """One request every ``interval`` seconds, as a client in the mesh would send them."""
    requests = [("GET", "/headers", None), ("GET", "/get?show_env=1", None),
                ("POST", "/anything", b'{"hello": "mirror"}'), ("GET", "/status/418", None)]
    async with aiohttp.ClientSession(auto_decompress=False) as session:
        i = 0
        while True:
            method, path, body = requests[i % len(requests)]
            i += 1
            try:
                async with session.request(method, f"http://127.0.0.1:{port}{path}",
                                           headers={"Host": "httpbin:8000"}, data=body) as resp:
                    await resp.read()
                sent[0] += 1
            except aiohttp.ClientError:
                pass
            await asyncio.sleep(interval)


async def _start(table: RouteTable, admin_host: str, admin_port: int) -> tuple[RunningProxy, str]:
    note = ""
    try:
        rp = await start_proxy(table, RunOptions(listen_port=0, admin_host=admin_host, admin_port=admin_port))
    except OSError as exc:
        if admin_port == 0:
            raise
        note = f" ({admin_host}:{admin_port} is taken: {exc.strerror or exc})"
        rp = await start_proxy(table, RunOptions(listen_port=0, admin_host=admin_host, admin_port=0))
    return rp, note


def _swap(rp: RunningProxy, table: RouteTable) -> None:
    for p in rp.proxies:
        p.table = table


async def run_web_demo(admin_host: str = "127.0.0.1", admin_port: int = 15000, interval: float = 1.0,
                       color: bool = True, config_dir: Path = DEMO_DIR) -> int:
    def st(s: str, code: str) -> str:
        return f"\033[{code}m{s}\033[0m" if color else s

    result = load([str(config_dir)])
    for d in result.diagnostics:
        print(d.format())
    if not result.ok:
        return 1
    loop = asyncio.get_running_loop()
    keys = EnterKey(loop)
    tasks = TaskSet(loop)
    async with Backend("httpbin-v1", log=None) as v1, Backend("httpbin-v2", log=None) as v2:
        cfg = rebind_endpoints(result.config, {18081: v1.port, 18082: v2.port})
        opts = TranslateOptions(shadow_suffix=True)
        step1, step2 = translate(without_mirrors(cfg), opts), translate(cfg, opts)
        rp, note = await _start(step1, admin_host, admin_port)
        try:
            host = f"[{admin_host}]" if ":" in admin_host else admin_host
            print(st("mirrorsim demo --web", "1") + ": istio.io's mirroring task, live")
            print(f"  open {st(f'http://{host}:{rp.admin_port}/', '1;36')} in a browser{note}")
            print(f"  httpbin-v1 on {v1.url}, httpbin-v2 on {v2.url}, proxy on http://127.0.0.1:{rp.port}; "
                  f"a request every {interval:g} s\n")
            sent = [0]
            tasks.spawn(_traffic(rp.port, interval, sent))
            print(st("Step 1/2", "1") + ": all traffic to v1 (VirtualService httpbin):")
            print(STEP1_YAML)
            print(st("  -> press Enter to add the mirror to v2", "33"), flush=True)
            await keys.wait()
            _swap(rp, step2)
            print(st("Step 2/2", "1") + ": mirror 100% of the traffic to v2 "
                  "(the bundled configs/examples/mirroring/httpbin.yaml):")
            print(STEP2_YAML)
            print("  every request now also goes to v2 as a copy with Host httpbin-shadow:8000; "
                  "the client still gets v1's answer")
            print(st("  -> press Enter to stop", "33"), flush=True)
            await keys.wait()
            await tasks.wait_closed()
            await rp.drain_shadows()
            print(f"stopped after {sent[0]} requests; v1 received {len(v1.requests)}, "
                  f"v2 received {len(v2.requests)} copies")
            return 0
        finally:
            keys.close()
            await tasks.wait_closed()
            await rp.close()
