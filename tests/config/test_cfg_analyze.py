"""Cross-resource analysis (istioctl analyze style warnings) and the
webhook's unreachable-rule warnings."""

from __future__ import annotations

from pathlib import Path

from simulator.config import load_text

from .helpers import find, load_yaml, marked_line, only

REGISTRY = (Path(__file__).parent / "data" / "mirroring.yaml").read_text()
SE_AND_DR = REGISTRY.split("---\napiVersion: networking.istio.io/v1\nkind: VirtualService")[0]


def with_registry(vs_yaml: str) -> tuple[str, int]:
    """The mirroring ServiceEntry + DestinationRule followed by ``vs_yaml``;
    returns the text and the line of the ``#<`` marker."""
    text = SE_AND_DR + "---\n" + vs_yaml.strip("\n").replace("\n        ", "\n").removeprefix("        ") + "\n"
    return text, marked_line(text)


def test_missing_subset_is_ist0101_with_defined_subsets() -> None:
    text, line = with_registry(
        """
        apiVersion: networking.istio.io/v1
        kind: VirtualService
        metadata: {name: httpbin}
        spec:
          hosts: [httpbin]
          http:
          - route:
            - destination:
                host: httpbin
                subset: v3  #<
        """
    )
    result = load_text(text, "vs.yaml")
    assert result.ok
    d = only(result, code="IST0101")
    assert d.severity == "warning"
    assert d.path == "spec.http[0].route[0].destination.subset" and d.line == line
    assert 'subset "v3" of host httpbin.default.svc.cluster.local is not defined by any DestinationRule' in d.message
    assert "(defined: v1, v2)" in d.message
    assert d.resource == "VirtualService default/httpbin" and d.file == "vs.yaml"


def test_missing_mirror_subsets_are_reported_too() -> None:
    text, line = with_registry(
        """
        apiVersion: networking.istio.io/v1
        kind: VirtualService
        metadata: {name: httpbin}
        spec:
          hosts: [httpbin]
          http:
          - route:
            - destination: {host: httpbin, subset: v1}
            mirror: {host: httpbin, subset: v9}  #<
          - match: [{uri: {prefix: /x}}]
            route:
            - destination: {host: httpbin, subset: v1}
            mirrors:
            - destination: {host: httpbin.default.svc.cluster.local, subset: v8}
        """
    )
    result = load_text(text, "vs.yaml")
    mirror = only(result, path="spec.http[0].mirror.subset")
    assert mirror.code == "IST0101" and mirror.line == line and "mirror+subset" in mirror.message
    mirrors = only(result, path="spec.http[1].mirrors[0].destination.subset")
    assert mirrors.code == "IST0101" and mirrors.line == line + 5


def test_subset_lookup_resolves_short_names_per_namespace() -> None:
    # A DR in namespace "other" for short host "httpbin" means httpbin.other.svc...
    text, _ = with_registry(
        """
        apiVersion: networking.istio.io/v1
        kind: DestinationRule
        metadata: {name: other, namespace: other}
        spec:
          host: httpbin
          subsets: [{name: v7}]
        ---
        apiVersion: networking.istio.io/v1
        kind: VirtualService
        metadata: {name: httpbin}
        spec:
          hosts: [httpbin]
          http:
          - route:
            - destination: {host: httpbin.default.svc.cluster.local, subset: v7}  #<
        """
    )
    result = load_text(text, "vs.yaml")
    d = only(result, path="spec.http[0].route[0].destination.subset")
    assert "(defined: v1, v2)" in d.message


def test_unknown_destination_host_and_port() -> None:
    text, line = with_registry(
        """
        apiVersion: networking.istio.io/v1
        kind: VirtualService
        metadata: {name: httpbin}
        spec:
          hosts: [httpbin]
          http:
          - route:
            - destination: {host: reviews}  #<
              weight: 50
            - destination: {host: httpbin, port: {number: 9999}}
              weight: 50
        """
    )
    result = load_text(text, "vs.yaml")
    host = only(result, path="spec.http[0].route[0].destination.host")
    assert host.code == "IST0101" and host.line == line
    assert '"reviews"' in host.message and "reviews.default.svc.cluster.local" in host.message
    port = only(result, path="spec.http[0].route[1].destination.port.number")
    assert port.code == "IST0101" and "httpbin:9999" in port.message and "[8000]" in port.message


