"""The live page's hub: nothing is built while no page is open, every request and copy is
counted while one is, the page gets a sample under a budget, and a page that does not
read can neither grow memory nor hold up the proxy."""

from __future__ import annotations

import asyncio
import json
import socket

import aiohttp
import pytest

from simulator.core.table import Forward
from simulator.proxy.events import DROPPED, EventTap, RequestRecord, ShadowRecord
from simulator.proxy.live import hub as hubmod
from simulator.proxy.live.app import HUB_KEY
from simulator.proxy.live.hub import MAX_EVENTS_PER_TICK, QUEUE_BATCHES, LiveHub, Watcher
from tests.conftest import registry_yaml, table_from_yaml, virtual_service
from tests.support.client import Client, request
from tests.support.recorder import Recorder
from tests.support.sse import sse_events
from tests.support.wait import until

MIRROR = """
- route:
  - destination: {host: httpbin, subset: v1}
  mirror: {host: httpbin, subset: v2}
  mirrorPercentage: {value: 100.0}
"""


def mirror_table(v1: int, v2: int):
    return table_from_yaml(registry_yaml({"v1": v1, "v2": v2}) + virtual_service(MIRROR))


def forward_for(table) -> Forward:
    d = table.route("GET", "httpbin:8000", "/", {}, 0)
    assert isinstance(d, Forward)
    return d


async def test_the_tap_has_a_sink_only_while_a_page_is_open(run_proxy):
    async with Recorder("v1") as v1, Recorder("v2") as v2:
        rp = await run_proxy(mirror_table(v1.port, v2.port))
        hub = rp.admin.app[HUB_KEY]
        assert rp.proxy.tap.sink is None
        async with Client(rp.port) as c:
            await c.send(request("GET", "/before"))
        assert hub.counts == {}  # nothing was seen while nobody watched
        async with aiohttp.ClientSession() as s, s.get(f"http://127.0.0.1:{rp.admin_port}/live/events") as resp:
            events = sse_events(resp)
            assert (await events.__anext__())[0] == "config"
            assert rp.proxy.tap.sink is hub
        await until(lambda: rp.proxy.tap.sink is None, "the page's departure")
        assert not hub.watchers


async def test_every_record_is_counted_and_a_budget_of_them_kept():
    table = mirror_table(1, 2)
    tap = EventTap()
    hub = LiveHub(tap, lambda: table)
    hub.refresh_config()
    w = hub.add_watcher()
    assert w is not None and tap.sink is hub
    d = forward_for(table)
    n = MAX_EVENTS_PER_TICK * 5
    for i in range(n):
        hub.request_done(RequestRecord(0.0, "GET", "/", "httpbin:8000", d, 200, "-", 0.001, str(i)))
        hub.shadow_done(ShadowRecord(0.0, "GET", "/", str(i), d.mirrors[0].cluster, "httpbin-shadow:8000",
                                     0, "-", 0.0, DROPPED))
    route = hub.picture["routes"][0]["id"]
    v1, v2 = d.cluster, d.mirrors[0].cluster
    assert hub.counts == {"client": n, route: n, f"{route}>{v1}": n, f"{route}~{v2}": n}
    assert hub.fates == {v2: {DROPPED: n}}
    assert len(hub.pending) == MAX_EVENTS_PER_TICK
    assert hub.skipped == 2 * n - MAX_EVENTS_PER_TICK
    hub.flush()
    assert len(w.queue) == 1 and hub.pending == []
    hub.remove_watcher(w)
    assert tap.sink is None


async def test_a_page_that_does_not_read_has_a_bounded_queue():
    w = Watcher()
    for _ in range(QUEUE_BATCHES * 3):
        w.offer(b"x" * 100, 10)
    assert len(w.queue) == QUEUE_BATCHES
    assert w.lost == 10 * QUEUE_BATCHES * 2
    assert w.queued_events == 10 * QUEUE_BATCHES


async def _stalled_page(admin_port: int) -> socket.socket:
    """A browser that asks for the event stream and never reads it, with a tiny receive window."""
    sock = socket.socket()
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 1024)
    sock.setblocking(False)
    loop = asyncio.get_running_loop()
    await loop.sock_connect(sock, ("127.0.0.1", admin_port))
    await loop.sock_sendall(sock, b"GET /live/events HTTP/1.1\r\nHost: x\r\n\r\n")
    return sock


