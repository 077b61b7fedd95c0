"""The live page in a real browser: headless Chromium (Debian's package) over the DevTools
protocol, against a running proxy; traffic goes through, the page must show each request,
its rule, its primary and its shadow copies, with no error in the browser's console."""

from __future__ import annotations

import asyncio
import re
import socket
import sys

import pytest

from simulator.proxy.live.app import HUB_KEY
from tests.conftest import registry_yaml, table_from_yaml, virtual_service
from tests.support.browser import chromium
from tests.support.client import get
from tests.support.process import terminate
from tests.support.recorder import Recorder

pytestmark = pytest.mark.slow

ROUTES = """
- match: [{uri: {prefix: /fail}}]
  route:
  - destination: {host: httpbin, subset: v1}
  mirror: {host: httpbin, subset: v3}
  mirrorPercentage: {value: 100.0}
- route:
  - destination: {host: httpbin, subset: v1}
    weight: 100
  mirror: {host: httpbin, subset: v2}
  mirrorPercentage: {value: 100.0}
"""

MIRROR_V2 = """
- route:
  - destination: {host: httpbin, subset: v1}
  mirror: {host: httpbin, subset: v2}
  mirrorPercentage: {value: 100.0}
"""


def closed_port() -> int:
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    port = s.getsockname()[1]
    s.close()
    return port


def table_for(v1: int, v2: int) -> object:
    return table_from_yaml(registry_yaml({"v1": v1, "v2": v2, "v3": closed_port()}) + virtual_service(ROUTES))


async def test_the_page_shows_requests_and_their_shadow_copies(run_proxy, tmp_path):
    async with Recorder("v1") as v1, Recorder("v2") as v2:
        table = table_for(v1.port, v2.port)
        rp = await run_proxy(table)
        (fail_route, main_route) = table.route_configs[8000].virtual_hosts[0].routes
        async with chromium() as page:
            await page.goto(f"http://127.0.0.1:{rp.admin_port}/")
            # the picture: client, proxy, two routes, subsets v1 v2 v3; one solid edge per
            # route, one dashed mirror edge per route
            await page.wait_for("document.querySelectorAll('#graph path.edge.mirror').length === 2",
                                "the mirror edges")
            drawn = await page.evaluate("""({
                primary: document.querySelectorAll('#graph path.edge.primary').length,
                dashed: getComputedStyle(document.querySelector('#graph path.edge.mirror')).strokeDasharray,
                text: document.getElementById('graph').textContent,
                live: document.getElementById('conn').textContent})""")
            assert drawn["primary"] == 2
            assert drawn["dashed"] not in ("", "none")
            for word in ("client", "proxy", "httpbin:8000", "v1", "v2", "v3", "mirror 100%", "100%",
                         f"test.yaml:{main_route.line}", f"test.yaml:{fail_route.line}"):
                assert word in drawn["text"], word
            await page.wait_for("document.getElementById('conn').textContent === 'live'", "the event stream")

            for i in range(3):
                assert (await get(rp.port, f"/headers?n={i}")).status == 200
            assert (await get(rp.port, "/fail")).status == 200
            await v2.wait_for(3)

            await page.wait_for("""(() => {
                const chips = [...document.querySelectorAll('#rows .chip')].map(c => c.textContent);
                return chips.filter(t => t.includes('httpbin-shadow:8000') && t.includes('200')).length === 3
                    && chips.some(t => t.includes('failed 503'));
            })()""", "three answered copies and one failed copy")
            rows = await page.evaluate("""[...document.querySelectorAll('#rows tr')].map(tr =>
                [tr.querySelector('.path').textContent, ...[...tr.children].map(td => td.textContent)])""")
            assert len(rows) == 4
            by_path = {r[0]: r[1:] for r in rows}
            for i in range(3):
                _, req, rule, primary, copies = by_path[f"/headers?n={i}"]
                assert req.startswith("GET /headers") and "httpbin:8000" in req
                assert rule == f"test.yaml:{main_route.line}"
                assert "httpbin v1" in primary and "200" in primary and "ms" in primary
                assert "httpbin-shadow:8000" in copies and "httpbin v2" in copies and "200" in copies
            _, _, rule, primary, copies = by_path["/fail"]
            assert rule == f"test.yaml:{fail_route.line}"
            assert "200" in primary
            assert "httpbin-shadow:8000" in copies and "httpbin v3" in copies
            assert "failed 503 UF" in copies or "failed 503 URX" in copies or "failed 503" in copies

            # counts on the edges
            await page.wait_for("document.getElementById('graph').textContent.includes('mirror 100% · 3')",
                                "the mirror edge's count")
            labels = await page.evaluate("document.getElementById('graph').textContent")
            assert "4 requests" in await page.evaluate("document.getElementById('totals').textContent")
            assert "100% · 3" in labels and "100% · 1" in labels

            # a copy over the in-flight cap is dropped, and the row says so
            rp.proxy.shadows.max_inflight = 0
            assert (await get(rp.port, "/headers?n=capped")).status == 200
            await page.wait_for("[...document.querySelectorAll('#rows .chip')].some(c => "
                                "c.textContent.includes('httpbin-shadow:8000') && "
                                "c.textContent.includes('dropped by the cap'))", "the dropped copy")
            await page.wait_for("document.getElementById('graph').textContent.includes('dropped 1')",
                                "the dropped count on v2")
            rp.proxy.shadows.max_inflight = 1024
            # another helper's mark on a request already listed (the diff extension point)
            fail_id = await page.evaluate("[...document.querySelectorAll('#rows tr')].find(tr => "
                                          "tr.querySelector('.path').textContent === '/fail').dataset.id")
            rp.admin.app[HUB_KEY].publish({"kind": "annotate", "id": fail_id, "fields": {"diff": "mismatch"}})
            await page.wait_for("[...document.querySelectorAll('#rows .badge')].some(b => "
                                "b.textContent === 'diff: mismatch')", "the diff badge")

            # pause: new requests are held, not listed, until resumed
            await page.evaluate("document.getElementById('pause').click()")
            assert (await get(rp.port, "/headers?n=paused")).status == 200
            await page.wait_for("document.getElementById('paused-note').textContent.startsWith('paused: ')",
                                "the paused note")
            assert await page.evaluate("document.querySelectorAll('#rows tr').length") == 5
            await page.evaluate("document.getElementById('pause').click()")
            await page.wait_for("document.querySelectorAll('#rows tr').length === 6", "the held request")

            shot = tmp_path / "live.png"
            await page.screenshot(str(shot))
            assert shot.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
            assert page.errors == []


