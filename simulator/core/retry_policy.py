"""Which upstream outcomes a route's retry policy retries: Envoy's ``retry_on`` conditions
(``x-envoy-retry-on`` / ``x-envoy-retry-grpc-on`` names, as Istio writes them from a
VirtualService's ``retries.retryOn``).  Pure: the proxy (proxy/forwarding.py) asks these
after each attempt; how many attempts, the backoff and the retry circuit breaker stay there.

* a response: ``retriable_response(policy, status, headers)``;
* a reset before the response (``connect_failure``: the connection was refused or timed out;
  otherwise the connection was reset or closed before a response head):
  ``retriable_reset``;
* a per-try timeout: ``retriable_per_try_timeout`` (retried as a 504 would be).
"""

from __future__ import annotations

from typing import Final

from simulator.core.envoy_config import RetryPolicy

# grpc-status values and the retry_on names that retry them (x-envoy-retry-grpc-on)
GRPC_RETRY_ON: Final = {b"1": "cancelled", b"4": "deadline-exceeded", b"8": "resource-exhausted",
                        b"13": "internal", b"14": "unavailable"}


def retriable_response(rp: RetryPolicy, status: int, headers: list[tuple[bytes, bytes]]) -> bool:
    """Envoy's retry-on conditions for a response (``headers``: names lower-case)."""
    on = rp.retry_on
    if status >= 409:
        if status >= 500 and "5xx" in on:
            return True
        if (status == 502 or status == 503 or status == 504) and "gateway-error" in on:
            return True
        if status == 409 and "retriable-4xx" in on:
            return True
        if "retriable-status-codes" in on and status in rp.retriable_status_codes:
            return True
        if status == 429 and "envoy-ratelimited" in on:
            return any(n.lower() == b"x-envoy-ratelimited" for n, _ in headers)
        return False
    for n, v in headers:  # gRPC errors come as a trailers-only 200 with grpc-status
        if len(n) == 11 and n.lower() == b"grpc-status":
            token = GRPC_RETRY_ON.get(v.strip())
            return token is not None and token in on
    return False


def retriable_reset(rp: RetryPolicy, connect_failure: bool) -> bool:
    """A reset before any response: a connect failure retries under ``connect-failure``;
    any reset (a connect failure included) under ``reset``, ``5xx`` or ``gateway-error``
    (Envoy's RetryStateImpl::wouldRetryFromReset: "we count an upstream reset as a 5xx")."""
    on = rp.retry_on
    if connect_failure and "connect-failure" in on:
        return True
    return "reset" in on or "5xx" in on or "gateway-error" in on


def retriable_per_try_timeout(rp: RetryPolicy) -> bool:
    """A per-try timeout (reset by the proxy): retried under ``5xx``, ``gateway-error`` or
    ``reset``."""
    on = rp.retry_on
    return "5xx" in on or "gateway-error" in on or "reset" in on