def test_multi_port_service_without_port_is_ist0112() -> None:
    result = load_yaml(
        """
        apiVersion: networking.istio.io/v1
        kind: ServiceEntry
        metadata: {name: multi}
        spec:
          hosts: [multi.example.com]
          ports:
          - {number: 80, name: http, protocol: HTTP}
          - {number: 8080, name: http-alt, protocol: HTTP}
          resolution: DNS
        ---
        apiVersion: networking.istio.io/v1
        kind: VirtualService
        metadata: {name: multi}
        spec:
          hosts: [multi.example.com]
          http:
          - route:
            - destination: {host: multi.example.com}
        """
    )
    d = only(result, code="IST0112")
    assert d.path == "spec.http[0].route[0].destination.host" and d.line == 19
    assert "[80, 8080]" in d.message


def test_missing_gateway_and_delegate() -> None:
    result = load_yaml(
        """
        apiVersion: networking.istio.io/v1
        kind: Gateway
        metadata: {name: present, namespace: istio-system}
        spec:
          servers:
          - port: {number: 80, name: http, protocol: HTTP}
            hosts: ["*"]
        ---
        apiVersion: networking.istio.io/v1
        kind: VirtualService
        metadata: {name: root}
        spec:
          hosts: [app.example.com]
          gateways: [istio-system/present, missing, mesh]
          http:
          - delegate: {name: child}
        """
    )
    gw = only(result, path="spec.gateways[1]")
    assert gw.code == "IST0101" and '"missing"' in gw.message and "default/missing" in gw.message
    assert gw.line == 15
    delegate = only(result, path="spec.http[0].delegate.name")
    assert delegate.code == "IST0101" and "default/child" in delegate.message


def test_conflicting_mesh_hosts_names_the_oldest_as_winner() -> None:
    text = """
        apiVersion: networking.istio.io/v1
        kind: VirtualService
        metadata: {name: first}
        spec:
          hosts: [httpbin]
          http: [{route: [{destination: {host: httpbin}}]}]
        ---
        apiVersion: networking.istio.io/v1
        kind: VirtualService
        metadata: {name: second}
        spec:
          hosts: [httpbin.default.svc.cluster.local]
          http: [{route: [{destination: {host: httpbin}}]}]
        ---
        apiVersion: networking.istio.io/v1
        kind: VirtualService
        metadata: {name: gateway-only}
        spec:
          hosts: [httpbin]
          gateways: [istio-system/gw]
          http: [{route: [{destination: {host: httpbin}}]}]
        """
    result = load_yaml(text)
    hits = find(result, code="IST0109")
    assert [(d.resource, d.path, d.line) for d in hits] == [
        ("VirtualService default/first", "spec.hosts[0]", 6),
        ("VirtualService default/second", "spec.hosts[0]", 13),
    ]
    assert all(d.severity == "warning" for d in hits)
    assert "default/first,default/second" in hits[0].message
    assert "httpbin.default.svc.cluster.local" in hits[0].message
    assert "this one is used (oldest wins)" in hits[0].message
    assert "sidecars use default/first" in hits[1].message


def test_unreachable_rule_after_rule_without_match_is_ist0130() -> None:
    text = """
        apiVersion: networking.istio.io/v1
        kind: VirtualService
        metadata: {name: details}
        spec:
          hosts: [details]
          http:
          - fault: {abort: {httpStatus: 555, percentage: {value: 100}}}
            route: [{destination: {host: details, subset: v1}}]
          - name: later
            match: [{uri: {prefix: /x}}]  #<
            route: [{destination: {host: details, subset: v1}}]
        """
    result = load_yaml(text)
    d = only(result, code="IST0130")
    assert d.path == "spec.http[1]" and d.line == marked_line(text) - 1
    assert 'rule "later" not used (route without matches defined before)' in d.message


