"""Which upstream outcomes a retry policy retries (simulator/core/retry_policy.py), table-driven
from Envoy's retry_on conditions."""

from __future__ import annotations

import pytest

from simulator.core.envoy_config import ISTIO_DEFAULT_RETRY, RetryPolicy
from simulator.core.retry_policy import retriable_per_try_timeout, retriable_reset, retriable_response


def policy(*on: str, codes: tuple[int, ...] = ()) -> RetryPolicy:
    return RetryPolicy(num_retries=2, retry_on=on, retriable_status_codes=codes)


GRPC = [(b"content-type", b"application/grpc")]

RESPONSES = [
    # (retry_on, retriable status codes, status, headers, retried)
    (("5xx",), (), 500, [], True),
    (("5xx",), (), 503, [], True),
    (("5xx",), (), 499, [], False),
    (("5xx",), (), 200, [], False),
    (("gateway-error",), (), 502, [], True),
    (("gateway-error",), (), 503, [], True),
    (("gateway-error",), (), 504, [], True),
    (("gateway-error",), (), 500, [], False),
    (("retriable-4xx",), (), 409, [], True),
    (("retriable-4xx",), (), 404, [], False),
    (("retriable-status-codes",), (418, 503), 418, [], True),
    (("retriable-status-codes",), (418,), 503, [], False),
    (("connect-failure",), (503,), 503, [], False),  # the codes count only under retriable-status-codes
    (("envoy-ratelimited",), (), 429, [(b"x-envoy-ratelimited", b"true")], True),
    (("envoy-ratelimited",), (), 429, [], False),
    (("reset",), (), 503, [], False),  # a response is not a reset
    # gRPC: a trailers-only 200 with grpc-status
    (("unavailable",), (), 200, GRPC + [(b"grpc-status", b"14")], True),
    (("cancelled",), (), 200, GRPC + [(b"grpc-status", b"1")], True),
    (("deadline-exceeded",), (), 200, [(b"grpc-status", b"4")], True),
    (("resource-exhausted",), (), 200, [(b"grpc-status", b"8")], True),
    (("internal",), (), 200, [(b"grpc-status", b"13")], True),
    (("unavailable",), (), 200, [(b"grpc-status", b"13")], False),
    (("unavailable",), (), 200, [(b"grpc-status", b"0")], False),
    (("5xx",), (), 200, [(b"grpc-status", b"14")], False),
]


@pytest.mark.parametrize(("on", "codes", "status", "headers", "retried"), RESPONSES)
def test_retriable_response(on, codes, status, headers, retried):
    assert retriable_response(policy(*on, codes=codes), status, headers) is retried


def test_istios_default_policy():
    # connect-failure, refused-stream, unavailable, cancelled, retriable-status-codes (none listed)
    assert not retriable_response(ISTIO_DEFAULT_RETRY, 503, [])
    assert retriable_response(ISTIO_DEFAULT_RETRY, 200, [(b"grpc-status", b"14")])
    assert retriable_reset(ISTIO_DEFAULT_RETRY, connect_failure=True)
    assert not retriable_reset(ISTIO_DEFAULT_RETRY, connect_failure=False)
    assert not retriable_per_try_timeout(ISTIO_DEFAULT_RETRY)


RESETS = [
    # (retry_on, connect failure, retried)
    (("connect-failure",), True, True),
    (("connect-failure",), False, False),
    (("reset",), False, True),
    (("5xx",), False, True),
    (("gateway-error",), False, True),
    (("retriable-4xx",), False, False),
    # Envoy's RetryStateImpl::wouldRetryFromReset (source/common/router/retry_state_impl.cc): a
    # connection failure without connect-failure falls through to reset, 5xx and gateway-error
    (("reset",), True, True),
    (("5xx",), True, True),
    (("gateway-error",), True, True),
    (("retriable-4xx",), True, False),
    (("refused-stream",), True, False),
]


@pytest.mark.parametrize(("on", "connect_failure", "retried"), RESETS)
def test_retriable_reset(on, connect_failure, retried):
    assert retriable_reset(policy(*on), connect_failure) is retried


@pytest.mark.parametrize(("on", "retried"), [
    (("5xx",), True), (("gateway-error",), True), (("reset",), True),
    (("connect-failure",), False), (("retriable-status-codes",), False),
])
def test_retriable_per_try_timeout(on, retried):
    assert retriable_per_try_timeout(policy(*on)) is retried
