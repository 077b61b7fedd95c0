"""The schema toolkit: plain YAML values -> model objects, collecting
diagnostics instead of raising.  One ``Ctx`` (where diagnostics go, and the
line of every field path) for every input format: Istio resources here and in
parse.py / rules.py, route-test files in simulator/routecheck/.

An ``Obj`` describes one Istio message type: its YAML field names, each with a
converter and the model attribute it fills.  The same table gives the strict
unknown-field check and the "valid fields" list in its message.  Converters
have the signature ``conv(ctx, value, path) -> value | INVALID``; ``INVALID``
means "already reported, leave the attribute at its default".

Formats parsed by hand (route tests) use the ``check_*`` functions at the end:
they report a problem naming the value's type and the value (``expected an
integer, got string '80'``) and return None.
"""

from __future__ import annotations

import base64
import binascii
import difflib
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from simulator.config.durations import NS_PER_MS, NS_PER_S, parse_duration_ns
from simulator.diagnostics import Diagnostic, Severity
from simulator.model.istio import Source
from simulator.model.names import DEFAULT_NAMESPACE, UINT32_MAX


class _Invalid:
    __slots__ = ()

    def __repr__(self) -> str:
        return "INVALID"


INVALID: Any = _Invalid()

Conv = Callable[["Ctx", Any, str], Any]
INT32_MIN, INT32_MAX = -(2**31), 2**31 - 1


# ------------------------------------------------------------------ context


@dataclass(slots=True)
class Ctx:
    """Where diagnostics go while one resource is parsed and checked."""

    source: Source
    resource: str = ""
    namespace: str = DEFAULT_NAMESPACE
    diagnostics: list[Diagnostic] = field(default_factory=list)

    @property
    def file(self) -> str:
        return self.source.file

    def line(self, path: str) -> int:
        """The line of ``path`` (or of its nearest ancestor; "" is the resource's)."""
        return self.source.line_of(path) if path else self.source.line

    def report(self, severity: Severity, path: str, message: str, code: str = "") -> None:
        self.diagnostics.append(
            Diagnostic(
                severity=severity,
                message=message,
                file=self.source.file,
                line=self.line(path),
                path=path,
                code=code,
                resource=self.resource,
            )
        )

    def error(self, path: str, message: str, code: str = "") -> None:
        self.report("error", path, message, code)

    def warn(self, path: str, message: str, code: str = "") -> None:
        self.report("warning", path, message, code)

    def has(self, path: str) -> bool:
        """True when the YAML had a key at ``path``."""
        return path in self.source.lines


def describe(value: Any) -> str:
    """A value as the user wrote it, for messages: ``5``, ``"5"``, ``true``,
    ``a mapping``, ``a list``."""
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, Mapping):
        return "a mapping"
    if isinstance(value, list | tuple):
        return "a list"
    if isinstance(value, str):
        return f'"{value}"'
    return str(value)


def _type_error(ctx: Ctx, path: str, expected: str, value: Any, hint: str = "") -> Any:
    ctx.error(path, f"{path}: expected {expected}, got {describe(value)}{hint}")
    return INVALID


# ------------------------------------------------------------------ scalar converters


def string(ctx: Ctx, value: Any, path: str) -> Any:
    if isinstance(value, str):
        return value
    hint = ""
    if isinstance(value, bool | int | float):
        kind = {bool: "a boolean", int: "an integer", float: "a number"}[type(value)]
        hint = f' (YAML reads this as {kind}; quote it: "{describe(value)}")'
    return _type_error(ctx, path, "a string", value, hint)


def boolean(ctx: Ctx, value: Any, path: str) -> Any:
    if isinstance(value, bool):
        return value
    return _type_error(ctx, path, "a boolean (true or false)", value)


def _integer(ctx: Ctx, value: Any, path: str, lo: int, hi: int) -> Any:
    if isinstance(value, bool) or not isinstance(value, int):
        hint = ""
        if isinstance(value, str) and value.strip().lstrip("-").isdigit():
            hint = " (remove the quotes)"
        return _type_error(ctx, path, "an integer", value, hint)
    if not lo <= value <= hi:
        ctx.error(path, f"{path}: {value} is out of range [{lo}, {hi}]")
        return INVALID
    return value


def int32(ctx: Ctx, value: Any, path: str) -> Any:
    return _integer(ctx, value, path, INT32_MIN, INT32_MAX)


def uint32(ctx: Ctx, value: Any, path: str) -> Any:
    return _integer(ctx, value, path, 0, UINT32_MAX)


def number(ctx: Ctx, value: Any, path: str) -> Any:
    if isinstance(value, bool) or not isinstance(value, int | float):
        return _type_error(ctx, path, "a number", value)
    return float(value)


def enum(*choices: str) -> Conv:
    """A string restricted to ``choices`` (proto enums)."""

    def conv(ctx: Ctx, value: Any, path: str) -> Any:
        if isinstance(value, str) and value in choices:
            return value
        ctx.error(
            path,
            f"{path}: invalid value {describe(value)}; valid values: {', '.join(choices)}" + suggest(value, choices),
        )
        return INVALID

    return conv


