"""Reports of a route-test run (``mirrorsim check``): text, JSON and JUnit XML."""

from __future__ import annotations

import xml.etree.ElementTree as ET
from typing import Any

from simulator.diagnostics import Diagnostic
from simulator.model.names import MESH
from simulator.routecheck.cases import TestCase
from simulator.routecheck.suite import CaseResult, RunResult

# --------------------------------------------------------------------------- text


def request_line(case: TestCase) -> str:
    r = case.request
    s = f"{r.method} {r.scheme}://{r.authority}{r.path}"
    if r.headers:
        s += "  " + ", ".join(f"{k}: {v}" for k, v in r.headers.items())
    extra = []
    if case.gateway != MESH:
        extra.append(f"gateway {case.gateway}")
    if r.port is not None:
        extra.append(f"port {r.port}")
    if r.random_value:
        extra.append(f"random value {r.random_value}")
    if case.workload is not None:
        extra.append(f"from {case.workload}")
    return s + (f"  ({', '.join(extra)})" if extra else "")


def format_case(res: CaseResult) -> list[str]:
    case = res.case
    if res.passed:
        return [f"PASS {case.where} {case.name}"]
    out = [f"FAIL {case.where} {case.name}", f"  request: {request_line(case)}"]
    if res.error:
        out.append(f"  error: {res.error}")
        return out
    assert res.decision is not None
    out.append(f"  got:     {res.decision.summary()}")
    out += [f"  {f.format()}" for f in res.failures]
    return out


def text_report(res: RunResult, verbose: bool = False, coverage: bool = True) -> str:
    lines: list[str] = [d.format(False) for d in res.diagnostics]
    for r in res.results:
        if verbose or not r.passed:
            lines += format_case(r)
    n = len(res.results)
    nfail = len(res.failed)
    nerr = len(res.file_errors)
    summary = f"{n} test(s): {n - nfail} passed, {nfail} failed ({len(res.files)} file(s))"
    if nerr:
        summary += f"; {nerr} error(s) in test files"
    if n == 0 and not nerr:
        summary = "no tests found"
    lines.append(summary)
    if coverage:
        covered = len(res.rules) - len(res.uncovered)
        lines.append(f"route coverage: {res.coverage:.1f}% ({covered} of {len(res.rules)} rules reached)")
        if res.uncovered:
            lines.append("rules no test reached:")
            lines += [f"  {r}" for r in res.uncovered]
    return "\n".join(lines) + "\n"


# --------------------------------------------------------------------------- JSON


def json_report(res: RunResult) -> dict[str, Any]:
    tests = []
    for r in res.results:
        d = r.decision
        tests.append({
            "name": r.case.name, "file": r.case.file, "line": r.case.line, "format": r.case.source,
            "request": request_line(r.case), "passed": r.passed, "error": r.error or None,
            "result": d.summary() if d else None,
            "decision": d.as_json() if d else None,
            "failures": [f.as_dict() for f in r.failures],
        })
    return {
        "ok": res.ok,
        "summary": {"tests": len(res.results), "passed": len(res.results) - len(res.failed),
                    "failed": len(res.failed), "fileErrors": len(res.file_errors)},
        "diagnostics": [d.as_dict() for d in res.diagnostics],
        "tests": tests,
        "coverage": {
            "percent": round(res.coverage, 2), "rules": len(res.rules),
            "reached": len(res.rules) - len(res.uncovered),
            "uncovered": [{"file": r.file, "line": r.line, "origin": r.origin, "path": r.path, "name": r.name}
                          for r in res.uncovered],
        },
    }


# --------------------------------------------------------------------------- JUnit


def junit_xml(res: RunResult) -> str:
    root = ET.Element("testsuites", name="mirrorsim check")
    totals = {"tests": 0, "failures": 0, "errors": 0}
    by_file: dict[str, list[CaseResult]] = {f.path: [] for f in res.files}
    for r in res.results:
        by_file.setdefault(r.case.file, []).append(r)
    diags_by_file: dict[str, list[Diagnostic]] = {}
    for d in res.file_errors:
        diags_by_file.setdefault(d.file, []).append(d)
    for path, results in by_file.items():
        suite = ET.SubElement(root, "testsuite", name=path)
        counts = {"tests": 0, "failures": 0, "errors": 0}
        seconds = 0.0
        for d in diags_by_file.get(path, []):
            tc = ET.SubElement(suite, "testcase", classname=path, name=f"parse {path}:{d.line}",
                               file=path, line=str(d.line))
            err = ET.SubElement(tc, "error", message=d.format(False), type="TestFileError")
            err.text = d.format(False)
            counts["tests"] += 1
            counts["errors"] += 1
        for r in results:
            seconds += r.seconds
            tc = ET.SubElement(suite, "testcase", classname=path, name=r.case.name, file=r.case.file,
                               line=str(r.case.line), time=f"{r.seconds:.6f}")
            counts["tests"] += 1
            if r.error:
                err = ET.SubElement(tc, "error", message=r.error, type="RouteCheckError")
                err.text = "\n".join(format_case(r))
                counts["errors"] += 1
            elif r.failures:
                msg = "; ".join(f.format() for f in r.failures)
                fail = ET.SubElement(tc, "failure", message=msg, type="RouteCheckFailure")
                fail.text = "\n".join(format_case(r))
                counts["failures"] += 1
        for k, v in counts.items():
            suite.set(k, str(v))
            totals[k] += v
        suite.set("time", f"{seconds:.6f}")
    for k, v in totals.items():
        root.set(k, str(v))
    ET.indent(root)
    return '<?xml version="1.0" encoding="UTF-8"?>\n' + ET.tostring(root, encoding="unicode") + "\n"
