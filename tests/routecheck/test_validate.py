"""mirrorsim validate: every diagnostic at once, FILE:LINE: severity CODE message (at PATH)."""

from __future__ import annotations

import json
import re
from pathlib import Path

from tests.routecheck.helpers import BOOKINFO, DATA, run_cli, write

BAD = """\
apiVersion: networking.istio.io/v1
kind: VirtualService
metadata: {name: bad, namespace: default}
spec:
  hosts: [httpbin]
  http:
  - match:
    - uri: {prefx: /a}
    route:
    - destination: {host: httpbin, subset: v9}
    timeout: 1.5
  - route:
    - destination: {host: httpbin}
  - route:
    - destination: {host: httpbin}
"""

LINE = re.compile(r"^(?P<file>[^:]+):(?P<line>\d+): (?P<sev>error|warning|info) (?P<code>IST\d{4}) (?P<msg>.+)$")


def test_valid_config_exits_0(capsys):
    code, out, err = run_cli(capsys, "validate", "-f", BOOKINFO)
    assert code == 0
    assert out == ""
    assert "0 error(s), 0 warning(s)" in err


def test_every_problem_reported_with_file_line_code_and_path(tmp_path, capsys):
    path = write(tmp_path, "bad.yaml", BAD)
    code, out, err = run_cli(capsys, "validate", "-f", path)
    assert code == 1
    lines = out.splitlines()
    assert len(lines) >= 4  # all at once, not only the first
    for line in lines:
        m = LINE.match(line)
        assert m, line
        assert m["file"] == path
    unknown = next(x for x in lines if "prefx" in x)
    assert unknown.startswith(f"{path}:8: error IST0106 ")
    assert 'did you mean "prefix"' in unknown and "valid fields: exact, prefix, regex" in unknown
    assert "(at spec.http[0].match[0].uri.prefx in VirtualService default/bad)" in unknown
    timeout = next(x for x in lines if "timeout" in x)
    assert timeout.startswith(f"{path}:11: error IST0106 expected a duration")  # the path is not repeated
    assert any(re.search(r": warning IST0130 .*not used", x) for x in lines)
    assert any(": warning IST0101 " in x and "v9" in x for x in lines)
    assert re.search(r"\d+ error\(s\), \d+ warning\(s\)", err)


def test_warnings_only_exit_0(tmp_path, capsys):
    text = Path(BOOKINFO).read_text().replace("subset: v3}\n    mirrorPercentage", "subset: v9}\n    mirrorPercentage")
    path = write(tmp_path, "warn.yaml", text)
    code, out, _ = run_cli(capsys, "validate", "-f", path)
    assert code == 0
    assert ": warning IST0101 " in out


def test_json_output(tmp_path, capsys):
    path = write(tmp_path, "bad.yaml", BAD)
    code, out, _ = run_cli(capsys, "validate", "-f", path, "--output", "json")
    assert code == 1
    doc = json.loads(out)
    assert doc["ok"] is False and doc["errors"] >= 2
    first = doc["diagnostics"][0]
    assert set(first) >= {"severity", "code", "file", "line", "path", "message", "resource"}
    assert all(d["code"].startswith("IST") for d in doc["diagnostics"])
    code, out2, _ = run_cli(capsys, "validate", "-f", path, "--json")
    assert json.loads(out2) == doc


def test_malformed_yaml(tmp_path, capsys):
    path = write(tmp_path, "broken.yaml", "apiVersion: networking.istio.io/v1\nkind: [VirtualService\n")
    code, out, _ = run_cli(capsys, "validate", "-f", path)
    assert code == 1
    assert re.match(rf"{re.escape(path)}:\d+: error IST0106 YAML syntax error", out)


def test_route_test_files_in_a_config_directory_are_skipped(tmp_path, capsys):
    (tmp_path / "cfg.yaml").write_text(Path(BOOKINFO).read_text())
    (tmp_path / "routes.test.yaml").write_text("tests: []\n")
    code, out, _ = run_cli(capsys, "validate", "-f", str(tmp_path))
    assert code == 0, out


SOURCE = str(DATA / "source.yaml")


def test_rules_the_given_workload_never_applies_are_warned(capsys):
    code, out, _ = run_cli(capsys, "validate", "-f", SOURCE, "--source-labels", "app=ratings")
    assert code == 0
    lines = out.splitlines()
    assert len(lines) == 2, out
    assert lines[0].startswith(f"{SOURCE}:33: warning IST0133 no match of this rule selects the calling workload "
                               "(app=ratings in namespace default): sourceLabels {'app': 'productpage', "
                               "'version': 'v1'}; its sidecar never applies the rule (at spec.http[0] in "
                               "VirtualService default/reviews)")
    assert lines[1].startswith(f"{SOURCE}:37: warning") and "sourceNamespace canary" in lines[1]


def test_no_source_warning_for_a_selected_workload_or_without_one(capsys):
    code, out, _ = run_cli(capsys, "validate", "-f", SOURCE, "--source-labels", "app=productpage,version=v1",
                           "--source-namespace", "canary")
    assert code == 0 and out == ""
    code, out, _ = run_cli(capsys, "validate", "-f", SOURCE)  # no workload given: no opinion
    assert code == 0 and out == ""
