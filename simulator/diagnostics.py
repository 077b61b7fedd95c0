"""Diagnostics: every problem found in a config, with where it is and how to fix it.

A Diagnostic names the file, the line, the field path inside the resource
(``spec.http[1].route[0].destination.subset``), a severity, an Istio-style code
where one exists (IST0101, ...) and a message that quotes the bad value and,
where it helps, the valid choices.  Loading and validation collect all of them
at once; nothing raises on the first problem.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Literal

Severity = Literal["error", "warning", "info"]


@dataclass(frozen=True, slots=True)
class Diagnostic:
    severity: Severity
    message: str
    file: str = ""
    line: int = 0
    path: str = ""  # field path inside the resource, e.g. spec.http[0].timeout
    code: str = ""  # Istio analyzer/validation code, e.g. IST0101; "" when none applies
    resource: str = ""  # "VirtualService default/httpbin"

    def format(self) -> str:
        """Render as ``FILE:LINE: severity CODE message (at PATH)``."""
        where = f"{self.file}:{self.line}" if self.file else "<config>"
        code = f" {self.code}" if self.code else ""
        res = f" [{self.resource}]" if self.resource else ""
        at = f" (at {self.path})" if self.path else ""
        return f"{where}: {self.severity}{code}{res} {self.message}{at}"

    def as_dict(self) -> dict[str, object]:
        return {
            "severity": self.severity,
            "code": self.code,
            "file": self.file,
            "line": self.line,
            "path": self.path,
            "resource": self.resource,
            "message": self.message,
        }


@dataclass(slots=True)
class Diagnostics:
    """An ordered collector of diagnostics."""

    items: list[Diagnostic] = field(default_factory=list)

    def add(self, d: Diagnostic) -> None:
        self.items.append(d)

    def extend(self, ds: list[Diagnostic] | Diagnostics) -> None:
        self.items.extend(ds.items if isinstance(ds, Diagnostics) else ds)

    @property
    def errors(self) -> list[Diagnostic]:
        return [d for d in self.items if d.severity == "error"]

    @property
    def warnings(self) -> list[Diagnostic]:
        return [d for d in self.items if d.severity != "error"]

    def has_errors(self) -> bool:
        return any(d.severity == "error" for d in self.items)

    def __iter__(self):  # type: ignore[no-untyped-def]
        return iter(self.items)

    def __len__(self) -> int:
        return len(self.items)
