"""A shadow copy's life is bounded also on a route without a timeout (docs/deviations.md):
a mirror that takes copies and never answers cannot hold the in-flight cap for good."""

from __future__ import annotations

import asyncio

from simulator.proxy.launch import RunOptions
from simulator.proxy.mirror import DEFAULT_SHADOW_TIMEOUT
from tests.conftest import registry_yaml, table_from_yaml, virtual_service
from tests.support.client import get
from tests.support.recorder import Recorded, Recorder
from tests.support.wait import until

NO_TIMEOUT = """
- route:
  - destination: {host: httpbin, subset: v1}
  mirror: {host: httpbin, subset: v2}
"""
V2 = "cluster.outbound|8000|v2|httpbin.default.svc.cluster.local."


def test_the_default_bound_is_envoys_default_route_timeout():
    assert DEFAULT_SHADOW_TIMEOUT == 15.0
    assert RunOptions().shadow_timeout == DEFAULT_SHADOW_TIMEOUT


async def test_a_mirror_that_recovers_gets_copies_again(run_proxy):
    hung = asyncio.Event()  # never set: the mirror takes the first copies and never answers
    recovered = False

    async with Recorder("v1") as a, Recorder("v2") as b:
        @b.responder
        async def answer(req: Recorded) -> None:
            if not recovered:
                await hung.wait()

        table = table_from_yaml(registry_yaml({"v1": a.port, "v2": b.port}) + virtual_service(NO_TIMEOUT))
        rp = await run_proxy(table, max_shadow_inflight=2, shadow_timeout=0.5)
        shadows = rp.proxy.shadows
        for path in ("/hang1", "/hang2", "/over-the-cap"):
            assert (await get(rp.port, path)).status == 200
        await b.wait_for(2)
        assert shadows.inflight == 2  # the cap is full of copies the mirror holds
        assert rp.stats.snapshot()["mirrorsim.shadow_dropped"] == 1

        recovered = True
        # the held copies are reset at their bound, freeing the cap (bounded wait)
        await until(lambda: shadows.inflight == 0, "the held copies to end", timeout=5.0)
        snap = rp.stats.snapshot()
        assert snap[V2 + "upstream_rq_timeout"] == 2
        assert snap[V2 + "internal.upstream_rq_504"] == 2

        assert (await get(rp.port, "/after")).status == 200
        requests = await b.wait_for(3, timeout=5.0)
        after = requests[-1]
        assert after.target == "/after"
        # the bound is ours: the copy still says nothing of a timeout, as Envoy's
        assert after.header("x-envoy-expected-rq-timeout-ms") is None
        await rp.drain_shadows(5.0)
        assert rp.stats.snapshot()[V2 + "internal.upstream_rq_200"] == 1


async def test_each_copy_gets_its_own_bound(run_proxy):
    """The copies share one timer (ShadowDispatcher.bound): still each is reset at its own
    deadline, the later copy later, and none is left behind."""
    hung = asyncio.Event()  # never set

    async with Recorder("v1") as a, Recorder("v2") as b:
        @b.responder
        async def answer(req: Recorded) -> None:
            await hung.wait()

        table = table_from_yaml(registry_yaml({"v1": a.port, "v2": b.port}) + virtual_service(NO_TIMEOUT))
        rp = await run_proxy(table, shadow_timeout=0.4)
        shadows = rp.proxy.shadows
        loop = asyncio.get_running_loop()
        assert (await get(rp.port, "/first")).status == 200
        await b.wait_for(1)
        await asyncio.sleep(0.25)  # spaces the two copies' starts (not a wait for an event)
        assert (await get(rp.port, "/second")).status == 200
        await b.wait_for(2)
        assert shadows.inflight == 2
        await until(lambda: shadows.inflight == 1, "the first copy's bound", timeout=5.0)
        first_reset = loop.time()
        assert rp.stats.snapshot()[V2 + "upstream_rq_timeout"] == 1
        await until(lambda: shadows.inflight == 0, "the second copy's bound", timeout=5.0)
        assert loop.time() - first_reset > 0.15
        assert rp.stats.snapshot()[V2 + "upstream_rq_timeout"] == 2
        assert not shadows.bounded
