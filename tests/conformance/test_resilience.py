"""Conformance: timeouts, retries, fault injection and circuit breaking on the real Envoy vs
mirrorsim."""

from __future__ import annotations

import asyncio

import pytest

from tests.conformance.harness import (
    Backend,
    Driver,
    Observation,
    Req,
    Scenario,
    assert_same_rate,
    conformance_env,
    params,
)
from tests.support.recorder import Recorded

pytestmark = [pytest.mark.slow, pytest.mark.asyncio(loop_scope="module")]

N = 400


def to(subset: str) -> str:
    return f"route: [{{destination: {{host: HOST, subset: {subset}}}}}]"


def statuses(*codes: int):  # noqa: ANN201 - a Backend.respond function
    """Answer the n-th request at this backend with codes[n] (the last code after that)."""

    def respond(req: Recorded, i: int) -> tuple[int, list[tuple[str, str]], bytes]:
        code = codes[min(i, len(codes) - 1)]
        return code, [], f"attempt {i + 1}: {code}".encode()

    return respond


def slow_first(seconds: float):  # noqa: ANN201 - a Backend.respond function
    """The first request at this backend is answered after ``seconds`` (a per-try timeout fires first)."""

    async def respond(req: Recorded, i: int) -> None:
        if i == 0:
            await asyncio.sleep(seconds)

    return respond


def slow_503(seconds: float):  # noqa: ANN201 - a Backend.respond function
    async def respond(req: Recorded, i: int) -> tuple[int, list[tuple[str, str]], bytes]:
        await asyncio.sleep(seconds)
        return 503, [], b"busy"

    return respond


def remaining_timeout_check(e: Observation, m: Observation) -> None:
    """Each retry attempt's x-envoy-expected-rq-timeout-ms: equal to the route timeout (2000)
    on the first attempt, below it (time already spent) on the retries."""

    def pattern(o: Observation) -> list[str]:
        vals = [int(r.header("x-envoy-expected-rq-timeout-ms") or -1) for r in o.recorded["v1"]]
        return ["=2000" if v == 2000 else "<2000" if 0 < v < 2000 else str(v) for v in vals]

    assert not e.errors and not m.errors, (e.errors, m.errors)
    assert [r and r.status for r in e.responses] == [r and r.status for r in m.responses]
    assert pattern(e) == pattern(m), f"envoy {pattern(e)}, mirrorsim {pattern(m)}"


def failure_rate_check(e: Observation, m: Observation) -> None:
    """Retries with the previous_hosts predicate around a dead endpoint: the share of failed
    requests agrees (5 sigma)."""
    assert not e.errors and not m.errors, (e.errors, m.errors)
    assert len(e.responses) == len(m.responses) == N
    fe = sum(r is not None and r.status != 200 for r in e.responses)
    fm = sum(r is not None and r.status != 200 for r in m.responses)
    assert_same_rate(fe, fm, N, "requests that failed after retries")


async def drive_circuit_breaker(d: Driver) -> None:
    """maxConnections 1, http1MaxPendingRequests 1, the backend holds its responses: request 1 is
    on the only connection, request 2 waits in the pending queue, request 3 overflows."""
    first = d.start(Req(path="/1"))
    await d.recorder("v1").wait_for(1)
    second = d.start(Req(path="/2"))
    await d.wait_pending("v1", 1)
    await d.send(Req(path="/3"))  # answered at once: 503 UO
    d.release()
    await asyncio.gather(first, second)


CONNECTION_POOL = """
connectionPool:
  tcp: {maxConnections: 1}
  http: {http1MaxPendingRequests: 1}
"""

