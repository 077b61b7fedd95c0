"""The one JSON shape of a routing decision (docs/route-testing.md, "A decision as JSON").

``decision_json(explanation)`` is what ``mirrorsim explain --json`` prints after
the request and the rules tried, what ``mirrorsim check --output json`` gives as
each test's ``decision``, and what the pytest plugin's ``RouteOutcome.as_json()``
returns.  Field names are Istio's (``destination``, ``mirrors``, ``timeout``,
``retries: {attempts, retryOn, perTryTimeout}``, ``fault: {delay: {fixedDelay,
percentage}, abort: {httpStatus | grpcStatus, percentage}}``) with Envoy's
cluster names; durations are seconds, percentages 0..100.
"""

from __future__ import annotations

from typing import Any

from simulator.core.envoy_config import FaultConfig, RetryPolicy, Route
from simulator.core.explain import ClusterRef, Explanation, header_ops
from simulator.core.faults import abort_fires, delay_fires
from simulator.core.table import Forward, LocalReply


def route_json(r: Route | None) -> dict[str, Any] | None:
    """The rule that decided: file, line, ``VirtualService ns/name``, field path, name."""
    if r is None:
        return None
    return {"file": r.file, "line": r.line, "origin": r.origin, "path": r.origin_path, "name": r.name}


def cluster_json(name: str) -> dict[str, Any]:
    c = ClusterRef.parse(name)
    return {"cluster": c.name, "host": c.host, "subset": c.subset, "port": c.port}


def retries_json(rp: RetryPolicy | None) -> dict[str, Any] | None:
    """Istio's HTTPRetry: ``{attempts, retryOn: [...], perTryTimeout: seconds | None}``."""
    if rp is None:
        return None
    return {"attempts": rp.num_retries,
            "retryOn": list(rp.retry_on) + [str(c) for c in rp.retriable_status_codes],
            "perTryTimeout": rp.per_try_timeout or None}


def fault_json(fc: FaultConfig | None) -> dict[str, Any] | None:
    """Istio's HTTPFaultInjection: ``{delay: {fixedDelay, percentage}, abort: {httpStatus
    | grpcStatus, percentage}}``, each part only when configured."""
    if fc is None:
        return None
    out: dict[str, Any] = {}
    if fc.delay is not None:
        out["delay"] = {"fixedDelay": fc.delay, "percentage": fc.delay_numerator / 10000}
    if fc.abort_status is not None or fc.abort_grpc_status is not None:
        abort: dict[str, Any] = {"percentage": fc.abort_numerator / 10000}
        if fc.abort_status is not None:
            abort["httpStatus"] = fc.abort_status
        if fc.abort_grpc_status is not None:
            abort["grpcStatus"] = fc.abort_grpc_status
        out["abort"] = abort
    return out


def decision_json(e: Explanation) -> dict[str, Any]:
    """What the router decided for one request (see the module docstring)."""
    out: dict[str, Any] = {"result": e.kind, "route": route_json(e.route)}
    if e.cors is not None:
        out["cors"] = {"origin": e.cors.origin, "allowed": e.cors.allowed,
                       "preflight": None if e.cors.preflight is None else dict(e.cors.preflight),
                       "responseHeaders": dict(e.cors.response)}
    d = e.decision
    if isinstance(d, LocalReply):
        out.update(status=d.status, flags=d.flags, details=d.details, body=d.body.decode("utf-8", "replace"),
                   headers=dict(d.headers))
        return out
    assert isinstance(d, Forward)
    out.update(
        destination=cluster_json(d.cluster),
        destinations=[dict(cluster_json(s.cluster.name), weight=s.weight, percent=s.percent, picked=s.picked)
                      for s in e.shares],
        mirrors=[dict(cluster_json(mi.cluster.name), percentage=mi.percent, shadowHost=mi.shadow_host,
                      sampled=mi.sampled) for mi in e.mirrors],
        path=d.path, authority=d.authority, originalPath=d.original_path,
        requestHeaders=header_ops(d.request_headers), responseHeaders=header_ops(d.response_headers),
        timeout=d.timeout or None,
        retries=retries_json(d.retry_policy),
        fault=fault_json(d.fault),
    )
    if d.fault is not None:  # what the fault filter does to this request (core/faults.py)
        rv = e.request.random_value
        out["faultInjected"] = {"delay": delay_fires(d.fault, rv), "abort": abort_fires(d.fault, rv)}
    return out


def explain_json(e: Explanation) -> dict[str, Any]:
    """``mirrorsim explain --json``: the request, the listener and virtual host chosen,
    every rule tried, then the decision (``decision_json``'s fields)."""
    req = e.request
    vh = e.virtual_host
    out: dict[str, Any] = {
        "request": {"method": req.method, "scheme": req.scheme, "authority": req.authority, "path": req.path,
                    "headers": dict(req.headers), "port": req.port, "randomValue": req.random_value},
        "gateway": e.gateway,
        "listenerPort": e.listener_port,
        "normalizedPath": e.normalized_path,
        "virtualHost": None if vh is None else {"name": vh.name, "domains": list(vh.domains), "origin": vh.origin},
        "attempts": [dict(route_json(a.route) or {}, matched=a.condition is None, condition=a.condition,
                          actual=a.actual or None) for a in e.attempts],
    }
    out.update(decision_json(e))
    return out
