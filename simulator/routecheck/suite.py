"""Run route tests against a loaded mesh: each case's outcome and failures, and route coverage
(the reports are report.py's)."""

from __future__ import annotations

import time
from collections.abc import Iterable
from dataclasses import dataclass, field

from simulator.config.yamlio import no_gc
from simulator.diagnostics import Diagnostic
from simulator.model.names import MESH
from simulator.routecheck.cases import TestCase, TestFile
from simulator.routecheck.checks import Failure
from simulator.routecheck.outcome import RouteOutcome
from simulator.routecheck.spec import load_test_file
from simulator.routecheck.workspace import Mesh, Rule, route_keys


@dataclass(slots=True)
class CaseResult:
    case: TestCase
    decision: RouteOutcome | None
    failures: list[Failure]
    error: str = ""
    seconds: float = 0.0

    @property
    def passed(self) -> bool:
        return not self.failures and not self.error


@dataclass(slots=True)
class RunResult:
    files: list[TestFile]
    results: list[CaseResult]
    rules: list[Rule]
    covered: set[tuple[str, str, str]] = field(default_factory=set)

    @property
    def diagnostics(self) -> list[Diagnostic]:
        return [d for f in self.files for d in f.diagnostics]

    @property
    def file_errors(self) -> list[Diagnostic]:
        return [d for d in self.diagnostics if d.severity == "error"]

    @property
    def failed(self) -> list[CaseResult]:
        return [r for r in self.results if not r.passed]

    @property
    def uncovered(self) -> list[Rule]:
        return [r for r in self.rules if r.key not in self.covered]

    @property
    def coverage(self) -> float:
        if not self.rules:
            return 100.0
        return 100.0 * (len(self.rules) - len(self.uncovered)) / len(self.rules)

    @property
    def ok(self) -> bool:
        return not self.failed and not self.file_errors and bool(self.results)


def load_tests(paths: Iterable[str], mesh: Mesh) -> list[TestFile]:
    return [load_test_file(p, mesh.namespace, mesh.raw_rule) for p in paths]


def run_tests(mesh: Mesh, files: list[TestFile]) -> RunResult:
    with no_gc():
        return _run_tests(mesh, files)


def _run_tests(mesh: Mesh, files: list[TestFile]) -> RunResult:
    rules = mesh.rules()
    result = RunResult(files, [], rules)
    known_gateways = set(mesh.gateways())
    for tf in files:
        for case in tf.cases:
            t0 = time.perf_counter()
            if case.gateway != MESH and case.gateway not in known_gateways:
                known = ", ".join(sorted(known_gateways)) or "none"
                result.results.append(CaseResult(case, None, [], f'no Gateway "{case.gateway}" in the '
                                                 f"configuration (known: {known}, or mesh)"))
                continue
            decision = mesh.decide(case.request, case.gateway, case.workload)
            failures = [f for c in case.checks for f in c.run(decision)]
            if decision.route is not None and decision.route.origin_path:
                result.covered.update(route_keys(decision.route))
            result.results.append(CaseResult(case, decision, failures, seconds=time.perf_counter() - t0))
    return result