def duration(min_1ms: bool = True, allow_zero: bool = False) -> Conv:
    """A Go duration string -> float seconds.  With ``min_1ms`` apply Istio's
    ``ValidateDuration``: at least 1ms and a whole number of milliseconds."""

    def conv(ctx: Ctx, value: Any, path: str) -> Any:
        if not isinstance(value, str):
            return _type_error(ctx, path, 'a duration string like "1.5s"', value)
        try:
            ns = parse_duration_ns(value)
        except ValueError:
            ctx.error(
                path,
                f'{path}: invalid duration "{value}"; use a number with a unit '
                f'(h, m, s, ms, us, ns), e.g. "1.5s", "100ms", "1m30s"',
            )
            return INVALID
        if min_1ms and not (allow_zero and ns == 0):
            if ns < NS_PER_MS:
                ctx.error(path, f'{path}: duration "{value}" must be at least 1ms')
                return INVALID
            if ns % NS_PER_MS:
                ctx.error(
                    path,
                    f'{path}: duration "{value}" is not a whole number of milliseconds '
                    "(only durations to ms precision are supported)",
                )
                return INVALID
        elif ns < 0:
            ctx.error(path, f'{path}: duration "{value}" must not be negative')
            return INVALID
        return ns / NS_PER_S

    return conv


def base64_bytes(ctx: Ctx, value: Any, path: str) -> Any:
    if not isinstance(value, str):
        return _type_error(ctx, path, "a base64 string", value)
    try:
        return base64.b64decode(value.encode("ascii"), validate=True)
    except (binascii.Error, UnicodeEncodeError, ValueError):
        try:  # protobuf JSON also accepts URL-safe base64 and missing padding
            padded = value + "=" * (-len(value) % 4)
            return base64.urlsafe_b64decode(padded.encode("ascii"))
        except (binascii.Error, UnicodeEncodeError, ValueError):
            ctx.error(path, f"{path}: {describe(value)} is not valid base64")
            return INVALID


def any_value(ctx: Ctx, value: Any, path: str) -> Any:
    return value


# ------------------------------------------------------------------ containers


def list_of(item: Conv) -> Conv:
    """A YAML list; elements that fail to convert are dropped (and reported)."""

    def conv(ctx: Ctx, value: Any, path: str) -> Any:
        if not isinstance(value, list):
            return _type_error(ctx, path, "a list", value)
        out = []
        for i, element in enumerate(value):
            p = f"{path}[{i}]"
            if element is None:
                ctx.error(p, f"{p}: list element may not be null")
                continue
            v = item(ctx, element, p)
            if v is not INVALID:
                out.append(v)
        return tuple(out)

    return conv


def map_of(item: Conv) -> Conv:
    """A YAML mapping with free-form (string) keys -> dict."""

    def conv(ctx: Ctx, value: Any, path: str) -> Any:
        if not isinstance(value, Mapping):
            return _type_error(ctx, path, "a mapping", value)
        out = {}
        for key, element in value.items():
            p = f"{path}.{key}"
            v = item(ctx, element, p)
            if v is not INVALID:
                out[key] = v
        return out

    return conv


string_list = list_of(string)
string_map = map_of(string)


# ------------------------------------------------------------------ objects


@dataclass(frozen=True, slots=True)
class F:
    """One field of an object: YAML name, converter and model attribute.
    ``attr=None`` derives snake_case; ``attr=""`` accepts the field without
    storing it; ``hidden`` accepts it without listing it as a valid field."""

    name: str
    conv: Conv
    attr: str | None = None
    hidden: bool = False

    @property
    def target(self) -> str:
        if self.attr is not None:
            return self.attr
        return "".join("_" + c.lower() if c.isupper() else c for c in self.name)


Check = Callable[[Ctx, Any, str], None]


