"""``mirrorsim demo --web``: prints the live page's URL, sends traffic, and walks the
mirroring task's two steps on Enter: first no copies, then a copy of every request."""

from __future__ import annotations

import asyncio
import re
import sys

import aiohttp
import pytest

from tests.support.process import terminate
from tests.support.sse import sse_events

pytestmark = pytest.mark.slow


async def _line_matching(proc: asyncio.subprocess.Process, pattern: str, seen: list[str]) -> re.Match[str]:
    assert proc.stdout is not None
    while True:
        raw = await asyncio.wait_for(proc.stdout.readline(), 30)
        assert raw, "demo --web exited early:\n" + "".join(seen)
        line = raw.decode()
        seen.append(line)
        m = re.search(pattern, line)
        if m:
            return m


async def test_demo_web_walks_the_two_steps():
    proc = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "simulator", "demo", "--web", "--no-color", "--admin", "127.0.0.1:0",
        "--interval", "0.05", stdin=asyncio.subprocess.PIPE, stdout=asyncio.subprocess.PIPE)
    seen: list[str] = []
    try:
        url = (await _line_matching(proc, r"open (http://127\.0\.0\.1:\d+/) in a browser", seen)).group(1)
        await _line_matching(proc, r"press Enter to add the mirror", seen)
        assert proc.stdin is not None
        async with aiohttp.ClientSession() as session:
            async with session.get(url) as page:
                assert page.status == 200 and "mirrorsim" in await page.text()
            async with session.get(url + "live/events") as resp:
                events = sse_events(resp)
                kind, pic = await asyncio.wait_for(events.__anext__(), 10)
                assert kind == "config"
                assert [r["mirrors"] for r in pic["routes"]] == [[]]  # step 1: no mirror edge
                requests = 0
                while requests < 3:  # step 1: requests to v1, no copies
                    kind, msg = await asyncio.wait_for(events.__anext__(), 10)
                    for e in msg.get("events", []) if kind == "batch" else []:
                        assert e["kind"] == "request", e
                        assert e["cluster"] == "outbound|8000|v1|httpbin.default.svc.cluster.local"
                        assert e["mirrors"] == []
                        requests += 1
                proc.stdin.write(b"\n")
                await proc.stdin.drain()
                got_config = False
                copies = 0
                while copies < 3:  # step 2: the picture gets the mirror edge, requests their copies
                    kind, msg = await asyncio.wait_for(events.__anext__(), 10)
                    if kind == "config":
                        assert [[m["cluster"] for m in r["mirrors"]] for r in msg["routes"]] == [
                            ["outbound|8000|v2|httpbin.default.svc.cluster.local"]]
                        assert msg["routes"][0]["mirrors"][0]["percent"] == 100.0
                        got_config = True
                    for e in msg.get("events", []) if kind == "batch" else []:
                        if e["kind"] == "shadow":
                            assert got_config
                            assert e["host"] == "httpbin-shadow:8000" and e["fate"] == "answered"
                            assert e["status"] in (200, 418)
                            copies += 1
        await _line_matching(proc, r"press Enter to stop", seen)
        proc.stdin.write(b"\n")
        await proc.stdin.drain()
        m = await _line_matching(proc, r"stopped after (\d+) requests; v1 received (\d+), v2 received (\d+)", seen)
        assert int(m.group(3)) >= 3
        assert await asyncio.wait_for(proc.wait(), 30) == 0
    finally:
        await terminate(proc)
