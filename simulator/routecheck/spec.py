"""Route-test files: parsing (with file, line and field path for every problem)
into test cases.

Two formats, told apart per YAML document by their top-level key:

* ``tests:`` mirrorsim's own format (docs/route-testing.md);
* ``testCases:`` istio-config-validator's format (icv.py).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from simulator.config.schema import Ctx, check_fields, join, kind_of
from simulator.config.yamlio import Document, InputError, no_gc, parse_documents, read_text
from simulator.diagnostics import Diagnostic
from simulator.model.istio import Source as Origin
from simulator.model.names import DEFAULT_NAMESPACE
from simulator.routecheck.cases import TestCase, TestFile
from simulator.routecheck.checks import Check
from simulator.routecheck.expectations import parse_expect_block
from simulator.routecheck.icv import icv_document
from simulator.routecheck.request_spec import parse_request, parse_source

TEST_FIELDS = ("name", "request", "source", "expect")


def load_test_file(path: str | Path, namespace: str = DEFAULT_NAMESPACE, rules: Any = None) -> TestFile:
    """Parse one route-test file.  ``rules(route) -> dict | None`` gives the
    matched rule as written (for istio-config-validator assertions)."""
    name = str(path)
    tf = TestFile(name)
    try:
        text = read_text(path)
    except InputError as exc:
        tf.diagnostics.append(Diagnostic("error", f"cannot read test file {name}: {exc.message}", name, exc.line))
        return tf
    return parse_test_text(text, name, namespace, rules)


def parse_test_text(text: str, filename: str, namespace: str = DEFAULT_NAMESPACE, rules: Any = None) -> TestFile:
    with no_gc():
        return _parse_test_text(text, filename, namespace, rules)


def _parse_test_text(text: str, filename: str, namespace: str, rules: Any) -> TestFile:
    tf = TestFile(filename)
    docs: list[Document] = []
    try:
        for doc in parse_documents(text):
            docs.append(doc)
            tf.diagnostics += [Diagnostic("error", message, filename, line, path)
                               for path, line, message in doc.problems]
    except InputError as exc:
        tf.diagnostics.append(Diagnostic("error", exc.message, filename, exc.line))
    if not docs and not tf.diagnostics:
        tf.diagnostics.append(Diagnostic("error", "the test file holds no tests", filename, 0))
    for doc in docs:
        ctx = Ctx(Origin(filename, doc.line, doc.lines), namespace=namespace)
        value = doc.value
        if isinstance(value, dict) and "testCases" in value:
            icv_document(ctx, value, tf, rules)
        elif isinstance(value, dict) and "tests" in value:
            _native_doc(ctx, value, tf)
        else:
            got = f"keys {', '.join(map(str, value))}" if isinstance(value, dict) else kind_of(value)
            ctx.error("", f"a route-test document needs a top-level tests: list (mirrorsim format) or "
                      f"testCases: list (istio-config-validator format); got {got}")
        tf.diagnostics.extend(ctx.diagnostics)
    return tf


def _native_doc(ctx: Ctx, value: dict[str, Any], tf: TestFile) -> None:
    check_fields(ctx, value, "", ("tests",), "route-test document")
    tests = value["tests"]
    if not isinstance(tests, list):
        ctx.error("tests", f"tests: expected a list of tests, got {kind_of(tests)}")
        return
    for i, t in enumerate(tests):
        p = f"tests[{i}]"
        mp = check_fields(ctx, t, p, TEST_FIELDS, "test")
        if mp is None:
            continue
        before = len(ctx.diagnostics)
        name = mp.get("name")
        if name is not None and not isinstance(name, str | int | float):
            ctx.error(join(p, "name"), f"{p}.name: expected a string, got {kind_of(name)}")
        if "request" not in mp:
            ctx.error(p, f"{p}: request is required")
        if "expect" not in mp:
            ctx.error(p, f"{p}: expect is required (what the route must do)")
        req = parse_request(ctx, mp["request"], join(p, "request")) if "request" in mp else None
        workload = parse_source(ctx, mp["source"], join(p, "source")) if "source" in mp else None
        checks: list[Check] = []
        if "expect" in mp:
            parse_expect_block(ctx, mp["expect"], join(p, "expect"), checks, negate=False)
        if req is None or len(ctx.diagnostics) > before:
            continue
        line = ctx.line(p)
        tf.cases.append(TestCase(str(name) if name is not None else f"test at line {line}", ctx.file, line,
                                 req[0], req[1], checks, workload=workload))