def test_rule_after_catch_all_prefix_is_unreachable() -> None:
    result = load_yaml(
        """
        apiVersion: networking.istio.io/v1
        kind: VirtualService
        metadata: {name: a}
        spec:
          hosts: [a]
          http:
          - match: [{uri: {prefix: /}}]
            route: [{destination: {host: a}}]
          - match: [{uri: {prefix: /api}}]
            route: [{destination: {host: a}}]
        """
    )
    d = only(result, code="IST0130")
    assert d.path == "spec.http[1]" and "Envoy stops at it" in d.message


def test_duplicate_and_covered_matches_are_ist0131() -> None:
    result = load_yaml(
        """
        apiVersion: networking.istio.io/v1
        kind: VirtualService
        metadata: {name: a}
        spec:
          hosts: [a]
          http:
          - name: api
            match:
            - uri: {prefix: /api}
            - name: dup-later
              uri: {exact: /same}
            route: [{destination: {host: a}}]
          - name: sub
            match:
            - uri: {prefix: /api/v1}
            route: [{destination: {host: a}}]
          - name: dup
            match:
            - uri: {exact: /same}
            route: [{destination: {host: a}}]
          - name: other-method
            match:
            - uri: {prefix: /api/v2}
              method: {exact: POST}
            route: [{destination: {host: a}}]
        """
    )
    ineffective = find(result, code="IST0131")
    assert [(d.path, d.line) for d in ineffective] == [
        ("spec.http[1]", 14),
        ("spec.http[2].match[0]", 20),
    ]
    assert "of prefix /api/v1 is not used" in ineffective[0].message and '"api"' in ineffective[0].message
    assert 'rule "dup" match #0 is not used' in ineffective[1].message
    unreachable = only(result, code="IST0130")
    assert unreachable.path == "spec.http[2]" and "all matches used by prior rules" in unreachable.message


def test_subset_selecting_no_endpoints_is_ist0173() -> None:
    text = """
        apiVersion: networking.istio.io/v1
        kind: ServiceEntry
        metadata: {name: httpbin}
        spec:
          hosts: [httpbin.default.svc.cluster.local]
          location: MESH_INTERNAL
          ports: [{number: 8000, name: http, protocol: HTTP}]
          resolution: STATIC
          workloadSelector: {labels: {app: httpbin}}
        ---
        apiVersion: networking.istio.io/v1
        kind: WorkloadEntry
        metadata: {name: vm-v1}
        spec: {address: 10.0.0.1, labels: {app: httpbin, version: v1}}
        ---
        apiVersion: networking.istio.io/v1
        kind: WorkloadEntry
        metadata: {name: other-app}
        spec: {address: 10.0.0.2, labels: {app: other, version: v2}}
        ---
        apiVersion: networking.istio.io/v1
        kind: DestinationRule
        metadata: {name: httpbin}
        spec:
          host: httpbin
          subsets:
          - name: v1
            labels: {version: v1}
          - name: v2
            labels: {version: v2}  #<
        """
    result = load_yaml(text)
    d = only(result, code="IST0173")
    assert d.path == "spec.subsets[1].labels" and d.line == marked_line(text)
    assert "The Subset v2" in d.message and "503 UH" in d.message
    assert "{app=httpbin, version=v1}" in d.message
    assert result.ok


def test_dr_host_without_service_is_ist0174() -> None:
    result = load_yaml(
        """
        apiVersion: networking.istio.io/v1
        kind: DestinationRule
        metadata: {name: ghost}
        spec:
          host: ghost
          subsets: [{name: v1, labels: {version: v1}}]
        """
    )
    d = only(result, code="IST0174")
    assert d.path == "spec.host" and d.line == 6 and "ghost.default.svc.cluster.local" in d.message


def test_good_config_has_no_analyzer_findings() -> None:
    result = load_text(REGISTRY, "mirroring.yaml")
    assert list(result.diagnostics) == []
