"""Bad inputs: each gives the expected diagnostic, with file, line (the line
marked ``#<`` in the YAML) and field path."""

from __future__ import annotations

import textwrap
from dataclasses import dataclass

import pytest

from simulator.config import load_text

from .helpers import marked_line

VS_HEAD = """\
apiVersion: networking.istio.io/v1
kind: VirtualService
metadata:
  name: httpbin
spec:
  hosts: [httpbin]
  http:
"""


def vs(http: str) -> str:
    """A VirtualService whose ``spec.http`` is the given YAML list."""
    return VS_HEAD + textwrap.indent(textwrap.dedent(http).strip("\n"), "  ") + "\n"


@dataclass(frozen=True)
class Case:
    id: str
    yaml: str
    path: str
    fragments: tuple[str, ...]
    severity: str = "error"
    code: str = ""


CASES = [
    # ------------------------------------------------------------------ YAML and resources
    Case("malformed-yaml", "apiVersion: v1\nkind: VirtualService\nmetadata:\n  name: [a, b\n  x: y  #<\n",
         "", ("YAML syntax error",)),
    Case("duplicate-key", vs("""
        - route:
          - destination: {host: httpbin}
          timeout: 1s
          timeout: 2s  #<
        """), "spec.http[0].timeout", ('duplicate key "timeout"', "first defined at line 10")),
    Case("unknown-kind", "apiVersion: networking.istio.io/v1\nkind: VirtualServce  #<\nmetadata: {name: a}\n",
         "kind", ('unknown kind "VirtualServce"', 'did you mean "VirtualService"')),
    Case("missing-name", "apiVersion: networking.istio.io/v1\nkind: DestinationRule\nmetadata: {}  #<\n"
         "spec: {host: a}\n", "metadata", ("metadata.name is required",)),
    Case("unknown-top-level", "apiVersion: networking.istio.io/v1\nkind: DestinationRule\nmetadata: {name: a}\n"
         "spec: {host: a}\nspecs: {}  #<\n", "specs", ('unknown field "specs"',)),
    # ------------------------------------------------------------------ types and fields
    Case("unknown-field", vs("""
        - route:
          - destination: {host: httpbin}
          mirrorPercentag: {value: 5}  #<
        """), "spec.http[0].mirrorPercentag",
         ('unknown field "mirrorPercentag" in HTTPRoute; valid fields: corsPolicy, delegate, directResponse, '
          "fault, headers, match, mirror, mirrorPercent, mirrorPercentage, mirrors, name, redirect, retries, "
          'rewrite, route, timeout (did you mean "mirrorPercentage"?)',)),
    Case("unknown-nested-field", vs("""
        - route:
          - destination: {host: httpbin, subnet: v1}  #<
        """), "spec.http[0].route[0].destination.subnet",
         ('unknown field "subnet" in Destination; valid fields: host, port, subset', 'did you mean "subset"')),
    Case("wrong-type-duration", vs("""
        - route:
          - destination: {host: httpbin}
          timeout: 5  #<
        """), "spec.http[0].timeout", ('spec.http[0].timeout: expected a duration string like "1.5s", got 5',)),
    Case("wrong-type-int", vs("""
        - route:
          - destination: {host: httpbin}
            weight: "100"  #<
        """), "spec.http[0].route[0].weight", ('expected an integer, got "100"', "remove the quotes")),
    Case("wrong-type-label", """
        apiVersion: networking.istio.io/v1
        kind: DestinationRule
        metadata: {name: a}
        spec:
          host: a
          subsets:
          - name: v1
            labels: {version: 1}  #<
        """, "spec.subsets[0].labels.version", ("expected a string, got 1", 'quote it: "1"')),
    Case("wrong-type-list", vs("""
        - route:  #<
            destination: {host: httpbin}
        """), "spec.http[0].route", ("expected a list, got a mapping",)),
    Case("bad-enum", """
        apiVersion: networking.istio.io/v1
        kind: DestinationRule
        metadata: {name: a}
        spec:
          host: a
          trafficPolicy:
            loadBalancer: {simple: ROUND_ROBBIN}  #<
        """, "spec.trafficPolicy.loadBalancer.simple",
         ('invalid value "ROUND_ROBBIN"', "LEAST_REQUEST", 'did you mean "ROUND_ROBIN"')),
    Case("missing-required-host", vs("""
        - route:
          - destination: {subset: v1}  #<
        """), "spec.http[0].route[0].destination", ("host: required field is missing in Destination",)),
    Case("string-match-two-kinds", vs("""
        - match:
          - uri: {exact: /a, prefix: /b}  #<
          route:
          - destination: {host: httpbin}
        """), "spec.http[0].match[0].uri.prefix", ("only one of exact, prefix, regex",)),
    Case("empty-header-prefix", vs("""
        - match:
          - headers:
              x-user: {prefix: ""}  #<
          route:
          - destination: {host: httpbin}
        """), "spec.http[0].match[0].headers.x-user.prefix", ("prefix string match should not be empty",)),
    Case("bad-header-name", vs("""
        - match:
          - headers:
              "x user": {exact: a}  #<
          route:
          - destination: {host: httpbin}
        """), "spec.http[0].match[0].headers.x user", ("is not a valid header name",)),
    Case("empty-uri-match", vs("""
        - match:
          - uri: {}  #<
          route:
          - destination: {host: httpbin}
        """), "spec.http[0].match[0].uri", ("must set exactly one of exact, prefix, regex",)),
    # ------------------------------------------------------------------ regexes (RE2)
    Case("re2-lookahead", vs("""
        - match:
          - uri: {regex: "(?=a)b"}  #<
          route:
          - destination: {host: httpbin}
        """), "spec.http[0].match[0].uri.regex",
         ('invalid regex "(?=a)b"', "invalid perl operator", "Istio uses RE2 syntax")),
    Case("re2-backreference", vs("""
        - match:
          - headers:
              x-a: {regex: '(a)\\1'}  #<
          route:
          - destination: {host: httpbin}
        """), "spec.http[0].match[0].headers.x-a.regex", ("invalid escape sequence", "RE2")),
    Case("re2-possessive-query", vs("""
        - match:
          - queryParams:
              q: {regex: "a++"}  #<
          route:
          - destination: {host: httpbin}
        """), "spec.http[0].match[0].queryParams.q.regex", ("bad repetition operator",)),
    Case("re2-star-in-headers", vs("""
        - match:
          - headers:
              x-a: {regex: "*"}  #<
          route:
          - destination: {host: httpbin}
        """), "spec.http[0].match[0].headers.x-a.regex", ("withoutHeaders",)),
    Case("re2-too-long", vs(f"""
        - match:
          - uri: {{regex: "{'a' * 1025}"}}  #<
          route:
          - destination: {{host: httpbin}}
        """), "spec.http[0].match[0].uri.regex", ("max length allowed is 1024",)),
    Case("re2-regex-rewrite", vs("""
        - route:
          - destination: {host: httpbin}
          rewrite:
            uriRegexRewrite: {match: "(?<!x)y", rewrite: /z}  #<
        """), "spec.http[0].rewrite.uriRegexRewrite.match", ("invalid perl operator",)),
    # ------------------------------------------------------------------ percentages
    Case("mirror-percentage-over-100", vs("""
        - route:
          - destination: {host: httpbin}
          mirror: {host: httpbin}
          mirrorPercentage:
            value: 150  #<
        """), "spec.http[0].mirrorPercentage.value", ("must be in the range [0, 100]", "150")),
    Case("mirror-percentage-negative", vs("""
        - route:
          - destination: {host: httpbin}
          mirror: {host: httpbin}
          mirrorPercentage: {value: -1}  #<
        """), "spec.http[0].mirrorPercentage.value", ("[0, 100]", "-1")),
    Case("mirrors-percentage", vs("""
        - route:
          - destination: {host: httpbin}
          mirrors:
          - destination: {host: httpbin}
            percentage: {value: 100.5}  #<
        """), "spec.http[0].mirrors[0].percentage.value", ("[0, 100]",)),
    Case("mirror-percent-over-100", vs("""
        - route:
          - destination: {host: httpbin}
          mirror: {host: httpbin}
          mirrorPercent: 101  #<
        """), "spec.http[0].mirrorPercent", ("mirror_percent must have a max value of 100 (it has 101)",)),
    Case("mirror-percent-deprecated", vs("""
        - route:
          - destination: {host: httpbin}
          mirror: {host: httpbin}
          mirrorPercent: 50  #<
        """), "spec.http[0].mirrorPercent", ('"mirrorPercent" is deprecated', "mirrorPercentage"),
         severity="warning", code="IST0002"),
    Case("fault-percentage-tiny", vs("""
        - route:
          - destination: {host: httpbin}
          fault:
            abort:
              httpStatus: 503
              percentage: {value: 0.00001}  #<
        """), "spec.http[0].fault.abort.percentage.value", ("neither 0.0, nor in range [0.0001, 100.0]",)),
    # ------------------------------------------------------------------ durations
    Case("duration-no-unit", vs("""
        - route:
          - destination: {host: httpbin}
          timeout: "1.5"  #<
        """), "spec.http[0].timeout", ('invalid duration "1.5"', '"1.5s"')),
    Case("duration-bad-unit", vs("""
        - route:
          - destination: {host: httpbin}
          retries: {attempts: 2, perTryTimeout: 5sec}  #<
        """), "spec.http[0].retries.perTryTimeout", ('invalid duration "5sec"',)),
    Case("duration-below-1ms", vs("""
        - route:
          - destination: {host: httpbin}
          fault:
            delay:
              fixedDelay: 500us  #<
              percentage: {value: 10}
        """), "spec.http[0].fault.delay.fixedDelay", ("must be at least 1ms",)),
    Case("duration-not-whole-ms", vs("""
        - route:
          - destination: {host: httpbin}
          timeout: 1.0005s  #<
        """), "spec.http[0].timeout", ("not a whole number of milliseconds",)),
    Case("dr-duration", """
        apiVersion: networking.istio.io/v1
        kind: DestinationRule
        metadata: {name: a}
        spec:
          host: a
          trafficPolicy:
            outlierDetection:
              interval: 0s  #<
        """, "spec.trafficPolicy.outlierDetection.interval", ("must be at least 1ms",)),
    # ------------------------------------------------------------------ retries
    Case("retry-on-spaces", vs("""
        - route:
          - destination: {host: httpbin}
          retries:
            attempts: 3
            retryOn: "5xx, reset"  #<
        """), "spec.http[0].retries.retryOn",
         ('" reset" is not a valid retryOn policy', "not trimmed", "gateway-error")),
    Case("retry-on-unknown", vs("""
        - route:
          - destination: {host: httpbin}
          retries: {attempts: 3, retryOn: "connect-failure,5xx-ish"}  #<
        """), "spec.http[0].retries.retryOn", ('"5xx-ish" is not a valid retryOn policy',)),
    Case("retry-attempts-zero", vs("""
        - route:
          - destination: {host: httpbin}
          retries: {attempts: 0, retryOn: 5xx}  #<
        """), "spec.http[0].retries.attempts", ("attempts are set to 0",)),
    # ------------------------------------------------------------------ route shape
    Case("route-and-redirect", vs("""
        - route:  #<
          - destination: {host: httpbin}
          redirect: {uri: /x}
        """), "spec.http[0].route", ("HTTP route cannot contain both route and redirect",)),
    Case("no-action", vs("""
        - match:  #<
          - uri: {prefix: /}
          timeout: 1s
        """), "spec.http[0]", ("HTTP route, redirect, direct_response or delegate is required",)),
    Case("mirror-and-mirrors", vs("""
        - route:
          - destination: {host: httpbin}
          mirror: {host: httpbin}
          mirrors:  #<
          - destination: {host: httpbin}
        """), "spec.http[0].mirrors", ("cannot contain both mirror and mirrors",)),
    Case("direct-response-and-fault", vs("""
        - directResponse: {status: 200}
          fault:  #<
            abort: {httpStatus: 500, percentage: {value: 1}}
        """), "spec.http[0].fault", ("cannot contain both fault and directResponse",)),
    Case("redirect-code", vs("""
        - redirect:
            uri: /x
            redirectCode: 404  #<
        """), "spec.http[0].redirect.redirectCode", ("404 is not a valid redirect code, must be 3xx",)),
    Case("redirect-code-untranslated", vs("""
        - redirect:
            uri: /x
            redirectCode: 305  #<
        """), "spec.http[0].redirect.redirectCode", ("only translates 301, 302, 303, 307, 308",),
         severity="warning"),
    Case("redirect-scheme", vs("""
        - redirect:
            scheme: ftp  #<
        """), "spec.http[0].redirect.scheme", ('must be "http" or "https"',)),
    Case("redirect-port-and-derive", vs("""
        - redirect:
            port: 8080
            derivePort: FROM_REQUEST_PORT  #<
        """), "spec.http[0].redirect.derivePort", ("only one of port, derivePort",)),
    Case("weights-all-zero", vs("""
        - route:  #<
          - destination: {host: httpbin, subset: v1}
          - destination: {host: httpbin, subset: v2}
        """), "spec.http[0].route", ("total destination weight = 0",)),
    Case("weight-negative", vs("""
        - route:
          - destination: {host: httpbin}
            weight: -5  #<
        """), "spec.http[0].route[0].weight", ("weight -5 < 0",)),
    Case("destination-star", vs("""
        - route:
          - destination: {host: "*"}  #<
        """), "spec.http[0].route[0].destination.host", ('invalid destination host "*"',)),
    Case("subset-not-dns-label", vs("""
        - route:
          - destination: {host: httpbin, subset: v1.0}  #<
        """), "spec.http[0].route[0].destination.subset", ('subset name "v1.0" is invalid',)),
    Case("port-out-of-range", vs("""
        - route:
          - destination:
              host: httpbin
              port: {number: 70000}  #<
        """), "spec.http[0].route[0].destination.port.number", ("must be in the range 1..65535",)),
    Case("fault-http-status", vs("""
        - route:
          - destination: {host: httpbin}
          fault:
            abort:
              httpStatus: 700  #<
              percentage: {value: 10}
        """), "spec.http[0].fault.abort.httpStatus", ("HTTP status 700 is not in range 200-599",)),
    Case("fault-grpc-status", vs("""
        - route:
          - destination: {host: httpbin}
          fault:
            abort:
              grpcStatus: UNAVAILABLE_NOW  #<
              percentage: {value: 10}
        """), "spec.http[0].fault.abort.grpcStatus", ('"UNAVAILABLE_NOW" is not supported', "UNAVAILABLE")),
    Case("fault-delay-percent-deprecated", vs("""
        - route:
          - destination: {host: httpbin}
          fault:
            delay:
              fixedDelay: 1s
              percent: 50  #<
        """), "spec.http[0].fault.delay.percent", ("HTTPRoute.fault.delay.percent is deprecated",),
         severity="warning", code="IST0002"),
    Case("cors-method", vs("""
        - route:
          - destination: {host: httpbin}
          corsPolicy:
            allowMethods: [GET, FETCH]  #<
        """), "spec.http[0].corsPolicy.allowMethods[1]", ('"FETCH" is not a supported HTTP method',)),
    Case("header-op-pseudo", vs("""
        - route:
          - destination: {host: httpbin}
          headers:
            request:
              set: {":path": /x}  #<
        """), "spec.http[0].headers.request.set.:path", ('header cannot have ":" prefix',)),
    # ------------------------------------------------------------------ VirtualService level
    Case("mesh-wildcard-host", """
        apiVersion: networking.istio.io/v1
        kind: VirtualService
        metadata: {name: a}
        spec:
          hosts: ["*"]  #<
          http: [{route: [{destination: {host: httpbin}}]}]
        """, "spec.hosts[0]", ("wildcard host * is not allowed for virtual services bound to the mesh",)),
    Case("invalid-host", """
        apiVersion: networking.istio.io/v1
        kind: VirtualService
        metadata: {name: a}
        spec:
          hosts: [bad_host]  #<
          http: [{route: [{destination: {host: httpbin}}]}]
        """, "spec.hosts[0]", ("domain name 'bad_host' invalid",)),
    Case("no-routes", """
        apiVersion: networking.istio.io/v1
        kind: VirtualService
        metadata: {name: a}
        spec:  #<
          hosts: [a]
        """, "spec", ("http, tcp or tls must be provided",)),
    Case("delegate-with-gateways", """
        apiVersion: networking.istio.io/v1
        kind: VirtualService
        metadata: {name: a}
        spec:
          gateways: [gw]  #<
          http: [{route: [{destination: {host: httpbin}}]}]
        """, "spec.gateways", ("delegate virtual service (no hosts) must have no gateways",)),
    Case("delegate-in-delegate", """
        apiVersion: networking.istio.io/v1
        kind: VirtualService
        metadata: {name: a}
        spec:
          http:
          - delegate: {name: b}  #<
        """, "spec.http[0].delegate", ("delegate HTTP route cannot contain delegate",)),
    # ------------------------------------------------------------------ DestinationRule
    Case("dr-duplicate-subset", """
        apiVersion: networking.istio.io/v1
        kind: DestinationRule
        metadata: {name: a}
        spec:
          host: a
          subsets:
          - name: v1
          - name: v1  #<
        """, "spec.subsets[1].name", ('duplicate subset names: "v1"',)),
    Case("dr-outlier-percent", """
        apiVersion: networking.istio.io/v1
        kind: DestinationRule
        metadata: {name: a}
        spec:
          host: a
          trafficPolicy:
            outlierDetection:
              maxEjectionPercent: 120  #<
        """, "spec.trafficPolicy.outlierDetection.maxEjectionPercent", ("120 is not in range 0..100",)),
    Case("dr-consecutive-errors", """
        apiVersion: networking.istio.io/v1
        kind: DestinationRule
        metadata: {name: a}
        spec:
          host: a
          trafficPolicy:
            outlierDetection:
              consecutiveErrors: 5  #<
        """, "spec.trafficPolicy.outlierDetection.consecutiveErrors", ("deprecated", "consecutive5xxErrors"),
         severity="warning", code="IST0002"),
    Case("dr-empty-pool", """
        apiVersion: networking.istio.io/v1
        kind: DestinationRule
        metadata: {name: a}
        spec:
          host: a
          trafficPolicy:
            connectionPool: {}  #<
        """, "spec.trafficPolicy.connectionPool", ("connection pool must have at least one field",)),
    Case("dr-maglev", """
        apiVersion: networking.istio.io/v1
        kind: DestinationRule
        metadata: {name: a}
        spec:
          host: a
          trafficPolicy:
            loadBalancer:
              consistentHash:
                httpHeaderName: x
                maglev: {tableSize: 1000}  #<
        """, "spec.trafficPolicy.loadBalancer.consistentHash.maglev.tableSize", ("prime",)),
    Case("dr-mutual-tls-needs-cert", """
        apiVersion: networking.istio.io/v1
        kind: DestinationRule
        metadata: {name: a}
        spec:
          host: a
          trafficPolicy:
            tls:  #<
              mode: MUTUAL
              privateKey: /etc/key.pem
        """, "spec.trafficPolicy.tls", ("client certificate (clientCertificate) required for mutual tls",)),
    # ------------------------------------------------------------------ ServiceEntry / WorkloadEntry
    Case("se-no-hosts", """
        apiVersion: networking.istio.io/v1
        kind: ServiceEntry
        metadata: {name: a}
        spec:  #<
          ports: [{number: 80, name: http, protocol: HTTP}]
        """, "spec", ("hosts: required field is missing",)),
    Case("se-star-host", """
        apiVersion: networking.istio.io/v1
        kind: ServiceEntry
        metadata: {name: a}
        spec:
          hosts: ["*"]  #<
          ports: [{number: 80, name: http, protocol: HTTP}]
        """, "spec.hosts[0]", ('invalid host "*"',)),
    Case("se-duplicate-port-name", """
        apiVersion: networking.istio.io/v1
        kind: ServiceEntry
        metadata: {name: a}
        spec:
          hosts: [a.example.com]
          ports:
          - {number: 80, name: http, protocol: HTTP}
          - {number: 81, name: http, protocol: HTTP}  #<
        """, "spec.ports[1].name", ('service entry port name "http" already defined',)),
    Case("se-static-hostname", """
        apiVersion: networking.istio.io/v1
        kind: ServiceEntry
        metadata: {name: a}
        spec:
          hosts: [a.example.com]
          ports: [{number: 80, name: http, protocol: HTTP}]
          resolution: STATIC
          endpoints:
          - address: backend.local  #<
        """, "spec.endpoints[0].address", ("is not a valid IP address",)),
    Case("se-endpoint-port-name", """
        apiVersion: networking.istio.io/v1
        kind: ServiceEntry
        metadata: {name: a}
        spec:
          hosts: [a.example.com]
          ports: [{number: 80, name: http, protocol: HTTP}]
          resolution: STATIC
          endpoints:
          - address: 127.0.0.1
            ports: {web: 9000}  #<
        """, "spec.endpoints[0].ports.web", ('endpoint port name "web" is not defined', "defined: http")),
    Case("se-selector-and-endpoints", """
        apiVersion: networking.istio.io/v1
        kind: ServiceEntry
        metadata: {name: a}
        spec:
          hosts: [a.example.com]
          ports: [{number: 80, name: http, protocol: HTTP}]
          resolution: STATIC
          workloadSelector: {labels: {app: a}}  #<
          endpoints: [{address: 127.0.0.1}]
        """, "spec.workloadSelector", ("only one of workloadSelector or endpoints",)),
    Case("se-protocol", """
        apiVersion: networking.istio.io/v1
        kind: ServiceEntry
        metadata: {name: a}
        spec:
          hosts: [a.example.com]
          ports: [{number: 80, name: http, protocol: HTTPX}]  #<
        """, "spec.ports[0].protocol", ('unsupported protocol "HTTPX"',)),
    Case("we-no-address", """
        apiVersion: networking.istio.io/v1
        kind: WorkloadEntry
        metadata: {name: a}
        spec:  #<
          labels: {app: a}
        """, "spec.address", ("address is required",)),
    # ------------------------------------------------------------------ Gateway
    Case("gw-no-servers", """
        apiVersion: networking.istio.io/v1
        kind: Gateway
        metadata: {name: gw}
        spec:
          servers: []  #<
        """, "spec.servers", ("gateway must have at least one server",)),
    Case("gw-port-name-required", """
        apiVersion: networking.istio.io/v1
        kind: Gateway
        metadata: {name: gw}
        spec:
          servers:
          - port: {number: 80, protocol: HTTP}  #<
            hosts: ["*"]
        """, "spec.servers[0].port", ("name: required field is missing",)),
    Case("gw-port-name-unique", """
        apiVersion: networking.istio.io/v1
        kind: Gateway
        metadata: {name: gw}
        spec:
          servers:
          - port: {number: 80, name: web, protocol: HTTP}
            hosts: ["*"]
          - port: {number: 8080, name: web, protocol: HTTP}  #<
            hosts: ["*"]
        """, "spec.servers[1].port.name", ('duplicate name "web"',)),
    Case("gw-https-needs-tls", """
        apiVersion: networking.istio.io/v1
        kind: Gateway
        metadata: {name: gw}
        spec:
          servers:
          - port: {number: 443, name: https, protocol: HTTPS}  #<
            hosts: ["*"]
        """, "spec.servers[0]", ("server must have TLS settings for HTTPS/TLS protocols",)),
    Case("gw-simple-tls-needs-credentials", """
        apiVersion: networking.istio.io/v1
        kind: Gateway
        metadata: {name: gw}
        spec:
          servers:
          - port: {number: 443, name: https, protocol: HTTPS}
            hosts: ["*"]
            tls: {mode: SIMPLE}  #<
        """, "spec.servers[0].tls", ("SIMPLE TLS requires serverCertificate",)),
    Case("gw-protocol", """
        apiVersion: networking.istio.io/v1
        kind: Gateway
        metadata: {name: gw}
        spec:
          servers:
          - port: {number: 80, name: web, protocol: HTTP3}  #<
            hosts: ["*"]
        """, "spec.servers[0].port.protocol", ('invalid protocol "HTTP3"', "HTTP2")),
    Case("gw-no-hosts", """
        apiVersion: networking.istio.io/v1
        kind: Gateway
        metadata: {name: gw}
        spec:
          servers:
          - port: {number: 80, name: web, protocol: HTTP}
            hosts: []  #<
        """, "spec.servers[0].hosts", ("at least one host",)),
]  # fmt: skip


