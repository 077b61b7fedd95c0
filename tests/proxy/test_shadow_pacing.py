"""Pacing of shadow copies to a slow mirror (ShadowDispatcher._paced), on a simulated clock.

A mirror whose copies take L seconds can hold max_inflight copies only at
max_inflight / L copies per second; copies are admitted at that pace, evenly,
instead of in the bursts a plain in-flight cap lets through (docs/deviations.md, row 3).
"""

from __future__ import annotations

from types import SimpleNamespace

import pytest

from simulator.proxy.mirror import PACE_BURST, ShadowDispatcher


def dispatcher(max_inflight: int) -> ShadowDispatcher:
    proxy = SimpleNamespace(options=SimpleNamespace(local_address="127.0.0.1"))
    return ShadowDispatcher(proxy, max_inflight=max_inflight)  # type: ignore[arg-type]


def mirror_pool(latency: float) -> SimpleNamespace:
    return SimpleNamespace(shadow_latency=latency, shadow_tokens=PACE_BURST, shadow_refill=0.0)


@pytest.mark.parametrize(("latency", "max_inflight", "per_second", "admitted_per_second"), [
    (2.0, 1024, 7000, 512),   # the benchmark's slow mirror: 1024 slots, each held 2 s
    (2.0, 100, 7000, 50),
    (0.5, 1024, 1000, 1000),  # the cap is not reached at this pace: every copy goes
    (10.0, 1000, 500, 100),
])
def test_admits_max_inflight_over_latency_per_second(latency, max_inflight, per_second, admitted_per_second):
    d, pool = dispatcher(max_inflight), mirror_pool(latency)
    seconds = 10
    admitted = [t for t in range(per_second * seconds) if d._paced(pool, 1.0 + t / per_second)]  # type: ignore[arg-type]
    expected = min(per_second, admitted_per_second) * seconds
    assert expected <= len(admitted) <= expected + PACE_BURST
    # evenly: every tenth of a second gets its share, give or take the burst
    for tenth in range(1, 10 * seconds):
        window = [t for t in admitted if tenth * per_second / 10 <= t < (tenth + 1) * per_second / 10]
        assert abs(len(window) - expected / (10 * seconds)) <= 2


def test_burst_after_idle_is_bounded():
    d, pool = dispatcher(1024), mirror_pool(2.0)
    assert sum(d._paced(pool, 1.0) for _ in range(100)) == PACE_BURST  # type: ignore[arg-type]
    # an hour of silence does not buy more than the bucket
    assert sum(d._paced(pool, 3601.0) for _ in range(100)) == PACE_BURST  # type: ignore[arg-type]
