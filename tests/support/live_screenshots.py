"""Screenshots of the live page for docs/teaching.md: istio.io's mirroring task in its two
steps (all to v1; then the mirror to v2), as ``mirrorsim demo --web`` walks it.

    python -m tests.support.live_screenshots docs/     # writes live-step1.png, live-step2.png

Runs everything in this process on loopback: the two httpbin backends, the proxy (admin on a
free port), headless Chromium (tests/support/browser.py) and a few requests per step."""

from __future__ import annotations

import asyncio
import sys
from pathlib import Path

import aiohttp

from simulator.backend import Backend
from simulator.config import load
from simulator.core.translate import TranslateOptions, translate
from simulator.demo import DEMO_DIR, rebind_endpoints
from simulator.demo_web import without_mirrors
from simulator.proxy.launch import RunOptions, start_proxy
from tests.support.browser import chromium

REQUESTS = [("GET", "/headers", None), ("GET", "/get?show_env=1", None),
            ("POST", "/anything", b'{"hello": "mirror"}'), ("GET", "/status/418", None)]


async def send(session: aiohttp.ClientSession, port: int, n: int) -> None:
    for i in range(n):
        method, path, body = REQUESTS[i % len(REQUESTS)]
        async with session.request(method, f"http://127.0.0.1:{port}{path}", headers={"Host": "httpbin:8000"},
                                   data=body) as resp:
            await resp.read()


async def main(out: Path) -> None:
    result = load([str(DEMO_DIR)])
    async with Backend("httpbin-v1", log=None) as v1, Backend("httpbin-v2", log=None) as v2:
        cfg = rebind_endpoints(result.config, {18081: v1.port, 18082: v2.port})
        step1 = translate(without_mirrors(cfg), TranslateOptions())
        step2 = translate(cfg, TranslateOptions())
        rp = await start_proxy(step1, RunOptions(listen_port=0, admin_port=0, seed=1))
        try:
            async with chromium(1400, 900) as page, aiohttp.ClientSession(auto_decompress=False) as s:
                await page.goto(f"http://127.0.0.1:{rp.admin_port}/")
                await page.wait_for("document.getElementById('conn').textContent === 'live'", "the stream")
                await send(s, rp.port, 6)
                await page.wait_for("document.querySelectorAll('#rows tr').length >= 6", "step 1's rows")
                await page.screenshot(str(out / "live-step1.png"))
                rp.proxy.table = step2
                await page.wait_for("document.querySelectorAll('#graph path.edge.mirror').length === 1",
                                    "the mirror edge")
                await send(s, rp.port, 6)
                await rp.drain_shadows()
                await page.wait_for("[...document.querySelectorAll('#rows .chip')].filter("
                                    "c => c.textContent.includes('discarded')).length >= 6", "step 2's copies")
                await page.screenshot(str(out / "live-step2.png"))
                assert page.errors == [], page.errors
        finally:
            await rp.close()


if __name__ == "__main__":
    asyncio.run(main(Path(sys.argv[1] if len(sys.argv) > 1 else "docs")))
