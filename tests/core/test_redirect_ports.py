"""A redirect's port as istiod emits it (route.go: ``derivePort: FROM_REQUEST_PORT`` is a
``port_redirect`` to the port the routes are built for; ``FROM_PROTOCOL_DEFAULT`` sets
nothing, so Envoy keeps the request's port unless it is the new scheme's default)."""

from __future__ import annotations

import pytest

from simulator.core.table import LocalReply
from tests.conftest import registry_yaml, table_from_yaml, virtual_service


@pytest.mark.parametrize("redirect, authority, location", [
    ("{scheme: https, derivePort: FROM_PROTOCOL_DEFAULT}", "httpbin:8000", "https://httpbin:8000/a"),
    ("{scheme: https}", "httpbin:8000", "https://httpbin:8000/a"),
    ("{derivePort: FROM_REQUEST_PORT}", "httpbin", "http://httpbin:8000/a"),
    ("{scheme: https, derivePort: FROM_REQUEST_PORT}", "httpbin", "https://httpbin:8000/a"),
    ("{port: 443, scheme: https}", "httpbin:8000", "https://httpbin/a"),
])
def test_redirect_port(redirect: str, authority: str, location: str) -> None:
    table = table_from_yaml(registry_yaml({"v1": 18081}) + virtual_service(f"- redirect: {redirect}"))
    d = table.route("GET", authority, "/a", {}, 0)
    assert isinstance(d, LocalReply) and d.status == 301
    assert dict(d.headers)["location"] == location
