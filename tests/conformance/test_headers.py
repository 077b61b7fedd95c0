"""Conformance: request and response header handling (Envoy's HCM and router on Istio's
outbound sidecar configuration) on the real Envoy vs mirrorsim."""

from __future__ import annotations

from collections.abc import Callable

import pytest

from tests.conformance.harness import (
    Backend,
    Observation,
    Req,
    Scenario,
    conformance_env,
    differences,
    params,
)
from tests.support.recorder import Recorded

pytestmark = [pytest.mark.slow, pytest.mark.asyncio(loop_scope="module")]


def expect(facts: Callable[[list[Recorded], Observation], None]) -> Callable[[Observation, Observation], None]:
    """A check: Envoy and mirrorsim agree (as the default check), and Envoy's observation
    shows ``facts`` (the requests its v1 backend got, in client order; the observation)."""

    def check(e: Observation, m: Observation) -> None:
        diffs = differences(e, m)
        assert not diffs, "Envoy and mirrorsim differ:\n" + "\n".join(diffs)
        facts(sorted(e.recorded["v1"], key=lambda r: int(r.header("x-seq") or -1)), e)

    return check


def _attempt_count(got: list[Recorded], _: Observation) -> None:
    assert [r.header_values("x-envoy-attempt-count") for r in got] == [["1"], ["1"]]


def _external(got: list[Recorded], _: Observation) -> None:
    names = {n for r in got for n in r.header_names()}
    for n in ("x-envoy-retry-on", "x-envoy-force-trace", "x-envoy-original-url", "x-envoy-internal",
              "x-envoy-upstream-rq-timeout-alt-response", "x-envoy-upstream-stream-duration-ms"):
        assert n not in names, n
    for n in ("x-envoy-decorator-operation", "x-envoy-downstream-service-cluster",
              "x-envoy-downstream-service-node", "x-envoy-made-up"):
        assert n in names, n


def _te(got: list[Recorded], _: Observation) -> None:
    assert [r.header_values("te") for r in got] == [
        ["trailers"], ["trailers"], [], [], [], ["trailers"], [], [], ["trailers"]]


def _trailers(_: list[Recorded], e: Observation) -> None:
    assert e.count("v2") == 0  # trailers never route
    assert all(not r.trailers and r.header("x-trailer") is None for r in e.recorded["v1"])


def _format(got: list[Recorded], e: Observation) -> None:
    first = got[0]
    assert first.header("x-f-req") == "<hello>" and first.header("x-f-pct") == "100% sure"
    assert first.header("x-f-only-missing") is None and first.header("x-f-upstream") == "[]"
    assert got[1].header("x-f-req") == "<a>" and got[1].header("x-f-addr") == "10.9.8.7"
    resp = e.responses[0]
    assert resp is not None and resp.header("x-r-add") == "a hello % b" and resp.header("x-r-code") == "[200]"


def _local_replies(_: list[Recorded], e: Observation) -> None:
    assert [r.header("x-local") if r else None for r in e.responses] == [
        "abort", "timeout", "refused", "nohost", "direct"]


def to(subset: str) -> str:
    return f"route: [{{destination: {{host: HOST, subset: {subset}}}}}]"


# every x-envoy-* request header Envoy knows of, and two it does not
ENVOY_HEADERS = tuple((n, "1") for n in (
    "x-envoy-attempt-count", "x-envoy-decorator-operation", "x-envoy-downstream-service-cluster",
    "x-envoy-downstream-service-node", "x-envoy-expected-rq-timeout-ms", "x-envoy-external-address",
    "x-envoy-force-trace", "x-envoy-hedge-on-per-try-timeout", "x-envoy-internal", "x-envoy-ip-tags",
    "x-envoy-is-timeout-retry", "x-envoy-max-retries", "x-envoy-original-dst-host",
    "x-envoy-original-host", "x-envoy-original-path", "x-envoy-original-url",
    "x-envoy-retriable-header-names", "x-envoy-retriable-status-codes", "x-envoy-retry-grpc-on",
    "x-envoy-retry-on", "x-envoy-upstream-alt-stat-name", "x-envoy-upstream-rq-per-try-timeout-ms",
    "x-envoy-upstream-rq-timeout-alt-response", "x-envoy-upstream-rq-timeout-ms",
    "x-envoy-upstream-stream-duration-ms", "x-envoy-upstream-service-time", "x-envoy-overloaded",
    "x-envoy-immediate-health-check-fail", "x-envoy-degraded", "x-envoy-cookie-something",
    "x-envoy-made-up",
))

