"""The live page follows a config reload (simulator/proxy/reload.py): an accepted one redraws
the picture with its version, a rejected one is said on the page while the last good config
keeps serving."""

from __future__ import annotations

import asyncio

import aiohttp

from tests.proxy.test_reload import config, start, write
from tests.support.recorder import Recorder
from tests.support.sse import sse_events


async def test_the_page_redraws_on_a_reload_and_says_when_one_is_rejected(run_proxy, tmp_path):
    async with Recorder("v1") as a, Recorder("v2") as b:
        ports = {"v1": a.port, "v2": b.port}
        path = tmp_path / "vs.yaml"
        path.write_text(config(ports, "v1"))
        rp, reloader = await start(run_proxy, path)
        try:
            async with aiohttp.ClientSession() as s, s.get(f"http://127.0.0.1:{rp.admin_port}/live/events") as resp:
                events = sse_events(resp)
                kind, pic = await asyncio.wait_for(events.__anext__(), 10)
                assert kind == "config" and pic["version"] == "v1"
                assert [p["cluster"] for p in pic["routes"][0]["primary"]] == [
                    "outbound|8000|v1|httpbin.default.svc.cluster.local"]
                write(path, config(ports, "v2"))
                kind = ""
                while kind != "config":  # each event within 10 s
                    kind, pic = await asyncio.wait_for(events.__anext__(), 10)
                assert pic["version"] == "v2"
                assert [p["cluster"] for p in pic["routes"][0]["primary"]] == [
                    "outbound|8000|v2|httpbin.default.svc.cluster.local"]
                write(path, config(ports, "v1").replace("subset: v1", "subset: 12 v1!"))
                notes: list[str] = []
                while not notes:
                    kind, msg = await asyncio.wait_for(events.__anext__(), 10)
                    notes = [e["text"] for e in msg.get("events", []) if kind == "batch" and e["kind"] == "note"]
                assert notes[0].startswith("config reload rejected, the last good config keeps serving: ")
                assert str(path) in notes[0]
        finally:
            await reloader.close()