async def test_with_workers_the_page_shows_the_config_and_every_workers_counts(tmp_path):
    async with Recorder("v1") as v1, Recorder("v2") as v2:
        cfg = tmp_path / "httpbin.yaml"
        cfg.write_text(registry_yaml({"v1": v1.port, "v2": v2.port}) + virtual_service(MIRROR_V2))
        proc = await asyncio.create_subprocess_exec(
            sys.executable, "-m", "simulator", "run", "-f", str(cfg), "--listen", "127.0.0.1:0",
            "--admin", "127.0.0.1:0", "--workers", "2", "--access-log", "off",
            stdin=asyncio.subprocess.DEVNULL, stdout=asyncio.subprocess.DEVNULL, stderr=asyncio.subprocess.PIPE)
        try:
            assert proc.stderr is not None
            line = ""
            while "with 2 workers" not in line:
                raw = await asyncio.wait_for(proc.stderr.readline(), 30)
                assert raw, "mirrorsim run --workers 2 ended early"
                line = raw.decode()
            port, admin = map(int, re.findall(r"http://127\.0\.0\.1:(\d+)", line))
            for i in range(6):
                assert (await get(port, f"/w{i}")).status == 200
            await v2.wait_for(6)
            async with chromium() as page:
                await page.goto(f"http://127.0.0.1:{admin}/")
                await page.wait_for("document.querySelectorAll('#graph path.edge.mirror').length === 1",
                                    "the mirror edge")
                await page.wait_for("document.getElementById('totals').textContent.includes("
                                    "'6 responses to primaries · 6 to shadow copies')", "the summed counts")
                banner = await page.evaluate("document.getElementById('banner').textContent")
                assert "2 worker processes" in banner and "--workers 1" in banner
                graph = await page.evaluate("document.getElementById('graph').textContent")
                assert "responses 6" in graph and "copies 6" in graph
                assert page.errors == []
        finally:
            await terminate(proc)