SCENARIOS = [
    Scenario(
        "hdr-attempt-count",
        check=expect(_attempt_count),
        backends=("v1",),
        requests=(Req(headers=(("x-envoy-attempt-count", "7"),)),
                  Req(headers=(("x-envoy-attempt-count", "1"), ("x-envoy-attempt-count", "2")))),
    ),
    Scenario(
        "hdr-attempt-count-mirror",
        http=f"""
        - mirror: {{host: HOST, subset: v2}}
          timeout: 5s
          {to("v1")}
        """,
        requests=(Req(headers=(("x-a", "1"), ("x-envoy-attempt-count", "7"), ("x-b", "2"))),),
    ),
    Scenario(
        # the lines of an inline header are one value to route matching: "a,b"
        "hdr-inline-match",
        http=f"""
        - match: [{{headers: {{user-agent: {{exact: "a"}}}}}}]
          {to("v2")}
        - match: [{{headers: {{x-custom: {{exact: "a"}}}}}}]
          {to("v2")}
        - match: [{{headers: {{accept: {{exact: "a,b"}}}}}}]
          {to("v2")}
        - {to("v1")}
        """,
        requests=(Req(headers=(("user-agent", "a"), ("user-agent", "b"))),
                  Req(headers=(("x-custom", "b"), ("x-custom", "a"))),
                  Req(headers=(("accept", "a"), ("accept", "b"))),
                  Req(headers=(("user-agent", "b"), ("user-agent", "a")))),
    ),
    Scenario(
        "hdr-envoy-external",
        check=expect(_external),
        backends=("v1",),
        requests=(Req(headers=ENVOY_HEADERS),),
    ),
    Scenario(
        # a single private address in x-forwarded-for: still external (Istio sets no
        # internal_address_config, and Envoy's default has no internal address)
        "hdr-envoy-xff-private",
        backends=("v1",),
        requests=(Req(headers=(("x-forwarded-for", "10.1.2.3"), *ENVOY_HEADERS)),
                  Req(headers=(("x-forwarded-for", "127.0.0.1"), ("x-envoy-retry-on", "5xx"))),
                  Req(headers=(("x-forwarded-for", "192.168.0.1, 10.0.0.2"),
                               ("x-envoy-retry-on", "5xx")))),
    ),
    Scenario(
        "hdr-te",
        check=expect(_te),
        backends=("v1",),
        requests=tuple(Req(headers=(("te", v),)) for v in (
            "gzip, trailers", "trailers, gzip", "Trailers", "gzip", "trailers;q=1", " trailers ",
            "TRAILERS,deflate", "deflate, gzip;q=0.5")) + (
            Req(headers=(("te", "gzip"), ("te", "trailers"))),),
    ),
    Scenario(
        "hdr-trailers",
        check=expect(_trailers),
        http=f"""
        - match: [{{headers: {{x-trailer: {{exact: "yes"}}}}}}]
          {to("v2")}
        - {to("v1")}
        """,
        requests=(Req(method="POST", chunks=(b"abc",), trailers=(("x-trailer", "yes"),)),
                  Req(method="POST", chunks=(b"abc", b"def"), trailers=(("x-other", "t"),
                                                                        ("x-trailer", "yes")))),
    ),
    Scenario(
        "hdr-format",
        check=expect(_format),
        backends=(Backend("v1", headers=(("x-backend", "b1"),)),),
        http=f"""
        - headers:
            request:
              set:
                x-f-req: "<%REQ(x-client)%>"
                x-f-req-missing: "<%REQ(x-missing)%>"
                x-f-only-missing: "%REQ(x-missing)%"
                x-f-req-alt: "%REQ(x-missing?x-client)%"
                x-f-req-trunc: "%REQ(x-client):2%"
                x-f-host: "%REQ(:authority)% %REQ(:path)% %REQ(:method)%"
                x-f-addr: "%DOWNSTREAM_REMOTE_ADDRESS_WITHOUT_PORT%"
                x-f-local: "%DOWNSTREAM_LOCAL_ADDRESS_WITHOUT_PORT%"
                x-f-proto: "%PROTOCOL%"
                x-f-pct: "100%% sure"
                x-f-upstream: "[%UPSTREAM_REMOTE_ADDRESS%]"
                x-f-cluster: "[%UPSTREAM_CLUSTER%]"
                x-f-resp: "[%RESP(x-backend)%]"
              add:
                x-f-add: "%REQ(x-client)%-added"
            response:
              set:
                x-r-req: "%REQ(x-client)%"
                x-r-resp: "%RESP(x-backend)%"
                x-r-upstream: "%UPSTREAM_REMOTE_ADDRESS_WITHOUT_PORT%"
                x-r-cluster: "%UPSTREAM_CLUSTER%"
                x-r-proto: "%PROTOCOL%"
                x-r-code: "[%RESPONSE_CODE%]"
              add:
                x-r-add: "a %REQ(x-client)% %% b"
          {to("v1")}
        """,
        requests=(Req(headers=(("x-client", "hello"),)),
                  Req(headers=(("x-client", "a"), ("x-client", "b"), ("x-forwarded-for", "10.9.8.7")))),
    ),
    Scenario(
        "hdr-format-more",
        backends=("v1",),
        http=f"""
        - match: [{{uri: {{prefix: /rw}}}}]
          rewrite: {{uri: /new, authority: other.example}}
          headers:
            request:
              set:
                x-f-seen: "%REQ(:path)% %REQ(:authority)% %REQ(host)%"
                x-f-code: "[%RESPONSE_CODE%]"
          {to("v1")}
        - headers:
            request:
              set:
                x-f-only-missing: "%REQ(x-missing)%"
                x-f-addr: "%DOWNSTREAM_REMOTE_ADDRESS%"
                x-f-port: "[%DOWNSTREAM_REMOTE_PORT%]"
                x-f-lower: "%REQ(X-CLIENT)%"
                x-f-twice: "%PROTOCOL%%PROTOCOL%%%"
                x-f-xfp: "%REQ(x-forwarded-proto)%"
              remove: [x-client]
            response:
              set:
                x-r-only-missing: "%RESP(x-missing)%"
          {to("v1")}
        """,
        requests=(Req(path="/rw/x?q=1"),
                  Req(headers=(("x-f-only-missing", "client"), ("x-forwarded-for", "10.0.0.1, 192.0.2.7"),
                               ("x-client", "c"))),
                  Req(headers=(("x-forwarded-for", "2001:db8::1"), ("x-request-id", "abcdef"),
                               ("x-forwarded-proto", "https")))),
    ),
    Scenario(
        # header operations run in order on the live request: a later one reads an earlier one
        "hdr-format-sequence",
        backends=("v1",),
        http="""
        - route:
          - destination: {host: HOST, subset: v1}
            headers:
              request:
                set: {x-d: "d[%REQ(x-a)%][%REQ(x-r)%]"}
          headers:
            request:
              set: {x-a: "1", x-b: "b[%REQ(x-a)%][%REQ(x-c)%]", x-c: "c", x-x: "%REQ(x-add)%"}
              add: {x-add: "added", x-add2: "%REQ(x-add)%"}
            response:
              set: {x-r1: "one", x-r2: "%RESP(x-r1)%"}
        """,
        requests=(Req(), Req(headers=(("x-a", "client"), ("x-add", "client-add")))),
    ),
    Scenario(
        "hdr-local-replies",
        check=expect(_local_replies),
        backends=(Backend("v1", delay=0.5), Backend("v2", refuse=True)),
        http=f"""
        - match: [{{uri: {{prefix: /abort}}}}]
          fault: {{abort: {{httpStatus: 418, percentage: {{value: 100}}}}}}
          headers:
            response:
              set: {{x-local: abort, x-fmt: "%REQ(x-client)%"}}
          {to("v1")}
        - match: [{{uri: {{prefix: /timeout}}}}]
          timeout: 0.05s
          headers:
            response:
              set: {{x-local: timeout}}
          {to("v1")}
        - match: [{{uri: {{prefix: /refused}}}}]
          headers:
            response:
              set: {{x-local: refused}}
          {to("v2")}
        - match: [{{uri: {{prefix: /nohost}}}}]
          headers:
            response:
              set: {{x-local: nohost}}
          route: [{{destination: {{host: HOST, subset: missing}}}}]
        - match: [{{uri: {{prefix: /direct}}}}]
          directResponse: {{status: 200, body: {{string: "hi"}}}}
          headers:
            response:
              set: {{x-local: direct, x-fmt: "%REQ(x-client)%"}}
        """,
        requests=(Req(path="/abort", headers=(("x-client", "c"),)), Req(path="/timeout"), Req(path="/refused"),
                  Req(path="/nohost"), Req(path="/direct", headers=(("x-client", "c"),))),
    ),
    Scenario(
        "hdr-rewrite",
        backends=("v1",),
        http=f"""
        - match: [{{uri: {{prefix: /both}}}}]
          rewrite: {{uri: /new, authority: other.example}}
          {to("v1")}
        - match: [{{uri: {{prefix: /auth}}}}]
          rewrite: {{authority: other.example}}
          {to("v1")}
        - match: [{{uri: {{prefix: /hdr}}}}]
          headers: {{request: {{set: {{":authority": set.example}}}}}}
          {to("v1")}
        - {to("v1")}
        """,
        requests=(Req(path="/both/x"), Req(path="/auth/x"), Req(path="/hdr"),
                  Req(path="/plain", headers=(("x-envoy-original-host", "client"),
                                              ("x-envoy-original-path", "/client")))),
    ),
    Scenario(
        "hdr-misc",
        backends=("v1",),
        requests=(
            Req(headers=(("x-forwarded-proto", "https"),)),
            Req(headers=(("x-forwarded-proto", "ftp"),)),
            Req(headers=(("x-request-id", "not-a-uuid"),)),
            Req(headers=(("x-request-id", ""),)),
            Req(headers=(("via", "1.1 client"), ("x-forwarded-host", "fh"), ("x-forwarded-port", "1"))),
            Req(headers=(("referer", "not a url"),)),
            Req(headers=(("referer", "/relative"),)),
            Req(headers=(("referer", "https://a.b:8080/p?q#f"),)),
            Req(headers=(("referer", "mailto:x@y"),)),
            Req(headers=(("referer", "http://"),)),
            Req(headers=(("referer", "http://u:p@h.example/"),)),
            Req(headers=(("referer", "http://h.example:99999/"),)),
            Req(headers=(("referer", "HTTP://H.example"),)),
            Req(headers=(("referer", "http://h.example/a b"),)),
            *(Req(headers=(("referer", v),)) for v in (
                "http://h.example/a<b", "http://h.example/a%zz", "https://h.example?x=1", "http:/x",
                "http://[::1]:80/", "http://h.example:0/", "/a b", "a:b/c", "a/b:c", "?q", "", "a#b",
                "http://h.example/a\"b", "http://h.example/{x}", "http://h_x.example/", "ftp://h.example/",
                "//h.example/x", "http://h.example:/", "http://h.example/a|b", "a/b?c=d&e=%41",
                "http://h.example/é")),
            Req(headers=(("referer", "http://ok.example/x"), ("referer", "http://b.example/"))),
            Req(headers=(("user-agent", ""),)),
            Req(headers=(("proxy-authorization", "Basic x"), ("keep-alive", "timeout=5"))),
            Req(headers=tuple((n, v) for n in (
                "user-agent", "x-forwarded-for", "content-type", "accept", "x-request-id", "via",
                "authorization", "cookie", "x-custom", "origin", "accept-encoding", "cache-control",
                "x-forwarded-host", "x-envoy-decorator-operation", "grpc-timeout", "x-client-trace-id",
                "x-forwarded-client-cert", "te", "x-envoy-original-path", "x-envoy-external-address",
                "x-envoy-downstream-service-cluster", "x-envoy-downstream-service-node",
                "x-envoy-is-timeout-retry", "proxy-status", "upgrade-insecure-requests", "x-ot-span-context",
                "accept-language", "if-none-match", "range", "x-b3-traceid", "traceparent", "grpc-accept-encoding",
            ) for v in ("1", "2"))),
            Req(headers=tuple((n, v) for n in (
                "access-control-request-method", "access-control-request-headers", "if-modified-since",
                "if-match", "if-unmodified-since", "if-range", "pragma", "content-encoding", "accept-charset",
                "x-forwarded-port", "forwarded", "x-envoy-original-host", "x-envoy-original-dst-host",
                "x-envoy-immediate-health-check-fail", "x-envoy-degraded", "location", "server", "date",
                "grpc-encoding", "grpc-message", "grpc-status", "content-range", "etag", "vary", "age",
                "x-envoy-upstream-canary", "x-envoy-ratelimited", "x-envoy-upstream-service-time",
            ) for v in ("1", "2"))),
            Req(headers=tuple((n, v) for n in (
                "x-envoy-overloaded", "sec-websocket-key", "x-forwarded-uri", "x-real-ip", "b3", "baggage",
                "tracestate", "x-b3-spanid", "x-b3-sampled", "x-b3-parentspanid", "x-b3-flags",
                "uber-trace-id", "x-datadog-trace-id", "grpc-previous-rpc-attempts",
                "x-envoy-cookie-something", "x-envoy-peer-metadata", "x-envoy-peer-metadata-id",
                "x-istio-attributes", "content-language", "content-disposition", "dnt", "sec-fetch-mode",
                "x-requested-with", "accept-ranges", "early-data", "priority", "keep-alive",
                "x-envoy-auth-partial-body",
            ) for v in ("1", "2"))),
            Req(headers=tuple((n, v) for n in (
                "x-envoy-auth-headers-to-remove", "alt-svc", "www-authenticate", "proxy-authenticate",
                "x-content-type-options", "access-control-allow-origin", "cookie2", "set-cookie",
                "x-amz-date", "x-goog-api-key", "x-api-key", "x-envoy-local-overloaded",
                "x-envoy-internal-redirect", "x-envoy-upstream-healthchecked-cluster",
                "x-envoy-mobile-cluster",
            ) for v in ("1", "2"))),
        ),
    ),
]

