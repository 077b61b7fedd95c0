"""The proxy's random values and request ids, drawn in batches from seeded generators
(``Proxy.random_values``, ``Proxy.request_ids``): one 64-bit value per request for the routing
core (weighted clusters, mirror and fault sampling: core/table.py, core/faults.py) and a
version-4 UUID for a request without ``x-request-id``."""

from __future__ import annotations

import random
from array import array
from typing import Final

_DRAWS_PER_REFILL: Final = 256  # RandomValues and RequestIds draw this many at a time


class RandomValues:
    """The routing core's random values (weighted clusters, mirror and fault sampling),
    64 bits each, drawn from ``rng`` 256 at a time."""

    __slots__ = ("rng", "values", "pos")

    def __init__(self, rng: random.Random) -> None:
        self.rng = rng
        self.values = array("Q")
        self.pos = 0

    def next(self) -> int:
        i = self.pos
        if i >= len(self.values):
            self.values = array("Q", self.rng.randbytes(8 * _DRAWS_PER_REFILL))
            i = 0
        self.pos = i + 1
        return self.values[i]


_UUID_VARIANT: Final = {c: "89ab"[int(c, 16) & 3] for c in "0123456789abcdef"}


class RequestIds:
    """x-request-id values: version-4 UUID strings (what Envoy generates) from a seeded
    generator, its random bytes hex-encoded 256 ids at a time (cheaper than uuid.UUID or
    a big integer per request)."""

    __slots__ = ("rng", "hex", "pos")

    def __init__(self, rng: random.Random) -> None:
        self.rng = rng
        self.hex = ""
        self.pos = 0

    def next(self) -> str:
        h = self.hex
        i = self.pos
        if i >= len(h):
            h = self.hex = self.rng.randbytes(16 * _DRAWS_PER_REFILL).hex()
            i = 0
        self.pos = i + 32
        # xxxxxxxx-xxxx-4xxx-Vxxx-xxxxxxxxxxxx, V one of 8 9 a b (RFC 9562 variant)
        return (f"{h[i:i + 8]}-{h[i + 8:i + 12]}-4{h[i + 13:i + 16]}-"
                f"{_UUID_VARIANT[h[i + 16]]}{h[i + 17:i + 20]}-{h[i + 20:i + 32]}")
