"""The header-value formatter's grammar against the real Envoy 1.40 (``--mode validate``):
every operator mirrorsim accepts, Envoy accepts; every value mirrorsim rejects, Envoy
rejects with the same message."""

from __future__ import annotations

import json
import subprocess
from pathlib import Path

import pytest

from simulator.core.header_format import COMMAND_ONLY, WITH_PARAMETERS, FormatError, parse
from tests.conformance.harness import ENVOY

pytestmark = pytest.mark.slow

def _validate(tmp_path: Path, values: list[str]) -> str:
    """Envoy's verdict on a route with one response header per value: "" or its error."""
    assert ENVOY, "the real Envoy is a test dependency: python3 -m pip install -e '.[test]'"
    hcm = {
        "@type": "type.googleapis.com/envoy.extensions.filters.network.http_connection_manager.v3"
                 ".HttpConnectionManager",
        "stat_prefix": "x",
        "http_filters": [{"name": "envoy.filters.http.router", "typed_config": {
            "@type": "type.googleapis.com/envoy.extensions.filters.http.router.v3.Router"}}],
        "route_config": {"virtual_hosts": [{"name": "v", "domains": ["*"], "routes": [{
            "match": {"prefix": "/"}, "direct_response": {"status": 200},
            "response_headers_to_add": [{"header": {"key": f"x-{i}", "value": v}}
                                        for i, v in enumerate(values)]}]}]},
    }
    cfg = {"static_resources": {"listeners": [{
        "name": "l", "address": {"socket_address": {"address": "127.0.0.1", "port_value": 0}},
        "filter_chains": [{"filters": [{"name": "envoy.filters.network.http_connection_manager",
                                        "typed_config": hcm}]}]}]}}
    path = tmp_path / "envoy.json"
    path.write_text(json.dumps(cfg))
    r = subprocess.run([ENVOY, "--mode", "validate", "-c", str(path), "--log-level", "critical"],
                       capture_output=True, text=True, timeout=50)
    if r.returncode == 0:
        return ""
    out = r.stdout + r.stderr
    return out.rpartition("error initializing configuration")[2].partition(": ")[2].strip()


def test_envoy_accepts_every_operator_mirrorsim_accepts(tmp_path):
    values = [f"%{n}%" for n in sorted(COMMAND_ONLY)]
    args = {"CEL": "request.path", "UPSTREAM_METADATA": '["a","b"]', "FILTER_STATE": "a:PLAIN",
            "UPSTREAM_FILTER_STATE": "a:PLAIN", "COMMON_DURATION": "DS_RX_BEG:DS_RX_END:ms",
            "METADATA": "ROUTE:a", "PER_REQUEST_STATE": "a"}
    values += [f"%{n}({args.get(n, 'a:b')})%" for n in sorted(WITH_PARAMETERS)]
    values += [ "%REQ(x?y):3%", "%RESP(:status)%",
               "%TRAILER(x)%", "%START_TIME(%s)%", "100%% %%%PROTOCOL%%%"]
    for v in values:
        parse(v)  # mirrorsim accepts each
    assert _validate(tmp_path, values) == ""


REJECTED = ["%FOO%", "%REQ%", "%REQ(x):abc%", "abc%123", "%START_TIME%%", "%PROTOCOL(x)%",
            "%REQ(x?y?z)%", "%REQ(x@y)%", "%START_TIME(%s):3%"]


@pytest.mark.parametrize("value", REJECTED)
def test_envoy_rejects_what_mirrorsim_rejects(tmp_path, value):
    with pytest.raises(FormatError) as exc:
        parse(value)
    assert _validate(tmp_path, [value]) == str(exc.value)
