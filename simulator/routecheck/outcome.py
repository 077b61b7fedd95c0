"""The outcome of routing one request, as tests see it: destination, split,
mirrors, actions.

``RouteOutcome`` holds the core's ``Explanation`` (the core's decision,
``Forward | LocalReply``, and why) and gives it as plain, comparable values (FQDN
hosts, subsets, ports, percentages, seconds), as JSON (decision_json.py) and
as failure messages.  ``mirrorsim check`` and the pytest plugin both use it;
the plugin's has assertion helpers too (assertions.py).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from simulator.core.envoy_config import Route
from simulator.core.explain import ClusterRef, Explanation, header_ops
from simulator.core.hosts import fqdn
from simulator.core.table import Forward, LocalReply
from simulator.model.names import DEFAULT_DOMAIN, DEFAULT_NAMESPACE
from simulator.routecheck.decision_json import decision_json, fault_json, retries_json
from simulator.routecheck.render import describe_route, explain_text, percent_text


@dataclass(frozen=True, slots=True)
class Destination:
    cluster: str
    host: str
    subset: str
    port: int | None

    @staticmethod
    def of(ref: ClusterRef) -> Destination:
        return Destination(ref.name, ref.host, ref.subset, ref.port)

    def __str__(self) -> str:
        return self.cluster


@dataclass(frozen=True, slots=True)
class Weighted:
    destination: Destination
    weight: int
    percent: float
    picked: bool

    def __str__(self) -> str:
        return f"{self.destination} weight {self.weight} ({percent_text(self.percent)})"


@dataclass(frozen=True, slots=True)
class Mirror:
    destination: Destination
    percentage: float
    shadow_host: str
    sampled: bool

    @property
    def cluster(self) -> str:
        return self.destination.cluster

    @property
    def host(self) -> str:
        return self.destination.host

    @property
    def subset(self) -> str:
        return self.destination.subset

    def __str__(self) -> str:
        return f"{self.destination} {percent_text(self.percentage)} Host {self.shadow_host}"


class RouteOutcome:
    """What the router decided for one request (see ``simulator.core.explain``)."""

    def __init__(self, explanation: Explanation, namespace: str = DEFAULT_NAMESPACE,
                 domain: str = DEFAULT_DOMAIN) -> None:
        self.explanation = explanation
        self.namespace = namespace
        self.domain = domain

    # ----------------------------------------------------------------- identity

    @property
    def kind(self) -> str:
        return self.explanation.kind

    @property
    def forwarded(self) -> bool:
        return self.explanation.forwarded

    @property
    def route(self) -> Route | None:
        return self.explanation.route

    @property
    def virtual_host(self) -> str | None:
        vh = self.explanation.virtual_host
        return vh.name if vh is not None else None

    @property
    def virtual_service(self) -> str | None:
        """``ns/name`` of the VirtualService whose rule matched."""
        return self._origin("VirtualService")

    @property
    def http_route(self) -> str | None:
        """``ns/name`` of the Gateway API HTTPRoute whose rule matched."""
        return self._origin("HTTPRoute")

    def _origin(self, kind: str) -> str | None:
        r = self.route
        if r is None or not r.origin.startswith(kind + " "):
            return None
        return r.origin.split(" ", 1)[1]

    @property
    def rule(self) -> str | None:
        """The matched rule's field path, ``spec.http[1].match[0]``."""
        r = self.route
        return r.origin_path if r is not None and r.origin_path else None

    @property
    def rule_name(self) -> str:
        r = self.route
        return r.name if r is not None else ""

    # ----------------------------------------------------------------- where it goes

    @property
    def destination(self) -> Destination | None:
        ref = self.explanation.cluster
        return Destination.of(ref) if ref is not None else None

    @property
    def cluster(self) -> str | None:
        d = self.destination
        return d.cluster if d else None

    @property
    def host(self) -> str | None:
        d = self.destination
        return d.host if d else None

    @property
    def subset(self) -> str | None:
        d = self.destination
        return d.subset if d else None

    @property
    def port(self) -> int | None:
        d = self.destination
        return d.port if d else None

    @property
    def split(self) -> list[Weighted]:
        return [Weighted(Destination.of(s.cluster), s.weight, s.percent, s.picked) for s in self.explanation.shares]

    @property
    def mirrors(self) -> list[Mirror]:
        """Every mirror the matched route configures (sampled or not)."""
        return [Mirror(Destination.of(mi.cluster), mi.percent, mi.shadow_host, mi.sampled)
                for mi in self.explanation.mirrors]

    # ----------------------------------------------------------------- what happens to it

    @property
    def _forward(self) -> Forward | None:
        d = self.explanation.decision
        return d if isinstance(d, Forward) else None

    @property
    def _reply(self) -> LocalReply | None:
        d = self.explanation.decision
        return d if isinstance(d, LocalReply) else None

    @property
    def status(self) -> int | None:
        """The local reply's status (404 NR, 502, redirect, direct response, 200 for a CORS
        preflight the proxy answers); None when forwarded."""
        if self.explanation.preflight_answered:
            return 200
        r = self._reply
        return r.status if r is not None else None

    @property
    def flags(self) -> str:
        r = self._reply
        return r.flags if r is not None else "-"

    @property
    def body(self) -> bytes | None:
        r = self._reply
        return r.body if r is not None else None

    @property
    def path(self) -> str | None:
        """The upstream ``:path`` after rewrites (with the query)."""
        f = self._forward
        return f.path if f else None

    @property
    def authority(self) -> str | None:
        """The upstream Host after rewrites."""
        f = self._forward
        return f.authority if f else None

    @property
    def original_path(self) -> str | None:
        f = self._forward
        return f.original_path if f else None

    @property
    def redirect(self) -> dict[str, Any] | None:
        r = self._reply
        if r is None or r.details != "redirect":
            return None
        return {"status": r.status, "location": dict(r.headers).get("location", "")}

    @property
    def direct_response(self) -> dict[str, Any] | None:
        r = self._reply
        if r is None or r.details != "direct_response":
            return None
        return {"status": r.status, "body": r.body.decode("utf-8", "replace")}

    @property
    def timeout(self) -> float | None:
        """Route timeout in seconds; None = no timeout (Istio's default)."""
        f = self._forward
        return f.timeout if f is not None and f.timeout > 0 else None

    @property
    def retries(self) -> dict[str, Any] | None:
        f = self._forward
        return retries_json(f.retry_policy) if f is not None else None

    @property
    def fault(self) -> dict[str, Any] | None:
        r = self.route
        return fault_json(r.fault if r is not None else None)

    @property
    def request_headers(self) -> dict[str, Any]:
        f = self._forward
        if f is not None:
            return header_ops(f.request_headers)
        return header_ops(self.route.request_headers) if self.route is not None else {}

    @property
    def response_headers(self) -> dict[str, Any]:
        f = self._forward
        if f is not None:
            return header_ops(f.response_headers)
        return header_ops(self.route.response_headers) if self.route is not None else {}

    # ----------------------------------------------------------------- helpers

    def resolve(self, host: str) -> str:
        """A host as written in a test (short name or FQDN) as the FQDN clusters use."""
        return fqdn(host, self.namespace, self.domain)

    def summary(self) -> str:
        """One line: where the request went, for failure messages."""
        k = self.kind
        if k == "forward":
            return f"forwarded to {self.cluster} by {describe_route(self.route)}"
        if k == "redirect":
            rd = self.redirect or {}
            return f"redirect {rd.get('status')} to {rd.get('location')} by {describe_route(self.route)}"
        if k == "direct_response":
            return f"direct response {self.status} by {describe_route(self.route)}"
        if k == "cors_preflight":
            return f"CORS preflight answered 200 by {describe_route(self.route)}"
        if k == "bad_path":
            return f"400: path {self.explanation.request.path!r} fails path normalization (path_normalization_failed)"
        if k == "no_route":
            return f"404 NR: no route of virtual host {self.virtual_host} matched"
        flags = f" {self.flags}" if self.flags != "-" else ""
        return f"{self.status}{flags}: no virtual host for {self.explanation.request.authority}"

    def as_json(self) -> dict[str, Any]:
        """The decision in its one JSON shape (decision_json.py), as ``mirrorsim
        explain --json`` and ``mirrorsim check --output json`` print it."""
        return decision_json(self.explanation)

    def __repr__(self) -> str:
        return f"<Decision {self.summary()}>"  # what the user asked the mesh for: its decision

    def explain(self) -> str:
        return explain_text(self.explanation)
