"""Conformance: mirroring (request_mirror_policies, shadow copies) on the real Envoy vs mirrorsim.

Shadow copies are asynchronous: every run ends only when the proxy is drained (see harness.py),
and "no copy" is asserted on each proxy's own ``http.async-client.rq_total``."""

from __future__ import annotations

import os

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
    shapes,
)
from tests.support.recorder import Recorded

pytestmark = [pytest.mark.slow, pytest.mark.asyncio(loop_scope="module")]

N = 400  # requests per sampling distribution
MIB = os.urandom(1024 * 1024)


def mirror(percentage: str = "", timeout: str | None = "2s", primary: str = "v1", to: str = "v2") -> str:
    """One rule: route to ``primary``, mirror to ``to``; ``timeout=None``: no route timeout."""
    return f"""
    - route: [{{destination: {{host: HOST, subset: {primary}}}}}]
      {"" if timeout is None else "timeout: " + timeout}
      mirror: {{host: HOST, subset: {to}}}
      {percentage}
    """


def sampling_check(rates: dict[str, float], nested: tuple[str, str] | None = None,
                   same_as: tuple[str, str] | None = None):  # noqa: ANN201 - returns a check function
    """Each mirror backend's share of requests agrees with the configured percentage (5 sigma) for
    both proxies and between them; the primary got every request; every copy looks the same.
    ``nested=(small, big)``: every request mirrored to ``small`` was also mirrored to ``big``
    (one random value per request drives every policy).  ``same_as=(mirror, primary)``: exactly
    the requests routed to ``primary`` by the weighted split were mirrored (same random value)."""

    def check(e: Observation, m: Observation) -> None:
        assert not e.errors and not m.errors, (e.errors, m.errors)
        assert [r and r.status for r in e.responses] == [r and r.status for r in m.responses] == [200] * N
        for backend, p in rates.items():
            ce, cm = e.count(backend), m.count(backend)
            assert_binomial(ce, N, p, f"envoy: copies to {backend}")
            assert_binomial(cm, N, p, f"mirrorsim: copies to {backend}")
            assert_same_rate(ce, cm, N, f"copies to {backend}")
            assert shapes(e, backend) == shapes(m, backend), backend
        for o in (e, m):
            assert o.shadows == sum(o.count(b) for b in rates), (o.proxy, o.shadows)
            if nested is not None:
                small, big = nested
                assert o.seqs(small) <= o.seqs(big), f"{o.proxy}: {small} copies not a subset of {big} copies"
            if same_as is not None:
                mir, prim = same_as
                assert o.seqs(mir) == o.seqs(prim), f"{o.proxy}: mirrored requests != requests routed to {prim}"

    return check


def answer_503_once(req: Recorded, i: int) -> tuple[int, list[tuple[str, str]], bytes] | None:
    return (503, [], b"retry me") if i == 0 else None


