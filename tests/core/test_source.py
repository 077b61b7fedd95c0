"""The calling workload as a translation input (istiod's sourceMatchHTTP): a match
whose sourceLabels / sourceNamespace do not select the workload is left out of the
route table built for it; a match naming ``gateways`` is bound by them alone."""

from __future__ import annotations

import pytest

from simulator.config import load_text
from simulator.core.explain import RouteQuery, explain
from simulator.core.translate import TranslateOptions, gateway_servers, translate, translate_gateway
from tests.conftest import registry_yaml, virtual_service

RULES = registry_yaml({"v1": 9001, "v2": 9002, "v3": 9003}) + virtual_service("""
- match:
  - sourceLabels: {app: productpage, version: v1}
  route: [{destination: {host: httpbin, subset: v2}}]
- match:
  - sourceNamespace: other
    uri: {prefix: /ns}
  route: [{destination: {host: httpbin, subset: v3}}]
- match:
  - gateways: [mesh]
    sourceLabels: {app: nobody}
    uri: {prefix: /gw}
  route: [{destination: {host: httpbin, subset: v3}}]
- route: [{destination: {host: httpbin, subset: v1}}]
""")


def subset_for(path: str, labels: dict[str, str] | None = None, namespace: str = "") -> str:
    cfg = load_text(RULES, "rules.yaml")
    assert cfg.ok, [d.format() for d in cfg.diagnostics]
    opts = TranslateOptions(source_labels=tuple(sorted((labels or {}).items())), source_namespace=namespace)
    e = explain(translate(cfg.config, opts), RouteQuery("GET", "httpbin.default:8000", path))
    assert e.cluster is not None, e.decision
    return e.cluster.subset


@pytest.mark.parametrize("labels, namespace, path, subset", [
    (None, "", "/", "v1"),  # an unlabelled workload: the sourceLabels rule does not apply
    ({"app": "productpage", "version": "v1"}, "", "/", "v2"),
    ({"app": "productpage", "version": "v1", "extra": "x"}, "", "/", "v2"),  # a subset of the labels
    ({"app": "productpage", "version": "v2"}, "", "/", "v1"),
    ({"app": "productpage"}, "", "/", "v1"),
    (None, "", "/ns", "v1"),  # sourceNamespace other does not select default
    (None, "other", "/ns", "v3"),
    (None, "", "/gw", "v3"),  # gateways: [mesh] binds the match; its sourceLabels are not consulted
    ({"app": "productpage", "version": "v1"}, "other", "/ns", "v2"),  # first rule wins
])
def test_source_selects_rules(labels, namespace, path, subset):
    assert subset_for(path, labels, namespace) == subset


def test_a_rule_whose_every_match_is_dropped_is_not_a_catch_all():
    cfg = load_text(RULES, "rules.yaml").config
    table = translate(cfg, TranslateOptions())
    vh = table.route_configs[8000].find_virtual_host("httpbin")
    assert vh is not None
    origins = [r.origin_path for r in vh.routes]
    assert origins == ["spec.http[2].match[0]", "spec.http[3]"]


def test_source_namespace_is_the_client_namespace_for_short_names():
    cfg = load_text(RULES, "rules.yaml").config
    table = translate(cfg, TranslateOptions(source_namespace="other"))
    vh = table.route_configs[8000].find_virtual_host("httpbin.default")
    assert vh is not None and "httpbin" not in vh.domains  # short name only from namespace default


GATEWAY = RULES.replace("hosts: [httpbin]", "hosts: ['*']\n  gateways: [gw]") + """
---
apiVersion: networking.istio.io/v1
kind: Gateway
metadata: {name: gw, namespace: default}
spec:
  selector: {app: productpage, version: v1}
  servers:
  - port: {number: 80, name: http, protocol: HTTP}
    hosts: ['*']
"""


def test_a_gateway_is_its_own_source():
    cfg = load_text(GATEWAY, "gw.yaml").config
    gw, servers = gateway_servers(cfg, "default/gw")
    table = translate_gateway(cfg, gw, servers[0], TranslateOptions())
    e = explain(table, RouteQuery("GET", "example.com", "/"))
    assert e.cluster is not None and e.cluster.subset == "v2"  # the gateway's selector labels select rule 0
