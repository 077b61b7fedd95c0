"""The Envoy-compatible admin (simulator/proxy/admin.py, prometheus.py, envoy_admin.py) and the
access log formats (logformat.py)."""

from __future__ import annotations

import asyncio
import io
import json

import aiohttp
from prometheus_client.parser import text_string_to_metric_families

from simulator.proxy.accesslog import AccessLog
from tests.conftest import registry_yaml, table_from_yaml, virtual_service
from tests.support.client import get
from tests.support.recorder import Recorder
from tests.support.wait import until

V1 = "outbound|8000|v1|httpbin.default.svc.cluster.local"
V2 = "outbound|8000|v2|httpbin.default.svc.cluster.local"
MIRROR = """
- route:
  - destination: {host: httpbin, subset: v1}
  mirror: {host: httpbin, subset: v2}
"""


async def admin(port: int, path: str, method: str = "GET") -> tuple[int, str]:
    async with aiohttp.ClientSession() as s, s.request(method, f"http://127.0.0.1:{port}{path}") as r:
        return r.status, await r.text()


async def test_prometheus_exposition_has_envoy_names_and_istio_tags(run_proxy):
    async with Recorder("v1") as a, Recorder("v2") as b:
        rp = await run_proxy(table_from_yaml(registry_yaml({"v1": a.port, "v2": b.port}) + virtual_service(MIRROR)))
        for _ in range(3):
            assert (await get(rp.port, "/")).status == 200
        await b.wait_for(3)
        await until(lambda: rp.stats.snapshot().get(f"cluster.{V2}.upstream_rq_completed") == 3, "3 copies")
        status, text = await admin(rp.admin_port, "/stats/prometheus")
    assert status == 200
    # the parser names every counter sample NAME_total (envoy_cluster_upstream_rq{response_code}
    # and envoy_cluster_upstream_rq_total both become envoy_cluster_upstream_rq_total samples)
    samples = {(s.name, tuple(sorted(s.labels.items()))): s.value
               for fam in text_string_to_metric_families(text) for s in fam.samples}
    assert samples[("envoy_cluster_upstream_rq_total", (("cluster_name", V1),))] == 3
    assert samples[("envoy_cluster_upstream_rq_total", (("cluster_name", V1), ("response_code", "200")))] == 3
    assert samples[("envoy_cluster_internal_upstream_rq_total",
                    (("cluster_name", V2), ("response_code_class", "2xx")))] == 3
    assert samples[("envoy_http_outbound_0_0_0_0_15001_downstream_rq_total", (("response_code_class", "2xx"),))] == 3
    # Envoy's exposition: a TYPE line per metric, labels in extraction order, {} when none
    assert f'envoy_cluster_upstream_rq{{response_code="200",cluster_name="{V1}"}} 3' in text
    assert "# TYPE envoy_cluster_upstream_rq_total counter" in text
    assert "# TYPE envoy_mirrorsim_shadow_inflight gauge\nenvoy_mirrorsim_shadow_inflight{} 0" in text


async def test_stats_filter_usedonly_and_reset_counters(run_proxy):
    async with Recorder("v1") as a:
        rp = await run_proxy(table_from_yaml(registry_yaml({"v1": a.port, "v2": a.port}) + virtual_service(
            "- route:\n  - destination: {host: httpbin, subset: v1}\n")))
        assert (await get(rp.port, "/")).status == 200
        _, text = await admin(rp.admin_port, r"/stats?filter=v[12]\|.*rq_total$")  # a partial match
        assert text.splitlines() == [f"cluster.{V1}.upstream_rq_total: 1"]
        _, text = await admin(rp.admin_port, "/stats?filter=^mirrorsim")
        assert "mirrorsim.shadow_dropped: 0\n" in text
        _, text = await admin(rp.admin_port, "/stats?usedonly")
        assert f"cluster.{V1}.upstream_rq_total: 1\n" in text and "shadow_dropped" not in text
        status, text = await admin(rp.admin_port, "/stats?filter=(")
        assert (status, text) == (400, "Invalid re2 regex: missing ): (")
        assert (await admin(rp.admin_port, "/reset_counters"))[0] == 405
        assert await admin(rp.admin_port, "/reset_counters", "POST") == (200, "OK\n")
        _, text = await admin(rp.admin_port, "/stats?filter=rq_total$")
        assert f"cluster.{V1}.upstream_rq_total: 0" in text


async def test_clusters_json_shows_an_ejected_host(run_proxy):
    async with Recorder("bad", status=503) as bad:
        yaml_text = registry_yaml({"v1": bad.port}).replace("  subsets:", "  trafficPolicy:\n"
                    "    outlierDetection: {consecutive5xxErrors: 1, interval: 1s, baseEjectionTime: 30s}\n  subsets:")
        rp = await run_proxy(table_from_yaml(yaml_text + virtual_service(
            "- route:\n  - destination: {host: httpbin, subset: v1}\n")))
        assert (await get(rp.port, "/")).status == 503
        status, text = await admin(rp.admin_port, "/clusters?format=json")
        _, plain = await admin(rp.admin_port, "/clusters")
    assert status == 200
    (cs,) = [c for c in json.loads(text)["cluster_statuses"] if c["name"] == V1]
    (host,) = cs["host_statuses"]
    assert host["address"] == {"socket_address": {"address": "127.0.0.1", "port_value": bad.port}}
    assert host["health_status"] == {"eds_health_status": "HEALTHY", "failed_outlier_check": True}
    assert cs["observability_name"] == V1 and cs["circuit_breakers"]["thresholds"][1]["priority"] == "HIGH"
    assert f"{V1}::127.0.0.1:{bad.port}::health_flags::/failed_outlier_check" in plain.splitlines()


async def test_access_log_istio_and_json_formats_name_the_mirror_cluster(run_proxy):
    lines: dict[str, list[str]] = {}
    for fmt in ("istio", "json"):
        out = io.StringIO()
        async with Recorder("v1") as a, Recorder("v2") as b:
            table = table_from_yaml(registry_yaml({"v1": a.port, "v2": b.port}) + virtual_service(MIRROR))
            rp = await run_proxy(table, access_log=AccessLog(out, asyncio.get_running_loop(), fmt=fmt))
            assert (await get(rp.port, "/status", headers=[("x-request-id", "r1")])).status == 200
            stats = rp.stats
            await until(lambda: stats.snapshot().get(f"cluster.{V2}.upstream_rq_completed") == 1,  # noqa: B023
                        "the copy")
            rp.proxy.access_log.flush()
        lines[fmt] = out.getvalue().splitlines()
    primary, shadow = sorted(lines["istio"], key=lambda line: "shadow" in line)
    assert '"GET /status HTTP/1.1" 200 - via_upstream - "-" 0 2 ' in primary
    assert ' "r1" "httpbin:8000" "127.0.0.1:' in primary and f'" {V1} - - - - ' in primary
    assert '"httpbin-shadow:8000" "127.0.0.1:' in shadow and f'" {V2} - - - - ' in shadow
    objs = [json.loads(line) for line in lines["json"]]
    by_cluster = {o["upstream_cluster"]: o for o in objs}
    assert set(by_cluster) == {V1, V2}
    p = by_cluster[V1]
    assert p["response_code"] == 200 and p["bytes_sent"] == 2 and p["method"] == "GET"
    assert p["response_code_details"] == "via_upstream" and p["request_id"] == "r1"
    assert p["upstream_local_address"] is None and by_cluster[V2]["authority"] == "httpbin-shadow:8000"
