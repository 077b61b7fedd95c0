"""The proxy injects a fault exactly when core/faults.py says so for the request's random
value, so `explain` and `check` can predict it from the same value."""

from __future__ import annotations

import random
from array import array

from simulator.core.envoy_config import FaultConfig
from simulator.core.faults import abort_fires, delay_fires
from tests.conftest import registry_yaml, table_from_yaml, virtual_service
from tests.support.client import get
from tests.support.recorder import Recorder

SEED = 11
HTTP = """
- route: [{destination: {host: httpbin, subset: v1}}]
  fault:
    delay: {fixedDelay: 0.001s, percentage: {value: 50}}
    abort: {httpStatus: 503, percentage: {value: 50}}
"""
FAULT = FaultConfig(delay=0.001, delay_numerator=500_000, abort_status=503, abort_numerator=500_000)


def request_values(seed: int, n: int) -> list[int]:
    """The random values a proxy started with ``seed`` gives its first ``n`` requests
    (proxy/ids.py: RandomValues draws them from random.Random(seed))."""
    return list(array("Q", random.Random(seed).randbytes(8 * 256)))[:n]


async def test_each_request_gets_the_fault_its_random_value_decides(run_proxy):
    n = 24
    async with Recorder("v1") as a:
        rp = await run_proxy(table_from_yaml(registry_yaml({"v1": a.port}) + virtual_service(HTTP)), seed=SEED)
        statuses = [(await get(rp.port, "/")).status for _ in range(n)]
    values = request_values(SEED, n)
    assert statuses == [503 if abort_fires(FAULT, rv) else 200 for rv in values]
    snap = rp.stats.snapshot()
    assert snap.get("http.outbound_0.0.0.0_15001.fault.delays_injected", 0) == sum(
        delay_fires(FAULT, rv) for rv in values)
    assert 0 < statuses.count(503) < n  # both outcomes occur
