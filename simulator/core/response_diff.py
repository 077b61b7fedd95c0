"""Compare a shadow copy's response with its primary's (``mirrorsim run --diff``).

Pure: no I/O, clock or event loop.  The proxy (simulator/proxy/diff.py) captures both
responses and calls :func:`compare` off the primary's path; this module decides what
differs and says it readably (docs/diff.md).

* status: equal or not;
* headers: every name on either side except the ignored ones (hop-by-hop and
  per-process headers by default: :data:`DEFAULT_IGNORED_HEADERS`), values of a
  repeated name joined with ``,``;
* body: as JSON when either side says ``json`` in its content-type and both parse (key
  order ignored, numbers by value, ``true`` is not ``1``), JSON paths pruned first;
  otherwise as text after the ignore regexes when both are UTF-8, else byte for byte.
  A body longer than the cap was not kept whole: both are compared by SHA-256 and
  length, and the result says so.
"""

from __future__ import annotations

import difflib
import hashlib
import json
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import re2  # type: ignore[import-untyped,unused-ignore]

DEFAULT_BODY_CAP = 1024 * 1024
# Headers that differ between any two processes or hops, never between versions of a service.
DEFAULT_IGNORED_HEADERS = frozenset({
    "connection", "keep-alive", "proxy-connection", "transfer-encoding", "upgrade", "te",
    "trailer", "date", "server", "x-envoy-upstream-service-time", "content-length",
})
MAX_DIFFERENCES = 50  # differing fields listed per comparison
MAX_DIFF_LINES = 200  # lines of the unified body diff
MAX_VALUE_CHARS = 200  # a differing value's text in a Difference


class RuleError(ValueError):
    """An ignore rule that cannot be used (bad JSON path or regex)."""


# ------------------------------------------------------------------ JSON paths


@dataclass(frozen=True, slots=True)
class JsonPath:
    """``$.a.b``, ``$['a b']``, ``$.items[0]``, ``$.items[*].id``, ``$..id`` (any depth).

    Steps are ``("key", name)``, ``("index", n)``, ``("any", "")`` or ``("deep", name)``."""

    text: str
    steps: tuple[tuple[str, Any], ...]


def parse_json_path(text: str) -> JsonPath:
    s = text.strip()
    if not s.startswith("$"):
        raise RuleError(f'JSON path "{text}" must start with "$"')
    steps: list[tuple[str, Any]] = []
    i, n = 1, len(s)
    while i < n:
        c = s[i]
        if s.startswith("..", i):
            j = i + 2
            while j < n and s[j] not in ".[":
                j += 1
            name = s[i + 2:j]
            if not name:
                raise RuleError(f'JSON path "{text}": ".." needs a field name after it')
            steps.append(("deep", name))
            i = j
        elif c == ".":
            j = i + 1
            while j < n and s[j] not in ".[":
                j += 1
            name = s[i + 1:j]
            if not name:
                raise RuleError(f'JSON path "{text}": empty field name at character {i + 1}')
            steps.append(("any", "") if name == "*" else ("key", name))
            i = j
        elif c == "[":
            j = s.find("]", i)
            if j < 0:
                raise RuleError(f'JSON path "{text}": "[" without "]"')
            inner = s[i + 1:j].strip()
            if inner == "*":
                steps.append(("any", ""))
            elif len(inner) >= 2 and inner[0] == inner[-1] and inner[0] in "'\"":
                steps.append(("key", inner[1:-1]))
            elif inner.isdigit():
                steps.append(("index", int(inner)))
            else:
                raise RuleError(f'JSON path "{text}": [{inner}] is not an index, * or a quoted name')
            i = j + 1
        else:
            raise RuleError(f'JSON path "{text}": unexpected "{c}" at character {i + 1}')
    if not steps:
        raise RuleError(f'JSON path "{text}" would ignore the whole body')
    return JsonPath(text, tuple(steps))


