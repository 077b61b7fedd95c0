"""simulator/core/cors.py: Envoy's CORS filter decisions (cors_filter.cc) on Istio's
translation of ``corsPolicy`` (route.go TranslateCORSPolicy)."""

from __future__ import annotations

import pytest

from simulator.core.cors import CorsPolicy, set_lines
from simulator.core.matchers import StringMatcher
from tests.conftest import registry_yaml, table_from_yaml, virtual_service


def policy(**kw) -> CorsPolicy:
    kw.setdefault("allow_origins", (StringMatcher.make("exact", "https://a.example"),))
    return CorsPolicy(**kw)


def pre(origin: str, method: str = "PUT", **extra: str) -> dict[str, str]:
    return {"origin": origin, "access-control-request-method": method, **extra}


def test_no_origin_is_not_a_cors_request():
    assert policy().evaluate("OPTIONS", {"access-control-request-method": "PUT"}) is None
    assert policy().evaluate("GET", {"origin": ""}) is None


@pytest.mark.parametrize("kind, value, origin, allowed", [
    ("exact", "https://a.example", "https://a.example", True),
    ("exact", "https://a.example", "https://A.example", False),
    ("prefix", "https://p.", "https://p.anything", True),
    ("regex", r"https://r[0-9]+\.example", "https://r7.example", True),
    ("regex", r"https://r[0-9]+\.example", "https://r7.example.evil", False),  # full match
    ("exact", "*", "https://any.example", True),  # a matcher that matches "*" allows all
    ("regex", ".*", "https://any.example", True),
    ("prefix", "https", "*", False),
])
def test_origin_matchers(kind, value, origin, allowed):
    assert policy(allow_origins=(StringMatcher.make(kind, value),)).origin_allowed(origin) is allowed


def test_preflight_answer_lists_and_order():
    p = policy(allow_methods="GET,PUT", allow_headers="x-a,x-b", expose_headers="x-c", max_age="86400",
               allow_credentials=True)
    r = p.evaluate("OPTIONS", pre("https://a.example"))
    assert r is not None and r.preflight == (
        ("access-control-allow-origin", "https://a.example"),
        ("access-control-allow-credentials", "true"),
        ("access-control-allow-methods", "GET,PUT"),
        ("access-control-allow-headers", "x-a,x-b"),
        ("access-control-max-age", "86400"),
        ("access-control-expose-headers", "x-c"),
    )


def test_star_lists_echo_the_request():
    p = policy(allow_methods="*", allow_headers="*")
    r = p.evaluate("OPTIONS", pre("https://a.example", "PATCH", **{"access-control-request-headers": "x-q"}))
    assert r is not None and r.preflight == (
        ("access-control-allow-origin", "https://a.example"),
        ("access-control-allow-methods", "PATCH"),
        ("access-control-allow-headers", "x-q"),
    )


def test_unmatched_preflight_forwarded_by_default_answered_with_ignore():
    r = policy(allow_methods="GET").evaluate("OPTIONS", pre("https://evil.example"))
    assert r is not None and r.preflight is None and r.response == ()
    r = policy(allow_methods="GET", forward_not_matching_preflights=False, allow_credentials=True).evaluate(
        "OPTIONS", pre("https://evil.example"))
    assert r is not None and r.preflight == (("access-control-allow-credentials", "true"),
                                             ("access-control-allow-methods", "GET"))


def test_options_without_request_method_is_an_actual_request():
    r = policy().evaluate("OPTIONS", {"origin": "https://a.example"})
    assert r is not None and r.preflight is None
    assert r.response == (("access-control-allow-origin", "https://a.example"),)


def test_actual_request_headers():
    p = policy(expose_headers="x-c", allow_credentials=True)
    r = p.evaluate("GET", {"origin": "https://a.example"})
    assert r is not None and r.response == (("access-control-allow-origin", "https://a.example"),
                                            ("access-control-allow-credentials", "true"),
                                            ("access-control-expose-headers", "x-c"))
    r = p.evaluate("GET", {"origin": "https://b.example"})
    assert r is not None and r.response == () and r.preflight is None


