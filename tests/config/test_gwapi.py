"""Gateway API HTTPRoute / Gateway and Kubernetes Service input (issue 16): the CRDs'
validation rules at FILE:LINE, istiod's conversion into VirtualServices (conversion.go,
route_collections.go) and the status conditions it reports, and what the core routes."""

from __future__ import annotations

import textwrap

import pytest

from simulator.config import LoadResult
from simulator.core.table import Forward, LocalReply
from simulator.core.translate import translate, translate_gateway
from tests.config.helpers import load_yaml, marked_line

SERVICES = """
apiVersion: v1
kind: Service
metadata: {name: web}
spec:
  selector: {app: web}
  ports: [{name: http, port: 8000, targetPort: 8080}]
---
apiVersion: v1
kind: Service
metadata: {name: web-v1}
spec:
  selector: {app: web, version: v1}
  ports: [{name: http, port: 80, targetPort: http}]
---
apiVersion: v1
kind: Service
metadata: {name: web-v2}
spec:
  selector: {app: web, version: v2}
  ports: [{name: http, port: 80, targetPort: 9090}]
---
apiVersion: networking.istio.io/v1
kind: WorkloadEntry
metadata: {name: web-v1}
spec: {address: 127.0.0.1, ports: {http: 18081}, labels: {app: web, version: v1}}
---
apiVersion: networking.istio.io/v1
kind: WorkloadEntry
metadata: {name: web-v2}
spec: {address: 127.0.0.2, ports: {http: 18082}, labels: {app: web, version: v2}}
"""


def route(body: str, name: str = "web", extra: str = "") -> str:
    """An HTTPRoute on Service web port 8000 with ``rules:`` ``body`` (dedented)."""
    rules = textwrap.indent(textwrap.dedent(body).strip("\n"), "  ")
    return (SERVICES + f"""---
apiVersion: gateway.networking.k8s.io/v1
kind: HTTPRoute
metadata: {{name: {name}{extra}}}
spec:
  parentRefs: [{{group: "", kind: Service, name: web, port: 8000}}]
  rules:
{rules}
""")


def go(result: LoadResult, path: str, method: str = "GET", authority: str = "web:8000",
       headers: dict[str, str] | None = None, rv: int = 0) -> Forward | LocalReply:
    table = translate(result.config)
    return table.route(method, authority, path, headers or {}, rv)


def test_service_endpoints_are_the_workload_entries_it_selects_by_target_port() -> None:
    result = load_yaml(SERVICES)
    assert result.ok, result.diagnostics
    clusters = translate(result.config).clusters
    v1 = clusters["outbound|80||web-v1.default.svc.cluster.local"].endpoints
    v2 = clusters["outbound|80||web-v2.default.svc.cluster.local"].endpoints
    both = clusters["outbound|8000||web.default.svc.cluster.local"].endpoints
    assert [(e.address, e.port) for e in v1] == [("127.0.0.1", 18081)]  # named targetPort: the WE's port
    assert [(e.address, e.port) for e in v2] == [("127.0.0.2", 9090)]  # numeric targetPort wins
    assert sorted((e.address, e.port) for e in both) == [("127.0.0.1", 8080), ("127.0.0.2", 8080)]


def test_mirror_fraction_and_percent_become_istio_percentages() -> None:
    result = load_yaml(route("""
        - matches: [{path: {type: PathPrefix, value: /a/}}]
          filters:
          - type: RequestMirror
            requestMirror: {backendRef: {name: web-v2, port: 80}, fraction: {numerator: 1, denominator: 3}}
          - type: RequestMirror
            requestMirror: {backendRef: {name: web-v1, port: 80}, percent: 25}
          - type: RequestMirror
            requestMirror: {backendRef: {name: web-v1, port: 80}}
          backendRefs: [{name: web-v1, port: 80}]
        """))
    assert result.ok, result.diagnostics
    d = go(result, "/a/x")
    assert isinstance(d, Forward)
    a = d.route.action
    got = [(p.cluster.split("|")[3].split(".")[0], p.numerator, p.denominator) for p in a.mirror_policies]
    # 100 * 1/3 = 33.333...% -> 333333 per million; 25 -> 250000; unset -> 100/100
    assert got == [("web-v2", 333333, 1_000_000), ("web-v1", 250000, 1_000_000), ("web-v1", 100, 100)]


