"""Route-test files: parsing (with file, line and field path for every problem)
and the expectations they hold.

Two formats, told apart per YAML document by their top-level key:

* ``tests:`` mirrorsim's own format (docs/route-testing.md);
* ``testCases:`` istio-config-validator's format, run unchanged: each request
  is unfolded into authority x method x uri, and the matched rule's
  ``route`` / ``redirect`` / ``rewrite`` / ``fault`` / ``headers`` / ``delegate``
  are compared as written in the VirtualService (``wantMatch: false`` inverts
  every assertion).
"""

from __future__ import annotations

import difflib
import math
import re
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

from simulator.config.durations import format_duration, parse_duration
from simulator.config.yamlio import InputError, read_text
from simulator.core.explain import Request
from simulator.core.options import Source
from simulator.diagnostics import Diagnostic
from simulator.model.syntax import check_label_key, check_label_value, is_dns1123_label
from simulator.routecheck.decision import Decision, Destination, Mirror, describe_route
from simulator.routecheck.yamlsrc import Doc, no_gc, read_documents

Diff = tuple[str, str, str]  # (field, expected, actual)
NONE_WORDS = ("none",)


# --------------------------------------------------------------------------- results


@dataclass(frozen=True, slots=True)
class Failure:
    field: str
    expected: str
    actual: str
    file: str = ""
    line: int = 0

    def format(self) -> str:
        where = f"  [{self.file}:{self.line}]" if self.file else ""
        return f"{self.field}: expected {self.expected}, actual {self.actual}{where}"

    def as_dict(self) -> dict[str, Any]:
        return {"field": self.field, "expected": self.expected, "actual": self.actual,
                "file": self.file, "line": self.line}


@dataclass(slots=True)
class Check:
    """One expectation: ``compare`` lists the differences (none = it holds)."""

    field: str
    compare: Callable[[Decision], list[Diff]]
    actual: Callable[[Decision], str]
    expected: str
    negate: bool = False
    file: str = ""
    line: int = 0

    def run(self, d: Decision) -> list[Failure]:
        diffs = self.compare(d)
        if not self.negate:
            return [Failure(f, e, a, self.file, self.line) for f, e, a in diffs]
        if diffs:
            return []
        return [Failure(f"not {self.field}", f"anything but {self.expected}", self.actual(d), self.file, self.line)]


@dataclass(slots=True)
class TestCase:
    name: str
    file: str
    line: int
    request: Request
    gateway: str  # "mesh" or "ns/name"
    checks: list[Check] = field(default_factory=list)
    source: str = "mirrorsim"  # the file's format, or "istio-config-validator"
    workload: Source | None = None  # the calling workload (the test's ``source:``), None = the Mesh's

    @property
    def where(self) -> str:
        return f"{self.file}:{self.line}"


# --------------------------------------------------------------------------- parse context


class Ctx:
    def __init__(self, doc: Doc | None, namespace: str = "default") -> None:
        self.doc = doc
        self.namespace = namespace
        self.diagnostics: list[Diagnostic] = []

    @property
    def file(self) -> str:
        return self.doc.file if self.doc else ""

    def line(self, path: str) -> int:
        return self.doc.line_of(path) if self.doc else 0

    def error(self, path: str, message: str, severity: str = "error") -> None:
        self.diagnostics.append(Diagnostic(severity, message, self.file, self.line(path), path))  # type: ignore[arg-type]


def _type_name(v: Any) -> str:
    if v is None:
        return "null"
    return {bool: "boolean", int: "integer", float: "number", str: "string", list: "list",
            dict: "mapping"}.get(type(v), type(v).__name__)


def _camel(key: str) -> str:
    head, *rest = key.split("_")
    return head + "".join(w[:1].upper() + w[1:] for w in rest)


def _mapping(ctx: Ctx, v: Any, path: str, fields: Sequence[str], what: str,
             unknown: str = "error") -> dict[str, Any] | None:
    if not isinstance(v, dict):
        ctx.error(path, f"{path or what}: expected a mapping ({what}), got {_type_name(v)} {v!r}")
        return None
    out: dict[str, Any] = {}
    for key, value in v.items():
        name = key if key in fields else _camel(key)
        if name not in fields:
            close = difflib.get_close_matches(key, fields, n=1)
            hint = f' (did you mean "{close[0]}"?)' if close else ""
            ctx.error(_join(path, key), f'unknown field "{key}" in {what}; valid fields: '
                      f'{", ".join(fields)}{hint}', unknown)
            continue
        out[name] = value
    return out


def _join(path: str, key: str) -> str:
    return f"{path}.{key}" if path else key


def _str(ctx: Ctx, v: Any, path: str, allow_empty: bool = False) -> str | None:
    if isinstance(v, str) and (v or allow_empty):
        return v
    ctx.error(path, f"{path}: expected a {'string' if allow_empty else 'non-empty string'}, "
              f"got {_type_name(v)} {v!r}")
    return None


def _int(ctx: Ctx, v: Any, path: str, lo: int = 0, hi: int | None = None) -> int | None:
    if isinstance(v, bool) or not isinstance(v, int):
        ctx.error(path, f"{path}: expected an integer, got {_type_name(v)} {v!r}")
        return None
    if v < lo or (hi is not None and v > hi):
        ctx.error(path, f"{path}: {v} is out of range ({lo}..{hi if hi is not None else 'max'})")
        return None
    return v


def _number(ctx: Ctx, v: Any, path: str) -> float | None:
    if isinstance(v, dict) and set(v) == {"value"}:  # Istio's Percent {value: n}
        v = v["value"]
        path = f"{path}.value"
    if isinstance(v, bool) or not isinstance(v, int | float):
        ctx.error(path, f"{path}: expected a number, got {_type_name(v)} {v!r}")
        return None
    return float(v)


def _bool(ctx: Ctx, v: Any, path: str) -> bool | None:
    if isinstance(v, bool):
        return v
    ctx.error(path, f"{path}: expected true or false, got {_type_name(v)} {v!r}")
    return None


