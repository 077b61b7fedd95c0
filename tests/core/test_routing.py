"""Table-driven tests of the pure core: Istio YAML -> RouteTable -> decision."""

from __future__ import annotations

import pytest

from simulator.core.table import Forward, LocalReply
from tests.conftest import registry_yaml, table_from_yaml, virtual_service

REG = registry_yaml({"v1": 9001, "v2": 9002, "v3": 9003})


def cluster(subset: str) -> str:
    return f"outbound|8000|{subset}|httpbin.default.svc.cluster.local"


def route(http: str, method="GET", path="/", headers=None, authority="httpbin:8000", rv=0):
    table = table_from_yaml(REG + virtual_service(http))
    return table.route(method, authority, path, dict(headers or {}), rv)


MATCHES = """
- match:
  - uri: {exact: /exact}
  route: [{destination: {host: httpbin, subset: v1}}]
- match:
  - uri: {prefix: /CaSe}
    ignoreUriCase: true
  route: [{destination: {host: httpbin, subset: v2}}]
- match:
  - uri: {regex: "/b[io]t"}
  route: [{destination: {host: httpbin, subset: v3}}]
- match:
  - headers:
      end-user: {exact: jason}
  route: [{destination: {host: httpbin, subset: v2}}]
- match:
  - headers:
      x-present: {}
    method: {exact: POST}
  route: [{destination: {host: httpbin, subset: v3}}]
- match:
  - queryParams:
      id: {regex: "\\\\d+"}
  route: [{destination: {host: httpbin, subset: v3}}]
- match:
  - withoutHeaders:
      x-canary: {exact: "yes"}
    uri: {prefix: /wo}
  route: [{destination: {host: httpbin, subset: v2}}]
- match:
  - authority: {exact: "httpbin:8000"}
    uri: {prefix: /auth}
  route: [{destination: {host: httpbin, subset: v3}}]
"""


@pytest.mark.parametrize("method, path, headers, expected", [
    ("GET", "/exact", {}, cluster("v1")),
    ("GET", "/exact?x=1", {}, cluster("v1")),  # query is not part of the path match
    ("GET", "/exact/more", {}, None),
    ("GET", "/case/x", {}, cluster("v2")),  # ignoreUriCase
    ("GET", "/bit", {}, cluster("v3")),
    ("GET", "/bite", {}, None),  # regex must match the whole path
    ("GET", "/any", {"end-user": "jason"}, cluster("v2")),
    ("GET", "/any", {"end-user": "jasonx"}, None),
    ("POST", "/any", {"x-present": ""}, cluster("v3")),
    ("GET", "/any", {"x-present": "1"}, None),  # method must be POST
    ("GET", "/q?id=123", {}, cluster("v3")),
    ("GET", "/q?id=a123", {}, None),  # full match on the value
    ("GET", "/wo", {}, cluster("v2")),  # withoutHeaders matches an absent header
    ("GET", "/wo", {"x-canary": "no"}, cluster("v2")),
    ("GET", "/wo", {"x-canary": "yes"}, None),
    ("GET", "/auth", {}, cluster("v3")),
])
def test_match_semantics(method, path, headers, expected):
    d = route(MATCHES, method, path, headers)
    if expected is None:
        assert isinstance(d, LocalReply) and (d.status, d.flags) == (404, "NR")
    else:
        assert isinstance(d, Forward) and d.cluster == expected


def test_first_match_wins_and_catch_all_ends_generation():
    http = """
- route: [{destination: {host: httpbin, subset: v1}}]
- match: [{uri: {prefix: /never}}]
  route: [{destination: {host: httpbin, subset: v2}}]
"""
    table = table_from_yaml(REG + virtual_service(http))
    d = table.route("GET", "httpbin:8000", "/never", {}, 0)
    assert isinstance(d, Forward) and d.cluster == cluster("v1")
    (vh,) = table.route_configs[8000].virtual_hosts
    assert len(vh.routes) == 1  # Istio drops rules after a catch-all


WEIGHTED = """
- route:
  - destination: {host: httpbin, subset: v1}
    weight: 1
  - destination: {host: httpbin, subset: v2}
    weight: 3
  - destination: {host: httpbin, subset: v3}
    weight: 0
"""


@pytest.mark.parametrize("rv, expected", [
    (0, "v1"), (1, "v2"), (3, "v2"), (4, "v1"), (7, "v2"), (2**64 - 1, "v2"),
])
def test_weights_are_relative_and_pick_by_random_value(rv, expected):
    d = route(WEIGHTED, rv=rv)
    assert isinstance(d, Forward) and d.cluster == cluster(expected)