SCENARIOS = [
    # ------------------------------------------------------------------ timeouts
    Scenario(
        "timeout-fires",
        backends=(Backend("v1", held=True),),
        http=f"""
        - timeout: 0.2s
          {to("v1")}
        """,
        requests=(Req(path="/slow"),),
        stats=("upstream_rq_timeout", "upstream_rq_504", "external.upstream_rq_504"),
        slow_threshold=0.15,  # timers may fire a little early; an immediate answer takes ~2 ms
    ),
    Scenario(
        "timeout-not-reached",
        backends=("v1",),
        http=f"""
        - timeout: 3s
          {to("v1")}
        """,
        requests=(Req(), Req(method="POST", path="/p", body=b"data")),
    ),
    Scenario(
        "timeout-unset",
        backends=("v1",),
        http=f"- {to('v1')}",
        requests=(Req(),),
    ),
    Scenario(
        "timeout-per-try-header",
        backends=("v1",),
        http=f"""
        - timeout: 2s
          retries: {{attempts: 1, perTryTimeout: 0.5s, retryOn: 5xx}}
          {to("v1")}
        """,
        requests=(Req(),),
    ),
    Scenario(
        "timeout-per-try-fires",
        backends=(Backend("v1", respond=slow_first(0.6)),),
        http=f"""
        - timeout: 3s
          retries: {{attempts: 2, perTryTimeout: 0.2s, retryOn: 5xx}}
          {to("v1")}
        """,
        requests=(Req(),),
        stats=("upstream_rq_retry", "upstream_rq_timeout", "upstream_rq_per_try_timeout"),
    ),
    # ------------------------------------------------------------------ retries
    Scenario(
        "retry-default-connect-failure",
        backends=(Backend("v1", refuse=True),),
        http=f"- {to('v1')}",
        requests=(Req(),),
        stats=("upstream_rq_retry", "upstream_cx_connect_fail", "upstream_rq_503", "external.upstream_rq_503"),
    ),
    Scenario(
        "retry-default-not-on-503",
        backends=(Backend("v1", status=503),),
        http=f"- {to('v1')}",
        requests=(Req(),),
        stats=("upstream_rq_retry", "upstream_rq_503"),
    ),
    Scenario(
        "retry-attempts-zero",
        backends=(Backend("v1", refuse=True), Backend("v2", status=503)),
        http=f"""
        - match: [{{uri: {{prefix: /refused}}}}]
          retries: {{attempts: 0}}
          {to("v1")}
        - retries: {{attempts: 0}}
          {to("v2")}
        """,
        requests=(Req(path="/refused"), Req(path="/503")),
        stats=("upstream_rq_retry", "upstream_cx_connect_fail", "upstream_rq_503"),
    ),
    Scenario(
        "retry-on-5xx",
        backends=(Backend("v1", status=503),),
        http=f"""
        - retries: {{attempts: 2, retryOn: 5xx}}
          {to("v1")}
        """,
        requests=(Req(), Req(method="POST", body=b"payload")),
        stats=("upstream_rq_retry", "upstream_rq_503", "external.upstream_rq_503", "retry.upstream_rq_503"),
    ),
    Scenario(
        # Envoy's wouldRetryFromReset: a connection failure without connect-failure in retryOn
        # falls through to reset, 5xx and gateway-error (retried), not to retriable-4xx
        "retry-connect-failure-under-reset-5xx-gateway-error",
        backends=(Backend("v1", refuse=True),),
        http=f"""
        - match: [{{uri: {{prefix: /reset}}}}]
          retries: {{attempts: 2, retryOn: reset}}
          {to("v1")}
        - match: [{{uri: {{prefix: /5xx}}}}]
          retries: {{attempts: 2, retryOn: 5xx}}
          {to("v1")}
        - match: [{{uri: {{prefix: /gateway-error}}}}]
          retries: {{attempts: 2, retryOn: gateway-error}}
          {to("v1")}
        - retries: {{attempts: 2, retryOn: retriable-4xx}}
          {to("v1")}
        """,
        requests=(Req(path="/reset"), Req(path="/5xx"), Req(path="/gateway-error"), Req(path="/4xx")),
        stats=("upstream_rq_retry", "upstream_cx_connect_fail", "upstream_rq_503"),
    ),
    Scenario(
        "retry-on-status-code",
        backends=(Backend("v1", respond=statuses(503, 503, 200)), Backend("v2", respond=statuses(500, 200))),
        http=f"""
        - match: [{{uri: {{prefix: /v1}}}}]
          retries: {{attempts: 3, retryOn: "503"}}
          {to("v1")}
        - retries: {{attempts: 3, retryOn: "503"}}
          {to("v2")}
        """,
        requests=(Req(path="/v1"), Req(path="/v2")),
        stats=("upstream_rq_retry", "upstream_rq_500", "upstream_rq_200"),
    ),
    Scenario(
        "retry-gateway-error",
        backends=(Backend("v1", respond=statuses(502, 504, 200)),),
        http=f"""
        - retries: {{attempts: 2, retryOn: gateway-error}}
          {to("v1")}
        """,
        requests=(Req(),),
        stats=("upstream_rq_retry",),
    ),
    Scenario(
        "retry-not-on-4xx",
        backends=(Backend("v1", status=404),),
        http=f"""
        - retries: {{attempts: 2, retryOn: 5xx}}
          {to("v1")}
        """,
        requests=(Req(),),
        stats=("upstream_rq_retry",),
    ),
    Scenario(
        "retry-connect-failure-exhausted",
        backends=(Backend("v1", refuse=True),),
        http=f"""
        - retries: {{attempts: 1, retryOn: "connect-failure"}}
          {to("v1")}
        """,
        requests=(Req(),),
        stats=("upstream_rq_retry", "upstream_cx_connect_fail"),
    ),
    Scenario(
        "retry-expected-timeout-shrinks",
        backends=(Backend("v1", respond=slow_503(0.05)),),
        http=f"""
        - timeout: 2s
          retries: {{attempts: 2, retryOn: 5xx}}
          {to("v1")}
        """,
        requests=(Req(),),
        check=remaining_timeout_check,
    ),
    Scenario(
        "retry-previous-hosts",
        backends=("ok", Backend("dead", refuse=True)),
        http="""
        - route: [{destination: {host: HOST}}]
        """,
        requests=(Req(),), repeat=N, concurrency=4,
        check=failure_rate_check,
    ),
    # ------------------------------------------------------------------ faults
    Scenario(
        "fault-abort",
        backends=("v1",),
        http=f"""
        - fault: {{abort: {{httpStatus: 418, percentage: {{value: 100}}}}}}
          {to("v1")}
        """,
        requests=(Req(), Req(method="HEAD")),
    ),
    Scenario(
        "fault-delay",
        backends=("v1",),
        http=f"""
        - fault: {{delay: {{fixedDelay: 0.3s, percentage: {{value: 100}}}}}}
          {to("v1")}
        """,
        requests=(Req(),),
        slow_threshold=0.25,  # timers may fire a little early; an immediate answer takes ~2 ms
    ),
    Scenario(
        "fault-without-percentage",
        backends=("v1",),
        http=f"""
        - fault:
            abort: {{httpStatus: 500}}
            delay: {{fixedDelay: 1s}}
          {to("v1")}
        """,
        requests=(Req(),),
        slow_threshold=1.0,
    ),
    Scenario(
        "fault-abort-grpc",
        backends=("v1",),
        http=f"""
        - fault: {{abort: {{grpcStatus: UNAVAILABLE, percentage: {{value: 100}}}}}}
          {to("v1")}
        """,
        requests=(Req(headers=(("content-type", "application/grpc"),)),),
    ),
    # ------------------------------------------------------------------ circuit breaking, pools
    Scenario(
        "circuit-breaker-overflow",
        backends=(Backend("v1", held=True),),
        traffic_policy=CONNECTION_POOL,
        http=f"- {to('v1')}",
        drive=drive_circuit_breaker,
        stats=("upstream_rq_pending_overflow", "upstream_cx_overflow", "upstream_rq_200",
               "upstream_rq_pending_total"),
    ),
    Scenario(
        "max-requests-per-connection",
        backends=("v1",),
        traffic_policy="connectionPool: {http: {maxRequestsPerConnection: 1}}",
        http=f"- {to('v1')}",
        requests=(Req(), Req(), Req()),
        compare_connections=True,
    ),
    Scenario(
        "keep-alive-reuse",
        backends=("v1",),
        http=f"- {to('v1')}",
        requests=(Req(), Req(path="/2"), Req(headers=(("Connection", "close"),))),
        compare_connections=True,
    ),
    Scenario(
        "subset-not-defined",
        backends=("v1",),
        http="- route: [{destination: {host: HOST, subset: nosuch}}]",
        requests=(Req(),),
    ),
    Scenario(
        "subset-without-endpoints",
        backends=("v1",),
        extra="""
apiVersion: networking.istio.io/v1
kind: DestinationRule
metadata: {name: subset-without-endpoints-extra, namespace: default}
spec:
  host: ${host}
  subsets: [{name: empty, labels: {version: none}}]
""",
        http="- route: [{destination: {host: HOST, subset: empty}}]",
        requests=(Req(),),
    ),
]

env = conformance_env(SCENARIOS)


@pytest.mark.parametrize("name", params(SCENARIOS))
async def test_conformance(env, name):
    await env.check(name)


@pytest.mark.parametrize("name", params(SCENARIOS, order=True))
async def test_header_order(env, name):
    await env.check_order(name)
