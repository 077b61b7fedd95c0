"""``mirrorsim envoy`` on Gateway API input: the routes it exports for the oracle's HTTPRoutes
(tests/oracle/istio/gamma.yaml) are the routes written by hand from istiod's conversion in
tests/oracle/envoy/gamma.yaml (read only here; the oracle itself never runs the exporter)."""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path
from typing import Any

import yaml

ROOT = Path(__file__).resolve().parent.parent
ORACLE = ROOT / "tests" / "oracle"


def _virtual_hosts(boot: Any) -> dict[str, list[Any]]:
    out: dict[str, list[Any]] = {}
    stack = [boot]
    while stack:
        o = stack.pop()
        if isinstance(o, dict):
            for vh in o.get("virtual_hosts", []):
                out[vh["name"]] = vh.get("routes", [])
            stack.extend(o.values())
        elif isinstance(o, list):
            stack.extend(o)
    return out


def _route(r: dict[str, Any]) -> dict[str, Any]:
    """What routing depends on: the match, the action's targets, rewrites, mirrors, replies."""
    match = {k: v for k, v in r.get("match", {}).items() if k != "case_sensitive"}
    a = r.get("route") or {}
    # Envoy's defaults written out or not: an empty path_redirect, a 301
    redirect = {k: v for k, v in (r.get("redirect") or {}).items()
                if (k, v) not in (("path_redirect", ""), ("response_code", "MOVED_PERMANENTLY"))}
    return {
        "match": match, "redirect": redirect, "direct": (r.get("direct_response") or {}).get("status"),
        **{k: a.get(k) for k in ("cluster", "weighted_clusters", "regex_rewrite", "prefix_rewrite", "timeout",
                                 "cluster_not_found_response_code", "host_rewrite_literal")},
        "mirrors": [(p["cluster"], p.get("runtime_fraction")) for p in a.get("request_mirror_policies", [])],
    }


def test_exported_gamma_routes_are_istiods(tmp_path: Path) -> None:
    src = (ORACLE / "istio" / "gamma.yaml").read_text()
    names = sorted(set(re.findall(r"\$\{(\w+)\}", src)))
    ports = {n: str(20000 + i) for i, n in enumerate(names)}
    config = tmp_path / "gamma.yaml"
    config.write_text(re.sub(r"\$\{(\w+)\}", lambda mt: ports[mt.group(1)], src))
    res = subprocess.run([sys.executable, "-m", "simulator", "envoy", "-f", str(config), "--no-shadow-suffix"],
                         capture_output=True, text=True, timeout=50, check=False)
    assert res.returncode == 0, res.stderr
    mine = _virtual_hosts(yaml.safe_load(res.stdout))
    hand = (ORACLE / "envoy" / "gamma.yaml").read_text()
    theirs = _virtual_hosts(yaml.safe_load(re.sub(r"\$\{(\w+)\}", lambda mt: ports.get(mt.group(1), "1"), hand)))
    assert len(theirs["httpbin.default.svc.cluster.local:8000"]) > 40
    for name, routes in theirs.items():
        assert [_route(r) for r in mine[name]] == [_route(r) for r in routes], name