def test_prefix_match_is_path_separated_and_matches_carry_the_parent_port() -> None:
    result = load_yaml(route("""
        - matches: [{path: {type: PathPrefix, value: /api/}}]
          backendRefs: [{name: web-v1, port: 80}]
        - backendRefs: [{name: web-v2, port: 80}]
        """))
    assert result.ok, result.diagnostics
    for path, want in (("/api", "web-v1"), ("/api/x", "web-v1"), ("/apix", "web-v2"), ("/", "web-v2")):
        d = go(result, path)
        assert isinstance(d, Forward) and want + "." in d.cluster, (path, d)
    vs = result.config.virtual_services[0]
    assert vs.hosts == ("web.default.svc.cluster.local",) and vs.gateways == ("mesh",)
    assert {mt.port for r in vs.http for mt in r.match} == {8000}


def test_precedence_across_routes_and_rules_as_sort_http_routes() -> None:
    text = route("""
        - matches:
          - {path: {type: RegularExpression, value: /r/.*}}
          - {path: {type: PathPrefix, value: /p}}
          backendRefs: [{name: web-v2, port: 80}]
        """, name="b") + """---
apiVersion: gateway.networking.k8s.io/v1
kind: HTTPRoute
metadata: {name: a}
spec:
  parentRefs: [{group: "", kind: Service, name: web, port: 8000}]
  rules:
  - matches: [{path: {type: PathPrefix, value: /p}, headers: [{name: X-A, value: "1"}]}]
    backendRefs: [{name: web-v1, port: 80}]
  - matches: [{path: {type: Exact, value: /p/e}}]
    backendRefs: [{name: web-v1, port: 80}]
  - matches: [{path: {type: PathPrefix, value: /p}, method: GET}]
    backendRefs: [{name: web, port: 8000}]
"""
    result = load_yaml(text)
    assert result.ok, result.diagnostics
    (vs,) = result.config.virtual_services  # routes a and b merged for (namespace, port, host)
    order = [(r.origin, r.origin_path) for r in vs.http]
    assert order == [
        ("HTTPRoute default/a", "spec.rules[1].matches[0]"),  # Exact
        ("HTTPRoute default/a", "spec.rules[2].matches[0]"),  # prefix /p with a method
        ("HTTPRoute default/a", "spec.rules[0].matches[0]"),  # prefix /p with a header
        ("HTTPRoute default/b", "spec.rules[0].matches[1]"),  # prefix /p
        ("HTTPRoute default/b", "spec.rules[0].matches[0]"),  # regex last
    ]
    d = go(result, "/p/x", method="POST")
    assert isinstance(d, Forward) and "web-v2." in d.cluster


def test_filters_timeouts_and_zero_weights() -> None:
    result = load_yaml(route("""
        - matches: [{path: {type: PathPrefix, value: /strip}}]
          filters:
          - type: URLRewrite
            urlRewrite: {hostname: other.example, path: {type: ReplacePrefixMatch, replacePrefixMatch: /}}
          - type: RequestHeaderModifier
            requestHeaderModifier: {set: [{name: X-Set, value: a}, {name: x-set, value: b}], remove: [x-gone]}
          backendRefs: [{name: web-v1, port: 80}]
          timeouts: {request: 10s, backendRequest: 2s}
        - matches: [{path: {type: PathPrefix, value: /none}}]
          backendRefs: [{name: web-v1, port: 80, weight: 0}]
        - matches: [{path: {type: PathPrefix, value: /go}}]
          filters: [{type: RequestRedirect, requestRedirect: {scheme: https}}]
        """))
    assert any("header name may appear only once" in d.message for d in result.diagnostics)
    d = go(result, "/strip/a/b?q=1")
    assert isinstance(d, Forward)
    assert d.path == "/a/b?q=1" and d.authority == "other.example"
    assert go(result, "/strip").path == "/"  # type: ignore[union-attr]
    assert d.timeout == 2.0  # backendRequest replaces request without a retry
    zero = go(result, "/none")
    assert isinstance(zero, LocalReply) and zero.status == 500
    redirect = go(result, "/go/x")
    assert isinstance(redirect, LocalReply) and redirect.status == 302  # the CRD's default statusCode


