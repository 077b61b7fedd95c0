"""Conformance: weighted splits, rewrites, redirects, direct responses and header operations
on the real Envoy vs mirrorsim."""

from __future__ import annotations

import pytest

from tests.conformance.harness import (
    Backend,
    Observation,
    Req,
    Scenario,
    assert_binomial,
    assert_same_rate,
    conformance_env,
    params,
    response_shapes,
    shapes,
)

pytestmark = [pytest.mark.slow, pytest.mark.asyncio(loop_scope="module")]

N = 400  # requests per distribution


def to(subset: str) -> str:
    return f"route: [{{destination: {{host: HOST, subset: {subset}}}}}]"


def split_check(shares: dict[str, float]):  # noqa: ANN201 - returns a check function
    """The share of each backend agrees with the weights (5 sigma) for both proxies and
    between them; each backend saw the same requests; the clients saw the same responses."""

    def check(e: Observation, m: Observation) -> None:
        assert not e.errors and not m.errors, (e.errors, m.errors)
        for backend, p in shares.items():
            ce, cm = e.count(backend), m.count(backend)
            assert_binomial(ce, N, p, f"envoy: requests to {backend}")
            assert_binomial(cm, N, p, f"mirrorsim: requests to {backend}")
            assert_same_rate(ce, cm, N, f"requests to {backend}")
            assert shapes(e, backend) == shapes(m, backend), backend
        assert response_shapes(e) == response_shapes(m)

    return check


REDIRECT_BACKENDS = ("v1",)

