"""Request matchers with Envoy's semantics, compiled once.

* Path: ``prefix`` is a plain string prefix (``/static`` matches ``/staticfoo``),
  ``path`` (exact) compares the path without the query string, ``safe_regex``
  must match the *whole* path without the query (RE2 ``FullMatch``).
  ``case_sensitive=False`` (Istio ``ignoreUriCase``) applies to prefix and exact only.
* Headers: exact / prefix / regex (full match) / present, with ``invert_match``
  and ``treat_missing_header_as_empty`` as Istio sets them for ``withoutHeaders``.
  Several values of one header are joined with ``,`` as Envoy does.
* Query parameters: exact / prefix / regex / present on the first value.
"""

from __future__ import annotations

import string
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

import re2  # type: ignore[import-untyped,unused-ignore]

# The C++ binding itself: re2.compile()'s Python wrapper costs 2-3 us more per call.
from re2 import _re2  # type: ignore[import-untyped,unused-ignore]

from simulator.model.syntax import check_re2, check_re2_program

_ANCHOR_BOTH: Any = _re2.RE2.Anchor.ANCHOR_BOTH
_UNANCHORED: Any = _re2.RE2.Anchor.UNANCHORED
_PUNCT = frozenset(string.punctuation)
_META = frozenset("\\.+*?()|[]{}^$")


def _options(captures: bool) -> Any:
    o = re2.Options()  # RE2's defaults, as Envoy's google_re2 engine: UTF-8, case-sensitive
    o.log_errors = False  # no absl log lines on stderr for bad user input
    o.never_capture = not captures  # without groups RE2 can answer from its DFA alone
    return o


_MATCH_OPTIONS = _options(False)
_MEMO_SIZE = 1024  # remembered answers per pattern (then forgotten all at once)
_MEMO_MAX_LEN = 256  # longest input remembered
_CAPTURE_OPTIONS = _options(True)


def _literal(pattern: str) -> str | None:
    """The ASCII string ``pattern`` stands for when it is plain characters and
    escaped punctuation only (``/api/v1\\.json``), else None."""
    out: list[str] = []
    i, n = 0, len(pattern)
    while i < n:
        c = pattern[i]
        if c == "\\":
            if i + 1 >= n or pattern[i + 1] not in _PUNCT:
                return None
            c = pattern[i + 1]
            i += 1
        elif c in _META or not c.isascii():
            return None
        out.append(c)
        i += 1
    return "".join(out)


def _ascii_prefix(a: bytes, b: bytes) -> str:
    n = 0
    for x, y in zip(a, b, strict=False):
        if x != y or x >= 0x80:
            break
        n += 1
    return a[:n].decode("ascii")


def _wire(s: str) -> tuple[bytes, bool]:
    """The bytes RE2 sees: the data plane's strings carry one byte per character
    (decoded as latin-1); any other string (explain, check) is UTF-8."""
    try:
        return s.encode("latin-1"), True
    except UnicodeEncodeError:
        return s.encode("utf-8", "surrogatepass"), False


