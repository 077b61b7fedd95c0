"""VirtualService delegation: Istio's mergeHTTPRoute, the delegate's rule inheriting what it
leaves unset from the root rule, its matches AND-ed with the root's."""

from __future__ import annotations

import dataclasses

from simulator.model import istio as m

_INHERITED = ("rewrite", "direct_response", "timeout", "retries", "fault", "mirror",
              "mirror_percent", "mirror_percentage", "cors_policy", "headers")


def merge_delegate_route(root: m.HTTPRoute, delegate: m.HTTPRoute) -> list[m.HTTPRoute]:
    """Istio's mergeHTTPRoute: the delegate rule inherits what it leaves unset
    from the root rule, and its matches are AND-ed with the root's; a delegate
    match that is not within a root match is dropped."""
    changes: dict[str, object] = {}
    for f in _INHERITED:
        if getattr(delegate, f) in (None, ()) and getattr(root, f) not in (None, ()):
            changes[f] = getattr(root, f)
    if not delegate.mirrors and root.mirrors and "mirror" not in changes and delegate.mirror is None:
        changes["mirrors"] = root.mirrors
    if root.match:
        merged: list[m.HTTPMatchRequest] = []
        for rm in root.match:
            for dm in delegate.match or (m.HTTPMatchRequest(),):
                mm = _merge_match(rm, dm)
                if mm is not None:
                    merged.append(mm)
        if not merged:
            return []
        changes["match"] = tuple(merged)
    return [dataclasses.replace(delegate, **changes)] if changes else [delegate]  # type: ignore[arg-type]


def _merge_match(root: m.HTTPMatchRequest, d: m.HTTPMatchRequest) -> m.HTTPMatchRequest | None:
    uri = d.uri
    if root.uri is not None:
        if uri is None:
            uri = root.uri
        elif root.uri.kind == "prefix" and uri.kind in ("prefix", "exact"):
            if not uri.value.startswith(root.uri.value):
                return None
        elif root.uri != uri:
            return None
    fields: dict[str, object] = {"uri": uri}
    for f in ("scheme", "method", "authority"):
        rv, dv = getattr(root, f), getattr(d, f)
        if rv is not None and dv is not None and rv != dv:
            return None
        fields[f] = dv if dv is not None else rv
    for f in ("headers", "without_headers", "query_params"):
        rmap, dmap = dict(getattr(root, f)), dict(getattr(d, f))
        for k, v in rmap.items():
            if k in dmap and dmap[k] != v:
                return None
        fields[f] = tuple({**rmap, **dmap}.items())
    if root.port is not None and d.port is not None and root.port != d.port:
        return None
    fields["port"] = d.port if d.port is not None else root.port
    fields["ignore_uri_case"] = d.ignore_uri_case or root.ignore_uri_case
    return dataclasses.replace(d, **fields)  # type: ignore[arg-type]
