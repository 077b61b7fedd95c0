"""``mirrorsim run --diff`` flags -> DiffOptions (docs/diff.md).

Rules come from ``--diff-rules FILE`` (simulator/config/diff_rules.py: problems as
FILE:LINE diagnostics) and from flags, which add to the file's; ``--diff-body-cap``
overrides the file's ``bodyCap``."""

from __future__ import annotations

import argparse
import sys

from simulator.config.diff_rules import FIELDS, DiffRulesSpec, read_diff_rules
from simulator.core.response_diff import DEFAULT_BODY_CAP, RuleError, make_rules
from simulator.diagnostics import Diagnostic
from simulator.proxy.diff import (
    DEFAULT_KEEP,
    DEFAULT_MAX_PENDING,
    DEFAULT_MAX_PENDING_BYTES,
    DEFAULT_WAIT,
    DiffOptions,
)


def add_diff_args(p: argparse.ArgumentParser, seconds: object) -> None:
    g = p.add_argument_group("response diff (docs/diff.md)")
    g.add_argument("--diff", action="store_true",
                   help="compare each shadow copy's response with its primary's "
                        "(counters mirrorsim.diff.<cluster>.match|mismatch|skipped, admin /diffs)")
    g.add_argument("--diff-rules", metavar="FILE", default=None,
                   help="YAML ignore rules: ignoreHeaders, ignoreJsonPaths, ignoreRegexes, bodyCap")
    g.add_argument("--diff-ignore-header", action="append", default=[], metavar="NAME",
                   help="a response header not compared (repeatable)")
    g.add_argument("--diff-ignore-json-path", action="append", default=[], metavar="PATH",
                   help="a JSON path left out of JSON bodies, e.g. '$.headers.X-Amzn-Trace-Id' (repeatable)")
    g.add_argument("--diff-ignore-regex", action="append", default=[], metavar="RE2",
                   help="text matching this regex is removed from text bodies before comparing (repeatable)")
    g.add_argument("--diff-body-cap", type=int, default=None, metavar="BYTES",
                   help=f"body bytes kept per response; beyond it bodies are compared by SHA-256 and "
                        f"length (default {DEFAULT_BODY_CAP})")
    g.add_argument("--diff-log", default=None, metavar="PATH", help="append each mismatch as a JSON line")
    g.add_argument("--diff-wait", type=seconds, default=DEFAULT_WAIT, metavar="SECONDS",  # type: ignore[arg-type]
                   help=f"how long the later response may take after the first ended (default {DEFAULT_WAIT})")
    g.add_argument("--diff-max-pending", type=int, default=DEFAULT_MAX_PENDING, metavar="N",
                   help=f"primaries being paired at once before new ones are skipped (default {DEFAULT_MAX_PENDING})")
    g.add_argument("--diff-max-pending-bytes", type=int, default=DEFAULT_MAX_PENDING_BYTES, metavar="N",
                   help="body bytes held by pending comparisons before they are skipped "
                        f"(default {DEFAULT_MAX_PENDING_BYTES})")


def diff_options(args: argparse.Namespace) -> tuple[DiffOptions | None, list[Diagnostic]]:
    """The options of ``--diff`` (None when off) and every problem with the rules."""
    uses = (args.diff_rules or args.diff_ignore_header or args.diff_ignore_json_path
            or args.diff_ignore_regex or args.diff_log or args.diff_body_cap is not None)
    if not args.diff:
        if uses:
            return None, [Diagnostic("error", "the --diff-* options need --diff")]
        return None, []
    spec, problems = read_diff_rules(args.diff_rules) if args.diff_rules else (DiffRulesSpec(), [])
    if any(p.severity == "error" for p in problems):
        return None, problems
    # each entry on its own, so a bad one is reported at its line
    for attr in FIELDS.values():
        for i, value in enumerate(getattr(spec, attr)):
            try:
                make_rules(ignore_headers=[value] if attr == "ignore_headers" else (),
                           json_paths=[value] if attr == "json_paths" else (),
                           regexes=[value] if attr == "regexes" else ())
            except RuleError as exc:
                problems.append(Diagnostic("error", str(exc), spec.source.file, spec.line_of_entry(attr, i)))
    cap = args.diff_body_cap if args.diff_body_cap is not None else spec.body_cap
    try:
        rules = make_rules(ignore_headers=[*spec.ignore_headers, *args.diff_ignore_header],
                           json_paths=[*spec.json_paths, *args.diff_ignore_json_path],
                           regexes=[*spec.regexes, *args.diff_ignore_regex],
                           body_cap=DEFAULT_BODY_CAP if cap is None else cap,
                           default_headers=spec.default_ignored_headers)
    except RuleError as exc:
        if not problems:
            problems.append(Diagnostic("error", str(exc)))
        return None, problems
    if problems:
        return None, problems
    return DiffOptions(rules=rules, log_path=args.diff_log, wait=args.diff_wait,
                       max_pending=args.diff_max_pending, max_pending_bytes=args.diff_max_pending_bytes,
                       keep=DEFAULT_KEEP), []


def report(problems: list[Diagnostic]) -> None:
    for d in problems:
        print(d.format(default_code=False) if d.file else f"mirrorsim: {d.message}", file=sys.stderr)
