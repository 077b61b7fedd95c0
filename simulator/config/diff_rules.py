"""``--diff-rules FILE``: the ignore rules of ``mirrorsim run --diff`` as YAML (docs/diff.md).

Read with the one YAML reader (yamlio, the loader's line tracking) and checked with the
schema toolkit, so every problem comes back as a Diagnostic with FILE:LINE.  The result
is plain values with their lines; the routing-independent rules themselves are built
from them by simulator/core/response_diff.py (``make_rules``), whose complaints about a
JSON path or a regex are given back at the line of that entry (:func:`line_of_entry`).

    ignoreHeaders: [x-backend, etag]
    ignoreJsonPaths: ["$.headers.X-Amzn-Trace-Id", "$.origin"]
    ignoreRegexes: ['\\d\\d:\\d\\d:\\d\\d']
    bodyCap: 1048576
    defaultIgnoredHeaders: true
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field

from simulator.config import yamlio
from simulator.config.schema import INVALID, Ctx, F, Obj, boolean, string_list, uint32
from simulator.diagnostics import Diagnostic
from simulator.model.istio import Source
from simulator.model.syntax import check_re2

FIELDS = {"ignoreHeaders": "ignore_headers", "ignoreJsonPaths": "json_paths",
          "ignoreRegexes": "regexes"}


@dataclass(slots=True)
class DiffRulesSpec:
    ignore_headers: tuple[str, ...] = ()
    json_paths: tuple[str, ...] = ()
    regexes: tuple[str, ...] = ()
    body_cap: int | None = None
    default_ignored_headers: bool = True
    source: Source = field(default_factory=Source)

    def line_of_entry(self, attr: str, index: int) -> int:
        name = next(k for k, v in FIELDS.items() if v == attr)
        return self.source.line_of(f"{name}[{index}]")


def _check(ctx: Ctx, obj: object, path: str) -> None:
    if not isinstance(obj, dict):
        return
    for i, rx in enumerate(obj.get("regexes", ())):
        reason = check_re2(rx)
        if reason is not None:
            ctx.error(f"ignoreRegexes[{i}]", f"ignoreRegexes[{i}]: invalid regex: {reason}")


SCHEMA = Obj("DiffRules", [
    F("ignoreHeaders", string_list, "ignore_headers"),
    F("ignoreJsonPaths", string_list, "json_paths"),
    F("ignoreRegexes", string_list, "regexes"),
    F("bodyCap", uint32, "body_cap"),
    F("defaultIgnoredHeaders", boolean, "default_ignored_headers"),
], check=_check)


def read_diff_rules(path: str | os.PathLike[str]) -> tuple[DiffRulesSpec, list[Diagnostic]]:
    """The rules in ``path`` (one YAML document; an empty file is no rules)."""
    name = os.fspath(path)
    try:
        docs = list(yamlio.parse_documents(yamlio.read_text(name)))
    except yamlio.InputError as exc:
        return DiffRulesSpec(), [Diagnostic("error", exc.message, name, exc.line)]
    if len(docs) > 1:
        return DiffRulesSpec(), [Diagnostic("error", "a diff rules file holds one YAML document", name,
                                            docs[1].line)]
    if not docs:
        return DiffRulesSpec(source=Source(name, 1)), []
    doc = docs[0]
    source = Source(name, doc.line, doc.lines)
    problems = [Diagnostic("error", msg, name, line, p) for p, line, msg in doc.problems]
    ctx = Ctx(source, resource="diff rules")
    values = SCHEMA(ctx, doc.value, "")
    problems.extend(ctx.diagnostics)
    if values is INVALID or not isinstance(values, dict):
        return DiffRulesSpec(source=source), problems
    spec = DiffRulesSpec(source=source, **values)
    return spec, problems