@dataclass(slots=True)
class Obj:
    """An Istio message type.  Calling it converts a YAML mapping.

    * ``build(values)`` makes the model object from ``{attr: value}``;
      without it the dict of attributes itself is returned; with ``raw`` the
      input mapping is returned unchanged after checking (model keeps a dict).
    * ``required``: YAML names that must be present (``defaults`` fills the
      attribute so the model can still be built).
    * ``oneof``: groups of YAML names of which at most one may be set.
    * ``check(ctx, obj, path)``: semantic rules run on the built object.
    """

    name: str
    fields: list[F]
    build: Callable[..., Any] | None = None
    required: tuple[str, ...] = ()
    defaults: dict[str, Any] = field(default_factory=dict)
    oneof: tuple[tuple[str, ...], ...] = ()
    check: Check | None = None
    raw: bool = False
    by_name: dict[str, tuple[Conv, str]] = field(init=False)
    valid_names: list[str] = field(init=False)

    def __post_init__(self) -> None:
        self.by_name = {f.name: (f.conv, f.target) for f in self.fields}
        self.valid_names = sorted(f.name for f in self.fields if not f.hidden)

    def __call__(self, ctx: Ctx, value: Any, path: str) -> Any:
        if not isinstance(value, Mapping):
            return _type_error(ctx, path, f"an object ({self.name})", value)
        values: dict[str, Any] = {}
        errors_before = len(ctx.diagnostics)
        for key, element in value.items():
            p = f"{path}.{key}" if path else key
            spec = self.by_name.get(key)
            if spec is None:
                self.unknown_field(ctx, key, p)
                continue
            if element is None:  # JSON null: the field is not set
                continue
            conv, target = spec
            converted = conv(ctx, element, p)
            if converted is not INVALID and target:
                values[target] = converted
        self._check_shape(ctx, value, path)
        if self.raw:
            obj: Any = dict(value)
        elif self.build is None:
            obj = values
        else:
            for attr, default in self.defaults.items():
                values.setdefault(attr, default)
            obj = self.build(**values)
        # A raw object keeps the input values, so its check runs only when
        # every field converted cleanly.
        if self.check is not None and not (self.raw and len(ctx.diagnostics) > errors_before):
            self.check(ctx, obj, path)
        return obj

    def unknown_field(self, ctx: Ctx, key: str, path: str) -> None:
        ctx.error(
            path,
            f'unknown field "{key}" in {self.name}; valid fields: {", ".join(self.valid_names)}'
            + suggest(key, self.valid_names),
        )

    def _check_shape(self, ctx: Ctx, value: Mapping[str, Any], path: str) -> None:
        where = f"{path}." if path else ""
        for name in self.required:
            if value.get(name) is None:
                ctx.error(path, f"{where}{name}: required field is missing in {self.name}")
        for group in self.oneof:
            present = [n for n in group if value.get(n) is not None]
            if len(present) > 1:
                ctx.error(
                    f"{where}{present[1]}",
                    f"{self.name} may set only one of {', '.join(group)} (found {' and '.join(present)})",
                )


def suggest(word: Any, choices: list[str] | tuple[str, ...]) -> str:
    if not isinstance(word, str):
        return ""
    close = difflib.get_close_matches(word, list(choices), n=1, cutoff=0.6)
    if not close:
        lowered = {c.lower(): c for c in choices}
        if word.lower() in lowered:
            close = [lowered[word.lower()]]
    return f' (did you mean "{close[0]}"?)' if close else ""


# ------------------------------------------------------------------ plain checks (formats parsed by hand)


def kind_of(value: Any) -> str:
    """The YAML type of a value: ``string``, ``integer``, ``mapping``, ..."""
    if value is None:
        return "null"
    return {bool: "boolean", int: "integer", float: "number", str: "string", list: "list",
            dict: "mapping"}.get(type(value), type(value).__name__)


def join(path: str, key: str) -> str:
    """``path.key`` (``key`` at the top)."""
    return f"{path}.{key}" if path else key


def _camel(key: str) -> str:
    head, *rest = key.split("_")
    return head + "".join(w[:1].upper() + w[1:] for w in rest)


def check_fields(ctx: Ctx, value: Any, path: str, names: Sequence[str], what: str,
                 severity: Severity = "error") -> dict[str, Any] | None:
    """A mapping whose keys are ``names`` (snake_case accepted for camelCase): the
    known entries; an unknown key is reported (at ``severity``) with the valid
    names in their order and a suggestion."""
    if not isinstance(value, dict):
        ctx.error(path, f"{path or what}: expected a mapping ({what}), got {kind_of(value)} {value!r}")
        return None
    out: dict[str, Any] = {}
    for key, element in value.items():
        name = key if key in names else _camel(key)
        if name not in names:
            ctx.report(severity, join(path, key), f'unknown field "{key}" in {what}; valid fields: '
                       f'{", ".join(names)}{suggest(key, tuple(names))}')
            continue
        out[name] = element
    return out


def check_string(ctx: Ctx, value: Any, path: str, allow_empty: bool = False) -> str | None:
    if isinstance(value, str) and (value or allow_empty):
        return value
    ctx.error(path, f"{path}: expected a {'string' if allow_empty else 'non-empty string'}, "
              f"got {kind_of(value)} {value!r}")
    return None


def check_int(ctx: Ctx, value: Any, path: str, lo: int = 0, hi: int | None = None) -> int | None:
    if isinstance(value, bool) or not isinstance(value, int):
        ctx.error(path, f"{path}: expected an integer, got {kind_of(value)} {value!r}")
        return None
    if value < lo or (hi is not None and value > hi):
        ctx.error(path, f"{path}: {value} is out of range ({lo}..{hi if hi is not None else 'max'})")
        return None
    return value


def check_number(ctx: Ctx, value: Any, path: str) -> float | None:
    """A number, or Istio's Percent form ``{value: n}``."""
    if isinstance(value, dict) and set(value) == {"value"}:
        value = value["value"]
        path = f"{path}.value"
    if isinstance(value, bool) or not isinstance(value, int | float):
        ctx.error(path, f"{path}: expected a number, got {kind_of(value)} {value!r}")
        return None
    return float(value)


def check_bool(ctx: Ctx, value: Any, path: str) -> bool | None:
    if isinstance(value, bool):
        return value
    ctx.error(path, f"{path}: expected true or false, got {kind_of(value)} {value!r}")
    return None
