"""The schema of the small Istio messages the resources share: StringMatch (with Istio's
per-field rules), Percent, PortSelector, Headers, Destination, HTTPRouteDestination,
HTTPMirrorPolicy and HTTPMatchRequest; DUR is Istio's duration (>= 1 ms, whole ms)."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from simulator.config.rules.fields import check_regex
from simulator.config.rules.http_route import check_destination, check_match
from simulator.config.schema import (
    INVALID,
    Ctx,
    F,
    Obj,
    boolean,
    duration,
    int32,
    number,
    string,
    string_list,
    string_map,
    uint32,
)
from simulator.model import istio as m
from simulator.model.syntax import check_header_name

DUR = duration()  # >= 1ms, whole milliseconds (Istio's ValidateDuration)

# ------------------------------------------------------------------ StringMatch

_STRING_MATCH_KINDS = ("exact", "prefix", "regex")
_STRING_MATCH = Obj("StringMatch", [F(k, string) for k in _STRING_MATCH_KINDS])


def string_match(where: str) -> Any:
    """A StringMatch converter.  ``where`` selects Istio's per-field rules:

    * ``headers`` / ``queryParams`` / ``withoutHeaders``: ``{}`` is a presence
      match, and so is ``regex: "*"`` (only ``withoutHeaders`` passes the
      webhook with it: for the others ``*`` is not a valid RE2);
    * elsewhere exactly one of exact / prefix / regex is required;
    * ``uri``: an empty prefix is allowed (others must be non-empty);
    * ``allowOrigins``: a non-empty value is required.
    """

    def conv(ctx: Ctx, value: Any, path: str) -> Any:
        fields = _STRING_MATCH(ctx, value, path)
        if fields is INVALID:
            return INVALID
        if len(fields) > 1:
            # _STRING_MATCH has no oneof, so that the error is reported here once
            ctx.error(
                f"{path}.{list(fields)[1]}",
                f"{path}: StringMatch may set only one of exact, prefix, regex (found {' and '.join(fields)})",
            )
            return INVALID
        if not fields:
            if where in ("headers", "withoutHeaders", "queryParams"):
                return m.StringMatch("present")
            if where == "allowOrigins":
                ctx.error(path, f"{path}: '' is not a valid match type for CORS allow origins")
            else:
                ctx.error(path, f"{path}: a {where} match must set exactly one of exact, prefix, regex")
            return INVALID
        kind, text = next(iter(fields.items()))
        return _string_match_value(ctx, where, kind, text, f"{path}.{kind}")

    return conv


def _string_match_value(ctx: Ctx, where: str, kind: str, text: str, path: str) -> Any:
    presence_capable = where in ("headers", "withoutHeaders", "queryParams")
    if kind == "regex" and text == "*" and presence_capable:
        if where != "withoutHeaders":
            ctx.error(
                path,
                f'{path}: invalid regex "*": "*" is not a valid RE2 regex (Istio accepts it as a '
                f'presence match only in withoutHeaders; use {{}} or regex: ".*")',
            )
        return m.StringMatch("present")
    if kind == "prefix" and text == "" and where not in ("uri",):
        ctx.error(path, f'{path}: "{where}" prefix string match should not be empty')
        return INVALID
    if kind == "regex":
        if text == "":
            ctx.error(path, f'{path}: "{where}" regex string match should not be empty')
            return INVALID
        if not check_regex(ctx, text, path):
            return INVALID
    if where == "allowOrigins" and text == "":
        ctx.error(path, f"{path}: '' is not a valid match type for CORS allow origins")
        return INVALID
    return m.StringMatch(kind, text)  # type: ignore[arg-type]


def header_matches(where: str) -> Any:
    """``map<string, StringMatch>`` for headers / withoutHeaders / queryParams:
    -> tuple of (name, StringMatch) in file order, header names lower-cased."""
    item = string_match(where)
    is_header = where != "queryParams"

    def conv(ctx: Ctx, value: Any, path: str) -> Any:
        if not isinstance(value, Mapping):
            ctx.error(path, f"{path}: expected a mapping of name to StringMatch")
            return INVALID
        out = []
        for name, sm in value.items():
            p = f"{path}.{name}"
            if is_header:
                reason = check_header_name(name)
                if reason:
                    ctx.error(p, f"{p}: {reason}")
            if sm is None:
                ctx.error(p, f"{p}: {where} match {name} cannot be null")
                continue
            v = item(ctx, sm, p)
            if v is not INVALID:
                out.append((name.lower() if is_header else name, v))
        return tuple(out)

    return conv


# ------------------------------------------------------------------ small messages


def _percent_value(value: float = 0.0) -> float:
    return value


PERCENT = Obj("Percent", [F("value", number)], build=_percent_value)
PORT_SELECTOR = Obj("PortSelector", [F("number", uint32)], build=lambda number=0: number)


def _pairs(d: dict[str, str] | None = None) -> tuple[tuple[str, str], ...]:
    return tuple((d or {}).items())


HEADER_OPERATIONS = Obj(
    "HeaderOperations",
    [F("set", string_map), F("add", string_map), F("remove", string_list)],
    build=lambda set=None, add=None, remove=(): m.HeaderOperations(  # noqa: A002
        set=_pairs(set), add=_pairs(add), remove=remove
    ),
)
HEADERS = Obj(
    "Headers",
    [F("request", HEADER_OPERATIONS), F("response", HEADER_OPERATIONS)],
    build=m.Headers,
)

DESTINATION = Obj(
    "Destination",
    [F("host", string), F("subset", string), F("port", PORT_SELECTOR)],
    build=m.Destination,
    required=("host",),
    defaults={"host": ""},
    check=check_destination,
)
HTTP_ROUTE_DESTINATION = Obj(
    "HTTPRouteDestination",
    [F("destination", DESTINATION), F("weight", int32), F("headers", HEADERS)],
    build=m.HTTPRouteDestination,
    required=("destination",),
    defaults={"destination": m.Destination(host="")},
)
HTTP_MIRROR_POLICY = Obj(
    "HTTPMirrorPolicy",
    [F("destination", DESTINATION), F("percentage", PERCENT)],
    build=m.HTTPMirrorPolicy,
    required=("destination",),
    defaults={"destination": m.Destination(host="")},
)

# ------------------------------------------------------------------ HTTPMatchRequest

HTTP_MATCH_REQUEST = Obj(
    "HTTPMatchRequest",
    [
        F("name", string),
        F("uri", string_match("uri")),
        F("scheme", string_match("scheme")),
        F("method", string_match("method")),
        F("authority", string_match("authority")),
        F("headers", header_matches("headers")),
        F("withoutHeaders", header_matches("withoutHeaders")),
        F("queryParams", header_matches("queryParams")),
        F("ignoreUriCase", boolean),
        F("port", uint32),
        F("sourceLabels", string_map),
        F("gateways", string_list),
        F("sourceNamespace", string),
        F("statPrefix", string),
    ],
    build=m.HTTPMatchRequest,
    check=check_match,
)
