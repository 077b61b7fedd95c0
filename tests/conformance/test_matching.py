"""Conformance: request matching and virtual-host selection on the real Envoy vs mirrorsim.

Each backend answers with its own name as the body, so the client response shows which
route matched; the backends' records show exactly what was forwarded."""

from __future__ import annotations

import pytest

from tests.conformance.harness import (
    Req,
    Scenario,
    conformance_env,
    params,
)

pytestmark = [pytest.mark.slow, pytest.mark.asyncio(loop_scope="module")]


def to(subset: str) -> str:
    return f"route: [{{destination: {{host: HOST, subset: {subset}}}}}]"


ABCD = ("a", "b", "c", "d")

SCENARIOS = [
    Scenario(
        "uri-exact",
        http=f"""
        - match: [{{uri: {{exact: /exact}}}}]
          {to("v1")}
        - {to("v2")}
        """,
        requests=tuple(Req(path=p) for p in ("/exact", "/exact?x=1", "/exact/", "/EXACT", "/exactly", "/")),
    ),
    Scenario(
        "uri-prefix",
        http=f"""
        - match: [{{uri: {{prefix: /api}}}}]
          {to("v1")}
        - {to("v2")}
        """,
        requests=tuple(Req(path=p) for p in ("/api", "/api/v1?x=1", "/apix", "/ap", "/API", "/x/api")),
    ),
    Scenario(
        "uri-regex",
        http=f"""
        - match: [{{uri: {{regex: "/users/[0-9]+(/.*)?"}}}}]
          {to("v1")}
        - {to("v2")}
        """,
        requests=tuple(Req(path=p) for p in (
            "/users/12", "/users/12/x", "/users/ab", "/users/12?y=z", "/xusers/1", "/users/")),
    ),
    Scenario(
        "ignore-uri-case",
        http=f"""
        - match: [{{uri: {{exact: /Foo}}, ignoreUriCase: true}}]
          {to("v1")}
        - match: [{{uri: {{prefix: /Bar}}, ignoreUriCase: true}}]
          {to("v1")}
        - {to("v2")}
        """,
        requests=tuple(Req(path=p) for p in ("/foo", "/FOO", "/fOo?x=Y", "/bar/x", "/BARista", "/foox", "/Fo")),
    ),
    Scenario(
        "header-match",
        backends=ABCD,
        http=f"""
        - match: [{{headers: {{end-user: {{exact: jason}}}}}}]
          {to("a")}
        - match: [{{headers: {{x-ver: {{prefix: beta}}}}}}]
          {to("b")}
        - match: [{{headers: {{x-re: {{regex: "[a-z]{{3}}"}}}}}}]
          {to("c")}
        - {to("d")}
        """,
        requests=(
            Req(headers=(("end-user", "jason"),)), Req(headers=(("End-User", "Jason"),)),
            Req(headers=(("end-user", "jasonx"),)), Req(headers=(("x-ver", "beta2"),)),
            Req(headers=(("x-ver", "Beta"),)), Req(headers=(("x-re", "abc"),)),
            Req(headers=(("x-re", "abcd"),)), Req(headers=(("x-re", "ab"), ("x-re", "c"))), Req(),
        ),
    ),
    Scenario(
        "header-match-multivalue",
        backends=ABCD,
        http=f"""
        - match: [{{headers: {{end-user: {{exact: jason}}}}}}]
          {to("a")}
        - match: [{{headers: {{x-ver: {{prefix: beta}}}}}}]
          {to("b")}
        - match: [{{headers: {{x-both: {{exact: "1,2"}}}}}}]
          {to("c")}
        - {to("d")}
        """,
        requests=(
            Req(headers=(("x-ver", "x"), ("x-ver", "beta"))), Req(headers=(("x-ver", "beta"), ("x-ver", "x"))),
            Req(headers=(("end-user", "jason"), ("end-user", "jason"))),
            Req(headers=(("x-both", "1"), ("x-both", "2"))),
        ),
    ),
    Scenario(
        "header-match-combined",
        http=f"""
        - match:
          - headers: {{x-a: {{exact: "1"}}, x-b: {{}}}}
            uri: {{prefix: /p}}
          {to("v1")}
        - {to("v2")}
        """,
        requests=(
            Req(path="/p", headers=(("x-a", "1"), ("x-b", ""))), Req(path="/p", headers=(("x-a", "1"),)),
            Req(path="/q", headers=(("x-a", "1"), ("x-b", "z"))), Req(path="/p", headers=(("x-b", "z"),)),
        ),
    ),
    Scenario(
        "without-headers",
        backends=("a", "b", "c"),
        http=f"""
        - match: [{{withoutHeaders: {{x-block: {{exact: "yes"}}}}, uri: {{prefix: /w}}}}]
          {to("a")}
        - match: [{{withoutHeaders: {{x-p: {{}}}}, uri: {{prefix: /p}}}}]
          {to("b")}
        - {to("c")}
        """,
        requests=(
            Req(path="/w"), Req(path="/w", headers=(("x-block", "yes"),)),
            Req(path="/w", headers=(("x-block", "no"),)), Req(path="/w", headers=(("x-block", ""),)),
            Req(path="/p"), Req(path="/p", headers=(("x-p", "1"),)), Req(path="/p", headers=(("x-p", ""),)),
        ),
    ),
    Scenario(
        "query-params",
        backends=ABCD,
        http=f"""
        - match: [{{queryParams: {{a: {{exact: "1"}}}}}}]
          {to("a")}
        - match: [{{queryParams: {{b: {{regex: "\\\\d+"}}}}}}]
          {to("b")}
        - match: [{{queryParams: {{c: {{}}}}}}]
          {to("c")}
        - {to("d")}
        """,
        requests=tuple(Req(path=p) for p in (
            "/?a=1", "/?a=1&a=2", "/?a=2&a=1", "/?x=1&a=1", "/?a=%31", "/?A=1",
            "/?b=123", "/?b=a123", "/?b=", "/?c", "/?c=", "/?c=x", "/", "/?",
        )),
    ),
    Scenario(
        "uri-fragment",
        backends=("v1",),
        http=f"- {to('v1')}",
        # Istio's bootstrap runtime (pkg/bootstrap/config.go extractRuntimeFlags) sets
        # envoy.reloadable_features.http_reject_path_with_fragment: false: the HCM strips the fragment
        requests=(Req(path="/?a=1#frag"), Req(path="/p#x"), Req(path="/a/../b#c?d"), Req(path="/#"),
                  Req(path="/q%20#x y")),
    ),
    Scenario(
        "method-match",
        backends=("a", "b", "c"),
        http=f"""
        - match: [{{method: {{exact: POST}}}}]
          {to("a")}
        - match: [{{method: {{regex: "GET|HEAD"}}}}]
          {to("b")}
        - {to("c")}
        """,
        requests=(
            Req(), Req(method="POST", body=b"x=1"), Req(method="PUT", body=b"{}"), Req(method="HEAD"),
            Req(method="DELETE"), Req(method="OPTIONS"),
        ),
    ),
    Scenario(
        "authority-match",
        backends=("a", "b", "c"),
        http=f"""
        - match: [{{authority: {{exact: "authority-match:8000"}}}}]
          {to("a")}
        - match: [{{authority: {{prefix: authority-match.default}}}}]
          {to("b")}
        - {to("c")}
        """,
        requests=(
            Req(), Req(host="authority-match.default:8000"),
            Req(host="authority-match.default.svc.cluster.local:8000"), Req(host="Authority-Match:8000"),
            Req(target="http://authority-match.default:8000/abs", host="other:1"),
        ),
    ),
    Scenario(
        "scheme-match",
        http=f"""
        - match: [{{scheme: {{exact: https}}}}]
          {to("v1")}
        - {to("v2")}
        """,
        requests=(Req(), Req(headers=(("x-forwarded-proto", "https"),))),
    ),
    Scenario(
        "first-match-and-404",
        http=f"""
        - match: [{{uri: {{prefix: /a}}}}, {{uri: {{exact: /z}}}}]
          {to("v1")}
        - match: [{{uri: {{prefix: /a/b}}}}]
          {to("v2")}
        - match: [{{uri: {{prefix: /c}}, headers: {{x-c: {{exact: "1"}}}}}}]
          {to("v2")}
        """,
        requests=tuple(Req(path=p) for p in ("/a/b", "/z", "/zz", "/c")) + (
            Req(path="/c", headers=(("x-c", "1"),)),),
    ),
    Scenario(
        "local-reply-with-body",
        backends=("v1",),
        http=f"""
        - match: [{{uri: {{prefix: /a}}}}]
          {to("v1")}
        """,
        requests=(Req(method="POST", path="/nothing", body=b"x"),
                  Req(method="PUT", host="unknown-host:8000", body=b"x")),
    ),
    Scenario(
        "local-reply-head",
        backends=("v1",),
        http=f"""
        - match: [{{uri: {{prefix: /a}}}}]
          {to("v1")}
        """,
        requests=(Req(method="HEAD", path="/nothing"), Req(method="HEAD", host="unknown-host:8000")),
    ),
    Scenario(
        "host-forms",
        backends=("v1",),
        http=f"- {to('v1')}",
        requests=tuple(Req(host=h) for h in (
            "host-forms:8000", "host-forms.default:8000", "host-forms.default.svc:8000",
            "host-forms.default.svc.cluster.local:8000", "HOST-FORMS.Default:8000",
            # a port-less Host reaches the service's port (docs/deviations.md R1): the export gives
            # port-less domains to the port mirrorsim infers (envoy/export.py route_configuration)
            "host-forms", "host-forms.default", "HOST-FORMS.default.svc.cluster.local",
            "host-forms:80", "host-forms:9999", "unknown-host:8000", "host-forms.other:8000",
        )),
    ),
    Scenario(
        "non-service-hosts",
        backends=("v1", "v2"),
        vs_hosts=("external.example.com", "*.wild.example"),
        http="""
        - match: [{uri: {prefix: /v2}}]
          route: [{destination: {host: non-service-hosts, subset: v2, port: {number: 8000}}}]
        - route: [{destination: {host: non-service-hosts, subset: v1, port: {number: 8000}}}]
        """,
        requests=tuple(Req(host=h) for h in (
            "external.example.com", "external.example.com:80", "external.example.com:8000",
            "a.wild.example", "b.a.wild.example:80", "wild.example", "A.WILD.example:80",
        )) + (Req(host="external.example.com", path="/v2/x"),),
    ),
    Scenario(
        "no-virtual-service",
        backends=("v1",),
        requests=(Req(), Req(path="/anything?x=1", method="POST", body=b"hello")),
    ),
]

env = conformance_env(SCENARIOS)


@pytest.mark.parametrize("name", params(SCENARIOS))
async def test_conformance(env, name):
    await env.check(name)


@pytest.mark.parametrize("name", params(SCENARIOS, order=True))
async def test_header_order(env, name):
    await env.check_order(name)
