"""Render an ``Explanation`` as readable text (``mirrorsim explain``); its JSON is
decision_json.py's."""

from __future__ import annotations

from typing import Any

from simulator.config.durations import format_duration
from simulator.core.envoy_config import RetryPolicy, Route
from simulator.core.explain import Explanation, header_ops
from simulator.core.faults import abort_fires, delay_fires
from simulator.core.table import Forward, LocalReply
from simulator.model.names import MESH


def describe_route(route: Route | None) -> str:
    if route is None:
        return "no route"
    where = f"{route.file}:{route.line} " if route.file else ""
    name = f' "{route.name}"' if route.name else ""
    return f"{where}{route.origin} {route.origin_path}{name}".strip()


def _where(route: Route) -> str:
    return f"{route.file}:{route.line}" if route.file else "(generated)"


def _rule(route: Route) -> str:
    name = f' "{route.name}"' if route.name else ""
    return f"{route.origin} {route.origin_path}{name}".strip()


def _retry_text(rp: RetryPolicy | None) -> str:
    if rp is None:
        return "none"
    on = list(rp.retry_on) + [str(c) for c in rp.retriable_status_codes]
    s = f"{rp.num_retries} retr{'y' if rp.num_retries == 1 else 'ies'} on {','.join(on)}"
    if rp.per_try_timeout:
        s += f", per-try timeout {format_duration(rp.per_try_timeout)}"
    return s


def _ops_lines(label: str, ops: dict[str, Any]) -> list[str]:
    out = []
    for n, v in ops.get("set", {}).items():
        out.append(f"  {label}: set {n}: {v}")
    for n, v in ops.get("add", {}).items():
        out.append(f"  {label}: add {n}: {v}")
    for n in ops.get("remove", []):
        out.append(f"  {label}: remove {n}")
    return out


def percent_text(p: float) -> str:
    return f"{p:.6g}%"


