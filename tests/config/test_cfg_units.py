"""Building blocks: durations, RE2, name checks, the schema tables; and
valid inputs that must not be flagged."""

from __future__ import annotations

import dataclasses
import importlib
import pkgutil
import textwrap

import pytest

from simulator.config import load_text, parse
from simulator.config.durations import parse_duration, parse_duration_ns
from simulator.config.schema import Obj
from simulator.model import istio as m
from simulator.model.syntax import check_re2, check_wildcard_domain, is_dns1123_label

# ---------------------------------------------------------------- durations


@pytest.mark.parametrize(
    ("text", "seconds"),
    [
        ("1s", 1.0), ("0.5s", 0.5), ("100ms", 0.1), ("1m30s", 90.0), ("1h", 3600.0),
        ("1.5s", 1.5), ("250us", 0.00025), ("250µs", 0.00025), ("1h2m3s4ms", 3723.004),
        ("0", 0.0), ("-1s", -1.0), (".5s", 0.5), ("10ns", 1e-8),
    ],
)  # fmt: skip
def test_parse_duration(text: str, seconds: float) -> None:
    assert parse_duration(text) == pytest.approx(seconds)


@pytest.mark.parametrize("text", ["", "1", "1.5", "s", "5sec", "1 s", "1d", "1s2", "--1s", "1e3s"])
def test_parse_duration_rejects(text: str) -> None:
    with pytest.raises(ValueError):
        parse_duration(text)


def test_parse_duration_is_exact_in_nanoseconds() -> None:
    assert parse_duration_ns("1.001s") == 1_001_000_000
    assert parse_duration_ns("0.1s") % 1_000_000 == 0  # no float rounding


# ---------------------------------------------------------------- RE2


@pytest.mark.parametrize(
    "pattern",
    ["(?=a)b", "(?!a)b", "(?<=a)b", "(?<!a)b", r"(a)\1", "(?P<n>a)(?P=n)", "(?>a)", "a++", "a*+",
     "(?x)a b", r"a\Z", "a{1001}", "[", "*", r"\C"],
)  # fmt: skip
def test_re2_rejects_what_python_re_may_accept(pattern: str) -> None:
    assert check_re2(pattern) is not None


@pytest.mark.parametrize("pattern", [r"\d+$", r"^/service/([^/]+)(/.*)$", "(?i)abc", r"\pL+", "(?P<x>a)", ".*"])
def test_re2_accepts(pattern: str) -> None:
    assert check_re2(pattern) is None


def test_re2_reason_is_readable_text() -> None:
    assert check_re2("(?=a)b") == "invalid perl operator: (?="


# ---------------------------------------------------------------- names


def test_dns_names() -> None:
    assert is_dns1123_label("v1") and is_dns1123_label("V1") and not is_dns1123_label("v_1")
    assert not is_dns1123_label("a" * 64)
    assert check_wildcard_domain("*.example.com") is None
    assert check_wildcard_domain("reviews") is None
    assert check_wildcard_domain("*") is None
    assert check_wildcard_domain("a.*.com") is not None
    assert check_wildcard_domain("foo.123") is not None


# ---------------------------------------------------------------- schema tables


def _objs() -> list[Obj]:
    seen: dict[int, Obj] = {}

    def visit(obj: Obj) -> None:
        if id(obj) in seen:
            return
        seen[id(obj)] = obj
        for f in obj.fields:
            if isinstance(f.conv, Obj):
                visit(f.conv)

    modules = [parse] + [importlib.import_module(f"{parse.__name__}.{info.name}")
                         for info in pkgutil.iter_modules(parse.__path__)]
    for module in modules:
        for value in vars(module).values():
            if isinstance(value, Obj):
                visit(value)
    return list(seen.values())


def test_every_stored_field_is_a_model_attribute() -> None:
    """A schema field's target must exist on the dataclass it builds."""
    checked = 0
    for obj in _objs():
        if isinstance(obj.build, type) and dataclasses.is_dataclass(obj.build):
            names = {f.name for f in dataclasses.fields(obj.build)}
            for f in obj.fields:
                if f.target:
                    assert f.target in names, f"{obj.name}.{f.name} -> {f.target}"
                    checked += 1
    assert checked > 60


def test_model_fields_are_all_reachable_from_yaml() -> None:
    """Every model attribute of a dataclass-built object has a YAML field."""
    for obj in _objs():
        if isinstance(obj.build, type) and dataclasses.is_dataclass(obj.build):
            targets = {f.target for f in obj.fields}
            # origin, origin_path, semantics: set on what is translated from Gateway API routes
            generated = {"meta", "src", "origin", "origin_path", "semantics"}
            missing = {f.name for f in dataclasses.fields(obj.build)} - targets - generated
            assert not missing, f"{obj.name}: {missing}"


# ---------------------------------------------------------------- valid inputs stay quiet