def test_missing_backend_is_a_500_and_a_resolved_refs_warning() -> None:
    text = route("""
        - backendRefs: [{name: nowhere, port: 80}]  #<
        """)
    result = load_yaml(text)
    (w,) = [d for d in result.diagnostics if d.code == "BackendNotFound"]
    assert w.severity == "warning" and w.line == marked_line(text)
    assert "ResolvedRefs=False" in w.message and "nowhere.default.svc.cluster.local" in w.message
    assert not [d for d in result.diagnostics if d.code == "IST0101"]  # reported once, as istiod does
    d = go(result, "/")
    assert isinstance(d, Forward) and d.route.action.cluster_not_found_status == 500


def test_parent_service_not_found_is_not_accepted() -> None:
    text = SERVICES + """---
apiVersion: gateway.networking.k8s.io/v1
kind: HTTPRoute
metadata: {name: r}
spec:
  parentRefs:
  - {group: "", kind: Service, name: ghost}  #<
  rules: [{backendRefs: [{name: web, port: 8000}]}]
"""
    result = load_yaml(text)
    (w,) = [d for d in result.diagnostics if d.code == "NoMatchingParent"]
    assert w.line == marked_line(text) and 'parent service: "ghost" not found' in w.message
    assert not result.config.virtual_services


@pytest.mark.parametrize("rule, message", [
    ("""- filters: [{type: RequestMirror, requestMirror: {backendRef: {name: web, port: 80}, percent: 5,
                 fraction: {numerator: 1}}}]  #<""", "may set only one of percent, fraction"),
    ("""- filters: [{type: RequestMirror, requestMirror: {backendRef: {name: web, port: 80},
                 fraction: {numerator: 4, denominator: 3}}}]  #<""", "numerator must be less than or equal"),
    ("""- filters: [{type: RequestMirror, requestMirror: {backendRef: {name: web, port: 80}, percent: 101}}]  #<""",
     "out of range [0, 100]"),
    ("""- backendRefs: [{name: web}]  #<""", "Must have port for Service reference"),
    ("""- matches: [{path: {type: PathPrefix, value: /a//b}}]  #<""", "must not contain '//'"),
    ("""- matches: [{path: {type: Exact, value: rel}}]  #<""", "must be an absolute path"),
    ("""- timeouts: {request: 1s, backendRequest: 2s}  #<""", "backendRequest timeout cannot be longer"),
    ("""- timeouts: {request: 1.5s}  #<""", "invalid duration"),
    ("""- filters: [{type: URLRewrite, requestRedirect: {scheme: https}}]  #<""",
     "filter.requestRedirect must be nil if the filter.type is not RequestRedirect"),
    ("""- filters: [{type: RequestRedirect, requestRedirect: {scheme: https}}]  #<
  backendRefs: [{name: web, port: 8000}]""", "must not be used together with backendRefs"),
    ("""- matches: [{path: {type: Exact, value: /a}}]  #<
  filters: [{type: URLRewrite, urlRewrite: {path: {type: ReplacePrefixMatch, replacePrefixMatch: /b}}}]""",
     "exactly one PathPrefix match must be specified"),
    ("""- matches: [{method: FETCH}]  #<""", 'invalid value "FETCH"'),
])
def test_crd_validation_errors_at_their_line(rule: str, message: str) -> None:
    text = route(rule)
    result = load_yaml(text)
    errors = [d for d in result.diagnostics if d.severity == "error"]
    assert errors and any(message in d.message for d in errors), errors
    hit = next(d for d in errors if message in d.message)
    assert hit.file == "test.yaml" and hit.line == marked_line(text), hit