class Regex:
    """A user-supplied pattern, matched by RE2 in linear time as Envoy's
    ``safe_regex`` (google_re2) is: :meth:`fullmatch` needs the WHOLE string to
    match, :meth:`sub` is ``RE2::GlobalReplace`` (Envoy's ``regex_rewrite``).

    Fast paths that give RE2's answer without calling it: a pattern of plain
    characters is compared as a string, ``LITERAL.*`` as a prefix (ASCII
    remainder without a newline), any other pattern first checks the literal
    prefix every match starts with (from RE2's ``PossibleMatchRange``), then the
    answers RE2 gave for the last (up to 1024) short inputs.
    """

    def __init__(self, pattern: str, captures: bool = False, generated: bool = False) -> None:
        self.pattern = pattern
        reason = check_re2_program(pattern) if generated else check_re2(pattern)
        rx: Any = None
        if reason is None:
            rx = _re2.RE2(pattern.encode("utf-8", "surrogatepass"),
                          _CAPTURE_OPTIONS if captures else _MATCH_OPTIONS)
            if not rx.ok():
                reason = str(rx.error())
        if reason is not None:
            raise ValueError(f"invalid RE2 regex {pattern!r}: {reason}")
        self._rx: Any = rx
        self._groups: int = int(rx.NumberOfCapturingGroups())
        lit = _literal(pattern)
        dotstar = False
        if lit is None and pattern.endswith(".*"):
            head = pattern[:-2]
            lit = _literal(head)  # None for "a\\.*" (any number of dots), "(?s)a.*", "a|.*"
            dotstar = lit is not None
        self._literal: str | None = lit
        self._dotstar: bool = dotstar
        prefix = ""
        ok, lo, hi = rx.PossibleMatchRange(64)
        if ok:
            prefix = _ascii_prefix(bytes(lo), bytes(hi))
        self._prefix: str = prefix
        self._template_src: str | None = None
        # answers for recent short inputs: a call into RE2 costs ~1.5 us, a dict lookup ~0.05
        self._memo: dict[str, bool] = {}
        self._template: list[tuple[int, bytes]] = []

    def __repr__(self) -> str:
        return f"Regex({self.pattern!r})"

    def fullmatch(self, s: str) -> bool:
        lit = self._literal
        if lit is not None:
            if not self._dotstar:
                return s == lit
            if not s.startswith(lit):
                return False
            rest = s[len(lit):]
            if rest.isascii():
                return "\n" not in rest
        elif not s.startswith(self._prefix):
            return False
        memo = self._memo
        hit = memo.get(s)
        if hit is not None:
            return hit
        b, _ = _wire(s)
        span: tuple[int, int] = self._rx.Match(_ANCHOR_BOTH, b, 0, len(b))[0]
        found = span[0] >= 0
        if len(s) <= _MEMO_MAX_LEN:
            if len(memo) >= _MEMO_SIZE:
                memo.clear()
            memo[s] = found
        return found

    def sub(self, substitution: str, s: str) -> str:
        """``RE2::GlobalReplace(s, pattern, substitution)``: every non-overlapping
        match replaced; ``\\0``-``\\9`` are groups and ``\\\\`` a backslash in
        ``substitution``.  A substitution naming a group the pattern lacks
        replaces nothing (RE2 refuses it); an invalid escape ends it there."""
        if substitution is not self._template_src:
            self._template = _parse_rewrite(substitution)
            self._template_src = substitution
        template = self._template
        if any(g > self._groups for g, _ in template):
            return s
        b, latin1 = _wire(s)
        rx = self._rx
        out: list[bytes] = []
        end = len(b)
        p = 0
        lastend = -1
        count = 0
        while p <= end:
            spans: list[tuple[int, int]] = rx.Match(_UNANCHORED, b, p, end)
            m0, m1 = spans[0]
            if m0 < 0:
                break
            if p < m0:
                out.append(b[p:m0])
            if m0 == lastend and m0 == m1:
                # no empty match right after the previous match: copy one character, move on
                step = _utf8_len(b, p)
                out.append(b[p:p + step])
                p += step
                continue
            for g, lit_bytes in template:
                if g < 0:
                    out.append(lit_bytes)
                else:
                    g0, g1 = spans[g]
                    if g0 >= 0:
                        out.append(b[g0:g1])
            p = m1
            lastend = p
            count += 1
        if count == 0:
            return s
        if p < end:
            out.append(b[p:])
        joined = b"".join(out)
        return joined.decode("latin-1") if latin1 else joined.decode("utf-8", "surrogatepass")


def _utf8_len(b: bytes, p: int) -> int:
    """Bytes of the UTF-8 character at ``p`` (1 at an invalid one or past the end)."""
    if p >= len(b):
        return 1
    lead = b[p]
    n = 1 if lead < 0xC0 else 2 if lead < 0xE0 else 3 if lead < 0xF0 else 4 if lead < 0xF5 else 1
    if n > 1:
        try:
            b[p:p + n].decode("utf-8")
        except UnicodeDecodeError:
            return 1
    return n


def _parse_rewrite(substitution: str) -> list[tuple[int, bytes]]:
    """``RE2::Rewrite``'s template as (group, -1 for literal bytes) parts."""
    raw = substitution.encode("utf-8", "surrogatepass")
    parts: list[tuple[int, bytes]] = []
    lit = bytearray()
    i, n = 0, len(raw)
    while i < n:
        c = raw[i]
        if c != 0x5C:  # backslash
            lit.append(c)
            i += 1
            continue
        nxt = raw[i + 1] if i + 1 < n else -1
        if 0x30 <= nxt <= 0x39:
            if lit:
                parts.append((-1, bytes(lit)))
                lit = bytearray()
            parts.append((nxt - 0x30, b""))
        elif nxt == 0x5C:
            lit.append(0x5C)
        else:
            break  # RE2: "invalid rewrite pattern"; what came before stays
        i += 2
    if lit:
        parts.append((-1, bytes(lit)))
    return parts


def compile_regex(pattern: str, captures: bool = False, generated: bool = False) -> Regex:
    """The one way mirrorsim compiles a user-supplied pattern (routes, rewrites,
    explain, check).  Raises ValueError when RE2 rejects it.  ``generated``: a pattern
    istiod builds (from a path prefix), held to Envoy's program size only."""
    return Regex(pattern, captures, generated)


