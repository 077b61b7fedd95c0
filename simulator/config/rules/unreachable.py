"""The webhook's unreachable-rule analysis of a VirtualService's HTTP rules
(``analyzeUnreachableHTTPRules``): IST0130 VirtualServiceUnreachableRule and IST0131
VirtualServiceIneffectiveMatch."""

from __future__ import annotations

import json

from simulator.config.schema import Ctx
from simulator.model import istio as m

# ------------------------------------------------------------------ IST0130 / IST0131


def route_name(r: m.HTTPRoute, i: int | str) -> str:
    if r.name:
        return f'"{r.name}"'
    return f"#{i}" if isinstance(i, int) else f"#{i.rsplit('[', 1)[-1].rstrip(']')}"


def _request_name(mt: m.HTTPMatchRequest, j: int) -> str:
    return f'"{mt.name}"' if mt.name else f"#{j}"


def _sm_json(sm: m.StringMatch | None) -> object:
    return None if sm is None else [sm.kind, sm.value]


def match_key(mt: m.HTTPMatchRequest) -> str:
    """A canonical serialization of a match without its name (Istio's asJSON):
    equal keys mean the matches select the same requests."""
    return json.dumps(
        {
            "uri": _sm_json(mt.uri),
            "scheme": _sm_json(mt.scheme),
            "method": _sm_json(mt.method),
            "authority": _sm_json(mt.authority),
            "headers": sorted((k, _sm_json(v)) for k, v in mt.headers),
            "withoutHeaders": sorted((k, _sm_json(v)) for k, v in mt.without_headers),
            "queryParams": sorted((k, _sm_json(v)) for k, v in mt.query_params),
            "ignoreUriCase": mt.ignore_uri_case,
            "port": mt.port or 0,
            "sourceLabels": sorted(mt.source_labels.items()),
            "gateways": list(mt.gateways),
            "sourceNamespace": mt.source_namespace,
            "statPrefix": mt.stat_prefix,
        },
        sort_keys=True,
    )


def _exact_or_prefix(sm: m.StringMatch | None) -> str:
    if sm is not None and sm.kind == "exact" and sm.value:
        return "exact:" + sm.value
    if sm is not None and sm.kind == "prefix" and sm.value:
        return "prefix:" + sm.value
    return ""


class _PrefixMatch:
    """genMatchHTTPRoutes: the parts of a prefix match Istio compares."""

    def __init__(self, r: m.HTTPRoute, i: int, mt: m.HTTPMatchRequest, j: int) -> None:
        assert mt.uri is not None
        self.route, self.match = route_name(r, i), _request_name(mt, j)
        self.index = i
        self.prefix = mt.uri.value
        self.port = mt.port or 0
        self.method = _exact_or_prefix(mt.method) or "exact:GET"
        self.authority = _exact_or_prefix(mt.authority)
        self.headers = {k: _exact_or_prefix(v) for k, v in mt.headers}
        self.query = {k: _exact_or_prefix(v) for k, v in mt.query_params}
        self.without = {k: _exact_or_prefix(v) for k, v in mt.without_headers}

    def covers(self, b: _PrefixMatch) -> bool:
        """coveredValidation(self, b): the earlier match self hides b."""
        if not b.prefix.startswith(self.prefix) or b.port != self.port:
            return False
        for mine, theirs in ((self.method, b.method), (self.authority, b.authority)):
            if mine != theirs and not mine.startswith(theirs):
                return False
        for mine_map, their_map in (
            (self.headers, b.headers),
            (self.query, b.query),
            (self.without, b.without),
        ):
            if len(mine_map) != len(their_map):
                return False
            for key, mine in mine_map.items():
                if key not in their_map:
                    return False
                if mine != their_map[key] and not mine.startswith(their_map[key]):
                    return False
        return True


def _is_catch_all(mt: m.HTTPMatchRequest) -> bool:
    """Envoy route generation stops after a match that translates to a
    catch-all (route.go IsCatchAllRoute), which the webhook does not report."""
    uri_all = (
        mt.uri is None
        or (mt.uri.kind == "prefix" and mt.uri.value == "/")
        or (mt.uri.kind == "regex" and mt.uri.value == ".*")
    )
    header_like = mt.headers or mt.without_headers or mt.query_params or mt.scheme or mt.method or mt.authority
    config_time = mt.port or mt.source_labels or mt.gateways or mt.source_namespace
    return uri_all and not header_like and not config_time


def analyze_unreachable_rules(ctx: Ctx, routes: tuple[m.HTTPRoute, ...]) -> None:
    """``analyzeUnreachableHTTPRules`` (IST0130 / IST0131), plus rules hidden
    behind a catch-all match (which Envoy never sees)."""
    seen: dict[str, int] = {}
    empty_match_at = -1
    catch_all_at = -1
    prefixes: list[_PrefixMatch] = []
    for i, r in enumerate(routes):
        p = f"spec.http[{i}]"
        if not r.match:
            if empty_match_at >= 0:
                _unreachable(ctx, p, route_name(r, i), "only the last rule can have no matches")
            empty_match_at = i
            continue
        if catch_all_at >= 0 and empty_match_at < 0:
            _unreachable(
                ctx,
                p,
                route_name(r, i),
                f"rule {route_name(routes[catch_all_at], catch_all_at)} matches every request "
                '(uri prefix "/"); Envoy stops at it',
            )
            continue
        duplicates = 0
        for j, mt in enumerate(r.match):
            if empty_match_at >= 0:
                _unreachable(ctx, p, route_name(r, i), "route without matches defined before")
                continue
            key = match_key(mt)
            if key in seen:
                dup = seen[key]
                ctx.warn(
                    f"{p}.match[{j}]",
                    f"VirtualService rule {route_name(r, i)} match {_request_name(mt, j)} "
                    f"is not used (duplicate/overlapping match in rule "
                    f"{route_name(routes[dup], dup)}).",
                    "IST0131",
                )
                duplicates += 1
                continue
            seen[key] = i
            if mt.uri is not None and mt.uri.kind == "prefix" and mt.uri.value:
                prefixes.append(_PrefixMatch(r, i, mt, j))
            if _is_catch_all(mt) and catch_all_at < 0:
                catch_all_at = i
        if duplicates == len(r.match):
            _unreachable(ctx, p, route_name(r, i), "all matches used by prior rules")
    for a_idx, a in enumerate(prefixes):
        for b in prefixes[a_idx + 1 :]:
            if b.prefix != a.prefix and a.covers(b):
                ctx.warn(
                    f"spec.http[{b.index}]",
                    f"VirtualService rule {b.route} match {b.match} of prefix {b.prefix} is not "
                    "used "
                    f"(duplicate/overlapping match in rule {a.match} of prefix {a.prefix} on "
                    f"{a.route}).",
                    "IST0131",
                )


def _unreachable(ctx: Ctx, path: str, rule: str, reason: str) -> None:
    ctx.warn(path, f"VirtualService rule {rule} not used ({reason}).", "IST0130")
