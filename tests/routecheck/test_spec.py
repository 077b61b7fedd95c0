"""Route-test files that do not parse: every problem, with file, line and field."""

from __future__ import annotations

import pytest

from simulator.routecheck.spec import parse_test_text
from tests.routecheck.helpers import BOOKINFO, run_cli, write


def problems(text: str) -> list[str]:
    tf = parse_test_text(text, "t.yaml")
    return [f"{d.file}:{d.line}: {d.severity} {d.message} (at {d.path})" for d in tf.diagnostics]


def test_malformed_yaml():
    (p,) = problems("tests:\n- name: x\n  request: {url: http://a/\n")
    assert p.startswith("t.yaml:4: error YAML syntax error: did not find expected ',' or '}'")


@pytest.mark.parametrize(("text", "expected"), [
    ("tests:\n- request: {url: http://a/}\n  expect: {destinaton: {subset: v1}}\n",
     't.yaml:3: error unknown field "destinaton" in expectations; valid fields: destination, cluster, split, '
     'mirrors, mirror, rewrite, redirect, directResponse, status, fault, timeout, retries, headers, virtualService, '
     'httpRoute, rule, virtualHost, not (did you mean "destination"?) (at tests[0].expect.destinaton)'),
    ("tests:\n- request: {url: http://a/}\n  expect:\n    timeout: 5\n",
     't.yaml:4: error tests[0].expect.timeout: expected a duration like "1.5s" or "250ms" (or none), got integer 5 '
     "(at tests[0].expect.timeout)"),
    ("tests:\n- request: {url: http://a/, port: '80'}\n  expect: {status: 404}\n",
     "t.yaml:2: error tests[0].request.port: expected an integer, got string '80' (at tests[0].request.port)"),
    ("tests:\n- request: {url: a/b}\n  expect: {status: 404}\n",
     't.yaml:2: error tests[0].request.url: expected an absolute http(s) URL like "http://reviews:9080/reviews/1?x=1", '
     "got 'a/b' (at tests[0].request.url)"),
    ("tests:\n- request: {url: http://a/}\n  expect:\n    mirrors:\n    - {host: b, percentage: high}\n",
     "t.yaml:5: error tests[0].expect.mirrors[0].percentage: expected a number, got string 'high' "
     "(at tests[0].expect.mirrors[0].percentage)"),
    ("tests:\n- request: {url: http://a/}\n",
     "t.yaml:2: error tests[0]: expect is required (what the route must do) (at tests[0])"),
    ("tests:\n- request: {url: http://a/}\n  expect: {}\n",
     "t.yaml:3: error tests[0].expect: at least one expectation is required; valid: destination"),
    ("tests: {a: 1}\n", "t.yaml:1: error tests: expected a list of tests, got mapping (at tests)"),
    ("apiVersion: v1\nkind: Service\n",
     "t.yaml:1: error a route-test document needs a top-level tests: list (mirrorsim format) or testCases: list "
     "(istio-config-validator format); got keys apiVersion, kind (at )"),
    ("testCases:\n- description: d\n  request: {authority: [a], method: GET}\n  route: []\n",
     "t.yaml:3: error testCases[0].request.uri is required (a non-empty list) (at testCases[0].request)"),
    ("testCases:\n- description: d\n  wantMatch: true\n  request: {authority: [a], method: [GET], uri: [/]}\n",
     "t.yaml:2: error testCases[0]: assert at least one of route, redirect, rewrite, fault, headers, delegate"),
])
def test_bad_input_is_located(text, expected):
    got = problems(text)
    assert any(p.startswith(expected) for p in got), got


def test_every_problem_at_once():
    got = problems("tests:\n- request: {url: 'x', headers: [1]}\n  expect: {destinaton: 1, timeout: 5}\n"
                   "- request: {url: http://a/, randomValue: -1}\n  expect: {split: {subset: v1}}\n")
    assert len(got) == 6, got


def test_unknown_icv_fields_are_warnings():
    tf = parse_test_text("testCases:\n- description: d\n  wantMatch: true\n  extra: 1\n"
                         "  request: {authority: [a], method: [GET], uri: [/]}\n  route: []\n", "t.yaml")
    assert [d.severity for d in tf.diagnostics] == ["warning"]
    assert len(tf.cases) == 1


def test_broken_test_file_fails_check_but_other_tests_run(tmp_path, capsys):
    good = write(tmp_path, "good.test.yaml", "tests:\n- request: {url: 'http://reviews:9080/healthz'}\n"
                 "  expect: {status: 200}\n")
    bad = write(tmp_path, "bad.test.yaml", "tests:\n- name: x\n  request: {url: http://a/\n")
    code, out, _ = run_cli(capsys, "check", "-f", BOOKINFO, good, bad)
    assert code == 1
    assert f"{bad}:4: error YAML syntax error" in out
    assert "1 test(s): 1 passed, 0 failed (2 file(s)); 1 error(s) in test files" in out


@pytest.mark.parametrize(("source", "expected"), [
    ("{labels: {app: 'a b'}}",
     "t.yaml:3: error tests[0].source.labels.app: invalid label value 'a b'; expected labels like "
     "{app: productpage, version: v1} (at tests[0].source.labels.app)"),
    ("{labels: [app=productpage]}",
     "t.yaml:3: error tests[0].source.labels: expected a mapping of label to value like "
     "{app: productpage, version: v1}, got list ['app=productpage']"),
    ("{namespce: canary}", 't.yaml:3: error unknown field "namespce" in source workload; valid fields: labels, '
     'namespace (did you mean "namespace"?)'),
    ("{namespace: Canary_1}", "t.yaml:3: error tests[0].source.namespace: 'Canary_1' is not a namespace name"),
    ("productpage", "t.yaml:3: error tests[0].source: expected a mapping (source workload), got string"),
])
def test_bad_source_is_located(source, expected):
    got = problems(f"tests:\n- request: {{url: http://a/}}\n  source: {source}\n  expect: {{status: 404}}\n")
    assert any(p.startswith(expected) for p in got), got
