"""Route-test expectations on where a request goes: destination, cluster, split,
mirrors, and which VirtualService, rule and virtual host matched."""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from simulator.config.schema import Ctx, check_bool, check_fields, check_int, check_number, check_string, join, kind_of
from simulator.routecheck.checks import (
    DEST_FIELDS,
    Diff,
    Made,
    dest_diffs,
    dest_spec,
    dest_text,
    is_none,
    item_dest,
    pair,
    q,
)
from simulator.routecheck.render import describe_route

if TYPE_CHECKING:
    from simulator.routecheck.outcome import Mirror, RouteOutcome


def expect_destination(ctx: Ctx, v: Any, path: str) -> Made:
    spec = dest_spec(ctx, v, path)
    if spec is None:
        return None
    return (lambda d: dest_diffs(d, spec, d.destination, "destination"),
            lambda d: str(d.destination or "none"), dest_text(spec))


def expect_cluster(ctx: Ctx, v: Any, path: str) -> Made:
    s = check_string(ctx, v, path)
    if s is None:
        return None

    def compare(d: RouteOutcome) -> list[Diff]:
        if d.cluster == s:
            return []
        return [("cluster", q(s), q(d.cluster) if d.cluster else f"none ({d.summary()})")]

    return compare, lambda d: q(d.cluster), q(s)


SPLIT_FIELDS = ("destination", *DEST_FIELDS, "weight", "percent")


def expect_split(ctx: Ctx, v: Any, path: str) -> Made:
    if not isinstance(v, list) or not v:
        ctx.error(path, f"{path}: expected a non-empty list of {{destination, weight}}, got {kind_of(v)} {v!r}")
        return None
    items: list[tuple[dict[str, Any], int | None, float | None]] = []
    for i, it in enumerate(v):
        p = f"{path}[{i}]"
        mp = check_fields(ctx, it, p, SPLIT_FIELDS, "split entry")
        if mp is None:
            continue
        dest = item_dest(ctx, mp, p)
        weight = check_int(ctx, mp["weight"], join(p, "weight")) if "weight" in mp else None
        percent = check_number(ctx, mp["percent"], join(p, "percent")) if "percent" in mp else None
        if "weight" not in mp and "percent" not in mp:
            ctx.error(p, f"{p}: set weight or percent")
            continue
        if dest is not None:
            items.append((dest, weight, percent))
    if len(items) != len(v):
        return None

    def text(it: tuple[dict[str, Any], int | None, float | None]) -> str:
        dest, w, pc = it
        return dest_text(dest) + (f" weight {w}" if w is not None else "") + (f" ({pc:g}%)" if pc is not None else "")

    expected = "[" + ", ".join(text(it) for it in items) + "]"

    def actual(d: RouteOutcome) -> str:
        return "[" + ", ".join(str(w) for w in d.split) + "]" if d.split else f"none ({d.summary()})"

    def compare(d: RouteOutcome) -> list[Diff]:
        act = d.split
        if not act:
            return [("split", expected, actual(d))]
        pairs = pair(items, act, lambda it, a: not dest_diffs(d, it[0], a.destination, ""))
        if pairs is None:
            return [("split", expected, actual(d))]
        out: list[Diff] = []
        for i, (it, a) in enumerate(pairs):
            _, w, pc = it
            if w is not None and w != a.weight:
                out.append((f"split[{i}].weight", f"{w} for {dest_text(it[0])}", str(a.weight)))
            if pc is not None and not math.isclose(pc, a.percent, abs_tol=5e-5):
                out.append((f"split[{i}].percent", f"{pc:g}% for {dest_text(it[0])}", f"{a.percent:g}%"))
        return out

    return compare, actual, expected


MIRROR_FIELDS = ("destination", *DEST_FIELDS, "percentage", "shadowHost", "sampled")


@dataclass(slots=True)
class _MirrorSpec:
    dest: dict[str, Any]
    percentage: float | None = None
    shadow_host: str | None = None
    sampled: bool | None = None

    def text(self) -> str:
        s = dest_text(self.dest)
        if self.percentage is not None:
            s += f" {self.percentage:g}%"
        if self.shadow_host is not None:
            s += f" Host {self.shadow_host}"
        if self.sampled is not None:
            s += " sampled" if self.sampled else " not sampled"
        return s


def _mirror_spec(ctx: Ctx, v: Any, path: str) -> _MirrorSpec | None:
    if isinstance(v, str):
        dest = dest_spec(ctx, v, path)
        return _MirrorSpec(dest) if dest is not None else None
    mp = check_fields(ctx, v, path, MIRROR_FIELDS, "mirror")
    if mp is None:
        return None
    dest = item_dest(ctx, mp, path)
    spec = _MirrorSpec(dest or {})
    ok = dest is not None
    if "percentage" in mp:
        spec.percentage = check_number(ctx, mp["percentage"], join(path, "percentage"))
        ok &= spec.percentage is not None
    if "shadowHost" in mp:
        spec.shadow_host = check_string(ctx, mp["shadowHost"], join(path, "shadowHost"))
        ok &= spec.shadow_host is not None
    if "sampled" in mp:
        spec.sampled = check_bool(ctx, mp["sampled"], join(path, "sampled"))
        ok &= spec.sampled is not None
    return spec if ok else None