def test_set_lines_replaces_in_place_and_appends():
    head = b"HTTP/1.1 200 OK\r\nx: 1\r\naccess-control-allow-origin: up\r\ny: 2\r\naccess-control-allow-origin: up2\r\n"
    out = set_lines(head, (("access-control-allow-origin", "o"), ("access-control-max-age", "5")))
    assert out == b"HTTP/1.1 200 OK\r\nx: 1\r\naccess-control-allow-origin: o\r\ny: 2\r\naccess-control-max-age: 5\r\n"
    out = set_lines(b"HTTP/1.1 503 X\r\ncontent-length: 3\r\ndate: d\r\nserver: envoy\r\n",
                    (("a", "b"),), before=b"date:")
    assert out == b"HTTP/1.1 503 X\r\ncontent-length: 3\r\na: b\r\ndate: d\r\nserver: envoy\r\n"


def test_translation_from_cors_policy():
    table = table_from_yaml(registry_yaml({"v1": 18081}) + virtual_service("""
- route: [{destination: {host: httpbin, subset: v1}}]
  corsPolicy:
    allowOrigins: [{exact: "https://a.example"}, {regex: "https://.*"}]
    allowMethods: [GET, POST]
    allowHeaders: [x-a]
    exposeHeaders: [x-b, x-c]
    maxAge: 90s
    allowCredentials: false
    unmatchedPreflights: IGNORE
"""))
    (vh,) = table.route_configs[8000].virtual_hosts
    c = vh.routes[0].cors
    assert c is not None
    assert [(m.kind, m.value) for m in c.allow_origins] == [("exact", "https://a.example"), ("regex", "https://.*")]
    assert (c.allow_methods, c.allow_headers, c.expose_headers, c.max_age) == ("GET,POST", "x-a", "x-b,x-c", "90")
    assert c.allow_credentials is False and c.forward_not_matching_preflights is False


def test_deprecated_allow_origin_is_exact():
    table = table_from_yaml(registry_yaml({"v1": 18081}) + virtual_service("""
- route: [{destination: {host: httpbin, subset: v1}}]
  corsPolicy: {allowOrigin: ["https://x.example"]}
"""))
    c = table.route_configs[8000].virtual_hosts[0].routes[0].cors
    assert c is not None and [(m.kind, m.value) for m in c.allow_origins] == [("exact", "https://x.example")]
    assert c.forward_not_matching_preflights is True


def test_explain_and_check_show_a_preflight_answered_by_cors():
    from simulator.core.explain import RouteQuery, explain
    from simulator.routecheck.assertions import CheckedRoute
    from simulator.routecheck.decision_json import explain_json
    from simulator.routecheck.render import explain_text

    table = table_from_yaml(registry_yaml({"v1": 18081}) + virtual_service("""
- route: [{destination: {host: httpbin, subset: v1}}]
  mirror: {host: httpbin, subset: v1}
  corsPolicy: {allowOrigins: [{exact: "https://a.example"}], allowMethods: [PUT]}
"""))
    req = RouteQuery("OPTIONS", "httpbin:8000", "/", {"origin": "https://a.example",
                                                   "access-control-request-method": "PUT"})
    e = explain(table, req)
    assert e.kind == "cors_preflight" and not e.forwarded
    assert not any(m.sampled for m in e.mirrors)  # the router never runs
    assert "CORS preflight answered by the proxy: 200" in explain_text(e)
    assert explain_json(e)["cors"]["preflight"]["access-control-allow-methods"] == "PUT"
    d = CheckedRoute(e)
    assert d.status == 200 and "CORS preflight" in d.summary()
    assert d.destination is None and e.cluster is None  # nothing goes upstream
    d.check(status=200)
    assert [mi.sampled for mi in d.mirrors] == [False]
    actual = explain(table, RouteQuery("GET", "httpbin:8000", "/", {"origin": "https://a.example"}))
    assert actual.kind == "forward" and actual.cors is not None
    assert actual.cors.response == (("access-control-allow-origin", "https://a.example"),)
    assert "cors: origin https://a.example allowed" in explain_text(actual)