def explain_text(e: Explanation) -> str:
    req = e.request
    lines = [f"{req.method} {req.scheme}://{req.authority}{req.path}"]
    for n, v in req.headers.items():
        lines.append(f"  {n}: {v}")
    if e.gateway != MESH:
        port_src = "the Gateway server's port"
    elif req.port is not None:
        port_src = "the port given"
    elif ":" in req.authority.rsplit("]", 1)[-1]:
        port_src = "the authority"
    elif e.listener_port in (80, 443):
        port_src = f"default for {req.scheme}"
    else:
        port_src = "the port of the host's service"
    gw = "sidecar (mesh)" if e.gateway == MESH else f"gateway {e.gateway}"
    lines.append(f"{gw}, listener port {e.listener_port} (from {port_src}), random value {req.random_value}")
    if e.normalized_path is None:
        lines.append(f"path: {req.path} fails path normalization: 400 (path_normalization_failed)")
    elif e.path_changed:
        lines.append(f"path normalized: {req.path} -> {e.normalized_path} (routed and forwarded as that)")
    vh = e.virtual_host
    if e.normalized_path is None:
        pass
    elif vh is None:
        lines.append("")
        lines.append(f"virtual host: none for {req.authority} on port {e.listener_port}")
    else:
        lines.append("")
        lines.append(f"virtual host: {vh.name}" + (f" (from {vh.origin})" if vh.origin else " (default route)"))
        lines.append(f"  domains: {', '.join(vh.domains)}")
    if e.attempts:
        lines.append("")
        lines.append("rules tried, in order:")
        for i, a in enumerate(e.attempts, 1):
            head = f"  {i}. {_where(a.route)}  {_rule(a.route)}"
            if a.condition is None:
                lines.append(f"{head}  -> MATCHED")
            else:
                lines.append(f"{head}")
                lines.append(f"       no match: {a.condition}" + (f" (request: {a.actual})" if a.actual else ""))
    d = e.decision
    lines.append("")
    if isinstance(d, LocalReply):
        if d.details == "redirect":
            loc = dict(d.headers).get("location", "")
            lines.append(f"result: redirect {d.status} to {loc}")
            lines.append(f"  by {describe_route(d.route)}")
        elif d.details == "direct_response":
            lines.append(f"result: direct response {d.status}" + (f" body {d.body.decode('utf-8', 'replace')!r}"
                                                                 if d.body else ""))
            lines.append(f"  by {describe_route(d.route)}")
        elif vh is None:
            lines.append(f"result: {d.status}" + (f" {d.flags}" if d.flags != "-" else "") + f": {d.details}")
        else:
            lines.append(f"result: {d.status} {d.flags}: no route matched")
        if d.route is not None:
            lines += _ops_lines("response headers", header_ops(d.route.response_headers))
        return "\n".join(lines) + "\n"
    assert isinstance(d, Forward)
    lines.append(f"matched: {_where(d.route)}  {_rule(d.route)}")
    c = e.cors
    if c is not None and c.preflight is not None:
        lines.append("result: CORS preflight answered by the proxy: 200 (the router does not run:"
                     " no upstream request, no mirror)")
        lines += [f"  {n}: {v}" for n, v in c.preflight]
        return "\n".join(lines) + "\n"
    if c is not None:
        allowed = "allowed" if c.allowed else "not allowed (no CORS headers)"
        pre = ", unmatched preflight forwarded" if req.method == "OPTIONS" and not c.allowed else ""
        lines.append(f"cors: origin {c.origin} {allowed}{pre}")
        lines += [f"  response {n}: {v}" for n, v in c.response]
    if len(e.shares) > 1:
        lines.append("destinations (weighted):")
        for s in e.shares:
            mark = "  <- this request (random value)" if s.picked else ""
            lines.append(f"  {percent_text(s.percent):>9}  weight {s.weight:<4} {s.cluster.name}{mark}")
    else:
        lines.append(f"destination: {d.cluster}")
    if e.mirrors:
        lines.append("mirrors:")
        for mi in e.mirrors:
            sampled = "mirrored" if mi.sampled else "not mirrored"
            lines.append(f"  {percent_text(mi.percent):>9}  {mi.cluster.name}  Host: {mi.shadow_host}"
                         f"  ({sampled} for this random value)")
    else:
        lines.append("mirrors: none")
    if d.original_path is not None or d.path != req.path:
        lines.append(f"rewrite: path {req.path} -> {d.path}"
                     + (f" (x-envoy-original-path: {d.original_path})" if d.original_path else ""))
    if d.authority != req.authority:
        lines.append(f"rewrite: authority {req.authority} -> {d.authority} (x-envoy-original-host: {req.authority})")
    lines += [x.lstrip() for x in _ops_lines("request headers", header_ops(d.request_headers))]
    lines += [x.lstrip() for x in _ops_lines("response headers", header_ops(d.response_headers))]
    lines.append(f"timeout: {format_duration(d.timeout) if d.timeout else 'none'}")
    lines.append(f"retries: {_retry_text(d.retry_policy)}")
    f = d.fault
    if f is not None:
        rv = req.random_value
        if f.delay is not None:
            share = percent_text(f.delay_numerator / 10000)
            fires = "injected" if delay_fires(f, rv) else "not injected"
            lines.append(f"fault: delay {format_duration(f.delay)} for {share} of requests"
                         f"  ({fires} for this random value)")
        if f.abort_status is not None or f.abort_grpc_status is not None:
            what = f"HTTP {f.abort_status}" if f.abort_status is not None else f"gRPC status {f.abort_grpc_status}"
            fires = "injected" if abort_fires(f, rv) else "not injected"
            lines.append(f"fault: abort with {what} for {percent_text(f.abort_numerator / 10000)} of requests"
                         f"  ({fires} for this random value)")
    else:
        lines.append("fault: none")
    return "\n".join(lines) + "\n"