def _duration(ctx: Ctx, v: Any, path: str) -> float | None | str:
    """Seconds, None for ``none`` / ``0s``, or "bad"."""
    if isinstance(v, str):
        if v.lower() in NONE_WORDS:
            return None
        try:
            secs = parse_duration(v)
        except ValueError:
            pass
        else:
            return secs if secs > 0 else None
    ctx.error(path, f'{path}: expected a duration like "1.5s" or "250ms" (or none), got {_type_name(v)} {v!r}')
    return "bad"


def _is_none(v: Any) -> bool:
    return v is None or (isinstance(v, str) and v.lower() in NONE_WORDS)


def q(v: Any) -> str:
    if v is None:
        return "none"
    if isinstance(v, str):
        return f'"{v}"'
    if isinstance(v, float):
        return f"{v:g}"
    return str(v)


# --------------------------------------------------------------------------- destinations

DEST_FIELDS = ("host", "subset", "port", "cluster")


def _dest_spec(ctx: Ctx, v: Any, path: str) -> dict[str, Any] | None:
    if isinstance(v, str) and v:
        return {"cluster": v} if "|" in v else {"host": v}
    mp = _mapping(ctx, v, path, DEST_FIELDS, "destination")
    if mp is None:
        return None
    return _dest_fields(ctx, mp, path)


def _dest_fields(ctx: Ctx, mp: dict[str, Any], path: str) -> dict[str, Any] | None:
    out: dict[str, Any] = {}
    ok = True
    for k in ("host", "cluster"):
        if k in mp:
            s = _str(ctx, mp[k], _join(path, k))
            ok &= s is not None
            out[k] = s
    if "subset" in mp:
        s = _str(ctx, mp["subset"] if mp["subset"] is not None else "", _join(path, "subset"), allow_empty=True)
        ok &= s is not None
        out["subset"] = s
    if "port" in mp:
        pv = mp["port"]
        if isinstance(pv, dict) and set(pv) == {"number"}:  # Istio PortSelector
            pv = pv["number"]
        p = _int(ctx, pv, _join(path, "port"), 1, 65535)
        ok &= p is not None
        out["port"] = p
    if not out and ok:
        ctx.error(path, f"{path}: set at least one of host, subset, port, cluster")
        return None
    return out if ok else None


def _dest_text(spec: dict[str, Any]) -> str:
    if "cluster" in spec and len(spec) == 1:
        return spec["cluster"]
    return " ".join(f"{k}={spec[k]}" for k in DEST_FIELDS if k in spec)


def _dest_diffs(d: Decision, spec: dict[str, Any], actual: Destination | None, fld: str) -> list[Diff]:
    if actual is None:
        return [(fld, _dest_text(spec), f"none ({d.summary()})")]
    out: list[Diff] = []
    if "cluster" in spec and spec["cluster"] != actual.cluster:
        out.append((f"{fld}.cluster", q(spec["cluster"]), q(actual.cluster)))
    if "host" in spec:
        want = d.resolve(spec["host"])
        if want != actual.host:
            shown = q(spec["host"]) + (f" ({want})" if want != spec["host"] else "")
            out.append((f"{fld}.host", shown, q(actual.host)))
    if "subset" in spec and spec["subset"] != actual.subset:
        out.append((f"{fld}.subset", q(spec["subset"]) if spec["subset"] else "no subset",
                    q(actual.subset) if actual.subset else "no subset"))
    if "port" in spec and spec["port"] != actual.port:
        out.append((f"{fld}.port", q(spec["port"]), q(actual.port)))
    return out


# --------------------------------------------------------------------------- expectations

EXPECT_FIELDS = (
    "destination", "cluster", "split", "mirrors", "mirror", "rewrite", "redirect", "directResponse",
    "status", "fault", "timeout", "retries", "headers", "virtualService", "rule", "virtualHost", "not",
)


def parse_expectations(expect: Any, ctx: Ctx | None = None, path: str = "") -> tuple[list[Check], list[Diagnostic]]:
    """Expectations (a mapping of EXPECT_FIELDS) -> checks; problems as diagnostics."""
    ctx = ctx or Ctx(None)
    checks: list[Check] = []
    _parse_expect_block(ctx, expect, path, checks, negate=False)
    return checks, ctx.diagnostics


def _parse_expect_block(ctx: Ctx, expect: Any, path: str, checks: list[Check], negate: bool) -> None:
    fields = EXPECT_FIELDS if not negate else EXPECT_FIELDS[:-1]
    mp = _mapping(ctx, expect, path, fields, "expectations" if not negate else "negative expectations")
    if mp is None:
        return
    if not mp:
        ctx.error(path, f"{path or 'expect'}: at least one expectation is required; valid: {', '.join(fields)}")
        return
    for key, value in mp.items():
        p = _join(path, key)
        if key == "not":
            _parse_expect_block(ctx, value, p, checks, negate=True)
            continue
        made = _PARSERS[key](ctx, value, p)
        if made is None:
            continue
        compare, actual, expected = made
        checks.append(Check(key, compare, actual, expected, negate, ctx.file, ctx.line(p)))


Made = tuple[Callable[[Decision], list[Diff]], Callable[[Decision], str], str] | None


def _p_destination(ctx: Ctx, v: Any, path: str) -> Made:
    spec = _dest_spec(ctx, v, path)
    if spec is None:
        return None
    return (lambda d: _dest_diffs(d, spec, d.destination, "destination"),
            lambda d: str(d.destination or "none"), _dest_text(spec))


def _p_cluster(ctx: Ctx, v: Any, path: str) -> Made:
    s = _str(ctx, v, path)
    if s is None:
        return None

    def compare(d: Decision) -> list[Diff]:
        if d.cluster == s:
            return []
        return [("cluster", q(s), q(d.cluster) if d.cluster else f"none ({d.summary()})")]

    return compare, lambda d: q(d.cluster), q(s)


