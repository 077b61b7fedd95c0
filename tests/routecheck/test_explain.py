"""mirrorsim explain: one request, every rule tried, and everything that applies."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from tests.routecheck.helpers import BOOKINFO, run_cli, write


def test_matched_rule_earlier_failures_and_actions(capsys):
    code, out, _ = run_cli(capsys, "explain", "-f", BOOKINFO, "http://reviews:9080/api/v1/x?beta=1")
    assert code == 0
    assert "virtual host: reviews.default.svc.cluster.local:9080 (from VirtualService default/reviews)" in out
    assert f'1. {BOOKINFO}:52  VirtualService default/reviews spec.http[0].match[0] "jason"' in out
    assert "no match: header end-user exact 'jason' (request: header end-user absent)" in out
    assert f'2. {BOOKINFO}:68  VirtualService default/reviews spec.http[1].match[0] "api"  -> MATCHED' in out
    assert "destination: outbound|9080|v3|reviews.default.svc.cluster.local" in out
    assert "rewrite: path /api/v1/x?beta=1 -> /v1/x?beta=1 (x-envoy-original-path: /api/v1/x?beta=1)" in out
    assert "timeout: none" in out
    assert "retries: 2 retries on connect-failure,refused-stream,unavailable,cancelled,retriable-status-codes" in out


def test_mirror_headers_timeout_retries(capsys):
    code, out, _ = run_cli(capsys, "explain", "-f", BOOKINFO, "-H", "End-User: jason", "-X", "POST",
                           "http://reviews:9080/")
    assert code == 0
    assert out.startswith("POST http://reviews:9080/\n  end-user: jason\n")
    assert ("25%  outbound|9080|v3|reviews.default.svc.cluster.local  Host: reviews-shadow:9080"
            "  (mirrored for this random value)") in out
    assert "request headers: set x-user-group: testers" in out
    assert "request headers: remove x-debug" in out
    assert "response headers: add x-served-by: reviews-v2" in out
    assert "timeout: 3s" in out
    assert "retries: 3 retries on 5xx,connect-failure, per-try timeout 1s" in out


def test_mirror_not_sampled_and_no_shadow_suffix(capsys):
    _, out, _ = run_cli(capsys, "explain", "-f", BOOKINFO, "-H", "end-user: jason", "--random-value", "500000",
                        "--no-shadow-suffix", "http://reviews:9080/")
    assert "Host: reviews:9080  (not mirrored for this random value)" in out


def test_weighted_destinations_with_shares(capsys):
    _, out, _ = run_cli(capsys, "explain", "-f", BOOKINFO, "--random-value", "85", "http://reviews:9080/")
    assert "destinations (weighted):" in out
    assert "80%  weight 80   outbound|9080|v1|reviews.default.svc.cluster.local\n" in out
    assert "20%  weight 20   outbound|9080|v3|reviews.default.svc.cluster.local  <- this request" in out


def test_host_header_overrides_url_and_local_replies(capsys):
    _, out, _ = run_cli(capsys, "explain", "-f", BOOKINFO, "-H", "Host: reviews:9080", "http://127.0.0.1:15001/old")
    assert "result: redirect 302 to http://reviews:9080/new" in out
    _, out, _ = run_cli(capsys, "explain", "-f", BOOKINFO, "http://reviews:9080/healthz")
    assert "result: direct response 200 body 'ok'" in out
    _, out, _ = run_cli(capsys, "explain", "-f", BOOKINFO, "http://unknown:9080/")
    assert "virtual host: none for unknown:9080 on port 9080" in out
    assert "result: 502" in out


def test_fault_and_no_route(tmp_path, capsys):
    _, out, _ = run_cli(capsys, "explain", "-f", BOOKINFO, "-H", "end-user: jason", "http://ratings:9080/")
    assert "fault: abort with HTTP 500 for 100% of requests" in out
    cfg = Path(BOOKINFO).read_text().replace("  - route:\n    - destination: {host: ratings, subset: v1}\n", "")
    path = write(tmp_path, "c.yaml", cfg)
    _, out, _ = run_cli(capsys, "explain", "-f", path, "http://ratings:9080/")
    assert "result: 404 NR: no route matched" in out


def test_gateway_and_port(capsys):
    _, out, _ = run_cli(capsys, "explain", "-f", BOOKINFO, "--gateway", "bookinfo-gateway",
                        "http://bookinfo.example.com/reviews/1")
    assert "gateway default/bookinfo-gateway, listener port 8080" in out
    assert "destination: outbound|9080|v1|reviews.default.svc.cluster.local" in out
    _, out, _ = run_cli(capsys, "explain", "-f", BOOKINFO, "--gateway", "default/bookinfo-gateway",
                        "http://elsewhere.example.com/")
    assert "result: 404 NR" in out
    code, _, err = run_cli(capsys, "explain", "-f", BOOKINFO, "--gateway", "nope", "http://a/")
    assert code == 1 and 'no Gateway "default/nope"' in err
    _, out, _ = run_cli(capsys, "explain", "-f", BOOKINFO, "--port", "9080", "http://reviews/healthz")
    assert "listener port 9080 (from the port given)" in out and "direct response 200" in out


def test_json(capsys):
    code, out, _ = run_cli(capsys, "explain", "-f", BOOKINFO, "--json", "-H", "end-user: jason",
                           "http://reviews:9080/r")
    assert code == 0
    doc = json.loads(out)
    assert doc["result"] == "forward"
    assert doc["destination"] == {"cluster": "outbound|9080|v2|reviews.default.svc.cluster.local",
                                  "host": "reviews.default.svc.cluster.local", "subset": "v2", "port": 9080}
    assert doc["mirrors"][0]["percentage"] == 25 and doc["mirrors"][0]["shadowHost"] == "reviews-shadow:9080"
    assert doc["attempts"][0]["matched"] is True and doc["route"]["line"] == 52
    assert doc["timeout"] == 3 and doc["retries"]["attempts"] == 3
    assert doc["requestHeaders"] == {"set": {"x-user-group": "testers"}, "remove": ["x-debug"]}


def test_bad_url_and_bad_config(tmp_path, capsys):
    code, _, err = run_cli(capsys, "explain", "-f", BOOKINFO, "reviews:9080/")
    assert code == 2 and "expected an absolute http(s) URL" in err
    path = write(tmp_path, "bad.yaml", "apiVersion: networking.istio.io/v1\nkind: VirtualService\n"
                 "metadata: {name: x}\nspec: {hosts: [a], http: [{route: [{destination: {host: a}}], timeout: 5}]}\n")
    code, out, err = run_cli(capsys, "explain", "-f", path, "http://a/")
    assert code == 1 and out == ""
    assert f"{path}:4: error IST0106" in err


def test_explain_shows_the_normalized_path_and_the_calling_workload(capsys):
    source = BOOKINFO.replace("bookinfo.yaml", "source.yaml")
    code, out, _ = run_cli(capsys, "explain", "-f", source, "--source-labels", "app=productpage,version=v1",
                           "http://reviews/x/../%61pi")
    assert code == 0
    lines = out.splitlines()
    assert lines[1] == "calling workload: app=productpage,version=v1 in namespace default"
    assert lines[2] == "sidecar (mesh), listener port 9080 (from the port of the host's service), random value 0"
    assert lines[3] == "path normalized: /x/../%61pi -> /api (routed and forwarded as that)"
    assert "destination: outbound|9080|v2|reviews.default.svc.cluster.local" in out
    code, out, _ = run_cli(capsys, "explain", "-f", source, "--path-normalization", "NONE", "--json",
                           "http://reviews:9080/x/../a")
    assert json.loads(out)["path"] == "/x/../a"
    with pytest.raises(SystemExit) as exit_info:
        run_cli(capsys, "explain", "-f", source, "--source-namespace", "Bad_ns", "http://reviews/")
    err = capsys.readouterr().err
    assert exit_info.value.code == 2
    assert "--source-namespace: 'Bad_ns' is not a namespace name (a DNS-1123 label like default)" in err


@pytest.mark.parametrize("value", ["-1", "18446744073709551616", "1.5", "x"])
def test_random_value_is_a_uint64(capsys, value):
    """Envoy's random value is a uint64, as a route test's randomValue: explain refuses the rest."""
    with pytest.raises(SystemExit) as exit_info:
        run_cli(capsys, "explain", "-f", BOOKINFO, "--random-value", value, "http://reviews:9080/")
    err = capsys.readouterr().err
    assert exit_info.value.code == 2
    assert "--random-value: expected an integer 0..18446744073709551615" in err and repr(value) in err


def test_the_largest_random_value_is_taken(capsys):
    code, out, _ = run_cli(capsys, "explain", "-f", BOOKINFO, "--random-value", "18446744073709551615",
                           "http://reviews:9080/")
    assert code == 0 and "random value 18446744073709551615" in out