def _prune(value: Any, steps: tuple[tuple[str, Any], ...], k: int) -> None:
    """Remove what ``steps[k:]`` selects inside ``value`` (in place): a mapping's keys are
    deleted, a list's elements replaced by None (so later indexes keep their meaning)."""
    kind, arg = steps[k]
    last = k == len(steps) - 1
    if kind == "deep":
        if isinstance(value, dict):
            if arg in value:
                if last:
                    del value[arg]
                else:
                    _prune(value[arg], steps, k + 1)
            for v in list(value.values()):
                _prune(v, steps, k)
        elif isinstance(value, list):
            for v in value:
                _prune(v, steps, k)
        return
    if isinstance(value, dict):
        keys = list(value) if kind == "any" else [arg] if kind == "key" and arg in value else []
        for key in keys:
            if last:
                del value[key]
            else:
                _prune(value[key], steps, k + 1)
    elif isinstance(value, list):
        idx = range(len(value)) if kind == "any" else [arg] if kind == "index" and arg < len(value) else []
        for i in idx:
            if last:
                value[i] = None
            else:
                _prune(value[i], steps, k + 1)


# ------------------------------------------------------------------ rules


@dataclass(frozen=True, slots=True)
class DiffRules:
    """What to leave out of a comparison, and how much body to keep."""

    ignore_headers: frozenset[str] = DEFAULT_IGNORED_HEADERS
    json_paths: tuple[JsonPath, ...] = ()
    regexes: tuple[str, ...] = ()
    body_cap: int = DEFAULT_BODY_CAP
    compiled: tuple[Any, ...] = field(default=(), compare=False, repr=False)


def make_rules(ignore_headers: Sequence[str] = (), json_paths: Sequence[str] = (),
               regexes: Sequence[str] = (), body_cap: int = DEFAULT_BODY_CAP,
               default_headers: bool = True) -> DiffRules:
    """Rules from their text; :class:`RuleError` names the first bad one."""
    if body_cap < 0:
        raise RuleError(f"body cap {body_cap} is negative")
    names = {h.strip().lower() for h in ignore_headers if h.strip()}
    if default_headers:
        names |= DEFAULT_IGNORED_HEADERS
    paths = tuple(parse_json_path(p) for p in json_paths)
    compiled = []
    for rx in regexes:
        try:
            compiled.append(re2.compile(rx))
        except Exception as exc:  # re2.error and the binding's own errors
            raise RuleError(f'regex "{rx}": {exc}') from None
    return DiffRules(frozenset(names), paths, tuple(regexes), body_cap, tuple(compiled))


# ------------------------------------------------------------------ responses and results


@dataclass(slots=True)
class Response:
    """One side as captured: ``body`` holds at most the cap's bytes; ``length`` is the
    whole body's; ``digest`` the whole body's SHA-256 (hex) when it went over the cap.
    ``failure``: the response flag when no response came (``UF``, ``UT``, ``UC``...)."""

    status: int
    headers: list[tuple[str, str]] = field(default_factory=list)
    body: bytes = b""
    length: int = 0
    digest: str = ""
    failure: str = ""

    def sha256(self) -> str:
        return self.digest or hashlib.sha256(self.body).hexdigest()

    def header(self, name: str) -> str:
        return ",".join(v for n, v in self.headers if n == name)


@dataclass(frozen=True, slots=True)
class Difference:
    field: str  # "status", "header x-version", "body", "$.json.version"
    primary: str
    mirror: str

    def as_dict(self) -> dict[str, str]:
        return {"field": self.field, "primary": self.primary, "mirror": self.mirror}


@dataclass(frozen=True, slots=True)
class DiffResult:
    differences: tuple[Difference, ...]
    body_diff: str = ""  # a unified diff of the two bodies, when they differ
    notes: tuple[str, ...] = ()  # how the body was compared when not whole

    @property
    def match(self) -> bool:
        return not self.differences