@dataclass(frozen=True, slots=True)
class StringMatcher:
    kind: str  # exact | prefix | regex | present
    value: str = ""
    regex: Regex | None = field(default=None, compare=False, repr=False)

    @staticmethod
    def make(kind: str, value: str = "") -> StringMatcher:
        return StringMatcher(kind, value, compile_regex(value) if kind == "regex" else None)

    def matches(self, s: str) -> bool:
        k = self.kind
        if k == "exact":
            return s == self.value
        if k == "prefix":
            return s.startswith(self.value)
        if k == "regex":
            rx = self.regex
            return rx is not None and rx.fullmatch(s)
        return True  # present

    def describe(self) -> str:
        return "present" if self.kind == "present" else f"{self.kind} {self.value!r}"


@dataclass(frozen=True, slots=True)
class PathMatcher:
    """Envoy RouteMatch path specifier: prefix / path / safe_regex / path_separated_prefix
    (``sep_prefix``: the path is the prefix or continues with ``/`` after it; istiod emits
    it for a Gateway API PathPrefix match)."""

    kind: str  # prefix | exact | regex | sep_prefix
    value: str
    case_sensitive: bool = True
    regex: Regex | None = field(default=None, compare=False, repr=False)

    @staticmethod
    def make(kind: str, value: str, case_sensitive: bool = True) -> PathMatcher:
        if not case_sensitive and kind != "regex":
            value = value.lower()
        return PathMatcher(kind, value, case_sensitive, compile_regex(value) if kind == "regex" else None)

    def matches(self, path_no_query: str) -> bool:
        k = self.kind
        if k == "prefix":
            if self.case_sensitive:
                return path_no_query.startswith(self.value)
            return path_no_query.lower().startswith(self.value)
        if k == "exact":
            if self.case_sensitive:
                return path_no_query == self.value
            return path_no_query.lower() == self.value
        if k == "sep_prefix":
            p = path_no_query if self.case_sensitive else path_no_query.lower()
            n = len(self.value)
            return p.startswith(self.value) and (len(p) == n or p[n] == "/")
        rx = self.regex
        return rx is not None and rx.fullmatch(path_no_query)

    def is_catch_all(self) -> bool:
        return (self.kind == "prefix" and self.value == "/") or (
            self.kind == "regex" and self.value == ".*"
        )

    def describe(self) -> str:
        ci = "" if self.case_sensitive else " (ignoring case)"
        kind = "path-separated prefix" if self.kind == "sep_prefix" else self.kind
        return f"uri {kind} {self.value!r}{ci}"


@dataclass(frozen=True, slots=True)
class HeaderMatcher:
    name: str  # lower-case; pseudo-headers :authority, :method, :scheme
    matcher: StringMatcher
    invert: bool = False
    treat_missing_as_empty: bool = False

    def matches(self, headers: Mapping[str, str | tuple[str, ...]]) -> bool:
        value = headers.get(self.name)
        if value is None:
            if self.matcher.kind == "present":
                return self.invert
            if not self.treat_missing_as_empty:
                return False
            value = ""
        if type(value) is tuple:
            # a repeated header: Envoy 1.40 matches each line, any line will do
            return any(self.matcher.matches(v) for v in value) != self.invert
        return self.matcher.matches(value) != self.invert  # type: ignore[arg-type]

    def describe(self) -> str:
        what = "absent" if self.matcher.kind == "present" and self.invert else self.matcher.describe()
        neg = "not " if self.invert and self.matcher.kind != "present" else ""
        return f"header {self.name} {neg}{what}"


@dataclass(frozen=True, slots=True)
class QueryParameterMatcher:
    name: str
    matcher: StringMatcher

    def matches(self, params: Mapping[str, str]) -> bool:
        value = params.get(self.name)
        if value is None:
            return False
        return self.matcher.matches(value)

    def describe(self) -> str:
        return f"query parameter {self.name} {self.matcher.describe()}"


def parse_query(query: str) -> dict[str, str]:
    """Envoy-style query parsing: ``a=1&b&c=3`` -> first value per key, no decoding."""
    out: dict[str, str] = {}
    if not query:
        return out
    for part in query.split("&"):
        if not part:
            continue
        k, _, v = part.partition("=")
        out.setdefault(k, v)
    return out


def quote_meta(s: str) -> str:
    """Go's regexp.QuoteMeta: ``s`` as a regex that matches it literally."""
    return "".join("\\" + c if c in "\\.+*?()|[]{}^$" else c for c in s)