SCENARIOS = [
    Scenario(
        "mirror-basic",
        http=mirror(),
        requests=(
            Req(path="/get"),
            Req(path="/get?q=1", headers=(
                ("X-Forwarded-For", "1.2.3.4"), ("x-request-id", "client-supplied-id"),
                ("X-Custom", "Keep"), ("x-forwarded-proto", "https"))),
        ),
    ),
    Scenario(
        "mirror-hop-by-hop-and-control-headers",
        http=mirror(),
        requests=(Req(path="/h", headers=(
            ("Connection", "keep-alive, x-hop"), ("x-hop", "dropme"), ("Keep-Alive", "timeout=5"),
            ("TE", "trailers"), ("Upgrade-Insecure-Requests", "1"), ("Proxy-Connection", "keep-alive"),
            ("x-envoy-upstream-rq-timeout-ms", "777"), ("x-envoy-retry-on", "5xx"),
            ("x-envoy-internal", "true"), ("x-envoy-max-retries", "3"),
            ("x-dup", "a"), ("x-dup", "b"), ("Cookie", "a=1"), ("Cookie", "b=2"))),),
    ),
    Scenario(
        "client-sent-original-path",
        http=mirror(),
        requests=(Req(path="/o", headers=(("x-envoy-original-path", "/spoofed"),)),),
    ),
    Scenario(
        "mirror-internal-looking-client",
        http=mirror(timeout=None),
        requests=(Req(path="/i", headers=(
            ("x-forwarded-for", "10.1.2.3"), ("x-envoy-upstream-rq-timeout-ms", "100"),
            ("x-envoy-expected-rq-timeout-ms", "5"))),),
    ),
    Scenario(
        "mirror-host-suffix",
        http=mirror(),
        requests=tuple(Req(host=h) for h in (
            "mirror-host-suffix:8000", "MIRROR-Host-Suffix:8000", "mirror-host-suffix.default:8000",
            "mirror-host-suffix.default.svc:8000", "mirror-host-suffix.default.svc.cluster.local:8000")),
    ),
    Scenario(
        "mirror-absolute-form",
        http=mirror(),
        requests=(Req(target="http://mirror-absolute-form:8000/abs?x=1", host="other:1"),
                  Req(target="http://mirror-absolute-form.default:8000/", host=None)),
    ),
    Scenario(
        "mirror-without-suffix",
        shadow_suffix=False,
        http=mirror(),
        requests=(Req(), Req(host="mirror-without-suffix.default:8000")),
    ),
    Scenario(
        "mirror-post-1mib",
        http=mirror(),
        requests=(Req(method="POST", path="/upload", body=MIB,
                      headers=(("content-type", "application/octet-stream"),)),),
    ),
    Scenario(
        "mirror-chunked-upload",
        http=mirror(),
        requests=(Req(method="POST", path="/chunked", chunks=(b"a" * 1000, b"b" * 70000, b"c")),),
    ),
    Scenario(
        "mirror-empty-chunked-upload",
        http=mirror(),
        requests=(Req(method="PUT", path="/empty-chunked", chunks=()),),
    ),
    Scenario(
        "mirror-methods",
        http=mirror(),
        requests=(Req(method="HEAD", path="/head"), Req(method="OPTIONS", path="/options"),
                  Req(method="DELETE", path="/delete"), Req(method="PATCH", path="/patch", body=b"{}"),
                  Req(method="PUT", path="/put", body=b""), Req(method="POST", path="/post")),
    ),
    Scenario(
        "mirror-slow",
        backends=("v1", Backend("v2", held=True)),
        http=mirror(timeout=None),
        requests=(Req(path="/a"), Req(path="/b"), Req(path="/c")),
        stats=("internal.upstream_rq_200", "external.upstream_rq_200"),
    ),
    Scenario(
        "mirror-timeout",
        backends=("v1", Backend("v2", delay=1.0)),
        http=mirror(timeout="0.3s"),
        requests=(Req(path="/t"),),
        stats=("upstream_rq_timeout", "internal.upstream_rq_504", "external.upstream_rq_200"),
    ),
    # Not compared: upstream_cx_connect_fail. Envoy tries to connect for every copy (2 here);
    # mirrorsim fails copies at once for 0.5 s after a refused connection (1 attempt), a
    # deliberate difference (docs/deviations.md) pinned by
    # tests/integration/test_mirroring.py::test_refused_mirror.
    Scenario(
        "mirror-refused",
        backends=("v1", Backend("v2", refuse=True)),
        http=mirror(),
        requests=(Req(path="/r"), Req(path="/r2")),
        stats=("internal.upstream_rq_503", "upstream_rq_retry"),
    ),
    Scenario(
        "mirror-mirror-returns-5xx",
        backends=("v1", Backend("v2", status=503)),
        http=mirror(),
        requests=(Req(path="/e"),),
        stats=("internal.upstream_rq_503", "upstream_rq_retry"),
    ),
    Scenario(
        "mirror-primary-refused",
        backends=(Backend("v1", refuse=True), "v2"),
        http=mirror(),
        requests=(Req(path="/down"),),
    ),
    Scenario(
        "mirror-primary-timeout",
        backends=(Backend("v1", held=True), "v2"),
        http=mirror(timeout="0.2s"),
        requests=(Req(path="/slowprimary"),),
    ),
    Scenario(
        "mirror-primary-retries-not-remirrored",
        backends=(Backend("v1", respond=answer_503_once), "v2"),
        http="""
        - route: [{destination: {host: HOST, subset: v1}}]
          retries: {attempts: 2, retryOn: 5xx}
          mirror: {host: HOST, subset: v2}
        """,
        requests=(Req(path="/retry"),),
    ),
    Scenario(
        "mirror-percentage-50",
        http=mirror("mirrorPercentage: {value: 50.0}"),
        requests=(Req(),), repeat=N, concurrency=8,
        check=sampling_check({"v2": 0.5}),
    ),
    Scenario(
        "mirror-percent-legacy-25",
        http=mirror("mirrorPercent: 25"),
        requests=(Req(),), repeat=N, concurrency=8,
        check=sampling_check({"v2": 0.25}),
    ),
    Scenario(
        "mirror-percentage-fraction",
        http=mirror("mirrorPercentage: {value: 12.5}"),
        requests=(Req(),), repeat=N, concurrency=8,
        check=sampling_check({"v2": 0.125}),
    ),
    Scenario(
        "mirror-percentage-zero",
        http=mirror("mirrorPercentage: {value: 0}"),
        requests=(Req(), Req(method="POST", body=b"x")),
    ),
    Scenario(
        "mirror-several",
        backends=("v1", "v2", "v3"),
        http="""
        - route: [{destination: {host: HOST, subset: v1}}]
          timeout: 1s
          mirrors:
          - destination: {host: HOST, subset: v2}
          - destination: {host: HOST, subset: v3}
            percentage: {value: 100}
        """,
        requests=(Req(path="/multi"), Req(method="POST", path="/multi", body=b"body")),
    ),
    Scenario(
        "mirror-nested-sampling",
        backends=("v1", "v2", "v3"),
        http="""
        - route: [{destination: {host: HOST, subset: v1}}]
          mirrors:
          - destination: {host: HOST, subset: v2}
            percentage: {value: 30}
          - destination: {host: HOST, subset: v3}
            percentage: {value: 60}
        """,
        requests=(Req(),), repeat=N, concurrency=8,
        check=sampling_check({"v2": 0.3, "v3": 0.6}, nested=("v2", "v3")),
    ),
    Scenario(
        "mirror-correlated-with-split",
        backends=("v1", "v2", "v3"),
        http="""
        - route:
          - {destination: {host: HOST, subset: v1}, weight: 50}
          - {destination: {host: HOST, subset: v2}, weight: 50}
          mirror: {host: HOST, subset: v3}
          mirrorPercent: 50
        """,
        requests=(Req(),), repeat=N, concurrency=8,
        check=sampling_check({"v3": 0.5}, same_as=("v3", "v1")),
    ),
    Scenario(
        "mirror-after-route-processing",
        http="""
        - match: [{uri: {prefix: /rw/}}]
          rewrite: {uri: /rewritten/, authority: rewritten.example}
          headers:
            request: {set: {x-route-added: route-level}, remove: [x-remove-me]}
            response: {set: {x-resp: r}}
          route: [{destination: {host: HOST, subset: v1}}]
          timeout: 2s
          retries: {attempts: 1, perTryTimeout: 0.5s, retryOn: 5xx}
          mirror: {host: HOST, subset: v2}
        """,
        requests=(Req(path="/rw/foo?x=1", headers=(
            ("x-remove-me", "1"), ("x-remove-in-mirror", "1"), ("x-route-added", "client-value"))),),
    ),
    Scenario(
        "mirror-undefined-subset",
        http=mirror(to="nosuch"),
        requests=(Req(path="/nomirror"),),
    ),
    Scenario(
        "mirror-to-own-primary",
        backends=("v1",),
        http=mirror(to="v1"),
        requests=(Req(path="/self"),),
    ),
    Scenario(
        "attempt-count-with-retry-and-mirror",
        http="""
        - route: [{destination: {host: HOST, subset: v1}}]
          retries: {attempts: 2, retryOn: 5xx}
          mirror: {host: HOST, subset: v2}
        """,
        backends=(Backend("v1", respond=answer_503_once), "v2"),
        requests=(Req(path="/count"),),
    ),
]

env = conformance_env(SCENARIOS)


@pytest.mark.parametrize("name", params(SCENARIOS))
async def test_conformance(env, name):
    await env.check(name)


@pytest.mark.parametrize("name", params(SCENARIOS, order=True))
async def test_header_order(env, name):
    await env.check_order(name)