@pytest.mark.parametrize("mirror_yaml, fraction", [
    ("mirror: {host: httpbin, subset: v2}", (100, 100)),
    ("mirror: {host: httpbin, subset: v2}\n  mirrorPercentage: {value: 50}", (500000, 1000000)),
    ("mirror: {host: httpbin, subset: v2}\n  mirrorPercentage: {value: 0.5}", (5000, 1000000)),
    ("mirror: {host: httpbin, subset: v2}\n  mirrorPercent: 40", (40, 100)),
    ("mirror: {host: httpbin, subset: v2}\n  mirrorPercent: 40\n  mirrorPercentage: {value: 50}",
     (500000, 1000000)),
    ("mirror: {host: httpbin, subset: v2}\n  mirrorPercentage: {value: 0}", None),
])
def test_mirror_percentage_translation_as_istio(mirror_yaml, fraction):
    http = f"""
- route: [{{destination: {{host: httpbin, subset: v1}}}}]
  {mirror_yaml}
"""
    table = table_from_yaml(REG + virtual_service(http))
    (vh,) = table.route_configs[8000].virtual_hosts
    policies = vh.routes[0].action.mirror_policies
    if fraction is None:
        assert policies == ()
    else:
        (p,) = policies
        assert (p.numerator, p.denominator) == fraction
        assert p.cluster == cluster("v2")


@pytest.mark.parametrize("rv, mirrored", [
    (0, ["v2", "v3"]), (299_999, ["v2", "v3"]), (300_000, ["v3"]), (599_999, ["v3"]),
    (600_000, []), (999_999, []), (1_000_000, ["v2", "v3"]),
])
def test_one_random_value_drives_every_mirror(rv, mirrored):
    http = """
- route: [{destination: {host: httpbin, subset: v1}}]
  mirrors:
  - destination: {host: httpbin, subset: v2}
    percentage: {value: 30}
  - destination: {host: httpbin, subset: v3}
    percentage: {value: 60}
"""
    d = route(http, rv=rv)
    assert isinstance(d, Forward)
    assert [m.cluster for m in d.mirrors] == [cluster(s) for s in mirrored]


def test_connect_is_never_mirrored():
    http = """
- route: [{destination: {host: httpbin, subset: v1}}]
  mirror: {host: httpbin, subset: v2}
"""
    d = route(http, method="CONNECT")
    assert isinstance(d, Forward) and d.mirrors == ()


@pytest.mark.parametrize("authority, expected", [
    ("httpbin:8000", "forward"),
    ("httpbin.default:8000", "forward"),
    ("httpbin.default.svc:8000", "forward"),
    ("httpbin.default.svc.cluster.local:8000", "forward"),
    ("httpbin.default.svc.cluster.local.:8000", "forward"),  # Istio's absolute-FQDN domain
    ("httpbin.:8000", 502),
    ("HTTPBIN:8000", "forward"),
    ("httpbin:9999", 502),  # no service on that port: REGISTRY_ONLY
    ("other:8000", 502),
])
def test_virtual_host_domains(authority, expected):
    http = "- route: [{destination: {host: httpbin, subset: v1}}]"
    d = route(http, authority=authority)
    if expected == "forward":
        assert isinstance(d, Forward)
    else:
        assert isinstance(d, LocalReply) and d.status == expected


def test_virtual_host_domains_in_istios_order_with_service_addresses():
    from simulator.core.translate import service_domains

    assert service_domains("a.ns.svc.cluster.local", "ns", "cluster.local", ("10.0.0.1", "fd00::1")) == (
        "a.ns.svc.cluster.local", "a.ns.svc.cluster.local.", "a", "a.ns.svc", "a.ns", "10.0.0.1", "[fd00::1]")
    assert service_domains("a.other.svc.cluster.local", "ns", "cluster.local") == (
        "a.other.svc.cluster.local", "a.other.svc.cluster.local.", "a.other", "a.other.svc")
    assert service_domains("ext.example.com", "ns", "cluster.local") == ("ext.example.com", "ext.example.com.")
    table = table_from_yaml("""
apiVersion: networking.istio.io/v1
kind: ServiceEntry
metadata: {name: ext, namespace: default}
spec:
  hosts: [ext.example.com]
  addresses: [240.0.0.9, 10.9.0.0/16]
  resolution: STATIC
  ports: [{number: 8000, name: http, protocol: HTTP}]
  endpoints: [{address: 127.0.0.1}]
""")
    assert table.route_configs[8000].virtual_hosts[0].domains == ("ext.example.com", "ext.example.com.", "240.0.0.9")
    assert isinstance(table.route("GET", "240.0.0.9:8000", "/", {}, 0), Forward)


def test_service_without_virtual_service_gets_default_route():
    table = table_from_yaml(REG)
    d = table.route("GET", "httpbin:8000", "/x", {}, 0)
    assert isinstance(d, Forward)
    assert d.cluster == "outbound|8000||httpbin.default.svc.cluster.local"
    assert d.retry_policy is not None and d.retry_policy.num_retries == 2
    assert len(table.clusters[d.cluster].endpoints) == 3


def test_rewrite_sets_original_path_and_authority():
    http = """
- match: [{uri: {prefix: /old}}]
  rewrite: {uri: /new, authority: rewritten.example}
  route: [{destination: {host: httpbin, subset: v1}}]
"""
    d = route(http, path="/old/x?y=1")
    assert isinstance(d, Forward)
    assert (d.path, d.authority, d.original_path) == ("/new/x?y=1", "rewritten.example",
                                                      "/old/x?y=1")


