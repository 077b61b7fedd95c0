"""The live page's cost under load: the proxy's throughput with the page closed, then
with one page open (headless Chromium, or a plain SSE reader), then closed again.

    python3 benchmarks/live_page.py [--rounds 3] [--duration 10] [--reader chromium|sse] [--pure]

Reuses benchmarks/bench.py's pieces: nginx upstreams (primary and fast mirror), the
`mirror` scenario's config (1 host, 100 % mirror), `mirrorsim run` as a subprocess and
`wrk -t1 -c32`.  Each round starts a fresh mirrorsim and runs wrk three times: page closed,
page open (opened before wrk starts, closed after it ends), page closed.  Prints each run's
requests per second and, per round, open / mean(closed before, closed after); the target is
>= 0.80 (issue 14).  With --reader chromium the browser's own CPU use competes with the
proxy for the same cores, as on a teacher's laptop.  Everything is on 127.0.0.1; every run
has a fixed duration; every process started here is stopped by its pid.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import os
import statistics
import sys
import tempfile
from collections.abc import AsyncIterator
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "benchmarks"))

import aiohttp  # noqa: E402
import bench  # noqa: E402

from tests.support.browser import chromium  # noqa: E402

SETTLE = 3.0


@contextlib.asynccontextmanager
async def open_page(admin: int, reader: str) -> AsyncIterator[str]:
    url = f"http://127.0.0.1:{admin}/"
    if reader == "chromium":
        async with chromium() as page:
            await page.goto(url)
            await page.wait_for("document.getElementById('conn').textContent === 'live'", "the stream", 30)
            await asyncio.sleep(SETTLE)  # the browser's start-up is not the page's cost
            cpu0 = bench.tree_cpu(page.pid)
            yield "chromium"
            print(f"    browser CPU while open: {bench.tree_cpu(page.pid) - cpu0:.1f} s")
            rows = await page.evaluate("document.querySelectorAll('#rows tr').length")
            totals = await page.evaluate("document.getElementById('totals').textContent")
            print(f"    page: {rows} rows listed; {totals}")
            if page.errors:
                print("    page errors:", page.errors)
        return
    async with aiohttp.ClientSession() as s, s.get(url + "live/events") as resp:
        received = [0]

        async def read() -> None:
            async for chunk in resp.content.iter_any():
                received[0] += len(chunk)

        task = asyncio.ensure_future(read())
        try:
            yield "sse"
        finally:
            task.cancel()
            print(f"    page: {received[0]} bytes of events received")


async def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--duration", type=float, default=10.0)
    ap.add_argument("--reader", choices=("chromium", "sse"), default="chromium")
    ap.add_argument("--pure", action="store_true", help="run mirrorsim with MIRRORSIM_PURE=1")
    args = ap.parse_args()
    if args.pure:
        os.environ["MIRRORSIM_PURE"] = "1"
    sc = next(s for s in bench.SCENARIOS if s.key == "mirror")
    print(f"mirrorsim build: {bench.mirrorsim_build()}; scenario: {sc.title}; wrk -t1 -c32 -d{args.duration:g}s; "
          f"page: {args.reader}")
    tmp = Path(tempfile.mkdtemp(prefix="mirrorsim-live-bench-"))
    ups = bench.Upstreams(tmp)
    ratios: list[float] = []
    cpu_ratios: list[float] = []
    try:
        ups.start()
        cfg = tmp / "cfg"
        bench.write_config(cfg, sc, ups.ports)
        for rnd in range(args.rounds):
            px = bench.Proxy("mirrorsim", cfg, tmp, "/dev/null", None)
            px.start(bench.free_port(), bench.free_port())
            async def run(px: bench.Proxy = px) -> tuple[float, float]:
                """wrk's requests per second, and the proxy's CPU microseconds per request."""
                cpu0 = bench.tree_cpu(px.pid)
                res = await asyncio.to_thread(bench.wrk, px.port, args.duration, sc, 1, 32)
                return res["rps"], (bench.tree_cpu(px.pid) - cpu0) * 1e6 / max(1, res["requests"])

            try:
                await asyncio.to_thread(bench.wrk, px.port, 2, sc, 1, 32)  # warm-up
                before, cpu_before = await run()
                async with open_page(px.admin, args.reader):
                    opened, cpu_open = await run()
                after, cpu_after = await run()
            finally:
                px.stop()
            ratio = opened / ((before + after) / 2)
            ratios.append(ratio)
            cpu_ratios.append(cpu_open / ((cpu_before + cpu_after) / 2))
            print(f"  round {rnd + 1}: closed {before:,.0f} rps ({cpu_before:.0f} us CPU/request), "
                  f"open {opened:,.0f} rps ({cpu_open:.0f} us), closed {after:,.0f} rps ({cpu_after:.0f} us)"
                  f" -> open/closed {ratio:.3f} (CPU per request x{cpu_ratios[-1]:.3f})")
    finally:
        ups.stop()
    med = statistics.median(ratios)
    print(f"median CPU per request open/closed: x{statistics.median(cpu_ratios):.3f}")
    print(f"median open/closed: {med:.3f} (target >= 0.80): {'holds' if med >= 0.8 else 'MISSED'}")
    return 0 if med >= 0.8 else 1


if __name__ == "__main__":
    sys.exit(asyncio.run(main()))
