"""Hostile Gateway API input and hostile standard input (issue 16): HTTPRoutes whose lists
are far past the CRD's maxItems, numbers at and past their edges, and ``-f -`` with stdin
closed, interrupted or a terminal. Each test sends the hostile input, then checks a normal
config still loads (or a normal command still works) promptly."""

from __future__ import annotations

import io
import sys
import time
from typing import Any

import pytest
import yaml

from simulator import cli
from simulator.config import load_text, yamlio

SVC = {"apiVersion": "v1", "kind": "Service", "metadata": {"name": "svc"},
       "spec": {"ports": [{"port": 80, "name": "http"}], "selector": {"app": "svc"}}}
PARENT = [{"group": "", "kind": "Service", "name": "svc"}]
BACKEND = {"name": "svc", "port": 80}


def _route(**spec: Any) -> str:
    doc = {"apiVersion": "gateway.networking.k8s.io/v1", "kind": "HTTPRoute", "metadata": {"name": "r"},
           "spec": {"parentRefs": PARENT, **spec}}
    return yaml.safe_dump_all([doc, SVC], sort_keys=False)


NORMAL = _route(rules=[{"backendRefs": [BACKEND]}])


def _normal_still_loads() -> None:
    t0 = time.perf_counter()
    res = load_text(NORMAL, "normal.yaml")
    assert res.ok, res.diagnostics
    assert time.perf_counter() - t0 < 1.0


N = 3000  # items past every maxItems (16 rules, 64 matches, 16 backendRefs, 32 parentRefs)

OVERSIZED = {
    "backendRefs": _route(rules=[{"backendRefs": [{"name": f"svc{i}", "port": 80} for i in range(N)]}]),
    "parentRefs": _route(parentRefs=[{"group": "", "kind": "Service", "name": f"s{i}"} for i in range(N)],
                         rules=[{"backendRefs": [BACKEND]}]),
    "rules": _route(rules=[{"matches": [{"path": {"type": "Exact", "value": f"/p{i}"}}],
                            "backendRefs": [{"name": f"svc{i}", "port": 80}]} for i in range(N)]),
    "matches": _route(rules=[{"matches": [{"path": {"type": "PathPrefix", "value": f"/p{i}"}} for i in range(N)],
                              "backendRefs": [BACKEND]}]),
}


@pytest.mark.parametrize("what", list(OVERSIZED))
def test_lists_past_max_items_are_one_error_not_thousands(what):
    t0 = time.perf_counter()
    res = load_text(OVERSIZED[what], "big.yaml")
    elapsed = time.perf_counter() - t0
    errors = [d for d in res.diagnostics if d.severity == "error"]
    assert any(f"has {N}" in d.message for d in errors), res.diagnostics
    # the API server refuses the object: its items past maxItems are not read one by one
    assert len(list(res.diagnostics)) <= 40, len(list(res.diagnostics))
    assert elapsed < 3.0, f"{what}: {elapsed:.2f}s"
    _normal_still_loads()


@pytest.mark.parametrize(("weight", "shown"), [(2**32 - 1, "[0, 1000000]"), (2**32, "[0, 1000000]"),
                                               (-(2**40), "[0, 1000000]"), (1_000_001, "[0, 1000000]")])
def test_weights_past_their_range_name_the_real_range(weight, shown):
    res = load_text(_route(rules=[{"backendRefs": [{**BACKEND, "weight": weight}]}]), "w.yaml")
    assert any(f"{weight} is out of range {shown}" in d.message for d in res.diagnostics), res.diagnostics
    _normal_still_loads()


@pytest.mark.parametrize("fraction", [{"numerator": 1, "denominator": 0}, {"numerator": 5, "denominator": 4},
                                      {"numerator": -1}, {"numerator": 10**30, "denominator": 10**40},
                                      {"numerator": 1, "denominator": -(2**31)}, {"numerator": 500}])
def test_mirror_fractions_at_their_edges_are_errors(fraction):
    mirror = {"type": "RequestMirror", "requestMirror": {"backendRef": BACKEND, "fraction": fraction}}
    res = load_text(_route(rules=[{"filters": [mirror], "backendRefs": [BACKEND]}]), "f.yaml")
    assert not res.ok
    assert all(d.line > 0 for d in res.diagnostics), res.diagnostics
    _normal_still_loads()


# ------------------------------------------------------------------ -f - (standard input)


@pytest.fixture
def stdin(monkeypatch: pytest.MonkeyPatch) -> pytest.MonkeyPatch:
    monkeypatch.setattr(yamlio, "_stdin_text", None)  # standard input is read once per process
    return monkeypatch


def _validate_stdin(capsys: pytest.CaptureFixture[str], *extra: str) -> tuple[int, str]:
    code = cli.main(["validate", "-f", "-", *extra])
    out = capsys.readouterr()
    return code, out.out + out.err


def test_stdin_closed_is_a_diagnostic(stdin, capsys):
    stdin.setattr(sys, "stdin", None)  # `mirrorsim validate -f - <&-`: Python sets sys.stdin to None
    code, out = _validate_stdin(capsys)
    assert code == 1
    assert "<stdin>:0: error" in out and "standard input is closed" in out


