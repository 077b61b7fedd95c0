"""Loading: good configs, model values, files/directories/lists/api versions."""

from __future__ import annotations

import json
import time
from pathlib import Path

import pytest

from simulator.config import load, load_text
from simulator.core.hosts import fqdn
from simulator.model import istio as m

from .helpers import find, load_yaml, only

DATA = Path(__file__).parent / "data"
MIRRORING = DATA / "mirroring.yaml"


# ---------------------------------------------------------------- the istio.io mirroring task


@pytest.fixture(scope="module")
def mirroring() -> m.Config:
    result = load([str(MIRRORING)])
    assert list(result.diagnostics) == [], [d.format() for d in result.diagnostics]
    assert result.ok
    return result.config


def test_mirroring_virtual_service(mirroring: m.Config) -> None:
    (vs,) = mirroring.virtual_services
    assert vs.meta == m.Meta(name="httpbin", namespace="default", order=2)
    assert vs.hosts == ("httpbin",)
    assert vs.gateways == ()
    (rule,) = vs.http
    assert rule.match == ()
    assert rule.route == (m.HTTPRouteDestination(destination=m.Destination(host="httpbin", subset="v1"), weight=100),)
    assert rule.mirror == m.Destination(host="httpbin", subset="v2")
    assert rule.mirror_percentage == 100.0
    assert rule.mirror_percent is None and rule.mirrors == ()
    assert rule.timeout is None and rule.retries is None and rule.fault is None


def test_mirroring_destination_rule(mirroring: m.Config) -> None:
    (dr,) = mirroring.destination_rules
    assert dr.host == "httpbin"
    assert fqdn(dr.host, dr.meta.namespace) == "httpbin.default.svc.cluster.local"
    assert [(s.name, s.labels) for s in dr.subsets] == [
        ("v1", {"version": "v1"}),
        ("v2", {"version": "v2"}),
    ]
    assert dr.traffic_policy is None


def test_mirroring_service_entry(mirroring: m.Config) -> None:
    (se,) = mirroring.service_entries
    assert se.hosts == ("httpbin.default.svc.cluster.local",)
    assert se.ports == (m.ServicePort(number=8000, protocol="HTTP", name="http"),)
    assert se.resolution == "STATIC" and se.location == "MESH_INTERNAL"
    assert [(e.address, e.ports, e.labels) for e in se.endpoints] == [
        ("127.0.0.1", {"http": 9081}, {"version": "v1"}),
        ("127.0.0.1", {"http": 9082}, {"version": "v2"}),
    ]
    assert se.meta.order == 0


def test_source_lines_point_into_the_file(mirroring: m.Config) -> None:
    (vs,) = mirroring.virtual_services
    lines = MIRRORING.read_text().split("\n")
    assert vs.src.file == str(MIRRORING)
    assert lines[vs.src.line - 1].startswith("apiVersion:")
    assert lines[vs.src.line_of("spec.http[0].mirror.subset") - 1].strip() == "subset: v2"
    assert lines[vs.src.line_of("spec.http[0].route[0].weight") - 1].strip() == "weight: 100"
    # a path without its own entry falls back to the nearest ancestor
    assert vs.src.line_of("spec.http[0].mirror.port.number") == vs.src.line_of("spec.http[0].mirror")


# ---------------------------------------------------------------- every field of a VirtualService