def _item_dest(ctx: Ctx, mp: dict[str, Any], path: str) -> dict[str, Any] | None:
    if "destination" in mp:
        if any(k in mp for k in DEST_FIELDS):
            ctx.error(path, f"{path}: set either destination or host/subset/port/cluster, not both")
            return None
        return _dest_spec(ctx, mp["destination"], _join(path, "destination"))
    return _dest_fields(ctx, {k: mp[k] for k in DEST_FIELDS if k in mp}, path)


SPLIT_FIELDS = ("destination", *DEST_FIELDS, "weight", "percent")


def _p_split(ctx: Ctx, v: Any, path: str) -> Made:
    if not isinstance(v, list) or not v:
        ctx.error(path, f"{path}: expected a non-empty list of {{destination, weight}}, got {_type_name(v)} {v!r}")
        return None
    items: list[tuple[dict[str, Any], int | None, float | None]] = []
    for i, it in enumerate(v):
        p = f"{path}[{i}]"
        mp = _mapping(ctx, it, p, SPLIT_FIELDS, "split entry")
        if mp is None:
            continue
        dest = _item_dest(ctx, mp, p)
        weight = _int(ctx, mp["weight"], _join(p, "weight")) if "weight" in mp else None
        percent = _number(ctx, mp["percent"], _join(p, "percent")) if "percent" in mp else None
        if "weight" not in mp and "percent" not in mp:
            ctx.error(p, f"{p}: set weight or percent")
            continue
        if dest is not None:
            items.append((dest, weight, percent))
    if len(items) != len(v):
        return None

    def text(it: tuple[dict[str, Any], int | None, float | None]) -> str:
        dest, w, pc = it
        return _dest_text(dest) + (f" weight {w}" if w is not None else "") + (f" ({pc:g}%)" if pc is not None else "")

    expected = "[" + ", ".join(text(it) for it in items) + "]"

    def actual(d: Decision) -> str:
        return "[" + ", ".join(str(w) for w in d.split) + "]" if d.split else f"none ({d.summary()})"

    def compare(d: Decision) -> list[Diff]:
        act = d.split
        if not act:
            return [("split", expected, actual(d))]
        pairs = _pair(items, act, lambda it, a: not _dest_diffs(d, it[0], a.destination, ""))
        if pairs is None:
            return [("split", expected, actual(d))]
        out: list[Diff] = []
        for i, (it, a) in enumerate(pairs):
            _, w, pc = it
            if w is not None and w != a.weight:
                out.append((f"split[{i}].weight", f"{w} for {_dest_text(it[0])}", str(a.weight)))
            if pc is not None and not math.isclose(pc, a.percent, abs_tol=5e-5):
                out.append((f"split[{i}].percent", f"{pc:g}% for {_dest_text(it[0])}", f"{a.percent:g}%"))
        return out

    return compare, actual, expected


def _pair(expected: list[Any], actual: list[Any], match: Callable[[Any, Any], bool]) -> list[tuple[Any, Any]] | None:
    """Pair each expected item with a distinct actual one (same count), or None."""
    if len(expected) != len(actual):
        return None
    free = list(actual)
    out = []
    for e in expected:
        for a in free:
            if match(e, a):
                free.remove(a)
                out.append((e, a))
                break
        else:
            return None
    return out


MIRROR_FIELDS = ("destination", *DEST_FIELDS, "percentage", "shadowHost", "sampled")


@dataclass(slots=True)
class _MirrorSpec:
    dest: dict[str, Any]
    percentage: float | None = None
    shadow_host: str | None = None
    sampled: bool | None = None

    def text(self) -> str:
        s = _dest_text(self.dest)
        if self.percentage is not None:
            s += f" {self.percentage:g}%"
        if self.shadow_host is not None:
            s += f" Host {self.shadow_host}"
        if self.sampled is not None:
            s += " sampled" if self.sampled else " not sampled"
        return s


def _mirror_spec(ctx: Ctx, v: Any, path: str) -> _MirrorSpec | None:
    if isinstance(v, str):
        dest = _dest_spec(ctx, v, path)
        return _MirrorSpec(dest) if dest is not None else None
    mp = _mapping(ctx, v, path, MIRROR_FIELDS, "mirror")
    if mp is None:
        return None
    dest = _item_dest(ctx, mp, path)
    spec = _MirrorSpec(dest or {})
    ok = dest is not None
    if "percentage" in mp:
        spec.percentage = _number(ctx, mp["percentage"], _join(path, "percentage"))
        ok &= spec.percentage is not None
    if "shadowHost" in mp:
        spec.shadow_host = _str(ctx, mp["shadowHost"], _join(path, "shadowHost"))
        ok &= spec.shadow_host is not None
    if "sampled" in mp:
        spec.sampled = _bool(ctx, mp["sampled"], _join(path, "sampled"))
        ok &= spec.sampled is not None
    return spec if ok else None


def _mirror_diffs(d: Decision, spec: _MirrorSpec, m: Mirror, fld: str) -> list[Diff]:
    out = _dest_diffs(d, spec.dest, m.destination, fld)
    if spec.percentage is not None and not math.isclose(spec.percentage, m.percentage, abs_tol=5e-5):
        out.append((f"{fld}.percentage", f"{spec.percentage:g}%", f"{m.percentage:.6g}%"))
    if spec.shadow_host is not None and spec.shadow_host != m.shadow_host:
        out.append((f"{fld}.shadowHost", q(spec.shadow_host), q(m.shadow_host)))
    if spec.sampled is not None and spec.sampled != m.sampled:
        out.append((f"{fld}.sampled", str(spec.sampled).lower(), str(m.sampled).lower()))
    return out


def _mirrors_text(d: Decision) -> str:
    ms = d.mirrors
    return "[" + ", ".join(str(m) for m in ms) + "]" if ms else "no mirror"


