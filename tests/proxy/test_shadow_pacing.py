"""Pacing of shadow copies to a slow mirror (ShadowPacer), on a simulated clock.

A mirror whose copies take L seconds can hold max_inflight copies only at
max_inflight / L copies per second; copies are admitted at that pace, evenly,
instead of in the bursts a plain in-flight cap lets through (docs/deviations.md, row 3).
"""

from __future__ import annotations

import pytest

from simulator.proxy.mirror import PACE_BURST, ShadowPacer


def pacer(latency: float) -> ShadowPacer:
    p = ShadowPacer()
    p.latency = latency
    return p


@pytest.mark.parametrize(("latency", "max_inflight", "per_second", "admitted_per_second"), [
    (2.0, 1024, 7000, 512),   # the benchmark's slow mirror: 1024 slots, each held 2 s
    (2.0, 100, 7000, 50),
    (0.5, 1024, 1000, 1000),  # the cap is not reached at this pace: every copy goes
    (10.0, 1000, 500, 100),
])
def test_admits_max_inflight_over_latency_per_second(latency, max_inflight, per_second, admitted_per_second):
    p = pacer(latency)
    seconds = 10
    admitted = [t for t in range(per_second * seconds) if p.admit(1.0 + t / per_second, max_inflight)]
    expected = min(per_second, admitted_per_second) * seconds
    assert expected <= len(admitted) <= expected + PACE_BURST
    # evenly: every tenth of a second gets its share, give or take the burst
    for tenth in range(1, 10 * seconds):
        window = [t for t in admitted if tenth * per_second / 10 <= t < (tenth + 1) * per_second / 10]
        assert abs(len(window) - expected / (10 * seconds)) <= 2


def test_burst_after_idle_is_bounded():
    p = pacer(2.0)
    assert sum(p.admit(1.0, 1024) for _ in range(100)) == PACE_BURST
    # an hour of silence does not buy more than the bucket
    assert sum(p.admit(3601.0, 1024) for _ in range(100)) == PACE_BURST


def test_latency_is_a_moving_average():
    p = ShadowPacer()
    for _ in range(40):
        p.observe(2.0)
    assert 1.9 < p.latency <= 2.0
    p.observe(0.001)  # one fast answer moves it by an eighth of the way
    assert p.latency == pytest.approx(2.0 - (2.0 - 0.001) / 8, rel=0.05)