FULL_VS = """
apiVersion: networking.istio.io/v1
kind: VirtualService
metadata:
  name: full
  namespace: prod
  labels: {team: a}
spec:
  hosts: [reviews, "*.example.com"]
  gateways: [mesh, prod/gw]
  exportTo: ["."]
  http:
  - name: r1
    match:
    - name: m1
      uri: {prefix: /api}
      ignoreUriCase: true
      method: {exact: GET}
      authority: {regex: "reviews(:[0-9]+)?"}
      scheme: {exact: http}
      headers:
        End-User: {exact: jason}
        x-present: {}
      withoutHeaders:
        x-debug: {regex: "*"}
      queryParams:
        v: {regex: "\\\\d+"}
      port: 9080
      sourceLabels: {app: productpage}
      gateways: [mesh]
      sourceNamespace: prod
      statPrefix: api
    route:
    - destination: {host: reviews, subset: v1, port: {number: 9080}}
      weight: 75
      headers:
        request:
          set: {x-a: "1"}
          add: {x-b: "2"}
          remove: [x-c]
    - destination: {host: reviews, subset: v2, port: {number: 9080}}
      weight: 25
    timeout: 1.5s
    retries:
      attempts: 3
      perTryTimeout: 500ms
      retryOn: "5xx,503,reset"
      retryRemoteLocalities: true
      retryIgnorePreviousHosts: false
      backoff: 1m30s
    fault:
      delay: {fixedDelay: 7s, percentage: {value: 12.5}}
      abort: {grpcStatus: UNAVAILABLE, percentage: {value: 100}}
    mirrors:
    - destination: {host: reviews, subset: v3, port: {number: 9080}}
      percentage: {value: 0.5}
    - destination: {host: reviews, subset: v2, port: {number: 9080}}
    corsPolicy:
      allowOrigins: [{exact: "https://a.example"}, {regex: "https://.*[.]b[.]example"}]
      allowMethods: [GET, POST]
      allowHeaders: [x-a]
      exposeHeaders: ["*"]
      maxAge: 24h
      allowCredentials: true
      unmatchedPreflights: IGNORE
    rewrite: {uriRegexRewrite: {match: "^/api/(.*)$", rewrite: "/\\\\1"}, authority: reviews.internal}
    headers:
      response: {set: {x-r: y}}
  - name: r2
    match: [{uri: {exact: /redirect}}]
    redirect: {uri: /new, authority: new.example, port: 8443, scheme: https, redirectCode: 308}
  - name: r3
    match: [{uri: {exact: /direct}}]
    directResponse: {status: 418, body: {bytes: aGVsbG8=}}
  - name: r4
    match: [{uri: {exact: /text}}]
    directResponse: {status: 200, body: {string: "hi"}}
"""


@pytest.fixture(scope="module")
def full_vs() -> m.VirtualService:
    result = load_yaml(FULL_VS)
    # only analyzer warnings (no registry in this file), no errors
    assert result.ok, [d.format() for d in result.diagnostics]
    assert {d.code for d in result.diagnostics} <= {"IST0101"}
    (vs,) = result.config.virtual_services
    return vs


def test_full_vs_top_level(full_vs: m.VirtualService) -> None:
    assert full_vs.meta.namespace == "prod" and full_vs.meta.labels == {"team": "a"}
    assert full_vs.hosts == ("reviews", "*.example.com")
    assert full_vs.gateways == ("mesh", "prod/gw")
    assert full_vs.export_to == (".",)
    assert [r.name for r in full_vs.http] == ["r1", "r2", "r3", "r4"]


def test_full_vs_match(full_vs: m.VirtualService) -> None:
    (match,) = full_vs.http[0].match
    assert match.name == "m1"
    assert match.uri == m.StringMatch("prefix", "/api")
    assert match.ignore_uri_case is True
    assert match.method == m.StringMatch("exact", "GET")
    assert match.authority == m.StringMatch("regex", "reviews(:[0-9]+)?")
    assert match.scheme == m.StringMatch("exact", "http")
    assert match.headers == (
        ("end-user", m.StringMatch("exact", "jason")),
        ("x-present", m.StringMatch("present")),
    )
    assert match.without_headers == (("x-debug", m.StringMatch("present")),)
    assert match.query_params == (("v", m.StringMatch("regex", r"\d+")),)
    assert match.port == 9080
    assert match.source_labels == {"app": "productpage"}
    assert match.gateways == ("mesh",)
    assert match.source_namespace == "prod" and match.stat_prefix == "api"


def test_full_vs_route_and_policies(full_vs: m.VirtualService) -> None:
    r = full_vs.http[0]
    assert [(d.destination, d.weight) for d in r.route] == [
        (m.Destination("reviews", "v1", 9080), 75),
        (m.Destination("reviews", "v2", 9080), 25),
    ]
    assert r.route[0].headers == m.Headers(
        request=m.HeaderOperations(set=(("x-a", "1"),), add=(("x-b", "2"),), remove=("x-c",))
    )
    assert r.headers == m.Headers(response=m.HeaderOperations(set=(("x-r", "y"),)))
    assert r.timeout == 1.5
    assert r.retries == m.HTTPRetry(
        attempts=3,
        per_try_timeout=0.5,
        retry_on="5xx,503,reset",
        retry_remote_localities=True,
        retry_ignore_previous_hosts=False,
        backoff=90.0,
    )
    assert r.fault == m.HTTPFaultInjection(
        delay=m.FaultDelay(fixed_delay=7.0, percentage=12.5),
        abort=m.FaultAbort(grpc_status="UNAVAILABLE", percentage=100.0),
    )
    assert r.mirrors == (
        m.HTTPMirrorPolicy(m.Destination("reviews", "v3", 9080), 0.5),
        m.HTTPMirrorPolicy(m.Destination("reviews", "v2", 9080), None),
    )
    assert r.rewrite == m.HTTPRewrite(
        authority="reviews.internal", uri_regex_rewrite=m.RegexRewrite("^/api/(.*)$", r"/\1")
    )


