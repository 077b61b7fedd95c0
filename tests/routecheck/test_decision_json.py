"""One JSON shape for a routing decision: `explain --json`, `check --output json` and the
pytest plugin's `as_json()` give the same object for the same request."""

from __future__ import annotations

import json

from tests.routecheck.helpers import run_cli, write

CONFIG = """\
apiVersion: networking.istio.io/v1
kind: ServiceEntry
metadata: {name: ratings}
spec:
  hosts: [ratings.default.svc.cluster.local]
  location: MESH_INTERNAL
  resolution: STATIC
  ports: [{number: 9080, name: http, protocol: HTTP}]
  endpoints:
  - {address: 127.0.0.1, ports: {http: 19091}, labels: {version: v1}}
  - {address: 127.0.0.1, ports: {http: 19092}, labels: {version: v2}}
---
apiVersion: networking.istio.io/v1
kind: DestinationRule
metadata: {name: ratings}
spec:
  host: ratings
  subsets:
  - {name: v1, labels: {version: v1}}
  - {name: v2, labels: {version: v2}}
---
apiVersion: networking.istio.io/v1
kind: VirtualService
metadata: {name: ratings}
spec:
  hosts: [ratings]
  http:
  - name: faulty
    match: [{headers: {end-user: {exact: jason}}}]
    fault:
      delay: {fixedDelay: 1.5s, percentage: {value: 10}}
      abort: {httpStatus: 503, percentage: {value: 50}}
    mirror: {host: ratings, subset: v2}
    mirrorPercentage: {value: 25}
    retries: {attempts: 2, retryOn: 5xx}
    timeout: 3s
    route:
    - destination: {host: ratings, subset: v1, port: {number: 9080}}
"""
TESTS = """\
tests:
- name: jason
  request: {url: "http://ratings:9080/r", headers: {end-user: jason}, randomValue: 7}
  expect:
    fault: {delay: {fixedDelay: 1.5s, percentage: 10}, abort: {httpStatus: 503, percentage: 50}}
"""
FAULT = {"delay": {"fixedDelay": 1.5, "percentage": 10.0}, "abort": {"httpStatus": 503, "percentage": 50.0}}
CONTEXT = ("request", "gateway", "listenerPort", "normalizedPath", "virtualHost", "attempts")


def test_explain_check_and_plugin_give_one_shape(tmp_path, capsys, mirrorsim_mesh):
    config = write(tmp_path, "ratings.yaml", CONFIG)
    tests = write(tmp_path, "ratings.test.yaml", TESTS)
    code, out, _ = run_cli(capsys, "explain", "-f", config, "--json", "-H", "end-user: jason",
                           "--random-value", "7", "http://ratings:9080/r")
    assert code == 0
    explained = json.loads(out)
    from_explain = {k: v for k, v in explained.items() if k not in CONTEXT and k != "source"}
    code, out, _ = run_cli(capsys, "check", "-f", config, tests, "--output", "json")
    assert code == 0, out
    from_check = json.loads(out)["tests"][0]["decision"]
    decision = mirrorsim_mesh(config).route("GET", "http://ratings:9080/r", headers={"end-user": "jason"},
                                            random_value=7)
    from_plugin = json.loads(json.dumps(decision.as_json()))
    assert from_explain == from_check == from_plugin
    assert from_plugin["fault"] == FAULT == decision.fault
    assert from_plugin["result"] == "forward" and from_plugin["route"]["name"] == "faulty"
    assert from_plugin["mirrors"][0]["percentage"] == 25 and from_plugin["retries"]["attempts"] == 2


def test_fault_injection_is_predicted_per_random_value(tmp_path, capsys, mirrorsim_mesh):
    """Faults draw from the request's random value (core/faults.py), so the decision says
    whether this request gets them: over many values, at the configured rates (10 % delay,
    50 % abort), independently of each other, and `explain`'s text says the same."""
    config = write(tmp_path, "ratings.yaml", CONFIG)
    mesh = mirrorsim_mesh(config)
    n = 4000
    delays = aborts = both = 0
    for rv in range(0, n * 7919, 7919):
        got = mesh.route("GET", "http://ratings:9080/r", headers={"end-user": "jason"},
                         random_value=rv).as_json()["faultInjected"]
        delays += got["delay"]
        aborts += got["abort"]
        both += got["delay"] and got["abort"]
    assert abs(delays / n - 0.10) < 0.03 and abs(aborts / n - 0.50) < 0.05
    assert abs(both / n - 0.05) < 0.02  # independent draws
    for rv in (1, 2, 3, 4, 5, 6):
        j = mesh.route("GET", "http://ratings:9080/r", headers={"end-user": "jason"},
                       random_value=rv).as_json()["faultInjected"]
        code, out, _ = run_cli(capsys, "explain", "-f", config, "-H", "end-user: jason",
                               "--random-value", str(rv), "http://ratings:9080/r")
        assert code == 0
        abort_line = next(line for line in out.splitlines() if line.startswith("fault: abort"))
        assert abort_line.endswith("(injected for this random value)") is j["abort"], abort_line
