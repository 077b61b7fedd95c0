"""The data plane's limits on what a client may make it hold (docs/operations.md).

* Request heads: Envoy 1.40's HTTP/1 codec (BalsaParser) refuses a head over
  ``max_request_headers_kb`` (60 KiB under Istio), counted over the raw head: request
  line, header lines and the blank line; and more than ``max_headers_count`` (100)
  headers.  Both get 431 with the body ``Request Header Fields Too Large``, flag DPE,
  and the connection closes.
* Request bodies: one body over ``max_request_bytes`` gets 413 (ProxyOptions).  All
  the bodies being received or held by requests in progress, on every connection,
  share ``BodyBudget``: a body that would take the total over ``max_buffered_bytes``
  is refused as Envoy's overload manager refuses requests (``stop_accepting_requests``):
  503 ``envoy overloaded``, flag OM, counted in ``downstream_rq_overload_close``; the
  bytes it had are dropped at once.
* Memory comes back: the budget is released when a request ends, and after a burst of
  large bodies the C allocator is asked to give its free pages back (``malloc_trim``),
  as freed body buffers otherwise stay in glibc's heap and the process's RSS stays high.
"""

from __future__ import annotations

import ctypes
import ctypes.util
from collections.abc import Callable
from typing import TYPE_CHECKING, Final

if TYPE_CHECKING:
    import asyncio

MAX_HEADERS_COUNT: Final = 100  # Envoy: common_http_protocol_options.max_headers_count default
MAX_HEADER_BYTES: Final = 60 * 1024  # Envoy: max_request_headers_kb (Istio's default 60)
# The bytes of a request head not seen by the parser callbacks: "<method> " and
# " HTTP/1.1\r\n" around the request-target, ": " and "\r\n" per header, the blank line.
REQUEST_LINE_OVERHEAD: Final = 1 + 11 + 2
HEADER_LINE_OVERHEAD: Final = 4
CHUNK_FRAMING: Final = 32  # bytes allowed per body chunk for its size line and CRLFs
DEFAULT_MAX_BUFFERED_BYTES: Final = 256 * 1024 * 1024

HEADERS_TOO_LARGE_BODY: Final = b"Request Header Fields Too Large"
OVERLOADED_BODY: Final = b"envoy overloaded"
OVERLOAD_FLAG: Final = "OM"
OVERLOAD_STAT: Final = "downstream_rq_overload_close"

# after the bodies held reach this many bytes, the allocator is trimmed once they are
# all released again (at most once per TRIM_INTERVAL seconds)
TRIM_ABOVE: Final = 8 * 1024 * 1024
TRIM_INTERVAL: Final = 1.0


def _load_malloc_trim() -> Callable[[int], int] | None:
    name = ctypes.util.find_library("c")
    if not name:
        return None
    try:
        fn = ctypes.CDLL(name).malloc_trim
    except (OSError, AttributeError):  # not glibc (musl, macOS)
        return None
    fn.argtypes = [ctypes.c_size_t]
    fn.restype = ctypes.c_int
    return fn  # type: ignore[no-any-return]


_malloc_trim = _load_malloc_trim()


class BodyBudget:
    """Request-body bytes held across all connections of a process, with a cap."""

    __slots__ = ("limit", "held", "high", "loop", "trim_at", "trims")

    def __init__(self, limit: int, loop: asyncio.AbstractEventLoop) -> None:
        self.limit = limit
        self.held = 0
        self.high = 0  # most bytes held since the last trim
        self.loop = loop
        self.trim_at = 0.0  # loop time of the last trim
        self.trims = 0

    def take(self, n: int) -> bool:
        """Account ``n`` more body bytes; False (nothing taken) when over the cap."""
        held = self.held + n
        if held > self.limit:
            return False
        self.held = held
        if held > self.high:
            self.high = held
        return True

    def give(self, n: int) -> None:
        """Give back ``n`` bytes taken before (the body they held was dropped)."""
        self.held -= n
        if self.held <= 0:
            self.held = 0
            if self.high >= TRIM_ABOVE:
                self.high = 0
                now = self.loop.time()
                delay = max(0.0, self.trim_at + TRIM_INTERVAL - now)
                self.trim_at = now + delay
                # later, not now: the buffers are freed when the caller's frames let go
                self.loop.call_later(delay, self.trim)

    def trim(self) -> None:
        if self.held == 0 and _malloc_trim is not None:
            _malloc_trim(0)
            self.trims += 1