def test_full_vs_cors(full_vs: m.VirtualService) -> None:
    cors = full_vs.http[0].cors_policy
    assert cors is not None
    assert cors.allow_origins == (
        m.StringMatch("exact", "https://a.example"),
        m.StringMatch("regex", "https://.*[.]b[.]example"),
    )
    assert cors.allow_methods == ("GET", "POST")
    assert cors.allow_headers == ("x-a",) and cors.expose_headers == ("*",)
    assert cors.max_age == 86400.0
    assert cors.allow_credentials is True and cors.unmatched_preflights == "IGNORE"


def test_full_vs_redirect_and_direct_response(full_vs: m.VirtualService) -> None:
    assert full_vs.http[1].redirect == m.HTTPRedirect(
        uri="/new", authority="new.example", port=8443, scheme="https", redirect_code=308
    )
    assert full_vs.http[2].direct_response == m.HTTPDirectResponse(status=418, body=b"hello")
    assert full_vs.http[3].direct_response == m.HTTPDirectResponse(status=200, body=b"hi")


def test_destination_rule_traffic_policy_values() -> None:
    result = load_yaml(
        """
        apiVersion: networking.istio.io/v1
        kind: DestinationRule
        metadata: {name: httpbin}
        spec:
          host: httpbin
          trafficPolicy:
            connectionPool:
              tcp: {maxConnections: 1, connectTimeout: 250ms, idleTimeout: 0s}
              http: {http1MaxPendingRequests: 1, maxRequestsPerConnection: 1, h2UpgradePolicy: UPGRADE}
            outlierDetection:
              consecutive5xxErrors: 1
              interval: 1s
              baseEjectionTime: 3m
              maxEjectionPercent: 100
            loadBalancer: {simple: ROUND_ROBIN}
            portLevelSettings:
            - port: {number: 8000}
              loadBalancer: {consistentHash: {httpHeaderName: x-user}}
            tls: {mode: ISTIO_MUTUAL}
          subsets:
          - name: v1
            labels: {version: v1}
            trafficPolicy: {loadBalancer: {simple: RANDOM}}
        """
    )
    assert [d for d in result.diagnostics if d.severity == "error"] == []
    (dr,) = result.config.destination_rules
    tp = dr.traffic_policy
    assert tp is not None
    assert tp.connection_pool == m.ConnectionPoolSettings(
        tcp=m.TCPSettings(max_connections=1, connect_timeout=0.25, idle_timeout=0.0),
        http=m.HTTPSettings(http1_max_pending_requests=1, max_requests_per_connection=1, h2_upgrade_policy="UPGRADE"),
    )
    assert tp.outlier_detection == m.OutlierDetection(
        consecutive_5xx_errors=1, interval=1.0, base_ejection_time=180.0, max_ejection_percent=100
    )
    assert tp.load_balancer == m.LoadBalancerSettings(simple="ROUND_ROBIN")
    assert tp.port_level_settings == (
        m.PortTrafficPolicy(
            port=8000,
            load_balancer=m.LoadBalancerSettings(consistent_hash=m.ConsistentHashLB(http_header_name="x-user")),
        ),
    )
    assert tp.tls == {"mode": "ISTIO_MUTUAL"}
    assert dr.subsets[0].traffic_policy == m.TrafficPolicy(load_balancer=m.LoadBalancerSettings(simple="RANDOM"))


def test_gateway_and_workload_entry_values() -> None:
    result = load_yaml(
        """
        apiVersion: networking.istio.io/v1
        kind: Gateway
        metadata: {name: gw, namespace: istio-system}
        spec:
          selector: {istio: ingressgateway}
          servers:
          - port: {number: 80, name: http, protocol: HTTP}
            hosts: ["*"]
            tls: {httpsRedirect: true}
          - port: {number: 443, name: https, protocol: HTTPS}
            hosts: ["prod/*.example.com"]
            tls: {mode: SIMPLE, credentialName: cert}
        ---
        apiVersion: networking.istio.io/v1
        kind: WorkloadEntry
        metadata: {name: vm1}
        spec:
          address: 10.0.0.7
          ports: {http: 8080}
          labels: {app: httpbin, version: v3}
          weight: 2
        """
    )
    assert list(result.diagnostics) == [], [d.format() for d in result.diagnostics]
    (gw,) = result.config.gateways
    assert gw.selector == {"istio": "ingressgateway"}
    assert gw.servers == (
        m.Server(port=m.GatewayPort(80, "HTTP", "http"), hosts=("*",),
                 tls=m.ServerTLSSettings(https_redirect=True)),
        m.Server(port=m.GatewayPort(443, "HTTPS", "https"), hosts=("prod/*.example.com",),
                 tls=m.ServerTLSSettings(mode="SIMPLE", credential_name="cert")),
    )  # fmt: skip
    (we,) = result.config.workload_entries
    assert we.spec == m.WorkloadEntrySpec(address="10.0.0.7", weight=2)
    assert we.spec.ports == {"http": 8080} and we.spec.labels["version"] == "v3"