RESPONSE_HEADERS = (
    ("Server", "backend"), ("Date", "Mon, 01 Jan 2024 00:00:00 GMT"), ("x-envoy-upstream-service-time", "999"),
    ("Via", "1.1 b"), ("Keep-Alive", "timeout=5"), ("Proxy-Connection", "keep-alive"), ("Connection", "keep-alive"),
    ("x-envoy-degraded", "1"), ("x-envoy-overloaded", "true"), ("x-envoy-immediate-health-check-fail", "1"),
    ("x-envoy-upstream-canary", "true"), ("x-envoy-ratelimited", "1"), ("x-envoy-decorator-operation", "op"),
    ("x-envoy-upstream-healthchecked-cluster", "c"), ("x-envoy-attempt-count", "9"), ("x-request-id", "r"),
    ("Content-Type", "a/b"), ("Content-Type", "c/d"), ("x-custom", "1"), ("x-custom", "2"),
    ("Set-Cookie", "a=1"), ("Set-Cookie", "b=2"), ("Location", "/x"), ("Location", "/y"),
    ("Cache-Control", "no-cache"), ("Cache-Control", "no-store"), ("Vary", "a"), ("Vary", "b"),
    ("grpc-status", "0"), ("grpc-message", "m"), ("x-envoy-original-path", "/o"), ("Upgrade", "h2c"),
    ("Proxy-Status", "p"), ("Proxy-Status", "q"), ("Alt-Svc", "h3"), ("x-forwarded-for", "1.2.3.4"),
)