VALID = {
    "retry-on-status-codes": """
        - route: [{destination: {host: httpbin}}]
          retries: {attempts: 2, retryOn: "503,5xx,retriable-4xx,gateway-error,cancelled"}
        """,
    "without-headers-star": """
        - match: [{withoutHeaders: {x-debug: {regex: "*"}}}]
          route: [{destination: {host: httpbin}}]
        """,
    "empty-uri-prefix": """
        - match: [{uri: {prefix: ""}}]
          route: [{destination: {host: httpbin}}]
        """,
    "query-exact-empty": """
        - match: [{queryParams: {debug: {exact: ""}}}]
          route: [{destination: {host: httpbin}}]
        """,
    "weights-not-summing-to-100": """
        - route:
          - {destination: {host: httpbin, subset: v1}, weight: 1}
          - {destination: {host: httpbin, subset: v2}, weight: 2}
        """,
    "single-destination-zero-weight": """
        - route: [{destination: {host: httpbin}, weight: 0}]
        """,
    "redirect-default-code": """
        - redirect: {uri: /new}
        """,
    "direct-response-no-body": """
        - directResponse: {status: 503}
        """,
    "authority-rewrite": """
        - route: [{destination: {host: httpbin}}]
          rewrite: {authority: other}
        """,
    "null-fields-are-unset": """
        - route: [{destination: {host: httpbin}}]
          timeout: null
          match:
        """,
}


@pytest.mark.parametrize("http", VALID.values(), ids=VALID.keys())
def test_valid_inputs_have_no_errors_or_webhook_warnings(http: str) -> None:
    text = (
        "apiVersion: networking.istio.io/v1\nkind: VirtualService\nmetadata: {name: a}\n"
        "spec:\n  hosts: [httpbin]\n  http:\n" + textwrap.indent(textwrap.dedent(http).strip("\n"), "  ") + "\n"
    )
    result = load_text(text, "ok.yaml")
    # cross-resource IST0101 (no registry loaded here) is expected; nothing else
    unexpected = [d for d in result.diagnostics if d.code != "IST0101"]
    assert unexpected == [], [d.format() for d in unexpected]


def test_root_and_delegate_virtual_services_are_valid() -> None:
    result = load_text(
        textwrap.dedent(
            """
            apiVersion: networking.istio.io/v1
            kind: VirtualService
            metadata: {name: root}
            spec:
              hosts: [app.example.com]
              gateways: [gw]
              http:
              - match: [{uri: {prefix: /api}}]
                delegate: {name: child}
            ---
            apiVersion: networking.istio.io/v1
            kind: VirtualService
            metadata: {name: child}
            spec:
              http:
              - route: [{destination: {host: api.example.com}}]
            ---
            apiVersion: networking.istio.io/v1
            kind: Gateway
            metadata: {name: gw}
            spec:
              servers:
              - port: {number: 80, name: http, protocol: HTTP}
                hosts: ["*"]
            """
        ),
        "delegate.yaml",
    )
    assert result.ok
    assert {d.code for d in result.diagnostics} == {"IST0101"}  # api.example.com has no ServiceEntry
    root = result.config.virtual_services[0]
    assert root.http[0].delegate == m.Delegate(name="child")


def test_deprecated_allow_origin_becomes_exact_matches() -> None:
    result = load_text(
        "apiVersion: networking.istio.io/v1\nkind: VirtualService\nmetadata: {name: a}\nspec:\n"
        "  hosts: [a]\n  http:\n  - route: [{destination: {host: a}}]\n"
        "    corsPolicy: {allowOrigin: [https://x.example]}\n",
        "cors.yaml",
    )
    cors = result.config.virtual_services[0].http[0].cors_policy
    assert cors is not None and cors.allow_origins == (m.StringMatch("exact", "https://x.example"),)
    (dep,) = [d for d in result.diagnostics if d.code == "IST0002"]
    assert dep.path == "spec.http[0].corsPolicy.allowOrigin" and dep.line == 8


# ---------------------------------------------------------------- robustness


def test_mutated_documents_never_raise() -> None:
    """Replace random values of valid documents with values of the wrong
    shape: loading must report, never raise."""
    import copy
    import random
    from pathlib import Path

    import yaml

    from .test_cfg_load import FULL_VS

    docs = [yaml.safe_load(textwrap.dedent(FULL_VS))]
    docs += list(yaml.safe_load_all((Path(__file__).parent / "data" / "mirroring.yaml").read_text()))
    values: list[object] = [None, 0, -1, 1.5, "x", "", True, [], {}, [1], {"a": 1}, "*", "(?=a)", 70000, [None]]

    def paths(o: object, p: tuple[object, ...] = ()) -> list[tuple[object, ...]]:
        out = [p] if p else []
        items = o.items() if isinstance(o, dict) else enumerate(o) if isinstance(o, list) else []
        for k, v in items:
            out += paths(v, (*p, k))
        return out

    rnd = random.Random(7)
    for _ in range(300):
        doc = copy.deepcopy(rnd.choice(docs))
        for _ in range(rnd.randint(1, 3)):
            candidates = paths(doc)
            if not candidates:
                break
            *parents, last = rnd.choice(candidates)
            target = doc
            for k in parents:
                target = target[k]  # type: ignore[index]
            target[last] = copy.deepcopy(rnd.choice(values))  # type: ignore[index]
        load_text(yaml.safe_dump(doc), "mutated.yaml")