def _p_mirrors(ctx: Ctx, v: Any, path: str) -> Made:
    if _is_none(v):
        v = []
    if not isinstance(v, list):
        ctx.error(path, f"{path}: expected a list of mirrors ([] or none for no mirror), got {_type_name(v)} {v!r}")
        return None
    specs = [_mirror_spec(ctx, it, f"{path}[{i}]") for i, it in enumerate(v)]
    if any(s is None for s in specs):
        return None
    ok_specs = [s for s in specs if s is not None]
    expected = "[" + ", ".join(s.text() for s in ok_specs) + "]" if ok_specs else "no mirror"

    def compare(d: Decision) -> list[Diff]:
        act = d.mirrors
        if not d.forwarded and ok_specs:
            return [("mirrors", expected, f"none ({d.summary()})")]
        pairs = _pair(ok_specs, act, lambda s, m: not _dest_diffs(d, s.dest, m.destination, ""))
        if pairs is None and len(ok_specs) == len(act) == 1:
            return _mirror_diffs(d, ok_specs[0], act[0], "mirrors[0]")
        if pairs is None:
            return [("mirrors", expected, _mirrors_text(d))]
        out: list[Diff] = []
        for i, (s, m) in enumerate(pairs):
            out += _mirror_diffs(d, s, m, f"mirrors[{i}]")
        return out

    return compare, _mirrors_text, expected


def _p_mirror(ctx: Ctx, v: Any, path: str) -> Made:
    spec = _mirror_spec(ctx, v, path)
    if spec is None:
        return None

    def compare(d: Decision) -> list[Diff]:
        candidates = [m for m in d.mirrors if not _dest_diffs(d, spec.dest, m.destination, "")]
        if not candidates:
            return [("mirror", spec.text(), _mirrors_text(d) if d.forwarded else f"none ({d.summary()})")]
        best = min((_mirror_diffs(d, spec, m, "mirror") for m in candidates), key=len)
        return best

    return compare, _mirrors_text, spec.text()


def _p_rewrite(ctx: Ctx, v: Any, path: str) -> Made:
    def actual(d: Decision) -> str:
        if not d.forwarded:
            return f"none ({d.summary()})"
        req = d.explanation.request
        parts = []
        if d.original_path is not None or d.path != req.path:
            parts.append(f"path {req.path} -> {d.path}")
        if d.authority != req.authority:
            parts.append(f"authority {req.authority} -> {d.authority}")
        return ", ".join(parts) or "no rewrite"

    if _is_none(v):
        def compare_none(d: Decision) -> list[Diff]:
            a = actual(d)
            return [] if a == "no rewrite" else [("rewrite", "no rewrite", a)]
        return compare_none, actual, "no rewrite"
    mp = _mapping(ctx, v, path, ("path", "uri", "authority"), "rewrite")
    if mp is None:
        return None
    if "uri" in mp:
        mp.setdefault("path", mp.pop("uri"))
    want: dict[str, str] = {}
    for k, val in mp.items():
        s = _str(ctx, val, _join(path, k))
        if s is None:
            return None
        want[k] = s

    def compare(d: Decision) -> list[Diff]:
        if not d.forwarded:
            return [("rewrite", _kv(want), f"none ({d.summary()})")]
        out: list[Diff] = []
        if "path" in want and want["path"] != d.path:
            out.append(("rewrite.path", q(want["path"]), q(d.path)))
        if "authority" in want and want["authority"] != d.authority:
            out.append(("rewrite.authority", q(want["authority"]), q(d.authority)))
        return out

    return compare, actual, _kv(want)


def _kv(mp: dict[str, Any]) -> str:
    return ", ".join(f"{k} {q(v)}" for k, v in mp.items())


def _p_redirect(ctx: Ctx, v: Any, path: str) -> Made:
    def actual(d: Decision) -> str:
        rd = d.redirect
        return f"{rd['status']} to {q(rd['location'])}" if rd else f"no redirect ({d.summary()})"

    if _is_none(v):
        return (lambda d: [("redirect", "no redirect", actual(d))] if d.redirect else [], actual, "no redirect")
    mp = _mapping(ctx, v, path, ("location", "status", "redirectCode", "uri", "authority", "scheme", "port"),
                  "redirect")
    if mp is None:
        return None
    if "redirectCode" in mp:
        mp.setdefault("status", mp.pop("redirectCode"))
    want: dict[str, Any] = {}
    for k, val in mp.items():
        p = _join(path, k)
        got = _int(ctx, val, p, 1, 65535) if k in ("status", "port") else _str(ctx, val, p)
        if got is None:
            return None
        want[k] = got

    def compare(d: Decision) -> list[Diff]:
        rd = d.redirect
        if rd is None:
            return [("redirect", _kv(want), actual(d))]
        loc = urlsplit(rd["location"])
        got = {"location": rd["location"], "status": rd["status"], "scheme": loc.scheme,
               "authority": loc.netloc, "port": loc.port or (443 if loc.scheme == "https" else 80),
               "uri": rd["location"][len(f"{loc.scheme}://{loc.netloc}"):]}
        return [(f"redirect.{k}", q(w), q(got[k])) for k, w in want.items() if got[k] != w]

    return compare, actual, _kv(want)


def _p_direct(ctx: Ctx, v: Any, path: str) -> Made:
    def actual(d: Decision) -> str:
        dr = d.direct_response
        return f"{dr['status']} body {q(dr['body'])}" if dr else f"no direct response ({d.summary()})"

    mp = _mapping(ctx, v, path, ("status", "body"), "directResponse")
    if mp is None:
        return None
    want: dict[str, Any] = {}
    if "status" in mp:
        want["status"] = _int(ctx, mp["status"], _join(path, "status"), 100, 999)
    if "body" in mp:
        want["body"] = _str(ctx, mp["body"], _join(path, "body"), allow_empty=True)
    if any(w is None for w in want.values()):
        return None

    def compare(d: Decision) -> list[Diff]:
        dr = d.direct_response
        if dr is None:
            return [("directResponse", _kv(want), actual(d))]
        return [(f"directResponse.{k}", q(w), q(dr[k])) for k, w in want.items() if dr[k] != w]

    return compare, actual, _kv(want)