def _short(s: str) -> str:
    return s if len(s) <= MAX_VALUE_CHARS else s[:MAX_VALUE_CHARS] + f"... ({len(s)} chars)"


def compare(primary: Response, mirror: Response, rules: DiffRules) -> DiffResult:
    """What differs between the two responses under ``rules``."""
    diffs: list[Difference] = []
    notes: list[str] = []
    if mirror.failure and not mirror.headers:
        diffs.append(Difference("status", str(primary.status),
                                f"{mirror.status} (no response: {mirror.failure})"))
        return DiffResult(tuple(diffs))
    if primary.status != mirror.status:
        diffs.append(Difference("status", str(primary.status), str(mirror.status)))
    diffs.extend(_compare_headers(primary, mirror, rules.ignore_headers))
    body_diff = ""
    cap = rules.body_cap
    if primary.length > cap or mirror.length > cap:
        notes.append(f"body over the {cap}-byte cap: compared by SHA-256 and length, ignore rules not applied")
        a, b = primary.sha256(), mirror.sha256()
        if primary.length != mirror.length or a != b:
            diffs.append(Difference("body", f"{primary.length} bytes, sha256 {a}",
                                    f"{mirror.length} bytes, sha256 {b}"))
    else:
        body_diffs, body_diff = _compare_bodies(primary, mirror, rules)
        diffs.extend(body_diffs)
    if primary.failure:
        notes.append(f"primary response ended early ({primary.failure})")
    if mirror.failure:
        notes.append(f"mirror response ended early ({mirror.failure})")
    if len(diffs) > MAX_DIFFERENCES:
        extra = len(diffs) - MAX_DIFFERENCES
        diffs = diffs[:MAX_DIFFERENCES] + [Difference(f"... {extra} more", "", "")]
    return DiffResult(tuple(diffs), body_diff, tuple(notes))


def _joined(headers: list[tuple[str, str]], ignored: frozenset[str]) -> dict[str, str]:
    out: dict[str, str] = {}
    for n, v in headers:
        if n in ignored:
            continue
        out[n] = f"{out[n]},{v}" if n in out else v
    return out


def _compare_headers(p: Response, m: Response, ignored: frozenset[str]) -> list[Difference]:
    a, b = _joined(p.headers, ignored), _joined(m.headers, ignored)
    out = []
    for name in sorted(a.keys() | b.keys()):
        va, vb = a.get(name), b.get(name)
        if va != vb:
            out.append(Difference(f"header {name}", "(absent)" if va is None else _short(va),
                                  "(absent)" if vb is None else _short(vb)))
    return out


def _is_json(r: Response) -> bool:
    return "json" in r.header("content-type").lower()


def _compare_bodies(p: Response, m: Response, rules: DiffRules) -> tuple[list[Difference], str]:
    if _is_json(p) or _is_json(m):
        try:
            a = json.loads(p.body) if p.body else None
            b = json.loads(m.body) if m.body else None
        except (ValueError, RecursionError):
            pass
        else:
            for path in rules.json_paths:
                _prune(a, path.steps, 0)
                _prune(b, path.steps, 0)
            if rules.compiled:
                a, b = _scrub(a, rules.compiled), _scrub(b, rules.compiled)
            diffs: list[Difference] = []
            _compare_json(a, b, "$", diffs)
            if not diffs:
                return [], ""
            return diffs, _unified(_pretty(a), _pretty(b))
    try:
        ta, tb = p.body.decode("utf-8"), m.body.decode("utf-8")
    except UnicodeDecodeError:
        if p.body == m.body:
            return [], ""
        return [_binary_difference(p.body, m.body)], ""
    for rx in rules.compiled:
        ta, tb = rx.sub("", ta), rx.sub("", tb)
    if ta == tb:
        return [], ""
    return ([Difference("body", f"{len(p.body)} bytes of text", f"{len(m.body)} bytes of text")],
            _unified(ta, tb))


