"""A route regex cannot freeze the proxy: RE2 answers a catastrophic pattern in linear
time, and a concurrent ordinary request is served at once (issue 12)."""

from __future__ import annotations

import asyncio
import time

from tests.conftest import registry_yaml, table_from_yaml, virtual_service
from tests.support.client import get
from tests.support.recorder import Recorder

ROUTES = """
- match: [{uri: {regex: "/api/(a+)+"}}]
  route: [{destination: {host: httpbin, subset: v1}}]
- match: [{headers: {x-user: {regex: "(x+x+)+y"}}}]
  route: [{destination: {host: httpbin, subset: v1}}]
- match: [{uri: {prefix: /ok}}]
  route: [{destination: {host: httpbin, subset: v1}}]
"""


async def _timed(port: int, path: str, headers: list[tuple[str, str]] | None = None) -> tuple[int, float]:
    t0 = time.perf_counter()
    resp = await get(port, path, headers=headers)
    return resp.status, time.perf_counter() - t0


async def test_catastrophic_regex_does_not_block_other_requests(run_proxy):
    async with Recorder("v1") as a:
        rp = await run_proxy(table_from_yaml(registry_yaml({"v1": a.port}) + virtual_service(ROUTES)))
        assert (await get(rp.port, "/ok/warm")).status == 200
        evil, evil_header, normal = await asyncio.wait_for(asyncio.gather(
            _timed(rp.port, "/api/" + "a" * 28 + "!"),
            _timed(rp.port, "/x", headers=[("x-user", "x" * 4000)]),
            _timed(rp.port, "/ok/1"),
        ), 20)
        assert evil[0] == 404 and evil_header[0] == 404 and normal[0] == 200
        assert evil[1] < 0.1 and evil_header[1] < 0.1, (evil, evil_header)
        assert normal[1] < 0.1, normal
        assert (await get(rp.port, "/api/aaaa")).status == 200