def _p_status(ctx: Ctx, v: Any, path: str) -> Made:
    s = _int(ctx, v, path, 100, 999)
    if s is None:
        return None

    def actual(d: Decision) -> str:
        return f"{d.status} ({d.summary()})" if d.status is not None else f"no local reply ({d.summary()})"

    return (lambda d: [] if d.status == s else [("status", str(s), actual(d))]), actual, str(s)


def _p_fault(ctx: Ctx, v: Any, path: str) -> Made:
    def actual(d: Decision) -> str:
        return _fault_text(d.fault) if d.fault else "no fault"

    if _is_none(v):
        return (lambda d: [("fault", "no fault", actual(d))] if d.fault else [], actual, "no fault")
    mp = _mapping(ctx, v, path, ("abort", "delay"), "fault")
    if mp is None:
        return None
    want: dict[str, dict[str, Any]] = {}
    if "abort" in mp:
        ab = _mapping(ctx, mp["abort"], _join(path, "abort"), ("httpStatus", "grpcStatus", "percentage"), "abort")
        if ab is None:
            return None
        w: dict[str, Any] = {}
        if "httpStatus" in ab:
            w["httpStatus"] = _int(ctx, ab["httpStatus"], _join(path, "abort.httpStatus"), 0, 999)
        if "grpcStatus" in ab:
            w["grpcStatus"] = ab["grpcStatus"]
        if "percentage" in ab:
            w["percentage"] = _number(ctx, ab["percentage"], _join(path, "abort.percentage"))
        want["abort"] = w
    if "delay" in mp:
        dl = _mapping(ctx, mp["delay"], _join(path, "delay"), ("fixedDelay", "percentage"), "delay")
        if dl is None:
            return None
        w = {}
        if "fixedDelay" in dl:
            w["fixedDelay"] = _duration(ctx, dl["fixedDelay"], _join(path, "delay.fixedDelay"))
        if "percentage" in dl:
            w["percentage"] = _number(ctx, dl["percentage"], _join(path, "delay.percentage"))
        want["delay"] = w
    if any(x is None or x == "bad" for w in want.values() for x in w.values()):
        return None

    def compare(d: Decision) -> list[Diff]:
        got = d.fault or {}
        out: list[Diff] = []
        for part, w in want.items():
            g = got.get(part)
            if g is None:
                out.append((f"fault.{part}", _fault_text({part: w}), actual(d)))
                continue
            for k, val in w.items():
                gv = g.get(k)
                same = math.isclose(val, gv, abs_tol=5e-5) if isinstance(val, float) and gv is not None else val == gv
                if not same:
                    shown = format_duration(val) if k == "fixedDelay" else q(val)
                    gshown = format_duration(gv) if k == "fixedDelay" and gv is not None else q(gv)
                    out.append((f"fault.{part}.{k}", shown, gshown))
        return out

    return compare, actual, _fault_text(want)


def _fault_text(f: dict[str, Any]) -> str:
    parts = []
    if "abort" in f:
        a = f["abort"]
        parts.append("abort " + " ".join(f"{k} {format_duration(v) if k == 'fixedDelay' else q(v)}"
                                         for k, v in a.items()))
    if "delay" in f:
        dl = f["delay"]
        parts.append("delay " + " ".join(f"{k} {format_duration(v) if k == 'fixedDelay' else q(v)}"
                                         for k, v in dl.items()))
    return "; ".join(parts)


def _p_timeout(ctx: Ctx, v: Any, path: str) -> Made:
    secs = _duration(ctx, v, path)
    if secs == "bad":
        return None
    assert not isinstance(secs, str)

    def text(s: float | None) -> str:
        return "none" if s is None else format_duration(s)

    def compare(d: Decision) -> list[Diff]:
        if not d.forwarded:
            return [("timeout", text(secs), f"none ({d.summary()})")]
        t = d.timeout
        same = (t is None and secs is None) or (t is not None and secs is not None and math.isclose(t, secs))
        return [] if same else [("timeout", text(secs), text(t))]

    return compare, lambda d: text(d.timeout), text(secs)


def _retry_tokens(s: Any) -> list[str]:
    items = s.split(",") if isinstance(s, str) else [str(x) for x in s]
    return [t.strip() for t in items if t.strip()]


def _retries_text(r: dict[str, Any] | None) -> str:
    if r is None:
        return "no retries"
    parts = [f"{k} {','.join(v) if isinstance(v, list) else (format_duration(v) if k == 'perTryTimeout' else v)}"
             for k, v in r.items() if v is not None]
    return ", ".join(parts)


def _p_retries(ctx: Ctx, v: Any, path: str) -> Made:
    def actual(d: Decision) -> str:
        return _retries_text(d.retries) if d.forwarded else f"none ({d.summary()})"

    if _is_none(v) or v == {"attempts": 0}:
        return (lambda d: [] if d.forwarded and d.retries is None else [("retries", "no retries", actual(d))],
                actual, "no retries")
    mp = _mapping(ctx, v, path, ("attempts", "retryOn", "perTryTimeout"), "retries")
    if mp is None:
        return None
    want: dict[str, Any] = {}
    if "attempts" in mp:
        want["attempts"] = _int(ctx, mp["attempts"], _join(path, "attempts"))
    if "retryOn" in mp:
        ro = mp["retryOn"]
        if not isinstance(ro, str | list):
            ctx.error(_join(path, "retryOn"), f"{path}.retryOn: expected a comma-separated string or a list, "
                      f"got {_type_name(ro)} {ro!r}")
            return None
        want["retryOn"] = _retry_tokens(ro)
    if "perTryTimeout" in mp:
        want["perTryTimeout"] = _duration(ctx, mp["perTryTimeout"], _join(path, "perTryTimeout"))
        if want["perTryTimeout"] == "bad":
            return None
    if want.get("attempts", 1) is None:
        return None

    def compare(d: Decision) -> list[Diff]:
        got = d.retries
        if not d.forwarded or got is None:
            return [("retries", _retries_text(want), actual(d))]
        out: list[Diff] = []
        if "attempts" in want and want["attempts"] != got["attempts"]:
            out.append(("retries.attempts", str(want["attempts"]), str(got["attempts"])))
        if "retryOn" in want and sorted(want["retryOn"]) != sorted(got["retryOn"]):
            out.append(("retries.retryOn", q(",".join(want["retryOn"])), q(",".join(got["retryOn"]))))
        if "perTryTimeout" in want:
            w, g = want["perTryTimeout"], got["perTryTimeout"]
            if not ((w is None and g is None) or (w is not None and g is not None and math.isclose(w, g))):
                out.append(("retries.perTryTimeout", "none" if w is None else format_duration(w),
                            "none" if g is None else format_duration(g)))
        return out

    return compare, actual, _retries_text(want)


