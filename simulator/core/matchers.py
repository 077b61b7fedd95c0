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

import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

import re2  # type: ignore[import-untyped,unused-ignore]

_RE2_OPTIONS = re2.Options()
_RE2_OPTIONS.log_errors = False  # no absl log lines on stderr for bad user input


def re2_error(pattern: str) -> str | None:
    """Why RE2 (Envoy's and Istio's regex engine) rejects ``pattern``, or None."""
    try:
        re2.compile(pattern, options=_RE2_OPTIONS)
    except Exception as exc:  # re2's error type is not a ValueError subclass
        msg = exc.args[0] if exc.args else exc
        return msg.decode() if isinstance(msg, bytes) else str(msg)
    return None


def compile_regex(pattern: str) -> Any:
    """Compile a pattern RE2 accepts, for matching with RE2 semantics.

    RE2 decides validity.  Matching then uses Python's ``re`` in ASCII mode
    (about 30x faster per call through the bindings) whenever the pattern means
    the same thing there; POSIX classes (``[[:alpha:]]``) and syntax Python
    lacks (``\\pL``, ``\\z``, ``(?U)``, ...) keep the RE2 object.
    Raises ValueError if RE2 rejects the pattern.
    """
    err = re2_error(pattern)
    if err is not None:
        raise ValueError(f"invalid RE2 regex {pattern!r}: {err}")
    if "[:" not in pattern:
        try:
            return re.compile(pattern, re.ASCII)
        except re.error:
            pass
    return re2.compile(pattern, options=_RE2_OPTIONS)


@dataclass(frozen=True, slots=True)
class StringMatcher:
    kind: str  # exact | prefix | regex | present
    value: str = ""
    regex: Any = field(default=None, compare=False, repr=False)

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
            return self.regex.fullmatch(s) is not None
        return True  # present

    def describe(self) -> str:
        return "present" if self.kind == "present" else f"{self.kind} {self.value!r}"


@dataclass(frozen=True, slots=True)
class PathMatcher:
    """Envoy RouteMatch path specifier: prefix / path / safe_regex."""

    kind: str  # prefix | exact | regex
    value: str
    case_sensitive: bool = True
    regex: Any = field(default=None, compare=False, repr=False)

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
        return self.regex.fullmatch(path_no_query) is not None

    def is_catch_all(self) -> bool:
        return (self.kind == "prefix" and self.value == "/") or (
            self.kind == "regex" and self.value == ".*"
        )

    def describe(self) -> str:
        ci = "" if self.case_sensitive else " (ignoring case)"
        return f"uri {self.kind} {self.value!r}{ci}"


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