def _binary_difference(a: bytes, b: bytes) -> Difference:
    at = next((i for i, (x, y) in enumerate(zip(a, b, strict=False)) if x != y), min(len(a), len(b)))
    return Difference(f"body (binary, first difference at byte {at})",
                      f"{len(a)} bytes, sha256 {hashlib.sha256(a).hexdigest()}",
                      f"{len(b)} bytes, sha256 {hashlib.sha256(b).hexdigest()}")


def _scrub(value: Any, compiled: tuple[Any, ...]) -> Any:
    """The ignore regexes applied to every string in a JSON value."""
    if isinstance(value, str):
        for rx in compiled:
            value = rx.sub("", value)
        return value
    if isinstance(value, dict):
        return {k: _scrub(v, compiled) for k, v in value.items()}
    if isinstance(value, list):
        return [_scrub(v, compiled) for v in value]
    return value


def _kind(v: Any) -> str:
    if v is None:
        return "null"
    if isinstance(v, bool):
        return "boolean"
    if isinstance(v, int | float):
        return "number"
    if isinstance(v, str):
        return "string"
    return "array" if isinstance(v, list) else "object"


def _text(v: Any) -> str:
    return _short(json.dumps(v, sort_keys=True))


def _compare_json(a: Any, b: Any, path: str, out: list[Difference]) -> None:
    if len(out) > MAX_DIFFERENCES:
        return
    ka, kb = _kind(a), _kind(b)
    if ka != kb:
        out.append(Difference(path, _text(a), _text(b)))
    elif ka == "object":
        for key in sorted(a.keys() | b.keys()):
            sub = f"{path}.{key}" if key.replace("_", "a").replace("-", "a").isalnum() else f"{path}[{json.dumps(key)}]"
            if key not in b:
                out.append(Difference(sub, _text(a[key]), "(absent)"))
            elif key not in a:
                out.append(Difference(sub, "(absent)", _text(b[key])))
            else:
                _compare_json(a[key], b[key], sub, out)
    elif ka == "array":
        for i in range(max(len(a), len(b))):
            sub = f"{path}[{i}]"
            if i >= len(b):
                out.append(Difference(sub, _text(a[i]), "(absent)"))
            elif i >= len(a):
                out.append(Difference(sub, "(absent)", _text(b[i])))
            else:
                _compare_json(a[i], b[i], sub, out)
    elif a != b:  # numbers by value: 1 == 1.0
        out.append(Difference(path, _text(a), _text(b)))


def _pretty(v: Any) -> str:
    return json.dumps(v, sort_keys=True, indent=2, ensure_ascii=False) + "\n"


def _unified(a: str, b: str) -> str:
    lines = list(difflib.unified_diff(a.splitlines(keepends=True), b.splitlines(keepends=True),
                                      "primary", "mirror", n=2))
    if len(lines) > MAX_DIFF_LINES:
        lines = lines[:MAX_DIFF_LINES] + [f"... {len(lines) - MAX_DIFF_LINES} more lines\n"]
    return "".join(ln if ln.endswith("\n") else ln + "\n" for ln in lines)


def format_mismatch(rec: Mapping[str, Any]) -> str:
    """One mismatch record (``GET /diffs``, ``--diff-log``) as text."""
    lines = [f"{rec['request']} (host {rec['authority']}, x-request-id {rec['x_request_id']}) "
             f"-> mirror {rec['cluster']}: primary {rec['primary_status']}, mirror {rec['mirror_status']}"]
    for d in rec["differences"]:
        lines.append(f"  {d['field']}: primary {d['primary']} | mirror {d['mirror']}")
    for note in rec.get("notes", ()):
        lines.append(f"  ({note})")
    if rec.get("body_diff"):
        lines.extend("    " + ln for ln in rec["body_diff"].rstrip("\n").split("\n"))
    return "\n".join(lines)
