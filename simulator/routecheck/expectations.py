"""Route-test expectations (the ``expect:`` block of a test, or ``RouteOutcome.check``)
-> checks: each field is parsed by its module (checks.py, expect_route.py,
expect_action.py); every problem is reported with its field path."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from simulator.config.schema import Ctx, check_fields, join
from simulator.diagnostics import Diagnostic
from simulator.model.istio import Source
from simulator.routecheck import expect_action as act
from simulator.routecheck import expect_route as rt
from simulator.routecheck.checks import Check, Made

EXPECT_FIELDS = (
    "destination", "cluster", "split", "mirrors", "mirror", "rewrite", "redirect", "directResponse",
    "status", "fault", "timeout", "retries", "headers", "virtualService", "httpRoute", "rule", "virtualHost",
    "not",
)


def parse_expectations(expect: Any, ctx: Ctx | None = None, path: str = "") -> tuple[list[Check], list[Diagnostic]]:
    """Expectations (a mapping of EXPECT_FIELDS) -> checks; problems as diagnostics."""
    ctx = ctx or Ctx(Source())
    checks: list[Check] = []
    parse_expect_block(ctx, expect, path, checks, negate=False)
    return checks, ctx.diagnostics


def parse_expect_block(ctx: Ctx, expect: Any, path: str, checks: list[Check], negate: bool) -> None:
    fields = EXPECT_FIELDS if not negate else EXPECT_FIELDS[:-1]
    mp = check_fields(ctx, expect, path, fields, "expectations" if not negate else "negative expectations")
    if mp is None:
        return
    if not mp:
        ctx.error(path, f"{path or 'expect'}: at least one expectation is required; valid: {', '.join(fields)}")
        return
    for key, value in mp.items():
        p = join(path, key)
        if key == "not":
            parse_expect_block(ctx, value, p, checks, negate=True)
            continue
        made = PARSERS[key](ctx, value, p)
        if made is None:
            continue
        compare, actual, expected = made
        checks.append(Check(key, compare, actual, expected, negate, ctx.file, ctx.line(p)))


PARSERS: dict[str, Callable[[Ctx, Any, str], Made]] = {
    "destination": rt.expect_destination, "cluster": rt.expect_cluster, "split": rt.expect_split,
    "mirrors": rt.expect_mirrors, "mirror": rt.expect_mirror, "rewrite": act.expect_rewrite,
    "redirect": act.expect_redirect, "directResponse": act.expect_direct, "status": act.expect_status,
    "fault": act.expect_fault, "timeout": act.expect_timeout, "retries": act.expect_retries,
    "headers": act.expect_headers, "virtualService": rt.expect_virtual_service,
    "httpRoute": rt.expect_http_route, "rule": rt.expect_rule,
    "virtualHost": rt.expect_virtual_host,
}
