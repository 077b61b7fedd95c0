"""mirrorsim check: route tests, every failure with expected vs actual, coverage, JUnit."""

from __future__ import annotations

import json
import xml.etree.ElementTree as ET
from pathlib import Path

from tests.routecheck.helpers import BOOKINFO, DATA, run_cli, write

TESTS = str(DATA / "bookinfo.test.yaml")
ICV = str(DATA / "icv.test.yml")

FAILING = """\
tests:
- name: wrong everything
  request:
    url: http://reviews:9080/reviews/1
    headers: {end-user: jason}
  expect:
    destination: {host: reviews, subset: v1}
    mirrors:
    - {host: reviews, subset: v2, percentage: 50, shadowHost: reviews:9080}
    timeout: 5s
    retries: none
    headers:
      request: {set: {x-user-group: admins}}
    not:
      timeout: 3s
- name: split mismatch
  request: {url: "http://reviews:9080/"}
  expect:
    split: [{subset: v1, weight: 50}, {subset: v2, weight: 50}]
    status: 404
- name: this one passes
  request: {url: "http://reviews:9080/healthz"}
  expect: {status: 200}
"""


def test_all_pass_with_coverage(capsys):
    code, out, _ = run_cli(capsys, "check", "-f", BOOKINFO, TESTS, ICV)
    assert code == 0, out
    assert "13 test(s): 13 passed, 0 failed (2 file(s))" in out
    assert "route coverage: 87.5% (7 of 8 rules reached)" in out
    assert f"rules no test reached:\n  {BOOKINFO}:102: VirtualService default/ratings spec.http[1]\n" in out
    assert "PASS" not in out
    _, out, _ = run_cli(capsys, "check", "-f", BOOKINFO, TESTS, "-v")
    assert f"PASS {TESTS}:2 jason goes to v2, mirrored to v3" in out


def test_every_failure_with_expected_and_actual(tmp_path, capsys):
    path = write(tmp_path, "f.test.yaml", FAILING)
    code, out, _ = run_cli(capsys, "check", "-f", BOOKINFO, path)
    assert code == 1
    assert f"FAIL {path}:2 wrong everything\n  request: GET http://reviews:9080/reviews/1  end-user: jason\n" in out
    assert ("  got:     forwarded to outbound|9080|v2|reviews.default.svc.cluster.local by "
            f'{BOOKINFO}:52 VirtualService default/reviews spec.http[0].match[0] "jason"') in out
    for line in (
        f'destination.subset: expected "v1", actual "v2"  [{path}:7]',
        f'mirrors[0].subset: expected "v2", actual "v3"  [{path}:8]',
        "mirrors[0].percentage: expected 50%, actual 25%",
        'mirrors[0].shadowHost: expected "reviews:9080", actual "reviews-shadow:9080"',
        "timeout: expected 5s, actual 3s",
        "retries: expected no retries, actual attempts 3, retryOn 5xx,connect-failure, perTryTimeout 1s",
        'headers.request.set.x-user-group: expected "admins", actual "testers"',
        f"not timeout: expected anything but 3s, actual 3s  [{path}:15]",
        f"FAIL {path}:16 split mismatch",
        "split: expected [subset=v1 weight 50, subset=v2 weight 50], actual [outbound|9080|v1|reviews.default"
        ".svc.cluster.local weight 80 (80%), outbound|9080|v3|reviews.default.svc.cluster.local weight 20 (20%)]",
        "status: expected 404, actual no local reply (forwarded to outbound|9080|v1|",
    ):
        assert line in out, line
    assert "this one passes" not in out
    assert "3 test(s): 1 passed, 2 failed (1 file(s))" in out


GATEWAY_API = str(Path(__file__).parents[2] / "configs" / "examples" / "gateway-api")


def test_expect_the_http_route_that_answered(tmp_path, capsys):
    path = write(tmp_path, "hr.test.yaml", """\
tests:
- name: the HTTPRoute answers, no VirtualService
  request: {url: http://httpbin:8000/headers}
  expect:
    httpRoute: httpbin
    not: {virtualService: httpbin}
- name: another HTTPRoute
  request: {url: http://httpbin:8000/headers}
  expect:
    httpRoute: other/httpbin
- name: malformed
  request: {url: http://httpbin:8000/headers}
  expect: {httpRoute: [httpbin]}
""")
    code, out, _ = run_cli(capsys, "check", "-f", GATEWAY_API, path)
    assert code == 1
    assert f"{path}:13: error expected a non-empty string, got list ['httpbin'] (at tests[2].expect.httpRoute)" in out
    assert f'httpRoute: expected "other/httpbin", actual "default/httpbin"  [{path}:10]' in out
    assert "the HTTPRoute answers" not in out
    assert "2 test(s): 1 passed, 1 failed (1 file(s)); 1 error(s) in test files" in out