@pytest.mark.parametrize("case", CASES, ids=[c.id for c in CASES])
def test_bad_input(case: Case) -> None:
    text = textwrap.dedent(case.yaml)
    result = load_text(text, "bad.yaml")
    hits = [
        d
        for d in result.diagnostics
        if d.path == case.path and d.severity == case.severity and all(f in d.message for f in case.fragments)
    ]
    assert hits, f"no {case.severity} at {case.path!r} with {case.fragments}; got:\n" + "\n".join(
        d.format() for d in result.diagnostics
    )
    d = hits[0]
    assert d.file == "bad.yaml"
    assert d.line == marked_line(text), d.format()
    assert d.code == case.code
    assert result.ok == (case.severity != "error" and not result.diagnostics.has_errors())


def test_all_problems_are_reported_at_once_in_line_order() -> None:
    text = vs("""
        - route:
          - destination: {host: httpbin}
          timeout: 5
          mirrorPercentag: {value: 5}
          retries: {attempts: 3, retryOn: "5xx, reset"}
        """)
    result = load_text(text, "many.yaml")
    errors = [d for d in result.diagnostics if d.severity == "error"]
    assert [d.path for d in errors] == [
        "spec.http[0].timeout",
        "spec.http[0].mirrorPercentag",
        "spec.http[0].retries.retryOn",
    ]
    lines = [d.line for d in result.diagnostics]
    assert lines == sorted(lines)
    assert all(d.resource == "VirtualService default/httpbin" for d in errors)


def test_syntax_error_in_one_file_does_not_stop_the_others() -> None:
    from simulator.config.loader import _Loader

    loader = _Loader("default")
    loader.add_text("a: [1, 2\n", "broken.yaml")
    loader.add_text(vs("- route: [{destination: {host: httpbin}}]"), "fine.yaml")
    result = loader.finish()
    (err,) = result.diagnostics.errors
    assert err.file == "broken.yaml" and err.line == 2
    assert [v.meta.name for v in result.config.virtual_services] == ["httpbin"]
    assert [d.file for d in result.diagnostics][0] == "broken.yaml"
