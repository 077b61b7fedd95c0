"""Conformance of the admin views and the access log formats: the real Envoy 1.40, running
``mirrorsim envoy``'s bootstrap (with istio-agent's stats tags) and Istio's JSON access log
format, against mirrorsim's ``/stats/prometheus`` and ``--access-log-format json``."""

from __future__ import annotations

import asyncio
import io
import json
import time
from collections import Counter
from typing import Any

import pytest
import pytest_asyncio
from prometheus_client.parser import text_string_to_metric_families

from simulator.proxy.accesslog import AccessLog
from simulator.proxy.logformat import ISTIO_JSON
from simulator.proxy.prometheus import prometheus_text
from tests.conformance.harness import Backend, Env, Req, Scenario, conformance_env, http_get, params

pytestmark = [pytest.mark.slow, pytest.mark.asyncio(loop_scope="module")]


def to(subset: str) -> str:
    return f"route: [{{destination: {{host: HOST, subset: {subset}}}}}]"


SCENARIOS = [
    Scenario("adm-mirror", http=f"- {to('v1')}\n  mirror: {{host: HOST, subset: v2}}",
             requests=(Req(), Req(path="/x")), stats=("upstream_rq_total",)),
    Scenario("adm-503", backends=(Backend("v1", status=503),), http=f"- {to('v1')}"),
    Scenario("adm-nc", http=f"- {to('v9')}"),
    Scenario("adm-uf", backends=(Backend("v1", refuse=True),), http=f"- {to('v1')}"),
    Scenario("adm-fault", http=f"- {to('v1')}\n  fault: {{abort: {{httpStatus: 418, percentage: {{value: 100}}}}}}"),
    Scenario("adm-nr", http=f"- match: [{{uri: {{prefix: /only}}}}]\n  {to('v1')}"),
    Scenario("adm-direct", http="- directResponse: {status: 204}"),
    Scenario("adm-redirect", http="- redirect: {uri: /elsewhere}"),
]
FIELDS = ("method", "path", "authority", "response_code", "response_flags", "response_code_details",
          "upstream_cluster", "route_name")
LOG = "envoy-access.json"


def json_access_log(config: dict[str, Any]) -> None:
    hcm = config["static_resources"]["listeners"][0]["filter_chains"][0]["filters"][0]["typed_config"]
    for al in hcm["access_log"]:
        al["typed_config"]["path"] = str(PATHS["log"])
        al["typed_config"]["log_format"] = {"json_format": dict(ISTIO_JSON)}


PATHS: dict[str, Any] = {}
env = conformance_env(SCENARIOS, json_access_log)


@pytest.fixture(scope="module", autouse=True)
def _log_path(tmp_path_factory: pytest.TempPathFactory) -> None:
    PATHS["log"] = tmp_path_factory.mktemp("envoy-log") / LOG


@pytest_asyncio.fixture(scope="module", loop_scope="module")
async def mirrorsim_log(env: Env) -> io.StringIO:
    buf = io.StringIO()
    assert env.mirrorsim is not None
    env.mirrorsim.rp.proxy.access_log = AccessLog(buf, asyncio.get_running_loop(), fmt="json")
    return buf


def projected(lines: list[str], scenario: str) -> Counter[tuple[Any, ...]]:
    out: Counter[tuple[Any, ...]] = Counter()
    for line in lines:
        o = json.loads(line)
        if (o.get("authority") or "").startswith(f"{scenario}:"):  # primaries (Envoy logs no copy)
            out[tuple(o.get(f) for f in FIELDS)] += 1
    return out


async def envoy_lines(n: int, scenario: str, deadline: float = 10.0) -> list[str]:
    """Envoy's log file flushes every second: wait (bounded) until ``n`` lines of ``scenario``."""
    end = time.monotonic() + deadline
    while True:
        path = PATHS["log"]
        lines = path.read_text().splitlines() if path.exists() else []
        if sum(projected(lines, scenario).values()) >= n or time.monotonic() > end:
            return lines
        await asyncio.sleep(0.05)


@pytest.mark.parametrize("name", params(SCENARIOS))
async def test_access_log_json_matches_envoy(env: Env, mirrorsim_log: io.StringIO, name: str) -> None:
    e, m = await env.run(name)
    assert env.mirrorsim is not None
    env.mirrorsim.rp.proxy.access_log.flush()
    mine = projected(mirrorsim_log.getvalue().splitlines(), name)
    theirs = projected(await envoy_lines(sum(mine.values()), name), name)
    assert mine == theirs, f"\n  envoy:     {sorted(theirs)}\n  mirrorsim: {sorted(mine)}"


async def test_prometheus_names_and_tags_match_envoy(env: Env, mirrorsim_log: io.StringIO) -> None:
    await env.run("adm-mirror")
    assert env.envoy is not None and env.mirrorsim is not None
    theirs_text = (await http_get(env.envoy.admin_port, "/stats/prometheus")).body.decode()
    mine_text = prometheus_text(env.mirrorsim.rp.stats.snapshot())

    def series(text: str) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
        return {(s.name, tuple(sorted(s.labels.items()))): s.value
                for fam in text_string_to_metric_families(text) for s in fam.samples
                if "adm-mirror" in s.labels.get("cluster_name", "")}

    theirs, mine = series(theirs_text), series(mine_text)
    assert mine, "no adm-mirror series in mirrorsim's exposition"
    missing = sorted(k for k in mine if k not in theirs)
    assert not missing, f"series Envoy does not have: {missing}"
    for key in mine:
        if key[0] in ("envoy_cluster_upstream_rq_total", "envoy_cluster_upstream_rq_completed_total",
                      "envoy_cluster_internal_upstream_rq_total", "envoy_cluster_external_upstream_rq_total"):
            assert mine[key] == theirs[key], key