def _ops_text(ops: dict[str, Any]) -> str:
    parts = []
    for k in ("set", "add"):
        for n, val in ops.get(k, {}).items():
            parts.append(f"{k} {n}: {val}")
    for n in ops.get("remove", []):
        parts.append(f"remove {n}")
    return "; ".join(parts) or "none"


def _p_headers(ctx: Ctx, v: Any, path: str) -> Made:
    mp = _mapping(ctx, v, path, ("request", "response"), "headers")
    if mp is None:
        return None
    want: dict[str, dict[str, Any] | None] = {}
    for side, ops in mp.items():
        p = _join(path, side)
        if _is_none(ops):
            want[side] = None
            continue
        om = _mapping(ctx, ops, p, ("set", "add", "remove"), "header operations")
        if om is None:
            return None
        w: dict[str, Any] = {}
        for k in ("set", "add"):
            if k in om:
                if not isinstance(om[k], dict):
                    ctx.error(_join(p, k), f"{p}.{k}: expected a mapping of header name to value, "
                              f"got {_type_name(om[k])} {om[k]!r}")
                    return None
                w[k] = {str(n).lower(): str(val) for n, val in om[k].items()}
        if "remove" in om:
            if not isinstance(om["remove"], list):
                ctx.error(_join(p, "remove"), f"{p}.remove: expected a list of header names, "
                          f"got {_type_name(om['remove'])} {om['remove']!r}")
                return None
            w["remove"] = [str(n).lower() for n in om["remove"]]
        want[side] = w

    def got_for(d: Decision, side: str) -> dict[str, Any]:
        return d.request_headers if side == "request" else d.response_headers

    def actual(d: Decision) -> str:
        return "; ".join(f"{side} {_ops_text(got_for(d, side))}" for side in want)

    def compare(d: Decision) -> list[Diff]:
        out: list[Diff] = []
        for side, w in want.items():
            got = got_for(d, side)
            if w is None:
                if got:
                    out.append((f"headers.{side}", "no header operations", _ops_text(got)))
                continue
            for k in ("set", "add"):
                for n, val in w.get(k, {}).items():
                    gv = got.get(k, {}).get(n)
                    if gv != val:
                        out.append((f"headers.{side}.{k}.{n}", q(val), q(gv) if gv is not None else
                                    f"not {'set' if k == 'set' else 'added'} ({_ops_text(got)})"))
            for n in w.get("remove", []):
                if n not in got.get("remove", []):
                    out.append((f"headers.{side}.remove", f"{n} removed", f"not removed ({_ops_text(got)})"))
        return out

    return compare, actual, "; ".join(f"{side} {_ops_text(w) if w else 'none'}" for side, w in want.items())


def _p_virtual_service(ctx: Ctx, v: Any, path: str) -> Made:
    s = _str(ctx, v, path)
    if s is None:
        return None
    want = s if "/" in s else f"{ctx.namespace}/{s}"

    def actual(d: Decision) -> str:
        return q(d.virtual_service) if d.virtual_service else f"none ({d.summary()})"

    return (lambda d: [] if d.virtual_service == want else [("virtualService", q(want), actual(d))]), actual, q(want)


def _p_rule(ctx: Ctx, v: Any, path: str) -> Made:
    s = _str(ctx, v, path)
    if s is None:
        return None
    p = s if s.startswith("spec.") else f"spec.{s}"

    def holds(d: Decision) -> bool:
        r = d.rule
        return bool(d.route is not None and (d.rule_name == s or d.rule_name.split(".")[0] == s or
                                             r == p or (r or "").startswith(p + ".")))

    def actual(d: Decision) -> str:
        return describe_route(d.route)

    return (lambda d: [] if holds(d) else [("rule", q(s), actual(d))]), actual, q(s)


def _p_virtual_host(ctx: Ctx, v: Any, path: str) -> Made:
    s = _str(ctx, v, path)
    if s is None:
        return None
    return (lambda d: [] if d.virtual_host == s else [("virtualHost", q(s), q(d.virtual_host))],
            lambda d: q(d.virtual_host), q(s))


_PARSERS: dict[str, Callable[[Ctx, Any, str], Made]] = {
    "destination": _p_destination, "cluster": _p_cluster, "split": _p_split, "mirrors": _p_mirrors,
    "mirror": _p_mirror, "rewrite": _p_rewrite, "redirect": _p_redirect, "directResponse": _p_direct,
    "status": _p_status, "fault": _p_fault, "timeout": _p_timeout, "retries": _p_retries,
    "headers": _p_headers, "virtualService": _p_virtual_service, "rule": _p_rule,
    "virtualHost": _p_virtual_host,
}


# --------------------------------------------------------------------------- requests

REQUEST_FIELDS = ("url", "authority", "path", "method", "scheme", "headers", "port", "gateway", "randomValue")


def request_from_url(url: str) -> tuple[str, str, str] | None:
    """``http://host:8000/p?q`` -> (scheme, authority, path with query), the path kept as written."""
    m = re.fullmatch(r"(?i)(https?)://([^/?#]+)([^#]*)(#.*)?", url)
    if m is None:
        return None
    path = m.group(3) or "/"
    if path.startswith("?"):
        path = "/" + path
    return m.group(1).lower(), m.group(2), path


