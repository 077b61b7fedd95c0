"""core/grpc_timeout.py: Envoy's grpc-timeout rules (Grpc::Common, FilterUtility::finalTimeout);
the data plane's use is pinned against the real Envoy by tests/conformance/test_hcm.py
(hcm-grpc-timeout, hcm-grpc-timeout-capped)."""

from __future__ import annotations

import pytest

from simulator.core.grpc_timeout import grpc_route_timeout, is_grpc, parse_grpc_timeout, to_grpc_timeout


@pytest.mark.parametrize(("ct", "grpc"), [
    ("application/grpc", True), ("application/grpc+proto", True), ("application/grpc;charset=x", True),
    ("application/grpc-web", False), ("application/json", False), ("", False),
])
def test_is_grpc(ct, grpc):
    assert is_grpc(ct) is grpc


@pytest.mark.parametrize(("value", "ms"), [
    ("2S", 2000), ("1H", 3_600_000), ("3M", 180_000), ("250m", 250), ("1500u", 2), ("1000u", 1),
    ("2n", 1), ("0m", 0), ("99999999m", 99_999_999), ("100000000m", None), ("abc", None), ("S", None),
    ("", None), ("2s", None), ("-1S", None), ("1.5S", None),
])
def test_parse(value, ms):
    assert parse_grpc_timeout(value) == ms


@pytest.mark.parametrize(("ms", "text"), [
    (2000, "2000m"), (99_999_999, "99999999m"), (100_000_000, "100000S"),
    (99_999_999_999 * 1000, "27777777H"), (10**20, "99999999H"),
])
def test_format(ms, text):
    assert to_grpc_timeout(ms) == text


def test_route_timeout():
    assert grpc_route_timeout(0, "2S") == 2.0  # max_grpc_timeout 0s: the header as is
    assert grpc_route_timeout(0, None) == 0.0  # no header, no cap: no timeout
    assert grpc_route_timeout(0, "junk") == 0.0  # an invalid header counts as none
    assert grpc_route_timeout(3, "10S") == 3.0  # capped by the route's
    assert grpc_route_timeout(3, "0S") == 3.0  # 0 is infinite: the cap
    assert grpc_route_timeout(3, None) == 3.0
    assert grpc_route_timeout(3, "1S") == 1.0
    assert grpc_route_timeout(0, "2S", offset=0.5) == 1.5
    assert grpc_route_timeout(0, "2S", offset=2.0) == 2.0  # an offset never takes it to 0
