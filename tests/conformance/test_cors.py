"""Conformance: a VirtualService ``corsPolicy`` on the real Envoy (Istio's CORS filter with the
route's per-filter policy, as `mirrorsim envoy` exports it) vs mirrorsim: preflights answered by
the proxy, unmatched preflights forwarded or answered, CORS headers on actual responses (the
upstream's and local replies), origin matchers (exact, prefix, regex, ``*``)."""

from __future__ import annotations

import pytest

from tests.conformance.harness import Backend, Req, Scenario, conformance_env, params

pytestmark = [pytest.mark.slow, pytest.mark.asyncio(loop_scope="module")]


def preflight(origin: str, method: str = "PUT", headers: str | None = None, path: str = "/") -> Req:
    h = [("Origin", origin), ("Access-Control-Request-Method", method)]
    if headers is not None:
        h.append(("Access-Control-Request-Headers", headers))
    return Req(method="OPTIONS", path=path, headers=tuple(h))


def actual(origin: str | None, method: str = "GET", path: str = "/") -> Req:
    return Req(method=method, path=path, headers=(("Origin", origin),) if origin is not None else ())


FULL = """
- route: [{destination: {host: HOST, subset: v1}}]
  corsPolicy:
    allowOrigins: [{exact: "https://a.example"}, {prefix: "https://p."}, {regex: "https://r[0-9]+\\\\.example"}]
    allowMethods: [GET, PUT]
    allowHeaders: [x-a, x-b]
    exposeHeaders: [x-c]
    maxAge: 24h
    allowCredentials: true
"""

SCENARIOS = [
    Scenario(
        "cors-preflight",
        backends=("v1",),
        http=FULL,
        requests=(preflight("https://a.example"), preflight("https://p.other", "DELETE", "x-z"),
                  preflight("https://r42.example"), preflight("https://r4x.example"),
                  preflight("https://evil.example"), Req(method="OPTIONS", headers=(("Origin", "https://a.example"),)),
                  Req(method="OPTIONS", headers=(("Access-Control-Request-Method", "PUT"),)),
                  preflight("")),
    ),
    Scenario(
        "cors-actual",
        backends=(Backend("v1", headers=(("access-control-allow-origin", "https://upstream"),
                                         ("x-up", "1"))),),
        http=FULL,
        requests=(actual("https://a.example"), actual("https://evil.example"), actual(None),
                  actual("https://p.x", "POST"), actual("")),
    ),
    Scenario(
        "cors-ignore",
        backends=("v1",),
        http="""
        - route: [{destination: {host: HOST, subset: v1}}]
          corsPolicy:
            allowOrigins: [{exact: "https://a.example"}]
            allowMethods: ["*"]
            allowHeaders: ["*"]
            unmatchedPreflights: IGNORE
        """,
        requests=(preflight("https://evil.example", "PATCH", "x-q"), preflight("https://a.example", "PATCH", "x-q"),
                  preflight("https://a.example", "PATCH")),
    ),
    Scenario(
        "cors-star",
        backends=("v1",),
        http="""
        - route: [{destination: {host: HOST, subset: v1}}]
          corsPolicy:
            allowOrigins: [{exact: "*"}]
            allowCredentials: false
        """,
        requests=(preflight("https://any.example"), actual("https://any.example")),
    ),
    Scenario(
        "cors-mirror-and-body",
        http="""
        - route: [{destination: {host: HOST, subset: v1}}]
          mirror: {host: HOST, subset: v2}
          corsPolicy: {allowOrigins: [{prefix: "https://"}], allowMethods: [POST]}
        """,
        requests=(Req(method="OPTIONS", headers=(("Origin", "https://a.example"),
                                                 ("Access-Control-Request-Method", "POST")), body=b"xyz"),
                  preflight("http://plain.example"), actual("https://a.example", "POST")),
    ),
    Scenario(
        "cors-with-header-operations",
        backends=(Backend("v1", headers=(("access-control-allow-origin", "https://upstream"),
                                         ("access-control-expose-headers", "x-up"))),),
        http="""
        - route: [{destination: {host: HOST, subset: v1}}]
          headers:
            response:
              set: {access-control-allow-origin: "https://route", access-control-max-age: "7"}
          corsPolicy: {allowOrigins: [{exact: "https://a.example"}], exposeHeaders: [x-e]}
        """,
        requests=(actual("https://a.example"), actual("https://other.example"), actual("https://a.example", "HEAD"),
                  preflight("https://a.example")),
    ),
    Scenario(
        "cors-inline-header-append",
        # Envoy registers the CORS headers as inline headers (cors_filter.cc); an `add` of an inline
        # header the message has appends to its line (x-up,x-added), on requests too (user-agent,
        # accept); a non-inline one (x-plain) gets a line of its own
        backends=(Backend("v1", headers=(("access-control-expose-headers", "x-up"), ("vary", "origin"),
                                         ("x-plain", "up"))),),
        http="""
        - route: [{destination: {host: HOST, subset: v1}}]
          headers:
            request: {add: {user-agent: ua-added, accept: a-added, x-plain: p-added}}
            response: {add: {access-control-expose-headers: x-added, vary: v-added, x-plain: added,
                             access-control-max-age: "5"}}
        """,
        requests=(Req(headers=(("Origin", "https://a.example"), ("User-Agent", "curl/8"), ("x-plain", "c"))),
                  Req(method="POST", headers=(("Accept", "*/*"),))),
    ),
    Scenario(
        "cors-request-header-repeated",
        backends=("v1",),
        http="- route: [{destination: {host: HOST, subset: v1}}]",
        requests=(Req(headers=(("Origin", "https://a.example"), ("Origin", "https://b.example"))),),
    ),
    Scenario(
        "cors-local-replies",
        backends=("v1",),
        http="""
        - match: [{uri: {prefix: /nc}}]
          route: [{destination: {host: HOST, subset: missing}}]
          corsPolicy: {allowOrigins: [{exact: "https://a.example"}], exposeHeaders: [x-e]}
        - match: [{uri: {prefix: /direct}}]
          directResponse: {status: 204}
          corsPolicy: {allowOrigins: [{exact: "https://a.example"}]}
        - match: [{uri: {prefix: /abort}}]
          fault: {abort: {httpStatus: 418, percentage: {value: 100}}}
          route: [{destination: {host: HOST, subset: v1}}]
          corsPolicy: {allowOrigins: [{exact: "https://a.example"}]}
        """,
        requests=(actual("https://a.example", path="/nc"), preflight("https://a.example", path="/nc"),
                  actual("https://a.example", path="/direct"), preflight("https://a.example", path="/direct"),
                  actual("https://a.example", path="/abort"), preflight("https://a.example", path="/abort")),
    ),
]

env = conformance_env(SCENARIOS)


@pytest.mark.parametrize("name", params(SCENARIOS))
async def test_conformance(env, name):
    await env.check(name)


@pytest.mark.parametrize("name", params(SCENARIOS, order=True))
async def test_header_order(env, name):
    await env.check_order(name)


async def test_cors_stats_agree(env):
    """http.<stat_prefix>.cors.origin_valid / origin_invalid count the same requests on both
    (whatever scenarios ran before in this module, both proxies saw each of them)."""
    await env.run("cors-actual")
    e, m = await env.envoy.stats(), await env.mirrorsim.stats()
    keys = [k for k in e if ".cors.origin_" in k]
    assert keys, "Envoy has no CORS stats"
    assert {k: e[k] for k in keys} == {k: m.get(k, 0) for k in keys}
    assert all(e[k] > 0 for k in keys)