def header_values(ctx: Ctx, v: Any, path: str) -> dict[str, str] | None:
    if v is None:
        return {}
    if not isinstance(v, dict):
        ctx.error(path, f"{path}: expected a mapping of header name to value, got {_type_name(v)} {v!r}")
        return None
    out: dict[str, str] = {}
    for name, value in v.items():
        if isinstance(value, list):
            value = ",".join(str(x) for x in value)  # several values of one header, as Envoy joins them
        elif isinstance(value, bool):
            value = str(value).lower()
        elif value is None:
            value = ""
        elif not isinstance(value, str | int | float):
            ctx.error(_join(path, str(name)), f"{path}.{name}: expected a string, got {_type_name(value)}")
            return None
        out[str(name).lower()] = str(value)
    return out


def parse_request(ctx: Ctx, v: Any, path: str) -> tuple[Request, str] | None:
    mp = _mapping(ctx, v, path, REQUEST_FIELDS, "request")
    if mp is None:
        return None
    scheme, authority, req_path = "http", "", "/"
    ok = True
    if "url" in mp:
        u = _str(ctx, mp["url"], _join(path, "url"))
        parsed = request_from_url(u) if u else None
        if u and parsed is None:
            ctx.error(_join(path, "url"), f'{path}.url: expected an absolute http(s) URL like '
                      f'"http://reviews:9080/reviews/1?x=1", got {u!r}')
        if parsed is None:
            ok = False
        else:
            scheme, authority, req_path = parsed
    if "authority" in mp:
        a = _str(ctx, mp["authority"], _join(path, "authority"))
        ok &= a is not None
        authority = a or authority
    if "path" in mp:
        p = _str(ctx, mp["path"], _join(path, "path"))
        if p is not None and not p.startswith("/"):
            ctx.error(_join(path, "path"), f'{path}.path: must start with "/", got {p!r}')
            p = None
        ok &= p is not None
        req_path = p or req_path
    if "scheme" in mp:
        s = mp["scheme"]
        if s not in ("http", "https"):
            ctx.error(_join(path, "scheme"), f"{path}.scheme: expected http or https, got {s!r}")
            ok = False
        else:
            scheme = s
    method = "GET"
    if "method" in mp:
        mth = _str(ctx, mp["method"], _join(path, "method"))
        ok &= mth is not None
        method = mth or method
    headers = header_values(ctx, mp.get("headers"), _join(path, "headers"))
    ok &= headers is not None
    headers = headers or {}
    if "host" in headers:  # Host is :authority
        authority = headers.pop("host")
    if ":authority" in headers:
        authority = headers.pop(":authority")
    port = None
    if "port" in mp:
        port = _int(ctx, mp["port"], _join(path, "port"), 1, 65535)
        ok &= port is not None
    gateway = "mesh"
    if "gateway" in mp:
        g = _str(ctx, mp["gateway"], _join(path, "gateway"))
        ok &= g is not None
        if g:
            gateway = g if g == "mesh" or "/" in g else f"{ctx.namespace}/{g}"
    rv = 0
    if "randomValue" in mp:
        r = _int(ctx, mp["randomValue"], _join(path, "randomValue"), 0, 2**64 - 1)
        ok &= r is not None
        rv = r or 0
    if not authority and ok:
        ctx.error(path, f"{path}: set url, or authority (or a Host header)")
        return None
    if not ok:
        return None
    return Request(method, authority, req_path, headers, scheme, port, rv), gateway


def parse_source(ctx: Ctx, v: Any, path: str) -> Source | None:
    """``source: {labels: {app: productpage}, namespace: default}``: the calling workload."""
    mp = _mapping(ctx, v, path, SOURCE_FIELDS, "source workload")
    if mp is None:
        return None
    labels: dict[str, str] = {}
    raw = mp.get("labels")
    if raw is not None and not isinstance(raw, dict):
        ctx.error(_join(path, "labels"), f"{path}.labels: expected a mapping of label to value like "
                  f"{{app: productpage, version: v1}}, got {_type_name(raw)} {raw!r}")
        return None
    for k, val in (raw or {}).items():
        lp = _join(_join(path, "labels"), str(k))
        if not isinstance(val, str | int | float) or isinstance(val, bool):
            ctx.error(lp, f"{lp}: expected a string label value, got {_type_name(val)} {val!r}")
            return None
        problem = check_label_key(str(k)) or check_label_value(str(val))
        if problem:
            ctx.error(lp, f"{lp}: {problem}; expected labels like {{app: productpage, version: v1}}")
            return None
        labels[str(k)] = str(val)
    ns = ""
    if "namespace" in mp:
        n = _str(ctx, mp["namespace"], _join(path, "namespace"))
        if n is None:
            return None
        if not is_dns1123_label(n):
            ctx.error(_join(path, "namespace"), f"{path}.namespace: {n!r} is not a namespace name "
                      "(a DNS-1123 label like default)")
            return None
        ns = n
    return Source(tuple(sorted(labels.items())), ns)


# --------------------------------------------------------------------------- files

TEST_FIELDS = ("name", "request", "source", "expect")
SOURCE_FIELDS = ("labels", "namespace")
ICV_FIELDS = ("description", "wantMatch", "request", "route", "redirect", "rewrite", "fault", "headers", "delegate")
ICV_REQUEST_FIELDS = ("authority", "method", "uri", "headers")
ICV_ASSERTS = ("route", "redirect", "rewrite", "fault", "headers", "delegate")


@dataclass(slots=True)
class TestFile:
    path: str
    cases: list[TestCase] = field(default_factory=list)
    diagnostics: list[Diagnostic] = field(default_factory=list)


def load_test_file(path: str | Path, namespace: str = "default", rules: Any = None) -> TestFile:
    """Parse one route-test file.  ``rules(route) -> dict | None`` gives the
    matched rule as written (for istio-config-validator assertions)."""
    name = str(path)
    tf = TestFile(name)
    try:
        text = read_text(path)
    except InputError as exc:
        tf.diagnostics.append(Diagnostic("error", f"cannot read test file {name}: {exc.message}", name, exc.line))
        return tf
    return parse_test_text(text, name, namespace, rules)


