"""Deliberate differences from Envoy 1.40 (docs/deviations.md), pinned."""

from __future__ import annotations

import asyncio

import pytest

from tests.integration.test_mirroring import mirror_table
from tests.support.client import Client, get
from tests.support.recorder import Recorder


async def test_body_is_buffered_and_client_abort_sends_nothing(run_proxy):
    # Envoy streams: both upstreams would see headers and 300000 bytes, then a reset.
    async with Recorder("v1") as a, Recorder("v2") as b:
        rp = await run_proxy(mirror_table(a.port, b.port))
        reader, writer = await asyncio.open_connection("127.0.0.1", rp.port)
        writer.write(b"POST /abort HTTP/1.1\r\nHost: httpbin:8000\r\nContent-Length: 1048576\r\n\r\n"
                     + b"x" * 300000)
        await writer.drain()
        writer.close()
        await writer.wait_closed()
        # a later request on a fresh connection is served, and is the first either side sees
        assert (await get(rp.port, "/after")).status == 200
        (primary,) = await a.wait_for(1)
        (shadow,) = await b.wait_for(1)
    assert primary.target == shadow.target == "/after"
    assert a.connections == 1


async def test_body_over_limit_gets_413_and_nothing_is_sent(run_proxy):
    async with Recorder("v1") as a, Recorder("v2") as b:
        rp = await run_proxy(mirror_table(a.port, b.port), max_request_bytes=1000)
        resp = await get(rp.port, "/big", method="POST", body=b"y" * 1001)
        assert resp.status == 413
        assert (await get(rp.port, "/small", method="POST", body=b"y" * 1000)).status == 200
        (primary,) = await a.wait_for(1)
    assert primary.target == "/small"


@pytest.mark.parametrize("connection", [b"", b"Connection: keep-alive\r\n",
                                        b"Proxy-Connection: keep-alive\r\n"])
async def test_http10_is_rejected_with_426(run_proxy, connection):
    async with Recorder("v1") as a, Recorder("v2") as b:
        rp = await run_proxy(mirror_table(a.port, b.port))
        async with Client(rp.port) as c:
            (resp,) = await c.send(b"GET / HTTP/1.0\r\nHost: httpbin:8000\r\n" + connection + b"\r\n")
        assert resp.status == 426 and resp.body == b"Upgrade Required"
        assert a.requests == [] and b.requests == []