def test_junit_and_json(tmp_path, capsys):
    path = write(tmp_path, "f.test.yaml", FAILING)
    junit = tmp_path / "out" / "junit.xml"
    junit.parent.mkdir()
    code, out, _ = run_cli(capsys, "check", "-f", BOOKINFO, path, "--junit", str(junit), "--output", "json")
    assert code == 1
    root = ET.parse(junit).getroot()
    assert root.tag == "testsuites" and root.get("tests") == "3" and root.get("failures") == "2"
    cases = root.findall("testsuite/testcase")
    assert [c.get("name") for c in cases] == ["wrong everything", "split mismatch", "this one passes"]
    fail = cases[0].find("failure")
    assert fail is not None and 'destination.subset: expected "v1", actual "v2"' in fail.get("message", "")
    assert cases[2].find("failure") is None
    doc = json.loads(out)
    assert doc["summary"] == {"tests": 3, "passed": 1, "failed": 2, "fileErrors": 0}
    assert doc["tests"][0]["failures"][0] == {"field": "destination.subset", "expected": '"v1"',
                                              "actual": '"v2"', "file": path, "line": 7}
    assert doc["coverage"]["rules"] == 8


def test_fail_under(capsys):
    code, out, err = run_cli(capsys, "check", "-f", BOOKINFO, TESTS, "--fail-under", "90")
    assert code == 1 and "route coverage 87.5% is under --fail-under 90%" in err
    code, _, _ = run_cli(capsys, "check", "-f", BOOKINFO, TESTS, "--fail-under", "87.5")
    assert code == 0


def test_directories_and_route_tests_next_to_config(tmp_path, capsys):
    (tmp_path / "bookinfo.yaml").write_text(Path(BOOKINFO).read_text())
    (tmp_path / "bookinfo.test.yaml").write_text(Path(TESTS).read_text())
    code, out, _ = run_cli(capsys, "check", "-f", str(tmp_path), str(tmp_path))
    assert code == 0, out
    assert "8 test(s): 8 passed" in out


def test_istio_config_validator_files_run_unchanged(tmp_path, capsys):
    icv = """\
testCases:
  - description: jason to v2
    wantMatch: true
    request:
      authority: ["reviews"]
      method: ["GET"]
      uri: ["/reviews/1"]
      headers: {end-user: jason}
    route:
    - destination: {host: reviews, subset: v2}
    headers:
      request: {set: {x-user-group: testers}, remove: [x-debug]}
      response: {add: {x-served-by: reviews-v2}}
  - description: API rewrite
    wantMatch: true
    request: {authority: ["reviews:9080"], method: ["GET"], uri: ["/api/v1/a?beta=1"]}
    rewrite: {uri: /v1/}
  - description: old redirects
    wantMatch: true
    request: {authority: ["reviews"], method: ["GET"], uri: ["/old"]}
    redirect: {uri: /new, redirectCode: 302}
  - description: fault for jason
    wantMatch: true
    request: {authority: ["ratings"], method: ["GET"], uri: ["/"], headers: {end-user: jason}}
    fault: {abort: {httpStatus: 500, percentage: {value: 100.0}}}
  - description: wrong on purpose
    wantMatch: true
    request: {authority: ["reviews"], method: ["GET", "PUT"], uri: ["/"]}
    route:
    - destination: {host: reviews, subset: v2}
"""
    path = write(tmp_path, "icv.yml", icv)
    code, out, _ = run_cli(capsys, "check", "-f", BOOKINFO, path)
    assert code == 1
    assert "6 test(s): 4 passed, 2 failed" in out
    assert f"FAIL {path}:26 wrong on purpose [GET reviews/]" in out
    assert f"FAIL {path}:26 wrong on purpose [PUT reviews/]" in out
    assert ('route: expected [{"destination": {"host": "reviews", "subset": "v2"}}], actual [{"destination": '
            '{"host": "reviews", "subset": "v1"}, "weight": 80.0}, {"destination": {"host": "reviews", "subset": '
            '"v3"}, "weight": 20.0}]') in out


def test_unknown_gateway_is_an_error(tmp_path, capsys):
    path = write(tmp_path, "g.test.yaml", "tests:\n- request: {url: 'http://a/', gateway: nope}\n"
                 "  expect: {status: 404}\n")
    code, out, _ = run_cli(capsys, "check", "-f", BOOKINFO, path)
    assert code == 1
    assert 'error: no Gateway "default/nope" in the configuration (known: default/bookinfo-gateway, or mesh)' in out


def test_config_errors_stop_check(tmp_path, capsys):
    bad = write(tmp_path, "bad.yaml", "apiVersion: networking.istio.io/v1\nkind: VirtualService\nmetadata: "
                "{name: x}\nspec: {hosts: [a], http: [{route: [{destination: {host: a}}], timeout: 5}]}\n")
    code, out, err = run_cli(capsys, "check", "-f", bad, TESTS)
    assert code == 1 and out == ""
    assert f"{bad}:4: error IST0106" in err


def test_missing_test_file(capsys):
    code, _, err = run_cli(capsys, "check", "-f", BOOKINFO, "/nonexistent/x.test.yaml")
    assert code == 1 and "test file /nonexistent/x.test.yaml does not exist" in err
