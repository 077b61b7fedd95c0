"""istio-config-validator's test format (``testCases:``), run unchanged: each
request is unfolded into authority x method x uri, and the matched rule's
``route`` / ``redirect`` / ``rewrite`` / ``fault`` / ``headers`` / ``delegate``
are compared as written in the VirtualService (``wantMatch: false`` inverts
every assertion)."""

from __future__ import annotations

import json
from typing import TYPE_CHECKING, Any

from simulator.config.durations import parse_duration
from simulator.config.schema import Ctx, check_fields, join, kind_of
from simulator.core.explain import RouteQuery
from simulator.model.names import MESH
from simulator.routecheck.cases import TestCase, TestFile
from simulator.routecheck.checks import Check, Diff
from simulator.routecheck.request_spec import header_values

if TYPE_CHECKING:
    from simulator.routecheck.outcome import RouteOutcome

ICV_FIELDS = ("description", "wantMatch", "request", "route", "redirect", "rewrite", "fault", "headers", "delegate")
ICV_REQUEST_FIELDS = ("authority", "method", "uri", "headers")
ICV_ASSERTS = ("route", "redirect", "rewrite", "fault", "headers", "delegate")


def _icv_list(ctx: Ctx, v: Any, path: str) -> list[str] | None:
    if isinstance(v, str):
        v = [v]
    if not isinstance(v, list) or not v or not all(isinstance(x, str) and x for x in v):
        ctx.error(path, f"{path}: expected a non-empty list of strings, got {kind_of(v)} {v!r}")
        return None
    return v


def icv_document(ctx: Ctx, value: dict[str, Any], tf: TestFile, rules: Any) -> None:
    check_fields(ctx, value, "", ("testCases",), "istio-config-validator test file", severity="warning")
    cases = value["testCases"]
    if not isinstance(cases, list):
        ctx.error("testCases", f"testCases: expected a list, got {kind_of(cases)}")
        return
    for i, t in enumerate(cases):
        p = f"testCases[{i}]"
        # istio-config-validator ignores unknown fields unless --strict: warn.
        mp = check_fields(ctx, t, p, ICV_FIELDS, "testCase", severity="warning")
        if mp is None:
            continue
        errors_before = sum(1 for d in ctx.diagnostics if d.severity == "error")
        want = mp.get("wantMatch", False)
        if not isinstance(want, bool):
            ctx.error(join(p, "wantMatch"), f"{p}.wantMatch: expected true or false, got {kind_of(want)} {want!r}")
        rq = check_fields(ctx, mp.get("request"), join(p, "request"), ICV_REQUEST_FIELDS, "request",
                      severity="warning") if "request" in mp else None
        if "request" not in mp:
            ctx.error(p, f"{p}: request is required")
        authorities = methods = uris = None
        headers: dict[str, str] | None = {}
        if rq is not None:
            for key in ("authority", "method", "uri"):
                if key not in rq:
                    ctx.error(join(p, "request"), f"{p}.request.{key} is required (a non-empty list)")
            authorities = _icv_list(ctx, rq["authority"], f"{p}.request.authority") if "authority" in rq else None
            methods = _icv_list(ctx, rq["method"], f"{p}.request.method") if "method" in rq else None
            uris = _icv_list(ctx, rq["uri"], f"{p}.request.uri") if "uri" in rq else None
            headers = header_values(ctx, rq.get("headers"), f"{p}.request.headers")
        asserted = [k for k in ICV_ASSERTS if k in mp]
        if not asserted:
            ctx.error(p, f"{p}: assert at least one of {', '.join(ICV_ASSERTS)}")
        if sum(1 for d in ctx.diagnostics if d.severity == "error") > errors_before:
            continue
        assert authorities and methods and uris and headers is not None
        line = ctx.line(p)
        desc = str(mp.get("description") or f"testCase at line {line}")
        checks = [_icv_check(k, mp[k], want, ctx.file, ctx.line(join(p, k)), rules) for k in asserted]
        for uri in uris:
            path = uri if uri.startswith("/") else "/" + uri
            for authority in authorities:
                for method in methods:
                    tf.cases.append(TestCase(f"{desc} [{method} {authority}{path}]", ctx.file, line,
                                             RouteQuery(method, authority, path, dict(headers)), MESH,
                                             checks, source="istio-config-validator"))


DURATION_KEYS = frozenset({"fixedDelay", "timeout", "perTryTimeout", "maxAge", "backoff"})


def normalize(v: Any, key: str = "") -> Any:
    """Proto3-style equality for values as written: unset, empty, zero and
    false are the same; numbers compare as floats; durations as seconds."""
    if isinstance(v, dict):
        out = {}
        for k, x in v.items():
            nx = normalize(x, str(k))
            if nx is None or nx is False or nx == {} or nx == [] or nx == "" or (isinstance(nx, float) and nx == 0):
                continue
            out[str(k)] = nx
        return out
    if isinstance(v, list):
        return [normalize(x) for x in v]
    if isinstance(v, bool):
        return v
    if isinstance(v, int | float):
        return float(v)
    if isinstance(v, str) and key in DURATION_KEYS:
        try:
            return parse_duration(v)
        except ValueError:
            return v
    return v


def _icv_text(v: Any) -> str:
    return "none" if v is None or v == {} or v == [] else json.dumps(v, sort_keys=True, default=str)


def _icv_check(key: str, expected: Any, want_match: bool, file: str, line: int, rules: Any) -> Check:
    exp = normalize(expected)

    def actual_value(d: RouteOutcome) -> Any:
        rule = rules(d.route) if rules is not None and d.route is not None else None
        if not isinstance(rule, dict):
            return None
        return normalize(rule.get(key))

    def compare(d: RouteOutcome) -> list[Diff]:
        act = actual_value(d)
        same = (act or None) == (exp or None)
        if same == want_match:
            return []
        if want_match:
            return [(key, _icv_text(exp), _icv_text(act) + f" ({d.summary()})")]
        return [(key, f"anything but {_icv_text(exp)} (wantMatch: false)", _icv_text(act))]

    return Check(key, compare, lambda d: _icv_text(actual_value(d)), _icv_text(exp), False, file, line)