# ---------------------------------------------------------------- documents, files, versions


@pytest.mark.parametrize("version", ["v1", "v1beta1", "v1alpha3"])
def test_all_api_versions_read_identically(version: str) -> None:
    text = MIRRORING.read_text().replace("networking.istio.io/v1\n", f"networking.istio.io/{version}\n")
    assert text.count(f"networking.istio.io/{version}\n") == 3
    result = load_text(text, "x.yaml")
    reference = load([str(MIRRORING)])
    assert list(result.diagnostics) == []
    assert result.config == reference.config


def test_unknown_api_version_is_an_error() -> None:
    result = load_yaml(
        """
        apiVersion: networking.istio.io/v2
        kind: VirtualService
        metadata: {name: a}
        """
    )
    d = only(result, path="apiVersion")
    assert d.severity == "error" and "networking.istio.io/v1beta1" in d.message
    assert d.line == 2


def test_multi_document_with_empty_documents_and_order() -> None:
    result = load_yaml(
        """
        ---
        ---
        apiVersion: networking.istio.io/v1
        kind: DestinationRule
        metadata: {name: a}
        spec: {host: a}
        ---
        # only a comment
        ---
        apiVersion: networking.istio.io/v1
        kind: DestinationRule
        metadata: {name: b, namespace: other}
        spec: {host: b}
        """
    )
    assert [d.severity for d in result.diagnostics] == ["warning", "warning"]  # IST0174 x2
    assert [(d.meta.name, d.meta.namespace, d.meta.order) for d in result.config.destination_rules] == [
        ("a", "default", 0),
        ("b", "other", 1),
    ]
    assert [d.src.line for d in result.config.destination_rules] == [4, 11]


def test_default_namespace_parameter(tmp_path: Path) -> None:
    f = tmp_path / "dr.yaml"
    f.write_text("apiVersion: networking.istio.io/v1\nkind: DestinationRule\nmetadata: {name: a}\nspec: {host: a}\n")
    result = load([f], default_namespace="team")
    assert result.config.destination_rules[0].meta.namespace == "team"
    assert load_text(f.read_text(), default_namespace="x").config.destination_rules[0].meta.namespace == "x"


def test_kind_list_is_expanded_with_item_lines() -> None:
    result = load_yaml(
        """
        apiVersion: v1
        kind: List
        items:
        - apiVersion: networking.istio.io/v1
          kind: DestinationRule
          metadata: {name: a}
          spec: {host: a, subsets: [{name: v1}]}
        - apiVersion: networking.istio.io/v1
          kind: VirtualService
          metadata: {name: b}
          spec:
            hosts: [a]
            http:
            - route:
              - destination: {host: a, subset: v_1}
        """
    )
    assert [dr.meta.name for dr in result.config.destination_rules] == ["a"]
    assert [vs.meta.name for vs in result.config.virtual_services] == ["b"]
    vs = result.config.virtual_services[0]
    assert vs.src.line == 9
    d = only(result, path="spec.http[0].route[0].destination.subset", severity="error")
    assert d.line == 16 and d.resource == "VirtualService default/b"


def test_virtual_service_list_kind_expanded() -> None:
    result = load_yaml(
        """
        apiVersion: networking.istio.io/v1
        kind: VirtualServiceList
        items:
        - apiVersion: networking.istio.io/v1
          kind: VirtualService
          metadata: {name: a}
          spec: {hosts: [a], http: [{route: [{destination: {host: a}}]}]}
        """
    )
    assert [vs.meta.name for vs in result.config.virtual_services] == ["a"]