class _Stdin(io.TextIOWrapper):
    def __init__(self, data: bytes, tty: bool = False) -> None:
        super().__init__(io.BytesIO(data), encoding="utf-8")
        self.tty = tty

    def isatty(self) -> bool:
        return self.tty


class _Interrupted(io.BytesIO):
    def read(self, size: int | None = -1) -> bytes:
        raise KeyboardInterrupt


def test_ctrl_c_while_reading_stdin_ends_without_a_traceback(stdin, capsys):
    stdin.setattr(sys, "stdin", io.TextIOWrapper(_Interrupted()))  # a pipe that never ends, then Ctrl-C
    code, out = _validate_stdin(capsys)
    assert code == 130
    assert "Traceback" not in out and "interrupted" in out
    stdin.setattr(yamlio, "_stdin_text", None)
    stdin.setattr(sys, "stdin", _Stdin(NORMAL.encode()))
    assert _validate_stdin(capsys)[0] == 0


def test_stdin_a_terminal_says_it_is_waiting(stdin, capsys):
    stdin.setattr(sys, "stdin", _Stdin(NORMAL.encode(), tty=True))
    code, out = _validate_stdin(capsys)
    assert code == 0, out
    assert "reading the configuration from standard input (a terminal)" in out and "Ctrl-D" in out


def test_stdin_given_twice_is_read_once(stdin, capsys):
    stdin.setattr(sys, "stdin", _Stdin(NORMAL.encode()))
    code, out = _validate_stdin(capsys, "-f", "-")
    assert code == 0, out
    assert "defined again" not in out and "0 error(s), 0 warning(s)" in out


def test_stdin_past_the_limit_does_not_claim_an_exact_size(stdin, capsys):
    stdin.setenv(yamlio.MAX_FILE_BYTES_ENV, "1000")
    stdin.setattr(sys, "stdin", _Stdin(b"# " + b"y" * 100_000))  # `yes | mirrorsim validate -f -`
    code, out = _validate_stdin(capsys)
    assert code == 1
    assert "<stdin> is more than the limit of 1000 bytes" in out, out


def test_replace_prefix_match_of_the_longest_prefix_with_regex_metacharacters(tmp_path, capsys):
    # ReplacePrefixMatch "/" becomes a generated regex rewrite; the quoted 1024-character prefix
    # is longer than Istio's limit for regexes users write, not than Envoy's program size
    prefix = "/" + "a." * 511 + "a"
    assert len(prefix) == 1024
    rewrite = {"type": "URLRewrite", "urlRewrite": {"path": {"type": "ReplacePrefixMatch", "replacePrefixMatch": "/"}}}
    config = tmp_path / "c.yaml"
    config.write_text(_route(rules=[{"matches": [{"path": {"type": "PathPrefix", "value": prefix}}],
                                     "filters": [rewrite], "backendRefs": [BACKEND]}]))
    assert load_text(config.read_text(), "c.yaml").ok
    t0 = time.perf_counter()
    code = cli.main(["explain", "-f", str(config), f"http://svc{prefix}/rest"])
    out = capsys.readouterr()
    assert code == 0, out
    assert "/rest" in out.out and "Traceback" not in out.err
    assert time.perf_counter() - t0 < 3.0


def test_a_service_with_thousands_of_ports_translates_in_linear_time():
    # a Kubernetes Service has no maxItems on its ports: every port was looked up in every
    # service's list for every port number (20,000 ports: 25 s)
    from simulator.core.translate import translate

    many = {**SVC, "metadata": {"name": "many"},
            "spec": {"ports": [{"port": p, "name": f"http-{p}"} for p in range(1, 20_001)], "selector": {"app": "x"}}}
    others = [{**SVC, "metadata": {"name": f"s{i}"}} for i in range(50)]
    res = load_text(yaml.safe_dump_all([many, *others]), "ports.yaml")
    assert res.ok, res.diagnostics
    t0 = time.perf_counter()
    table = translate(res.config)
    assert time.perf_counter() - t0 < 5.0
    assert 20_000 in table.route_configs and len(table.route_configs[80].virtual_hosts) == 51
    _normal_still_loads()


@pytest.mark.parametrize("kind", ["HTTPRoute", "VirtualService", "Service"])
def test_a_name_of_100k_characters_is_an_error_and_no_line_repeats_it(kind):
    name = "n" * 100_000
    if kind == "HTTPRoute":
        text = _route(parentRefs=[{"group": "", "kind": "Service", "name": "a" * 100_000}],
                      rules=[{"backendRefs": [{"name": "b" * 100_000, "port": 80}]}])
        text = text.replace("name: r\n", f"name: {name}\n")
    elif kind == "VirtualService":
        text = ("apiVersion: networking.istio.io/v1\nkind: VirtualService\n"
                f"metadata: {{name: {name}}}\nspec:\n  hosts: [{'h' * 100_000}]\n")
    else:
        text = yaml.safe_dump({**SVC, "metadata": {"name": name}})
    res = load_text(text, "long.yaml")
    assert any(d.severity == "error" and d.path == "metadata.name" and "253" in d.message
               for d in res.diagnostics), res.diagnostics
    for d in res.diagnostics:
        assert len(d.format()) < 10_000, d.format()[:300]
    _normal_still_loads()
