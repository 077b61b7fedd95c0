"""The drain in one process (simulator/proxy/lifecycle.py): what the drain time cuts, and
responses begun after the drain started say connection: close."""

from __future__ import annotations

import asyncio
import io

from simulator.proxy.accesslog import AccessLog
from simulator.proxy.lifecycle import drain
from tests.conftest import registry_yaml, table_from_yaml, virtual_service
from tests.support.client import Client, request
from tests.support.recorder import Recorded, Recorder

ROUTE = """
- route:
  - destination: {host: httpbin, subset: v1}
"""


async def test_the_drain_time_cuts_what_is_left(run_proxy):
    never = asyncio.Event()
    async with Recorder("v1") as a:
        @a.responder
        async def hold(req: Recorded) -> None:
            if req.target == "/slow":
                await never.wait()

        log = io.StringIO()
        table = table_from_yaml(registry_yaml({"v1": a.port}) + virtual_service(ROUTE))
        rp = await run_proxy(table, access_log=AccessLog(log, asyncio.get_running_loop()))
        async with Client(rp.port) as slow, Client(rp.port) as idle:
            (first,) = await idle.send(request(path="/fast"))
            assert first.header("connection") is None
            slow.writer.write(request(path="/slow"))  # type: ignore[union-attr]
            await a.wait_for(2)
            assert rp.in_flight() == 1
            loop = asyncio.get_running_loop()
            t0 = loop.time()
            cut = await asyncio.wait_for(drain(rp, 0.3), 5)
            assert cut == 1 and 0.3 <= loop.time() - t0 < 3
            assert await slow.closed() and await idle.closed()
    assert '"GET /slow HTTP/1.1" 0 DC ' in log.getvalue()


async def test_a_response_begun_after_the_drain_started_closes_its_connection(run_proxy):
    release = asyncio.Event()
    async with Recorder("v1", delay_event=release) as a:
        table = table_from_yaml(registry_yaml({"v1": a.port}) + virtual_service(ROUTE))
        rp = await run_proxy(table)
        async with Client(rp.port) as c:
            c.writer.write(request(path="/one") + request(path="/two"))  # type: ignore[union-attr]
            await a.wait_for(1)
            rp.begin_drain()  # /one is in flight, /two waits behind it on the connection
            release.set()
            (one,) = await c.send(b"")
            assert one.status == 200 and one.header("connection") == "close"
            assert await c.closed()  # /two is not served: the connection closed after /one
        assert [r.target for r in a.requests] == ["/one"]
        assert rp.proxy.draining and rp.in_flight() == 0
