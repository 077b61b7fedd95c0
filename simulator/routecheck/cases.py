"""Route tests as parsed: a ``TestCase`` (one request, its gateway and calling
workload, and the checks on its decision) and the ``TestFile`` that holds them."""

from __future__ import annotations

from dataclasses import dataclass, field

from simulator.core.explain import RouteQuery
from simulator.core.options import Workload
from simulator.diagnostics import Diagnostic
from simulator.routecheck.checks import Check


@dataclass(slots=True)
class TestCase:
    name: str
    file: str
    line: int
    request: RouteQuery
    gateway: str  # "mesh" or "ns/name"
    checks: list[Check] = field(default_factory=list)
    source: str = "mirrorsim"  # the file's format, or "istio-config-validator"
    workload: Workload | None = None  # the calling workload (the test's ``source:``), None = the Mesh's

    @property
    def where(self) -> str:
        return f"{self.file}:{self.line}"


@dataclass(slots=True)
class TestFile:
    path: str
    cases: list[TestCase] = field(default_factory=list)
    diagnostics: list[Diagnostic] = field(default_factory=list)