async def test_a_stalled_browser_neither_grows_memory_nor_holds_up_the_proxy(run_proxy, monkeypatch):
    monkeypatch.setattr(hubmod, "TICK", 0.002)
    async with Recorder("v1") as v1, Recorder("v2") as v2:
        rp = await run_proxy(mirror_table(v1.port, v2.port))
        hub = rp.admin.app[HUB_KEY]
        sock = await _stalled_page(rp.admin_port)
        try:
            await until(lambda: rp.proxy.tap.sink is hub, "the stalled page to be watching")
            (w,) = hub.watchers
            big = "x" * 20_000
            async with Client(rp.port) as c:
                for i in range(300):  # bounded: 300 requests, each with its copy and a large note
                    hub.publish({"kind": "note", "text": big})
                    (resp,) = await c.send(request("GET", f"/r{i}"))
                    assert resp.status == 200
                    assert len(w.queue) <= QUEUE_BATCHES
            await v2.wait_for(300)
            assert w in hub.watchers
            assert w.lost > 0  # the page fell behind: its oldest batches went
            assert hub.counts["client"] == 300  # the counts are exact all the same
        finally:
            sock.close()


async def test_a_page_whose_writes_stay_blocked_is_closed(run_proxy, monkeypatch):
    monkeypatch.setattr(hubmod, "WRITE_TIMEOUT", 0.5)
    rp = await run_proxy(mirror_table(1, 2))
    hub = rp.admin.app[HUB_KEY]
    sock = await _stalled_page(rp.admin_port)
    try:
        await until(lambda: rp.proxy.tap.sink is hub, "the stalled page to be watching")
        big = "x" * 20_000
        for _ in range(1000):  # bounded: up to 20 MB offered, far more than the socket buffers take
            if not hub.watchers:
                break
            hub.publish({"kind": "note", "text": big})
            hub.flush()  # a tick
            await asyncio.sleep(0)  # the page's handler writes it, or stays blocked
        await until(lambda: not hub.watchers, "the stalled page to be closed", timeout=10)
        assert rp.proxy.tap.sink is None
    finally:
        sock.close()


@pytest.mark.parametrize("path", ["/live/static/live.js", "/live/static/live.css", "/"])
async def test_the_page_and_its_assets_come_from_mirrorsim(run_proxy, path):
    rp = await run_proxy(mirror_table(1, 2))
    async with aiohttp.ClientSession() as s, s.get(f"http://127.0.0.1:{rp.admin_port}{path}") as resp:
        assert resp.status == 200
        text = await resp.text()
    assert "http://" not in text.replace("http://www.w3.org/2000/svg", "")  # nothing from the network
    assert "https://" not in text


async def test_the_picture_comes_from_the_route_table(run_proxy):
    rp = await run_proxy(mirror_table(1, 2))
    async with aiohttp.ClientSession() as s, s.get(f"http://127.0.0.1:{rp.admin_port}/live/config") as resp:
        pic = await resp.json()
    (route,) = pic["routes"]
    r = rp.proxy.table.route_configs[8000].virtual_hosts[0].routes[0]
    assert route["source"] == f"test.yaml:{r.line}"
    assert route["primary"] == [{"cluster": "outbound|8000|v1|httpbin.default.svc.cluster.local", "weight": 100.0}]
    assert route["mirrors"] == [{"cluster": "outbound|8000|v2|httpbin.default.svc.cluster.local", "percent": 100.0}]
    (svc,) = pic["services"]
    assert [s["subset"] for s in svc["subsets"]] == ["v1", "v2"]


async def test_closing_the_proxy_closes_the_open_pages(run_proxy):
    rp = await run_proxy(mirror_table(1, 2))
    async with aiohttp.ClientSession() as s, s.get(f"http://127.0.0.1:{rp.admin_port}/live/events") as resp:
        events = sse_events(resp)
        assert (await events.__anext__())[0] == "config"
        # an open event stream must not hold up the admin's shutdown (aiohttp waits for handlers)
        await asyncio.wait_for(rp.close(), 10)
        await asyncio.wait_for(resp.content.read(), 5)  # the stream ended
        assert resp.content.at_eof()


async def test_records_carry_an_optional_diff_to_the_page():
    table = mirror_table(1, 2)
    hub = LiveHub(EventTap(), lambda: table)
    hub.refresh_config()
    w = hub.add_watcher()
    assert w is not None
    d = forward_for(table)
    hub.request_done(RequestRecord(0.0, "GET", "/a", "httpbin:8000", d, 200, "-", 0.001, "id-a"))
    hub.shadow_done(ShadowRecord(0.0, "GET", "/a", "id-a", d.mirrors[0].cluster, "httpbin-shadow:8000",
                                 200, "-", 0.001, "answered", diff="mismatch"))
    hub.publish({"kind": "annotate", "id": "id-a", "fields": {"diff": "mismatch"}})
    hub.flush()
    data = w.queue[-1][0].decode()
    assert data.startswith("event: batch\ndata: ")
    events = json.loads(data.split("data: ", 1)[1])["events"]
    assert [(e["kind"], e.get("diff")) for e in events] == [
        ("request", None), ("shadow", "mismatch"), ("annotate", None)]
    assert events[2]["fields"] == {"diff": "mismatch"}
    hub.remove_watcher(w)
