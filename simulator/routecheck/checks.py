"""Route-test expectations: a ``Check`` compares one expected field with a decision
and lists the differences as ``Failure`` s; the helpers every expectation shares
(destinations, values as shown in messages, durations that may be ``none``)."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, TypeAlias

from simulator.config.durations import parse_duration
from simulator.config.schema import Ctx, check_fields, check_int, check_string, join, kind_of

if TYPE_CHECKING:
    from simulator.routecheck.outcome import Destination, RouteOutcome

Diff = tuple[str, str, str]  # (field, expected, actual)
NONE_WORDS = ("none",)


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
    compare: Callable[[RouteOutcome], list[Diff]]
    actual: Callable[[RouteOutcome], str]
    expected: str
    negate: bool = False
    file: str = ""
    line: int = 0

    def run(self, d: RouteOutcome) -> list[Failure]:
        diffs = self.compare(d)
        if not self.negate:
            return [Failure(f, e, a, self.file, self.line) for f, e, a in diffs]
        if diffs:
            return []
        return [Failure(f"not {self.field}", f"anything but {self.expected}", self.actual(d), self.file, self.line)]


def duration_or_none(ctx: Ctx, v: Any, path: str) -> float | None | str:
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
    ctx.error(path, f'{path}: expected a duration like "1.5s" or "250ms" (or none), got {kind_of(v)} {v!r}')
    return "bad"


def is_none(v: Any) -> bool:
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


def dest_spec(ctx: Ctx, v: Any, path: str) -> dict[str, Any] | None:
    if isinstance(v, str) and v:
        return {"cluster": v} if "|" in v else {"host": v}
    mp = check_fields(ctx, v, path, DEST_FIELDS, "destination")
    if mp is None:
        return None
    return dest_fields(ctx, mp, path)


def dest_fields(ctx: Ctx, mp: dict[str, Any], path: str) -> dict[str, Any] | None:
    out: dict[str, Any] = {}
    ok = True
    for k in ("host", "cluster"):
        if k in mp:
            s = check_string(ctx, mp[k], join(path, k))
            ok &= s is not None
            out[k] = s
    if "subset" in mp:
        s = check_string(ctx, mp["subset"] if mp["subset"] is not None else "", join(path, "subset"), allow_empty=True)
        ok &= s is not None
        out["subset"] = s
    if "port" in mp:
        pv = mp["port"]
        if isinstance(pv, dict) and set(pv) == {"number"}:  # Istio PortSelector
            pv = pv["number"]
        p = check_int(ctx, pv, join(path, "port"), 1, 65535)
        ok &= p is not None
        out["port"] = p
    if not out and ok:
        ctx.error(path, f"{path}: set at least one of host, subset, port, cluster")
        return None
    return out if ok else None


def dest_text(spec: dict[str, Any]) -> str:
    if "cluster" in spec and len(spec) == 1:
        return spec["cluster"]
    return " ".join(f"{k}={spec[k]}" for k in DEST_FIELDS if k in spec)


def dest_diffs(d: RouteOutcome, spec: dict[str, Any], actual: Destination | None, fld: str) -> list[Diff]:
    if actual is None:
        return [(fld, dest_text(spec), f"none ({d.summary()})")]
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



# what an expectation parser makes: (compare, actual, expected text), None after a problem
Made: TypeAlias = "tuple[Callable[[RouteOutcome], list[Diff]], Callable[[RouteOutcome], str], str] | None"


def pair(expected: list[Any], actual: list[Any], match: Callable[[Any, Any], bool]) -> list[tuple[Any, Any]] | None:
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


def item_dest(ctx: Ctx, mp: dict[str, Any], path: str) -> dict[str, Any] | None:
    if "destination" in mp:
        if any(k in mp for k in DEST_FIELDS):
            ctx.error(path, f"{path}: set either destination or host/subset/port/cluster, not both")
            return None
        return dest_spec(ctx, mp["destination"], join(path, "destination"))
    return dest_fields(ctx, {k: mp[k] for k in DEST_FIELDS if k in mp}, path)


def kv_text(mp: dict[str, Any]) -> str:
    return ", ".join(f"{k} {q(v)}" for k, v in mp.items())
