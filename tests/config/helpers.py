"""Helpers for the config tests: load inline YAML and find diagnostics."""

from __future__ import annotations

import textwrap

from simulator.config import LoadResult, load_text
from simulator.diagnostics import Diagnostic

MARK = "#<"


def load_yaml(text: str, filename: str = "test.yaml") -> LoadResult:
    return load_text(textwrap.dedent(text), filename)


def marked_line(text: str, mark: str = MARK) -> int:
    """The 1-based line of the (only) line carrying ``#<`` in ``text``, after
    dedent: the line a diagnostic is expected to point at."""
    lines = textwrap.dedent(text).split("\n")
    hits = [i + 1 for i, line in enumerate(lines) if line.rstrip().endswith(mark)]
    assert len(hits) == 1, f"expected one {mark} marker, found {len(hits)}"
    return hits[0]


def find(
    result: LoadResult, *, path: str | None = None, code: str | None = None, severity: str | None = None
) -> list[Diagnostic]:
    return [
        d
        for d in result.diagnostics
        if (path is None or d.path == path)
        and (code is None or d.code == code)
        and (severity is None or d.severity == severity)
    ]


def only(result: LoadResult, **kw: str) -> Diagnostic:
    hits = find(result, **kw)
    assert len(hits) == 1, f"expected exactly one diagnostic for {kw}, got:\n" + "\n".join(
        d.format() for d in result.diagnostics
    )
    return hits[0]
