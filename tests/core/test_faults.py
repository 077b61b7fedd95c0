"""Whether a route's fault delay and abort fire, from the request's random value
(simulator/core/faults.py)."""

from __future__ import annotations

import random

import pytest

from simulator.core.envoy_config import FaultConfig
from simulator.core.faults import FAULT_DENOMINATOR, abort_fires, delay_fires, draw

ALWAYS = FAULT_DENOMINATOR
DELAY_ALL = FaultConfig(delay=0.5, delay_numerator=ALWAYS)
ABORT_ALL = FaultConfig(abort_status=503, abort_numerator=ALWAYS)
GRPC_ALL = FaultConfig(abort_grpc_status=14, abort_numerator=ALWAYS)
NONE = FaultConfig(delay=0.5, delay_numerator=0, abort_status=503, abort_numerator=0)
VALUES = [0, 1, 99, 2**32, 2**63, 2**64 - 1, 0x0123456789ABCDEF]

CASES = [
    # (fault, delay fires, abort fires) for every random value
    (DELAY_ALL, True, False),
    (ABORT_ALL, False, True),
    (GRPC_ALL, False, True),
    (FaultConfig(delay=0.5, delay_numerator=ALWAYS, abort_status=500, abort_numerator=ALWAYS), True, True),
    (NONE, False, False),
    (FaultConfig(delay_numerator=ALWAYS), False, False),  # a percentage without a delay
    (FaultConfig(abort_numerator=ALWAYS), False, False),  # ... or without a status
]


@pytest.mark.parametrize(("fault", "delay", "abort"), CASES)
@pytest.mark.parametrize("rv", VALUES)
def test_certain_outcomes(fault, delay, abort, rv):
    assert delay_fires(fault, rv) is delay
    assert abort_fires(fault, rv) is abort


@pytest.mark.parametrize("rv", VALUES)
def test_the_draws_are_in_range_and_a_value_always_decides_the_same(rv):
    half = FaultConfig(delay=0.1, delay_numerator=ALWAYS // 2, abort_status=503, abort_numerator=ALWAYS // 2)
    for salt in (1, 2, 3):
        assert 0 <= draw(rv, salt) < FAULT_DENOMINATOR
    assert delay_fires(half, rv) is delay_fires(half, rv)
    assert abort_fires(half, rv) is abort_fires(half, rv)


@pytest.mark.parametrize(("delay_pct", "abort_pct"), [(50, 50), (10, 90), (1, 30)])
def test_rates_follow_the_percentages_independently(delay_pct, abort_pct):
    fault = FaultConfig(delay=0.1, delay_numerator=delay_pct * 10_000,
                        abort_status=503, abort_numerator=abort_pct * 10_000)
    rng = random.Random(7)
    n = 20_000
    delays = aborts = both = mirrored = mirrored_and_delayed = 0
    for _ in range(n):
        rv = rng.getrandbits(64)
        d, a = delay_fires(fault, rv), abort_fires(fault, rv)
        delays += d
        aborts += a
        both += d and a
        m = rv % 100 < 50  # a 50 % mirror samples from the same value (core/table.py)
        mirrored += m
        mirrored_and_delayed += m and d
    assert abs(delays / n - delay_pct / 100) < 0.015
    assert abs(aborts / n - abort_pct / 100) < 0.015
    assert abs(both / n - delay_pct * abort_pct / 10_000) < 0.015  # independent of each other
    assert abs(mirrored_and_delayed / n - mirrored / n * delay_pct / 100) < 0.015  # and of the mirror
