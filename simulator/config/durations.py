"""Go / Kubernetes CEL duration strings, as Istio accepts them in its CRDs.

``"1s"``, ``"0.5s"``, ``"100ms"``, ``"1m30s"``, ``"1h"``, ``"1.5s"``, ``"250us"``:
a sequence of decimal numbers each with a unit (``ns``, ``us``/``µs``, ``ms``,
``s``, ``m``, ``h``), optionally signed; ``"0"`` alone is also valid (Go's
``time.ParseDuration``).  Values are computed exactly in integer nanoseconds so
that "whole milliseconds" checks are not fooled by float rounding.
"""

from __future__ import annotations

import re
from fractions import Fraction

_UNITS_NS = {
    "ns": 1,
    "us": 1_000,
    "µs": 1_000,  # U+00B5 micro sign
    "μs": 1_000,  # U+03BC greek mu
    "ms": 1_000_000,
    "s": 1_000_000_000,
    "m": 60 * 1_000_000_000,
    "h": 3600 * 1_000_000_000,
}
_PART = re.compile(r"(\d+(?:\.\d*)?|\.\d+)(ns|us|µs|μs|ms|s|m|h)")
_WHOLE = re.compile(r"[-+]?(?:(?:\d+(?:\.\d*)?|\.\d+)(?:ns|us|µs|μs|ms|s|m|h))+")

NS_PER_MS = 1_000_000
NS_PER_S = 1_000_000_000


def parse_duration_ns(text: str) -> int:
    """Parse a Go duration string into integer nanoseconds (fractions of a
    nanosecond are truncated, as Go does).  Raises ValueError."""
    s = text.strip() if isinstance(text, str) else text
    if not isinstance(s, str) or not s:
        raise ValueError("empty duration")
    if s in ("0", "+0", "-0"):
        return 0
    if not _WHOLE.fullmatch(s):
        raise ValueError(f"invalid duration {text!r}")
    sign = -1 if s[0] == "-" else 1
    total = Fraction(0)
    for number, unit in _PART.findall(s.lstrip("+-")):
        total += Fraction(number) * _UNITS_NS[unit]
    return sign * int(total)


def parse_duration(text: str) -> float:
    """Parse a Go duration string into float seconds.  Raises ValueError."""
    return parse_duration_ns(text) / NS_PER_S


def format_duration(seconds: float) -> str:
    """Render seconds compactly (``1.5s``, ``100ms``) for messages."""
    ns = round(seconds * NS_PER_S)
    if ns % NS_PER_S == 0:
        return f"{ns // NS_PER_S}s"
    if ns % NS_PER_MS == 0:
        return f"{ns // NS_PER_MS}ms"
    return f"{seconds:g}s"