def test_gateway_parent_serves_listeners_with_gateway_semantics() -> None:
    text = SERVICES + """---
apiVersion: gateway.networking.k8s.io/v1
kind: Gateway
metadata: {name: gw}
spec:
  gatewayClassName: istio
  listeners:
  - {name: web, port: 8080, protocol: HTTP, hostname: "*.example.com"}
  - {name: alt, port: 9090, protocol: HTTP}
---
apiVersion: gateway.networking.k8s.io/v1beta1
kind: HTTPRoute
metadata: {name: r}
spec:
  parentRefs: [{name: gw, sectionName: web}]
  hostnames: [a.example.com]
  rules:
  - matches: [{path: {value: /v1}}]
    backendRefs: [{name: web-v1, port: 80}]
---
apiVersion: gateway.networking.k8s.io/v1
kind: HTTPRoute
metadata: {name: other}
spec:
  parentRefs: [{name: gw, sectionName: nope}]  #<
  rules: [{backendRefs: [{name: web, port: 8000}]}]
"""
    result = load_yaml(text)
    (w,) = [d for d in result.diagnostics if d.code == "NoMatchingParent"]
    assert w.line == marked_line(text) and 'sectionName "nope" not found' in w.message
    (gw,) = result.config.gateways
    table = translate_gateway(result.config, gw, gw.servers[0])
    d = table.route("GET", "a.example.com", "/v1/x", {}, 0)
    assert isinstance(d, Forward) and d.cluster == "outbound|80||web-v1.default.svc.cluster.local"
    assert isinstance(table.route("GET", "b.example.com", "/v1/x", {}, 0), LocalReply)
    # bound to listener "web" only: the other listener does not serve it (an Istio Gateway per listener)
    alt = translate_gateway(result.config, gw, gw.servers[1])
    assert isinstance(alt.route("GET", "a.example.com", "/v1/x", {}, 0), LocalReply)


def test_consumer_namespace_route_overrides_the_producer_one() -> None:
    producer = route("""
        - backendRefs: [{name: web-v1, port: 80}]
        """)
    consumer = """---
apiVersion: gateway.networking.k8s.io/v1
kind: HTTPRoute
metadata: {name: mine, namespace: client}
spec:
  parentRefs: [{group: "", kind: Service, name: web, namespace: default, port: 8000}]
  rules: [{backendRefs: [{name: web-v2, namespace: default, port: 80}]}]
"""
    result = load_yaml(producer + consumer)
    assert result.ok, result.diagnostics
    from simulator.core.translate import TranslateOptions
    for ns, want in (("default", "web-v1"), ("client", "web-v2"), ("elsewhere", "web-v1")):
        table = translate(result.config, TranslateOptions(namespace=ns))
        d = table.route("GET", "web.default:8000", "/", {}, 0)
        assert isinstance(d, Forward) and want + "." in d.cluster, (ns, d)


def test_creation_timestamp_orders_routes_then_namespace_and_name() -> None:
    def r(name: str, stamp: str, backend: str) -> str:
        return f"""---
apiVersion: gateway.networking.k8s.io/v1
kind: HTTPRoute
metadata: {{name: {name}, creationTimestamp: "{stamp}"}}
spec:
  parentRefs: [{{group: "", kind: Service, name: web, port: 8000}}]
  rules: [{{matches: [{{path: {{type: PathPrefix, value: /t}}}}], backendRefs: [{{name: {backend}, port: 80}}]}}]
"""
    result = load_yaml(SERVICES + r("a", "2026-01-02T00:00:00Z", "web-v1") + r("z", "2026-01-01T00:00:00Z", "web-v2"))
    assert result.ok, result.diagnostics
    d = go(result, "/t")
    assert isinstance(d, Forward) and "web-v2." in d.cluster  # z is older


def test_other_kubernetes_kinds_are_skipped_and_listed() -> None:
    result = load_yaml(SERVICES + """---
apiVersion: v1
kind: ConfigMap
metadata: {name: cfg}
data: {a: b}
---
apiVersion: gateway.networking.k8s.io/v1
kind: GatewayClass
metadata: {name: istio}
spec: {controllerName: istio.io/gateway-controller}
""")
    assert result.ok and not result.diagnostics
    assert result.skipped == ("ConfigMap default/cfg (v1)", "GatewayClass default/istio (gateway.networking.k8s.io/v1)")


