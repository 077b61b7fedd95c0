"""Python-level cost of one proxied request, without sockets.

Drives the real data-plane objects (DownstreamConnection, Stream, ClusterPool,
UpstreamConnection, ShadowDispatcher) through in-memory transports that answer
at once, so the figure is the interpreter's share of the per-request CPU, free
of kernel and network noise.

    python benchmarks/dataplane_micro.py [N] [--mirror ok|off|fast-fail|dropped] [--diff]

``--mirror`` picks what happens to the shadow copy: ``ok`` (default) answered at
once, ``off`` no mirror policy, ``fast-fail`` the mirror refused a connection a
moment ago (the refused-mirror path), ``dropped`` the in-flight cap is reached
(the slow-mirror path).  ``--diff`` turns on ``run --diff`` (docs/diff.md: the mirror's
answer equals the primary's, so every comparison is a match).  It measures the installed build (compiled by mypyc, see
``mirrorsim --version``); ``MIRRORSIM_PURE=1`` measures the pure-Python fallback.
"""

from __future__ import annotations

import asyncio
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from simulator.build import build_info  # noqa: E402
from simulator.config import load_text  # noqa: E402
from simulator.core.translate import translate  # noqa: E402
from simulator.proxy.accesslog import AccessLog  # noqa: E402
from simulator.proxy.downstream import DownstreamConnection  # noqa: E402
from simulator.proxy.mirror import ShadowDispatcher  # noqa: E402
from simulator.proxy.server import Proxy, ProxyOptions  # noqa: E402
from simulator.proxy.upstream import UpstreamConnection  # noqa: E402

RESPONSE = b"HTTP/1.1 200 OK\r\ncontent-length: 8\r\ncontent-type: text/plain\r\n\r\nv1 hello"
REQUEST = b"GET / HTTP/1.1\r\nHost: httpbin:8000\r\nUser-Agent: wrk\r\nAccept: */*\r\n\r\n"


class FakeTransport:
    def __init__(self, on_write=None) -> None:
        self.on_write = on_write
        self.out = 0

    def write(self, data: bytes) -> None:
        self.out += len(data)
        if self.on_write:
            self.on_write()

    def writelines(self, parts) -> None:
        for p in parts:
            self.write(p)

    def get_extra_info(self, name, default=None):
        return ("127.0.0.1", 5555) if name == "peername" else default

    def pause_reading(self) -> None: ...
    def resume_reading(self) -> None: ...
    def close(self) -> None: ...
    def abort(self) -> None: ...
    def is_closing(self) -> bool:
        return False


async def main(n: int, mode: str, diff: bool = False) -> None:
    loop = asyncio.get_running_loop()
    text = (Path(__file__).resolve().parents[1] / "configs/examples/mirroring/httpbin.yaml").read_text()
    if mode == "off":
        text = text.replace("    mirror:\n      host: httpbin\n      subset: v2\n", "").replace(
            "    mirrorPercentage:\n      value: 100.0\n", "")
    cfg = load_text(text, "httpbin.yaml").config
    table = translate(cfg)
    log = open("/dev/null", "w")
    proxy = Proxy(table, access_log=AccessLog(log, loop), options=ProxyOptions(seed=1), loop=loop)
    proxy.shadows = ShadowDispatcher(proxy, proxy.stats, proxy.access_log, loop, proxy.options.local_address,
                                     tap=proxy.tap,
                                     max_inflight=0 if mode == "dropped" else 1024)
    if diff:
        from simulator.proxy.diff import DiffRecorder

        proxy.diff = DiffRecorder(proxy.stats, loop)
    pending: list[UpstreamConnection] = []
    for name, cluster in table.clusters.items():
        if "|v" not in name:
            continue
        if mode == "fast-fail" and "|v2|" in name:
            proxy.pool(name).connect_failed_at[cluster.endpoints[0]] = loop.time() + 3600  # type: ignore[union-attr]
            continue
        pool = proxy.pool(name)
        ep = cluster.endpoints[0]
        conn = UpstreamConnection(pool, ep)
        conn.connection_made(FakeTransport(lambda c=conn: pending.append(c)))
        pool.connections.add(conn)
        conn.idle_since = loop.time()
        pool.idle[ep] = [conn]
    down = DownstreamConnection(proxy)
    down.connection_made(FakeTransport())
    t0 = time.perf_counter()
    c0 = time.process_time()
    for i in range(n):
        down.data_received(REQUEST)
        while pending:
            pending.pop().data_received(RESPONSE)
        if i & 63 == 63:  # let the loop run what was scheduled (--diff: the comparisons)
            await asyncio.sleep(0)
    c1 = time.process_time()
    t1 = time.perf_counter()
    access = proxy.access_log
    access.flush()
    snap = proxy.stats.snapshot()
    ok = snap.get("http.outbound_0.0.0.0_15001.downstream_rq_2xx", 0)
    assert ok == n, f"only {ok} of {n} requests answered 2xx: the benchmark is not measuring the proxy path"
    if diff:
        await asyncio.sleep(0)
        matched = sum(v for k, v in snap.items() if k.startswith("mirrorsim.diff.") and k.endswith(".match"))
        print(f"diff: {matched} matches; " + ", ".join(
            f"{k}: {v}" for k, v in proxy.stats.snapshot().items() if k.startswith("mirrorsim.diff.")))
    print(f"{n} requests, mirror {mode}{' --diff' if diff else ''}: {(c1 - c0) / n * 1e6:.1f} us CPU per request "
          f"({(t1 - t0) / n * 1e6:.1f} us wall), {build_info()}")


if __name__ == "__main__":
    try:
        import uvloop
        uvloop.install()
    except ImportError:
        pass
    import argparse

    ap = argparse.ArgumentParser()
    ap.add_argument("n", nargs="?", type=int, default=20000)
    ap.add_argument("--mirror", choices=("ok", "off", "fast-fail", "dropped"), default="ok")
    ap.add_argument("--diff", action="store_true", help="with run --diff (docs/diff.md)")
    a = ap.parse_args()
    asyncio.run(main(a.n, a.mirror, a.diff))