RESPONSE_REPEATED = tuple((n, v) for n in (
    "content-encoding", "etag", "access-control-allow-origin", "access-control-allow-credentials",
    "access-control-expose-headers", "access-control-allow-methods", "access-control-allow-headers",
    "access-control-max-age", "accept-ranges", "age", "expires", "last-modified", "www-authenticate",
    "content-disposition", "content-language", "content-range", "retry-after", "strict-transport-security",
    "x-frame-options", "link", "pragma", "trailer", "grpc-encoding", "grpc-accept-encoding",
    "x-content-type-options", "content-security-policy", "x-envoy-overloaded", "x-envoy-ratelimited",
    "date", "server", "x-request-id", "via", "x-envoy-decorator-operation", "grpc-status", "grpc-message",
    "x-envoy-degraded", "x-envoy-upstream-canary", "x-envoy-attempt-count", "x-envoy-upstream-service-time",
    "keep-alive", "proxy-status", "x-envoy-immediate-health-check-fail", "x-envoy-upstream-healthchecked-cluster",
) for v in ("1", "2"))

SCENARIOS.append(Scenario(
    "hdr-response",
    backends=(Backend("v1", headers=RESPONSE_HEADERS),),
    requests=(Req(), Req(method="HEAD")),
))
SCENARIOS.append(Scenario(
    "hdr-response-repeated",
    backends=(Backend("v1", headers=RESPONSE_REPEATED),),
))

env = conformance_env(SCENARIOS)


@pytest.mark.parametrize("name", params(SCENARIOS))
async def test_conformance(env, name):
    await env.check(name)


@pytest.mark.parametrize("name", params(SCENARIOS, order=True))
async def test_header_order(env, name):
    await env.check_order(name)
