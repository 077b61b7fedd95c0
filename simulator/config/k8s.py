"""The loader's seam for Kubernetes objects that are not Istio's: which ones it reads
(Gateway API HTTPRoute and Gateway, core v1 Service: ``gwapi.py``), which ones it skips
quietly (every other kind outside the istio.io and Gateway API groups: Deployment,
ConfigMap, ... as rendered manifests carry them; ``LoadResult.skipped`` lists them),
and, once every file is read, their conversion into the Istio model
(``gwapi_convert.py``)."""

from __future__ import annotations

import dataclasses
from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any

from simulator.config import gwapi
from simulator.config.gwapi_convert import convert
from simulator.config.schema import Ctx
from simulator.diagnostics import Diagnostic
from simulator.model import gatewayapi as gw
from simulator.model import istio as m


def handles(group: str, version: str, kind: str) -> bool:
    return ((group == gw.GROUP and version in gw.API_VERSIONS and kind in gw.KINDS)
            or (group == "" and version == "v1" and kind == "Service"))


def skipped(group: str, kind: str) -> bool:
    """Kinds that cannot change routing: skipped without a warning (a GatewayClass: every
    Gateway read is taken as Istio's when its gatewayClassName is ``istio``)."""
    return (not group.endswith("istio.io") and group != gw.GROUP) or (group == gw.GROUP and kind == "GatewayClass")


def reader(value: Any, ctx: Ctx) -> tuple[Callable[[str, m.Meta, Any, Ctx], Any], str]:
    """How the loader reads this object: its spec parser (with the object's
    creationTimestamp) and the key it is stored under (``group/kind``)."""
    group = str(value.get("apiVersion", "")).rpartition("/")[0]
    meta = value.get("metadata")
    created = meta.get("creationTimestamp") if isinstance(meta, dict) else None
    stamp = _utc(created) if created is not None else ""
    if stamp is None:
        ctx.error("metadata.creationTimestamp", f"metadata.creationTimestamp: {created!r} is not an "
                                                'RFC 3339 time (e.g. "2026-01-02T03:04:05Z")')
        stamp = ""

    def parse(kind: str, meta: m.Meta, spec: Any, ctx: Ctx) -> Any:
        return gwapi.parse(kind, meta, spec, ctx, created=stamp)

    return parse, f"{group}/{value.get('kind', '')}"


def _utc(value: Any) -> str | None:
    """An RFC 3339 time as a sortable UTC string, or None."""
    try:
        t = value if isinstance(value, datetime) else datetime.fromisoformat(str(value).replace("Z", "+00:00"))
    except ValueError:
        return None
    if t.tzinfo is None:
        t = t.replace(tzinfo=UTC)
    return t.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%S.%f")


def finish(config: m.Config, objs: list[Any], diagnostics: list[Diagnostic]) -> m.Config:
    routes = [o for o in objs if isinstance(o, gw.HTTPRoute)]
    gateways = [o for o in objs if isinstance(o, gw.K8sGateway)]
    services = [o for o in objs if isinstance(o, m.KubernetesService)]
    if not (routes or gateways or services):
        return config
    grants = [o for o in objs if isinstance(o, gw.ReferenceGrant)]
    out = convert(routes, gateways, services, config.service_entries, grants)
    diagnostics.extend(out.diagnostics)
    return dataclasses.replace(
        config,
        virtual_services=config.virtual_services + tuple(out.virtual_services),
        gateways=config.gateways + tuple(out.gateways),
        kubernetes_services=tuple(services),
    )


def analyzable(config: m.Config) -> m.Config:
    """The config the cross-resource analyzer checks: VirtualServices generated from
    HTTPRoutes are left out (their references are reported as route status)."""
    if all(not vs.semantics for vs in config.virtual_services):
        return config
    return dataclasses.replace(config, virtual_services=tuple(
        vs for vs in config.virtual_services if not vs.semantics))