def _mirror_diffs(d: RouteOutcome, spec: _MirrorSpec, m: Mirror, fld: str) -> list[Diff]:
    out = dest_diffs(d, spec.dest, m.destination, fld)
    if spec.percentage is not None and not math.isclose(spec.percentage, m.percentage, abs_tol=5e-5):
        out.append((f"{fld}.percentage", f"{spec.percentage:g}%", f"{m.percentage:.6g}%"))
    if spec.shadow_host is not None and spec.shadow_host != m.shadow_host:
        out.append((f"{fld}.shadowHost", q(spec.shadow_host), q(m.shadow_host)))
    if spec.sampled is not None and spec.sampled != m.sampled:
        out.append((f"{fld}.sampled", str(spec.sampled).lower(), str(m.sampled).lower()))
    return out


def _mirrors_text(d: RouteOutcome) -> str:
    ms = d.mirrors
    return "[" + ", ".join(str(m) for m in ms) + "]" if ms else "no mirror"


def expect_mirrors(ctx: Ctx, v: Any, path: str) -> Made:
    if is_none(v):
        v = []
    if not isinstance(v, list):
        ctx.error(path, f"{path}: expected a list of mirrors ([] or none for no mirror), got {kind_of(v)} {v!r}")
        return None
    specs = [_mirror_spec(ctx, it, f"{path}[{i}]") for i, it in enumerate(v)]
    if any(s is None for s in specs):
        return None
    ok_specs = [s for s in specs if s is not None]
    expected = "[" + ", ".join(s.text() for s in ok_specs) + "]" if ok_specs else "no mirror"

    def compare(d: RouteOutcome) -> list[Diff]:
        act = d.mirrors
        if not d.forwarded and ok_specs:
            return [("mirrors", expected, f"none ({d.summary()})")]
        pairs = pair(ok_specs, act, lambda s, m: not dest_diffs(d, s.dest, m.destination, ""))
        if pairs is None and len(ok_specs) == len(act) == 1:
            return _mirror_diffs(d, ok_specs[0], act[0], "mirrors[0]")
        if pairs is None:
            return [("mirrors", expected, _mirrors_text(d))]
        out: list[Diff] = []
        for i, (s, m) in enumerate(pairs):
            out += _mirror_diffs(d, s, m, f"mirrors[{i}]")
        return out

    return compare, _mirrors_text, expected


def expect_mirror(ctx: Ctx, v: Any, path: str) -> Made:
    spec = _mirror_spec(ctx, v, path)
    if spec is None:
        return None

    def compare(d: RouteOutcome) -> list[Diff]:
        candidates = [m for m in d.mirrors if not dest_diffs(d, spec.dest, m.destination, "")]
        if not candidates:
            return [("mirror", spec.text(), _mirrors_text(d) if d.forwarded else f"none ({d.summary()})")]
        best = min((_mirror_diffs(d, spec, m, "mirror") for m in candidates), key=len)
        return best

    return compare, _mirrors_text, spec.text()


def _expect_resource(field: str, of: Callable[[RouteOutcome], str | None]) -> Callable[[Ctx, Any, str], Made]:
    """``field: [NS/]NAME``: the resource whose rule matched (NAME = in the test's namespace)."""

    def parse(ctx: Ctx, v: Any, path: str) -> Made:
        s = check_string(ctx, v, path)
        if s is None:
            return None
        want = s if "/" in s else f"{ctx.namespace}/{s}"

        def actual(d: RouteOutcome) -> str:
            got = of(d)
            return q(got) if got else f"none ({d.summary()})"

        return (lambda d: [] if of(d) == want else [(field, q(want), actual(d))]), actual, q(want)

    return parse


expect_virtual_service = _expect_resource("virtualService", lambda d: d.virtual_service)
expect_http_route = _expect_resource("httpRoute", lambda d: d.http_route)


def expect_rule(ctx: Ctx, v: Any, path: str) -> Made:
    s = check_string(ctx, v, path)
    if s is None:
        return None
    p = s if s.startswith("spec.") else f"spec.{s}"

    def holds(d: RouteOutcome) -> bool:
        r = d.rule
        return bool(d.route is not None and (d.rule_name == s or d.rule_name.split(".")[0] == s or
                                             r == p or (r or "").startswith(p + ".")))

    def actual(d: RouteOutcome) -> str:
        return describe_route(d.route)

    return (lambda d: [] if holds(d) else [("rule", q(s), actual(d))]), actual, q(s)


def expect_virtual_host(ctx: Ctx, v: Any, path: str) -> Made:
    s = check_string(ctx, v, path)
    if s is None:
        return None
    return (lambda d: [] if d.virtual_host == s else [("virtualHost", q(s), q(d.virtual_host))],
            lambda d: q(d.virtual_host), q(s))
