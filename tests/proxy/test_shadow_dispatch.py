"""The shadow dispatcher alone (simulator/proxy/mirror.py): driven with a plain ShadowRequest
value and a source of pools; no stream or client connection."""

from __future__ import annotations

import asyncio

from simulator.core.table import Forward
from simulator.proxy.accesslog import AccessLog
from simulator.proxy.mirror import ShadowDispatcher, ShadowRequest
from simulator.proxy.server import Proxy
from simulator.proxy.stats import Stats
from tests.conftest import registry_yaml, table_from_yaml, virtual_service
from tests.support.recorder import Recorder

ROUTE = """
- route:
  - destination: {host: httpbin, subset: v1}
  mirror: {host: httpbin, subset: v2}
  timeout: 3s
"""
BODY = b'{"a": 1}'
# the primary's head as the stream built it (heads.request_head): request line with host
# (replaced for the copy), then the forwarded headers
HEAD = [b"POST /anything HTTP/1.1\r\nhost: httpbin:8000\r\n", b"content-type: application/json\r\n",
        b"x-forwarded-for: 203.0.113.9\r\n", b"x-forwarded-proto: http\r\n", b"x-request-id: rid-1\r\n"]


def setup(port: int, loop: asyncio.AbstractEventLoop, max_inflight: int = 8,
          ) -> tuple[Forward, ShadowDispatcher, Stats]:
    table = table_from_yaml(registry_yaml({"v1": 1, "v2": port}) + virtual_service(ROUTE))
    d = table.route("POST", "httpbin:8000", "/anything", {}, 0)
    assert isinstance(d, Forward) and len(d.mirrors) == 1
    stats = Stats()
    # the pools of the table's clusters (the dispatcher asks only its PoolSource.pool)
    pools = Proxy(table, stats=stats, loop=loop)
    shadows = ShadowDispatcher(pools, stats, AccessLog(None, loop), loop, "10.0.0.7",
                               max_inflight=max_inflight)
    return d, shadows, stats


def shadow_request(d: Forward, *, timeout: float = 3.0) -> ShadowRequest:
    return ShadowRequest(
        d, d.mirrors[0], "POST", "1.1", HEAD, b"x-route: added\r\n",
        b"content-length: %d\r\n\r\n" % len(BODY), (BODY,), len(BODY), "rid-1", "203.0.113.9", "curl/8",
        timeout, False, -1, None)


async def test_a_shadow_request_value_becomes_envoys_copy():
    loop = asyncio.get_running_loop()
    async with Recorder("v2") as mirror:
        d, shadows, stats = setup(mirror.port, loop)
        req = shadow_request(d)
        shadows.submit(req)
        [copy] = await mirror.wait_for(1)
        await shadows.drain(5)
        assert copy.method == "POST" and copy.target == "/anything"
        assert copy.header("host") == "httpbin-shadow:8000"
        assert copy.header("x-forwarded-for") == "203.0.113.9,10.0.0.7"  # in place, the proxy's address added
        assert copy.header("x-envoy-internal") == "true"
        assert copy.header("x-envoy-expected-rq-timeout-ms") == "3000"  # the route's global timeout
        assert copy.header("x-envoy-attempt-count") == "1"
        assert copy.header("x-route") == "added"
        assert copy.header("x-request-id") == "rid-1"
        assert copy.body == BODY
        assert req.head == HEAD  # the value is not changed by the dispatch
        assert stats.counters["http.async-client.rq_total"] == 1
        assert shadows.inflight == 0


async def test_copies_over_the_cap_are_dropped_and_an_unknown_cluster_is_counted():
    loop = asyncio.get_running_loop()
    async with Recorder("v2") as mirror:
        d, shadows, stats = setup(mirror.port, loop, max_inflight=1)
        shadows.submit(shadow_request(d))
        shadows.submit(shadow_request(d))  # the first is still in flight
        assert stats.counters["mirrorsim.shadow_dropped"] == 1
        await mirror.wait_for(1)
        await shadows.drain(5)
        assert mirror.connections == 1

        other = Forward(d.route, d.virtual_host, d.cluster, d.path, d.authority, None, d.request_headers,
                        d.response_headers, d.timeout, None, (type(d.mirrors[0])(cluster="no-such-cluster"),))
        shadows.submit(shadow_request(other))
        assert stats.counters["mirrorsim.shadow_unknown_cluster"] == 1
        assert shadows.inflight == 0