SCENARIOS = [
    # ------------------------------------------------------------------ weights
    Scenario(
        "weights-3way",
        backends=("a", "b", "c"),
        http="""
        - route:
          - {destination: {host: HOST, subset: a}, weight: 20}
          - {destination: {host: HOST, subset: b}, weight: 30}
          - {destination: {host: HOST, subset: c}, weight: 50}
        """,
        requests=(Req(),), repeat=N, concurrency=8,
        check=split_check({"a": 0.2, "b": 0.3, "c": 0.5}),
    ),
    Scenario(
        "weights-relative",
        backends=("a", "b"),
        http="""
        - route:
          - {destination: {host: HOST, subset: a}, weight: 1}
          - {destination: {host: HOST, subset: b}, weight: 3}
        """,
        requests=(Req(),), repeat=N, concurrency=8,
        check=split_check({"a": 0.25, "b": 0.75}),
    ),
    Scenario(
        "weights-zero-dropped",
        backends=("a", "b"),
        http="""
        - route:
          - {destination: {host: HOST, subset: a}, weight: 0}
          - {destination: {host: HOST, subset: b}, weight: 100}
        """,
        requests=(Req(), Req(path="/x?y=1")),
    ),
    Scenario(
        "weights-per-destination-headers",
        backends=("a", "b"),
        http="""
        - route:
          - destination: {host: HOST, subset: a}
            weight: 50
            headers:
              request: {set: {x-dest: a, x-both: dest-a}, add: {x-dest-add: a}}
              response: {set: {x-resp-dest: a}}
          - destination: {host: HOST, subset: b}
            weight: 50
            headers:
              request: {set: {x-dest: b}, remove: [x-client]}
              response: {add: {x-resp-dest: b}}
          headers:
            request: {set: {x-route: r, x-both: route}}
            response: {set: {x-resp-route: r}}
        """,
        requests=(Req(headers=(("x-client", "c"), ("x-dest-add", "client"))),), repeat=N, concurrency=8,
        check=split_check({"a": 0.5, "b": 0.5}),
    ),
    # ------------------------------------------------------------------ rewrites
    Scenario(
        "rewrite-prefix",
        backends=("v1", "v2"),
        http=f"""
        - match: [{{uri: {{prefix: /old}}}}]
          rewrite: {{uri: /new}}
          {to("v1")}
        - {to("v2")}
        """,
        requests=tuple(Req(path=p) for p in ("/old/x?q=1", "/old", "/oldish", "/old/", "/other")),
    ),
    Scenario(
        "rewrite-exact",
        http=f"""
        - match: [{{uri: {{exact: /exact}}}}]
          rewrite: {{uri: /replaced}}
          {to("v1")}
        - {to("v2")}
        """,
        requests=(Req(path="/exact?x=1"), Req(path="/exact"), Req(path="/exact/")),
    ),
    Scenario(
        "rewrite-without-uri-match",
        backends=("v1",),
        http=f"""
        - rewrite: {{uri: /v1}}
          {to("v1")}
        """,
        requests=(Req(path="/foo"), Req(path="/"), Req(path="/a/b?c=d")),
    ),
    Scenario(
        "rewrite-regex",
        backends=("v1",),
        http=f"""
        - rewrite:
            uriRegexRewrite: {{match: "^/service/([^/]+)(/.*)$", rewrite: "/customprefix\\\\2/\\\\1"}}
          {to("v1")}
        """,
        requests=(Req(path="/service/update/v1/api?x=1"), Req(path="/service/a/b/service/c/d")),
    ),
    Scenario(
        "rewrite-regex-all-matches",
        backends=("v1",),
        http=f"""
        - rewrite:
            uriRegexRewrite: {{match: "a", rewrite: "X"}}
          {to("v1")}
        """,
        requests=(Req(path="/banana?a=a"),),
    ),
    Scenario(
        "rewrite-regex-no-match",
        backends=("v1",),
        http=f"""
        - rewrite:
            uriRegexRewrite: {{match: "^/service/([^/]+)$", rewrite: "/s/\\\\1"}}
          {to("v1")}
        """,
        requests=(Req(path="/other/a"), Req(path="/b?c=1")),
    ),
    Scenario(
        "rewrite-regex-match-with-uri-rewrite",
        http=f"""
        - match: [{{uri: {{regex: "/r/[0-9]+"}}}}]
          rewrite: {{uri: /fixed}}
          {to("v1")}
        - {to("v2")}
        """,
        requests=(Req(path="/r/123?z=1"), Req(path="/r/x")),
    ),
    Scenario(
        "rewrite-authority",
        backends=("v1",),
        http=f"""
        - rewrite: {{authority: new-authority.example}}
          {to("v1")}
        """,
        requests=(Req(path="/a"), Req(path="/b", host="rewrite-authority.default:8000")),
    ),
    Scenario(
        "rewrite-authority-by-header-set",
        backends=("v1",),
        http=f"""
        - headers:
            request: {{set: {{":authority": set-authority.example, x-other: o}}}}
          {to("v1")}
        """,
        requests=(Req(path="/a"),),
    ),
    Scenario(
        "rewrite-uri-and-authority",
        backends=("v1",),
        http=f"""
        - match: [{{uri: {{prefix: /api/v1}}}}]
          rewrite: {{uri: /v2, authority: both.example:9000}}
          {to("v1")}
        """,
        requests=(Req(path="/api/v1/users?id=7"),),
    ),
    # ------------------------------------------------------------------ redirects
    Scenario(
        "redirect-uri",
        backends=REDIRECT_BACKENDS,
        http="""
        - redirect: {uri: /new-path}
        """,
        requests=(Req(path="/old?q=1"), Req(path="/old")),
    ),
    Scenario(
        "redirect-authority-302",
        backends=REDIRECT_BACKENDS,
        http="""
        - redirect: {authority: other.example, redirectCode: 302}
        """,
        requests=(Req(path="/x?y=1"),),
    ),
    Scenario(
        "redirect-scheme-and-port",
        backends=REDIRECT_BACKENDS,
        http="""
        - redirect: {scheme: https, port: 8443, uri: /secure}
        """,
        requests=(Req(path="/x"),),
    ),
    Scenario(
        "redirect-scheme-only",
        backends=REDIRECT_BACKENDS,
        http="""
        - redirect: {scheme: https}
        """,
        requests=(Req(path="/x?y=2"),),
    ),
    Scenario(
        "redirect-prefix-derive-port",
        backends=REDIRECT_BACKENDS,
        http="""
        - match: [{uri: {prefix: /p}}]
          redirect: {prefixRewrite: /q, derivePort: FROM_REQUEST_PORT, redirectCode: 308, authority: moved.example}
        """,
        requests=(Req(path="/p/a?b=c"), Req(path="/p")),
    ),
    Scenario(
        "redirect-codes",
        backends=REDIRECT_BACKENDS,
        http="""
        - match: [{uri: {prefix: /303}}]
          redirect: {uri: /see-other, redirectCode: 303}
        - match: [{uri: {prefix: /307}}]
          redirect: {uri: /temporary, redirectCode: 307}
        """,
        requests=(Req(path="/303"), Req(path="/307")),
    ),
    # ------------------------------------------------------------------ direct responses
    Scenario(
        "direct-response",
        backends=("v1",),
        http="""
        - match: [{uri: {prefix: /hello}}]
          directResponse: {status: 200, body: {string: "hello world\\n"}}
          headers:
            response: {set: {x-direct: "yes"}, add: {x-direct-add: "a"}}
        - match: [{uri: {prefix: /teapot}}]
          directResponse: {status: 418, body: {string: "{\\"short\\": \\"and stout\\"}"}}
        - directResponse: {status: 503}
        """,
        requests=(Req(path="/hello"), Req(path="/teapot"), Req(path="/else")),
    ),
    Scenario(
        "direct-response-head",
        backends=("v1",),
        http="""
        - directResponse: {status: 200, body: {string: "hello"}}
        """,
        requests=(Req(method="HEAD", path="/x"),),
    ),
    # ------------------------------------------------------------------ header operations
    Scenario(
        "header-ops",
        backends=(Backend("v1", headers=(("x-rs", "backend"), ("x-ra", "b"), ("x-rr", "y"))),),
        http=f"""
        - headers:
            request:
              set: {{x-set: new, x-set-new: n}}
              add: {{x-add: added, x-add-new: a}}
              remove: [x-remove]
            response:
              set: {{x-rs: proxy}}
              add: {{x-ra: proxy}}
              remove: [x-rr]
          {to("v1")}
        """,
        requests=(
            Req(headers=(("x-set", "old"), ("x-add", "client"), ("x-remove", "gone"), ("x-keep", "k"))),
            Req(),
        ),
    ),
    Scenario(
        "header-ops-route-and-destination",
        backends=("v1",),
        http="""
        - route:
          - destination: {host: HOST, subset: v1}
            headers:
              request: {set: {x-a: dest, x-d: d}, add: {x-multi: dest}}
              response: {set: {x-ra: dest}}
          headers:
            request: {set: {x-a: route, x-r: r}, add: {x-multi: route}}
            response: {set: {x-ra: route}}
        """,
        requests=(Req(headers=(("x-multi", "client"),)),),
    ),
    Scenario(
        "header-ops-on-local-replies",
        backends=("v1",),
        http="""
        - match: [{uri: {prefix: /redirect}}]
          redirect: {uri: /elsewhere}
          headers:
            response: {set: {x-local: redirect}}
        - match: [{uri: {prefix: /direct}}]
          directResponse: {status: 202}
          headers:
            response: {set: {x-local: direct}}
        """,
        requests=(Req(path="/redirect"), Req(path="/direct"), Req(path="/none")),
    ),
]

env = conformance_env(SCENARIOS)


@pytest.mark.parametrize("name", params(SCENARIOS))
async def test_conformance(env, name):
    await env.check(name)


@pytest.mark.parametrize("name", params(SCENARIOS, order=True))
async def test_header_order(env, name):
    await env.check_order(name)

