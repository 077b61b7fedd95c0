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

DEFAULT_CODES = {"error": "IST0106", "warning": "IST0133", "info": "IST0133"}
MAX_TEXT_CHARS = 2000  # a message or path quoting a huge value keeps its start and end


def clip(text: str, limit: int = MAX_TEXT_CHARS) -> str:
    if len(text) <= limit:
        return text
    keep = limit // 2
    return f"{text[:keep]}... [{len(text) - 2 * keep} characters left out] ...{text[-keep:]}"


@dataclass(frozen=True, slots=True)
class Diagnostic:
    severity: Severity
    message: str
    file: str = ""
    line: int = 0
    path: str = ""  # field path inside the resource, e.g. spec.http[0].timeout
    code: str = ""  # Istio analyzer/validation code, e.g. IST0101; "" when none applies
    resource: str = ""  # "VirtualService default/httpbin"

    def __post_init__(self) -> None:
        if max(len(self.message), len(self.path), len(self.resource)) > MAX_TEXT_CHARS:
            object.__setattr__(self, "message", clip(self.message))
            object.__setattr__(self, "path", clip(self.path))
            object.__setattr__(self, "resource", clip(self.resource))

    @property
    def display_code(self) -> str:
        """The code, or the one istioctl analyze uses for schema problems without their
        own: IST0106 SchemaValidationError for errors, IST0133 SchemaWarning otherwise."""
        return self.code or DEFAULT_CODES.get(self.severity, "")

    @property
    def display_message(self) -> str:
        """The message without a leading copy of the field path (shown once, at the end)."""
        msg = self.message
        if self.path and msg.startswith(self.path + ": "):
            msg = msg[len(self.path) + 2:]
        return msg

    def format(self, default_code: bool = True) -> str:
        """``FILE:LINE: error|warning CODE message (at PATH in Kind ns/name)``."""
        where = f"{self.file}:{self.line}" if self.file else "<config>"
        code = self.display_code if default_code else self.code
        at = self.path
        if self.resource:
            at = f"{at} in {self.resource}" if at else self.resource
        return (f"{where}: {self.severity}{' ' + code if code else ''} {self.display_message}"
                + (f" (at {at})" if at else ""))

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
