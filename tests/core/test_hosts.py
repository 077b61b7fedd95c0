import pytest

from simulator.core.hosts import fqdn, shadow_host, split_host_port


# Envoy 1.40 observations (shared/reference/envoy-mirroring.md section 1)
@pytest.mark.parametrize("host, expected", [
    ("httpbin:8000", "httpbin-shadow:8000"),
    ("httpbin", "httpbin-shadow"),
    ("[::1]:8000", "[::1]-shadow:8000"),
    ("[::1]", "[::1]-shadow"),
    ("httpbin-shadow", "httpbin-shadow-shadow"),
    ("httpbin-shadow:8000", "httpbin-shadow-shadow:8000"),
    ("HTTPBin.Example.COM:8000", "HTTPBin.Example.COM-shadow:8000"),
    ("httpbin:", "httpbin-shadow:"),
    ("a:b:c", "a:b-shadow:c"),
    ("10.0.0.1:80", "10.0.0.1-shadow:80"),
])
def test_shadow_host(host, expected):
    assert shadow_host(host) == expected


@pytest.mark.parametrize("name, ns, expected", [
    ("httpbin", "default", "httpbin.default.svc.cluster.local"),
    ("reviews", "prod", "reviews.prod.svc.cluster.local"),
    ("reviews.prod", "default", "reviews.prod"),  # a dot: taken literally (Istio gotcha)
    ("*", "default", "*"),
    ("10.0.0.1", "default", "10.0.0.1"),
    ("*.example.com", "default", "*.example.com"),
])
def test_fqdn(name, ns, expected):
    assert fqdn(name, ns) == expected


@pytest.mark.parametrize("authority, expected", [
    ("httpbin:8000", ("httpbin", 8000)),
    ("httpbin", ("httpbin", None)),
    ("[::1]:8000", ("[::1]", 8000)),
    ("[::1]", ("[::1]", None)),
])
def test_split_host_port(authority, expected):
    assert split_host_port(authority) == expected