def parse_test_text(text: str, filename: str, namespace: str = "default", rules: Any = None) -> TestFile:
    with no_gc():
        return _parse_test_text(text, filename, namespace, rules)


def _parse_test_text(text: str, filename: str, namespace: str, rules: Any) -> TestFile:
    tf = TestFile(filename)
    docs, problems = read_documents(text, filename)
    tf.diagnostics.extend(problems)
    if not docs and not problems:
        tf.diagnostics.append(Diagnostic("error", "the test file holds no tests", filename, 0))
    for doc in docs:
        ctx = Ctx(doc, namespace)
        value = doc.value
        if isinstance(value, dict) and "testCases" in value:
            _icv_doc(ctx, value, tf, rules)
        elif isinstance(value, dict) and "tests" in value:
            _native_doc(ctx, value, tf)
        else:
            got = f"keys {', '.join(map(str, value))}" if isinstance(value, dict) else _type_name(value)
            ctx.error("", f"a route-test document needs a top-level tests: list (mirrorsim format) or "
                      f"testCases: list (istio-config-validator format); got {got}")
        tf.diagnostics.extend(ctx.diagnostics)
    return tf


def _native_doc(ctx: Ctx, value: dict[str, Any], tf: TestFile) -> None:
    _mapping(ctx, value, "", ("tests",), "route-test document")
    tests = value["tests"]
    if not isinstance(tests, list):
        ctx.error("tests", f"tests: expected a list of tests, got {_type_name(tests)}")
        return
    for i, t in enumerate(tests):
        p = f"tests[{i}]"
        mp = _mapping(ctx, t, p, TEST_FIELDS, "test")
        if mp is None:
            continue
        before = len(ctx.diagnostics)
        name = mp.get("name")
        if name is not None and not isinstance(name, str | int | float):
            ctx.error(_join(p, "name"), f"{p}.name: expected a string, got {_type_name(name)}")
        if "request" not in mp:
            ctx.error(p, f"{p}: request is required")
        if "expect" not in mp:
            ctx.error(p, f"{p}: expect is required (what the route must do)")
        req = parse_request(ctx, mp["request"], _join(p, "request")) if "request" in mp else None
        workload = parse_source(ctx, mp["source"], _join(p, "source")) if "source" in mp else None
        checks: list[Check] = []
        if "expect" in mp:
            _parse_expect_block(ctx, mp["expect"], _join(p, "expect"), checks, negate=False)
        if req is None or len(ctx.diagnostics) > before:
            continue
        line = ctx.line(p)
        tf.cases.append(TestCase(str(name) if name is not None else f"test at line {line}", ctx.file, line,
                                 req[0], req[1], checks, workload=workload))


def _icv_list(ctx: Ctx, v: Any, path: str) -> list[str] | None:
    if isinstance(v, str):
        v = [v]
    if not isinstance(v, list) or not v or not all(isinstance(x, str) and x for x in v):
        ctx.error(path, f"{path}: expected a non-empty list of strings, got {_type_name(v)} {v!r}")
        return None
    return v


def _icv_doc(ctx: Ctx, value: dict[str, Any], tf: TestFile, rules: Any) -> None:
    _mapping(ctx, value, "", ("testCases",), "istio-config-validator test file", unknown="warning")
    cases = value["testCases"]
    if not isinstance(cases, list):
        ctx.error("testCases", f"testCases: expected a list, got {_type_name(cases)}")
        return
    for i, t in enumerate(cases):
        p = f"testCases[{i}]"
        # istio-config-validator ignores unknown fields unless --strict: warn.
        mp = _mapping(ctx, t, p, ICV_FIELDS, "testCase", unknown="warning")
        if mp is None:
            continue
        errors_before = sum(1 for d in ctx.diagnostics if d.severity == "error")
        want = mp.get("wantMatch", False)
        if not isinstance(want, bool):
            ctx.error(_join(p, "wantMatch"), f"{p}.wantMatch: expected true or false, got {_type_name(want)} {want!r}")
        rq = _mapping(ctx, mp.get("request"), _join(p, "request"), ICV_REQUEST_FIELDS, "request",
                      unknown="warning") if "request" in mp else None
        if "request" not in mp:
            ctx.error(p, f"{p}: request is required")
        authorities = methods = uris = None
        headers: dict[str, str] | None = {}
        if rq is not None:
            for key in ("authority", "method", "uri"):
                if key not in rq:
                    ctx.error(_join(p, "request"), f"{p}.request.{key} is required (a non-empty list)")
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
        checks = [_icv_check(k, mp[k], want, ctx.file, ctx.line(_join(p, k)), rules) for k in asserted]
        for uri in uris:
            path = uri if uri.startswith("/") else "/" + uri
            for authority in authorities:
                for method in methods:
                    tf.cases.append(TestCase(f"{desc} [{method} {authority}{path}]", ctx.file, line,
                                             Request(method, authority, path, dict(headers)), "mesh",
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
    import json

    return "none" if v is None or v == {} or v == [] else json.dumps(v, sort_keys=True, default=str)


def _icv_check(key: str, expected: Any, want_match: bool, file: str, line: int, rules: Any) -> Check:
    exp = normalize(expected)

    def actual_value(d: Decision) -> Any:
        rule = rules(d.route) if rules is not None and d.route is not None else None
        if not isinstance(rule, dict):
            return None
        return normalize(rule.get(key))

    def compare(d: Decision) -> list[Diff]:
        act = actual_value(d)
        same = (act or None) == (exp or None)
        if same == want_match:
            return []
        if want_match:
            return [(key, _icv_text(exp), _icv_text(act) + f" ({d.summary()})")]
        return [(key, f"anything but {_icv_text(exp)} (wantMatch: false)", _icv_text(act))]

    return Check(key, compare, lambda d: _icv_text(actual_value(d)), _icv_text(exp), False, file, line)