def test_directory_loading_is_recursive_and_sorted(tmp_path: Path) -> None:
    def dr(name: str) -> str:
        head = "apiVersion: networking.istio.io/v1\nkind: DestinationRule\n"
        return f"{head}metadata: {{name: {name}}}\nspec: {{host: {name}}}\n"

    (tmp_path / "b").mkdir()
    (tmp_path / "b" / "z.yml").write_text(dr("from-b-z"))
    (tmp_path / "a.yaml").write_text(dr("from-a"))
    (tmp_path / "c.json").write_text(
        json.dumps(
            {
                "apiVersion": "networking.istio.io/v1",
                "kind": "DestinationRule",
                "metadata": {"name": "from-c"},
                "spec": {"host": "c"},
            }
        )  # fmt: skip
    )
    (tmp_path / "notes.txt").write_text("not: [yaml")
    result = load([tmp_path])
    assert [d.meta.name for d in result.config.destination_rules] == ["from-a", "from-b-z", "from-c"]
    assert result.ok
    files = sorted({d.file for d in result.diagnostics})
    assert files == sorted(str(p) for p in (tmp_path / "a.yaml", tmp_path / "b" / "z.yml", tmp_path / "c.json"))


def test_missing_path_is_an_error_and_others_still_load(tmp_path: Path) -> None:
    missing = tmp_path / "nope.yaml"
    result = load([str(missing), str(MIRRORING)])
    d = only(result, severity="error")
    assert d.file == str(missing) and str(missing) in d.message
    assert len(result.config.virtual_services) == 1
    assert not result.ok


def test_other_kubernetes_kinds_are_skipped_quietly_and_istio_ones_with_a_warning() -> None:
    result = load_yaml(
        """
        apiVersion: apps/v1
        kind: Deployment
        metadata: {name: httpbin-v1}
        spec: {replicas: 1}
        ---
        apiVersion: networking.istio.io/v1
        kind: Sidecar
        metadata: {name: default}
        spec: {}
        """
    )
    assert result.ok
    # rendered manifests carry Deployments, ConfigMaps, ...: listed (mirrorsim check -v), not warned
    (sidecar,) = result.diagnostics
    assert result.skipped == ("Deployment default/httpbin-v1 (apps/v1)",)
    assert sidecar.severity == "warning" and "Sidecar" in sidecar.message and sidecar.line == 8


def test_redefinition_replaces_like_kubectl_apply() -> None:
    result = load_yaml(
        """
        apiVersion: networking.istio.io/v1
        kind: DestinationRule
        metadata: {name: a}
        spec: {host: first}
        ---
        apiVersion: networking.istio.io/v1
        kind: DestinationRule
        metadata: {name: x}
        spec: {host: x}
        ---
        apiVersion: networking.istio.io/v1
        kind: DestinationRule
        metadata: {name: a}
        spec: {host: second}
        """
    )
    assert [(d.meta.name, d.host, d.meta.order) for d in result.config.destination_rules] == [
        ("a", "second", 0),
        ("x", "x", 1),
    ]
    d = only(result, path="metadata.name")
    assert d.severity == "warning" and d.line == 14


def test_yaml_anchors_and_merge_keys() -> None:
    result = load_yaml(
        """
        apiVersion: networking.istio.io/v1
        kind: DestinationRule
        metadata: {name: a}
        spec:
          host: a
          subsets:
          - &v1 {name: v1, labels: {version: v1}}
          - <<: *v1
            name: v2
        """
    )
    assert [(s.name, s.labels) for s in result.config.destination_rules[0].subsets] == [
        ("v1", {"version": "v1"}),
        ("v2", {"version": "v1"}),
    ]
    assert find(result, severity="error") == []


def test_loading_1000_virtual_services_is_fast() -> None:
    doc = """apiVersion: networking.istio.io/v1
kind: VirtualService
metadata: {{name: vs{i}}}
spec:
  hosts: [svc{i}]
  http:
  - match:
    - uri: {{prefix: /api/v{i}}}
      headers: {{x-user: {{exact: u{i}}}, x-re: {{regex: "a.*b{i}"}}}}
    route:
    - destination: {{host: svc{i}, subset: v1}}
      weight: 90
    - destination: {{host: svc{i}, subset: v2}}
      weight: 10
    timeout: 1.5s
    retries: {{attempts: 3, retryOn: "5xx,reset", perTryTimeout: 500ms}}
  - route:
    - destination: {{host: svc{i}}}
"""
    text = "---\n".join(doc.format(i=i) for i in range(1000))
    start = time.process_time()  # CPU time: other processes on a shared machine do not count
    result = load_text(text, "big.yaml")
    elapsed = time.process_time() - start
    assert len(result.config.virtual_services) == 1000 and result.ok
    assert elapsed < 4.0, f"loading 1000 VirtualServices took {elapsed:.2f}s of CPU"