def test_subset_endpoints_selected_by_labels():
    table = table_from_yaml(REG)
    eps = table.clusters[cluster("v2")].endpoints
    assert [(e.address, e.port) for e in eps] == [("127.0.0.1", 9002)]


def test_core_is_pure():
    """simulator/core imports no I/O, event loop, YAML, clock or randomness, and nothing
    from the layers beside or above it (config, proxy, routecheck, envoy, cli)."""
    import ast
    from pathlib import Path

    banned = {"asyncio", "aiohttp", "yaml", "random", "time", "socket", "uvloop", "httptools"}
    above = ("simulator.config", "simulator.proxy", "simulator.routecheck", "simulator.envoy",
             "simulator.cli", "simulator.pytest_plugin", "simulator.demo", "simulator.backend")
    core = Path(__file__).resolve().parents[2] / "simulator" / "core"
    files = sorted(core.glob("*.py"))
    assert len(files) > 5
    for f in files:
        for node in ast.walk(ast.parse(f.read_text())):
            modules = []
            if isinstance(node, ast.Import):
                modules = [a.name for a in node.names]
            elif isinstance(node, ast.ImportFrom) and node.module:
                assert node.level == 0, f"{f.name}: relative import"
                modules = [node.module] + [f"{node.module}.{a.name}" for a in node.names]
            names = [mod.split(".")[0] for mod in modules]
            assert not banned.intersection(names), f"{f.name} imports {names}"
            wrong = [mod for mod in modules if any(mod == a or mod.startswith(a + ".") for a in above)]
            assert not wrong, f"{f.name} imports {wrong}: core sits below config, proxy and routecheck"


def test_delegate_virtual_service_is_merged():
    text = REG + """
---
apiVersion: networking.istio.io/v1
kind: VirtualService
metadata: {name: root, namespace: default}
spec:
  hosts: [httpbin]
  http:
  - match: [{uri: {prefix: /api}}]
    timeout: 3s
    delegate: {name: api, namespace: default}
  - route: [{destination: {host: httpbin, subset: v3}}]
---
apiVersion: networking.istio.io/v1
kind: VirtualService
metadata: {name: api, namespace: default}
spec:
  http:
  - match: [{uri: {prefix: /api/v2}}]
    route: [{destination: {host: httpbin, subset: v2}}]
  - match: [{uri: {prefix: /other}}]
    route: [{destination: {host: httpbin, subset: v1}}]
  - route: [{destination: {host: httpbin, subset: v1}}]
"""
    table = table_from_yaml(text)
    d = table.route("GET", "httpbin:8000", "/api/v2/x", {}, 0)
    assert isinstance(d, Forward) and d.cluster == cluster("v2") and d.timeout == 3.0
    d = table.route("GET", "httpbin:8000", "/api/v1", {}, 0)  # delegate catch-all, AND-ed with /api
    assert isinstance(d, Forward) and d.cluster == cluster("v1")
    d = table.route("GET", "httpbin:8000", "/other", {}, 0)  # not within /api: dropped
    assert isinstance(d, Forward) and d.cluster == cluster("v3")


def test_virtual_host_cache_keeps_decisions_and_is_bounded():
    """RouteTable caches the virtual host per authority for plain http: the same
    decisions as without it, https still defaults to port 443, and a stream of
    made-up Host values cannot grow it past VHOST_CACHE_SIZE."""
    from simulator.core.table import VHOST_CACHE_SIZE

    table = table_from_yaml(registry_yaml({"v1": 9001}, service_port=80)
                            + virtual_service("- route: [{destination: {host: httpbin, subset: v1}}]"))
    for _ in range(2):  # cold, then cached
        assert isinstance(table.route("GET", "httpbin", "/", {}, 0), Forward)  # port 80
        d = table.route("GET", "httpbin", "/", {}, 0, "https")  # port 443: no service there
        assert isinstance(d, LocalReply) and d.status == 502
    assert "httpbin" in table.vhost_cache
    # a "*" virtual host answers every authority: each new one would be a new entry
    from simulator.core.envoy_config import RouteConfiguration, VirtualHost
    from simulator.core.table import RouteTable

    rc = table.route_configs[80]
    star = VirtualHost("star", ("*",), rc.virtual_hosts[0].routes)
    open_table = RouteTable({80: RouteConfiguration.build(80, (star,))}, table.clusters)
    for i in range(2 * VHOST_CACHE_SIZE + 500):
        d = open_table.route("GET", f"made-up-{i}.example", "/", {}, 0)
        assert isinstance(d, Forward) and d.virtual_host is star
        assert len(open_table.vhost_cache) <= VHOST_CACHE_SIZE
    assert "made-up-8691.example" in open_table.vhost_cache  # emptied when full, not frozen
    long = "x" * 59000 + ".example"  # long authorities are routed, never kept
    assert open_table.route("GET", long, "/", {}, 0).virtual_host is star  # type: ignore[union-attr]
    assert long not in open_table.vhost_cache
