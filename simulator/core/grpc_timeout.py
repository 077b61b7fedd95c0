"""The route timeout of a gRPC request (pure; no I/O).

Istio writes ``max_grpc_timeout`` equal to the route's ``timeout`` on every route
(pilot/pkg/networking/core/route/route.go, setTimeout; ``0s`` when the VirtualService sets
none) and no ``grpc_timeout_offset`` nor ``max_stream_duration``.  Envoy's router
(FilterUtility::finalTimeout) then, for a gRPC request (``content-type`` ``application/grpc``,
``application/grpc+...`` or ``application/grpc;...``: Grpc::Common::hasGrpcContentType), does
not use the route timeout itself: it takes the request's ``grpc-timeout`` header (an absent
or invalid one counts as 0, infinite), less the offset if that leaves it positive, capped by
``max_grpc_timeout`` unless that is 0 (a header of 0 takes the cap).  When the resulting
timeout is not 0 the upstream request's ``grpc-timeout`` is rewritten to it, in Envoy's
format (FilterUtility::setTimeoutHeaders, Grpc::Common::toGrpcTimeout), per attempt, as
``x-envoy-expected-rq-timeout-ms`` is.
"""

from __future__ import annotations

from typing import Final

_GRPC: Final = "application/grpc"
_MAX_VALUE: Final = 99_999_999  # TimeoutValue: at most 8 digits
# milliseconds per unit; u and n round up to the next millisecond
_UNIT_MS: Final = {"H": 3_600_000, "M": 60_000, "S": 1000, "m": 1}


def is_grpc(content_type: str) -> bool:
    """Grpc::Common::hasGrpcContentType: ``application/grpc``, optionally followed by
    ``+`` or ``;`` and more (``application/grpc-web`` is not gRPC)."""
    return content_type.startswith(_GRPC) and (
        len(content_type) == len(_GRPC) or content_type[len(_GRPC)] in "+;")


def parse_grpc_timeout(value: str) -> int | None:
    """A ``grpc-timeout`` header value in milliseconds (Grpc::Common::getGrpcTimeout): an
    integer of at most 8 digits then one of the units H M S m u n; None if invalid."""
    if len(value) < 2:
        return None
    digits, unit = value[:-1].strip(), value[-1]
    if digits[:1] == "+":
        digits = digits[1:]
    if not digits.isdigit() or not digits.isascii():
        return None
    n = int(digits)
    if n > _MAX_VALUE:
        return None
    ms = _UNIT_MS.get(unit)
    if ms is not None:
        return n * ms
    if unit == "u":
        return -(-n // 1000)
    if unit == "n":
        return -(-n // 1_000_000)
    return None


def to_grpc_timeout(ms: int) -> str:
    """Grpc::Common::toGrpcTimeout: milliseconds while they fit in 8 digits, then seconds,
    minutes, hours (clipped at 99999999H)."""
    value = ms
    units = "mSMH"
    i = 0
    if value > _MAX_VALUE:
        value //= 1000
        i = 1
    while value > _MAX_VALUE:
        if i == 3:
            value = _MAX_VALUE
        else:
            value //= 60
            i += 1
    return f"{value}{units[i]}"


def grpc_route_timeout(max_grpc_timeout: float, header: str | None, offset: float = 0.0) -> float:
    """The global timeout (seconds, 0 = none) of a gRPC request on a route whose
    ``max_grpc_timeout`` is ``max_grpc_timeout`` (seconds, 0 = no cap)."""
    ms = parse_grpc_timeout(header) if header is not None else None
    t = ms / 1000 if ms else 0.0
    if offset and offset < t:
        t -= offset
    if max_grpc_timeout and (not t or t > max_grpc_timeout):
        t = max_grpc_timeout
    return t