def test_kubernetes_service_is_a_registry_source_for_analysis_and_backends() -> None:
    from simulator.backend import backends_for
    from simulator.core.registry import build_registry

    result = load_yaml(SERVICES + """---
apiVersion: networking.istio.io/v1
kind: VirtualService
metadata: {name: web-v1}
spec:
  hosts: [web-v1]
  http: [{route: [{destination: {host: web-v1, port: {number: 80}}}]}]
""")
    assert result.ok and not result.diagnostics, result.diagnostics  # no IST0101: the registry has it
    svc = build_registry(result.config).service("web-v1.default.svc.cluster.local")
    assert svc is not None and svc.origin == "Service default/web-v1"
    specs, notes = backends_for(result.config)
    # Service web: numeric targetPort 8080; web-v1: the WorkloadEntry's port named "http"
    assert [(b.name, b.host, b.port) for b in specs] == [("web-v1", "127.0.0.1", 8080),
                                                         ("web-v1-v1", "127.0.0.1", 18081)]
    assert any(n.startswith("Service default/web-v2: endpoint 127.0.0.2 is not a loopback") for n in notes)


@pytest.mark.parametrize("grant, status", [("", 500), ("to: [{group: '', kind: Service, name: api}]", 200),
                                           ("to: [{group: '', kind: Service, name: other}]", 500)])
def test_gateway_route_to_another_namespace_needs_a_reference_grant(grant: str, status: int) -> None:
    text = """
apiVersion: v1
kind: Service
metadata: {name: api, namespace: backend}
spec: {selector: {app: api}, ports: [{port: 80}]}
---
apiVersion: gateway.networking.k8s.io/v1
kind: Gateway
metadata: {name: gw}
spec: {gatewayClassName: istio, listeners: [{name: http, port: 8080, protocol: HTTP}]}
---
apiVersion: gateway.networking.k8s.io/v1
kind: HTTPRoute
metadata: {name: r}
spec:
  parentRefs: [{name: gw}]
  rules: [{backendRefs: [{name: api, namespace: backend, port: 80}]}]
"""
    if grant:
        text += f"""---
apiVersion: gateway.networking.k8s.io/v1beta1
kind: ReferenceGrant
metadata: {{name: g, namespace: backend}}
spec:
  from: [{{group: gateway.networking.k8s.io, kind: HTTPRoute, namespace: default}}]
  {grant}
"""
    result = load_yaml(text)
    assert result.ok, result.diagnostics
    refused = [d for d in result.diagnostics if d.code == "RefNotPermitted"]
    assert bool(refused) == (status == 500)
    (gw,) = result.config.gateways
    d = translate_gateway(result.config, gw, gw.servers[0]).route("GET", "x.example", "/", {}, 0)
    assert isinstance(d, Forward)
    found = d.cluster == "outbound|80||api.backend.svc.cluster.local"
    assert found == (status == 200) and d.route.action.cluster_not_found_status == 500


def test_cors_filter_as_create_cors_filter() -> None:
    result = load_yaml(route("""
        - filters:
          - type: CORS
            cors:
              allowOrigins: ["https://*.example.com", "https://app.example.org:8443", "http://*"]
              allowMethods: [GET, POST]
              allowHeaders: [x-a]
              allowCredentials: true
          backendRefs: [{name: web-v1, port: 80}]
        """))
    assert result.ok, result.diagnostics
    cors = result.config.virtual_services[0].http[0].cors_policy
    assert cors is not None
    assert [(o.kind, o.value) for o in cors.allow_origins] == [
        ("regex", r"^https://.*\.example\.com$"), ("exact", "https://app.example.org:8443"), ("prefix", "http://")]
    assert cors.max_age == 5.0 and cors.allow_credentials is True and cors.unmatched_preflights == "IGNORE"
    table = translate(result.config)
    pre = table.route("OPTIONS", "web:8000", "/", {"origin": "https://a.example.com",
                                                    "access-control-request-method": "GET"}, 0)
    assert isinstance(pre, Forward) and pre.route.cors is not None
    got = pre.route.cors.evaluate("OPTIONS", {"origin": "https://a.example.com",
                                              "access-control-request-method": "GET"})
    assert got is not None and got.allowed


def test_cors_origin_star_must_stand_alone() -> None:
    text = route("""
        - filters: [{type: CORS, cors: {allowOrigins: ["*", "https://a.example"]}}]  #<
          backendRefs: [{name: web-v1, port: 80}]
        """)
    result = load_yaml(text)
    (e,) = [d for d in result.diagnostics if d.severity == "error"]
    assert "cannot contain '*' alongside other origins" in e.message and e.line == marked_line(text)
