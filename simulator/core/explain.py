"""Why a request goes where it goes: the data behind ``mirrorsim explain``,
``mirrorsim check`` and the pytest plugin.  Pure, like the rest of the core.

``explain(table, request)`` routes one request through a ``RouteTable`` exactly
as the proxy does (``RouteTable.route`` with a trace) and returns an
``Explanation``: the listener port and virtual host chosen, every route tried
with the condition that failed it (and what the request had instead), the
decision, every weighted destination with its share, every configured mirror
with its percentage, whether this request's random value samples it, and the
Host the copy would carry.

For a Gateway, pass the table ``translate_gateway`` builds for one of its servers.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from simulator.core.cors import CorsResult
from simulator.core.envoy_config import HeaderMutations, MirrorPolicy, Route, RouteAction, VirtualHost
from simulator.core.hosts import split_host_port
from simulator.core.matchers import parse_query
from simulator.core.table import Forward, LocalReply, RouteAttempt, RouteTable
from simulator.model.names import MESH

# --------------------------------------------------------------------------- clusters


@dataclass(frozen=True, slots=True)
class ClusterRef:
    """An Istio outbound cluster name taken apart."""

    name: str
    host: str = ""
    subset: str = ""
    port: int | None = None

    @staticmethod
    def parse(name: str) -> ClusterRef:
        parts = name.split("|")
        if len(parts) == 4 and parts[0] in ("outbound", "inbound"):
            port = int(parts[1]) if parts[1].isdigit() else None
            return ClusterRef(name, parts[3], parts[2], port)
        return ClusterRef(name)


# --------------------------------------------------------------------------- the request


@dataclass(frozen=True, slots=True)
class RouteQuery:
    """One request as the router sees it.  ``port`` is the listener port (the
    original destination port in a sidecar, the server port in a gateway);
    None = chosen as the proxy chooses it (``RouteTable.select_virtual_host``)."""

    method: str
    authority: str
    path: str = "/"
    headers: dict[str, str] = field(default_factory=dict, compare=False, hash=False)  # lower-case names
    scheme: str = "http"
    port: int | None = None
    random_value: int = 0

    @property
    def implied_port(self) -> int:
        """The authority's port, else the scheme's (for picking a Gateway's server)."""
        _, port = split_host_port(self.authority)
        if port is not None:
            return port
        return 443 if self.scheme == "https" else 80


# --------------------------------------------------------------------------- the explanation


@dataclass(frozen=True, slots=True)
class Attempt:
    """A route that was tried: ``condition`` is the first condition that failed
    (None: it matched), ``actual`` what the request had instead."""

    route: Route
    condition: str | None
    actual: str = ""


@dataclass(frozen=True, slots=True)
class Share:
    """One destination of the matched route, with its share of the traffic."""

    cluster: ClusterRef
    weight: int
    percent: float
    picked: bool  # the one this request's random value selects


@dataclass(frozen=True, slots=True)
class MirrorInfo:
    policy: MirrorPolicy
    cluster: ClusterRef
    percent: float
    shadow_host: str  # the Host the copy carries
    sampled: bool  # this request's random value mirrors it


@dataclass(frozen=True, slots=True)
class Explanation:
    request: RouteQuery
    listener_port: int
    gateway: str  # "mesh" or "ns/name"
    virtual_host: VirtualHost | None
    attempts: tuple[Attempt, ...]
    decision: Forward | LocalReply
    shares: tuple[Share, ...] = ()
    mirrors: tuple[MirrorInfo, ...] = ()
    cors: CorsResult | None = None  # what the route's CORS filter does (Origin sent)
    # the path as the listener normalized it (None: rejected with 400)
    normalized_path: str | None = ""

    @property
    def path_changed(self) -> bool:
        """The listener's normalization changed the request's path."""
        return self.normalized_path != self.request.path

    @property
    def route(self) -> Route | None:
        return self.decision.route

    @property
    def preflight_answered(self) -> bool:
        """The CORS filter answers this preflight itself (200), before the router."""
        return self.cors is not None and self.cors.preflight is not None

    @property
    def forwarded(self) -> bool:
        return isinstance(self.decision, Forward) and not self.preflight_answered

    @property
    def cluster(self) -> ClusterRef | None:
        if isinstance(self.decision, Forward) and not self.preflight_answered:
            return ClusterRef.parse(self.decision.cluster)
        return None

    @property
    def kind(self) -> str:
        """forward | cors_preflight | redirect | direct_response | no_route | no_virtual_host | bad_path."""
        d = self.decision
        if isinstance(d, Forward):
            return "cors_preflight" if self.preflight_answered else "forward"
        if d.details in ("redirect", "direct_response"):
            return d.details
        if d.details == "path_normalization_failed":
            return "bad_path"
        return "no_route" if d.virtual_host is not None else "no_virtual_host"


def condition_failure(route: Route, path_only: str, headers: dict[str, str], query: str) -> tuple[str, str] | None:
    """The first failing condition of ``route.match`` and the request's value
    for it, in the order Envoy evaluates them (path, headers, query); None when
    the route matches."""
    rm = route.match
    if not rm.path.matches(path_only):
        return rm.path.describe(), f"path {path_only!r}"
    for h in rm.headers:
        if not h.matches(headers):
            value = headers.get(h.name)
            what = "absent" if value is None else repr(value)
            label = {":authority": "authority", ":method": "method", ":scheme": "scheme"}.get(h.name)
            cond = h.describe()
            if label is not None:
                cond = cond.replace(f"header {h.name} ", f"{label} ", 1)
                return cond, f"{label} {what}"
            return cond, f"header {h.name} {what}"
    if rm.query_parameters:
        params = parse_query(query)
        for q in rm.query_parameters:
            if not q.matches(params):
                value = params.get(q.name)
                return q.describe(), f"query parameter {q.name} " + ("absent" if value is None else repr(value))
    return None


def explain(table: RouteTable, req: RouteQuery, gateway: str = MESH) -> Explanation:
    """Route ``req`` and say why (``gateway`` names the table's Gateway, for display).
    The path is normalized first, as the listener does (``RouteTable.normalize_path``);
    the route configuration and virtual host are the proxy's choice
    (``RouteTable.select_virtual_host``)."""
    listener_port, vh = table.select_virtual_host(req.authority, req.scheme, req.port)
    normalized = table.normalize_path(req.path)
    if normalized is None:
        reply = LocalReply(400, b"", "-", details="path_normalization_failed")
        return Explanation(req, listener_port, gateway, None, (), reply, normalized_path=None)
    trace: list[RouteAttempt] = []
    decision = table.route(req.method, req.authority, normalized, req.headers, req.random_value,
                           scheme=req.scheme, trace=trace, port=req.port)
    path_only, _, query = normalized.partition("?")
    hdrs = dict(req.headers)
    hdrs.update({":authority": req.authority, ":method": req.method, ":scheme": req.scheme, ":path": normalized})
    attempts = []
    for a in trace:
        if a.failure is None:
            attempts.append(Attempt(a.route, None))
            continue
        why = condition_failure(a.route, path_only, hdrs, query)
        attempts.append(Attempt(a.route, why[0] if why else a.failure, why[1] if why else ""))
    shares: tuple[Share, ...] = ()
    mirrors: tuple[MirrorInfo, ...] = ()
    cors = None
    if isinstance(decision, Forward) and decision.route.cors is not None:
        cors = decision.route.cors.evaluate(req.method, req.headers)
    if isinstance(decision, Forward) and isinstance(decision.route.action, RouteAction):
        action = decision.route.action
        if action.weighted_clusters:
            shares = tuple(
                Share(ClusterRef.parse(w.name), w.weight, 100.0 * w.weight / action.total_weight,
                      w.name == decision.cluster)
                for w in action.weighted_clusters
            )
        else:
            shares = (Share(ClusterRef.parse(action.cluster), 100, 100.0, True),)
        mirrors = tuple(
            MirrorInfo(p, ClusterRef.parse(p.cluster), p.percent, decision.shadow_authority(p),
                       req.method != "CONNECT" and p.samples(req.random_value)
                       and not (cors is not None and cors.preflight is not None))
            for p in action.mirror_policies
        )
    return Explanation(req, listener_port, gateway, vh, tuple(attempts), decision, shares, mirrors,
                       cors=cors, normalized_path=normalized)


def header_ops(mut: HeaderMutations) -> dict[str, object]:
    """Istio's view of header mutations: ``{set: {...}, add: {...}, remove: [...]}``."""
    set_: dict[str, str] = {}
    add: dict[str, str] = {}
    for o in mut.add:
        (add if o.append else set_)[o.name] = o.configured
    out: dict[str, object] = {}
    if set_:
        out["set"] = set_
    if add:
        out["add"] = add
    if mut.remove:
        out["remove"] = list(mut.remove)
    return out
