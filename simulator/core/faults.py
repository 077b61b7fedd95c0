"""Whether Envoy's fault filter injects a route's delay and abort into one request, from the
request's random value (the one ``RouteTable.route`` got: weighted clusters and mirror
sampling use it too), so that the proxy, ``explain`` and ``check`` agree on it.

Envoy checks each with its runtime's ``featureEnabled(key, percentage)``, which draws a fresh
random number per check (source/extensions/filters/http/fault/fault_filter.cc:
``isDelayEnabled``, ``isAbortEnabled``), a hit when it is below the percentage (out of a
million here: Istio writes ``FractionalPercent`` with denominator MILLION).  mirrorsim
derives the two draws from the request's value instead (docs/deviations.md, "Faults"):
each is a 64-bit mix (splitmix64's finalizer) of the value with a constant of its own, so
the delay's, the abort's, the weighted cluster's and the mirrors' draws are independent of
each other, and a given random value always decides the same way.  Pure: no randomness
here; the value is passed in.
"""

from __future__ import annotations

from typing import Final

from simulator.core.envoy_config import FaultConfig

FAULT_DENOMINATOR: Final = 1_000_000  # FaultConfig's numerators are out of this
_MASK: Final = (1 << 64) - 1
_DELAY_SALT: Final = 0x9E3779B97F4A7C15
_ABORT_SALT: Final = 0xD1B54A32D192ED03


def draw(random_value: int, salt: int) -> int:
    """A value in [0, FAULT_DENOMINATOR) from ``random_value``, one per ``salt``."""
    z = (random_value ^ salt) & _MASK
    z = ((z ^ (z >> 30)) * 0xBF58476D1CE4E5B9) & _MASK
    z = ((z ^ (z >> 27)) * 0x94D049BB133111EB) & _MASK
    return (z ^ (z >> 31)) % FAULT_DENOMINATOR


def delay_fires(fault: FaultConfig, random_value: int) -> bool:
    """The route's fault delay is injected into the request with this random value."""
    return fault.delay is not None and draw(random_value, _DELAY_SALT) < fault.delay_numerator


def abort_fires(fault: FaultConfig, random_value: int) -> bool:
    """The route's fault abort (an HTTP or a gRPC status) ends the request with this random
    value (after the delay, if that fires too: Envoy aborts when the delay is over)."""
    aborts = fault.abort_status is not None or fault.abort_grpc_status is not None
    return aborts and draw(random_value, _ABORT_SALT) < fault.abort_numerator
