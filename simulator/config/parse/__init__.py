"""Istio networking resources: YAML values -> ``simulator.model.istio``.

The tables (one module per resource, ``messages.py`` for the parts they share)
list, per Istio message type, every field of the API (networking.istio.io v1 /
v1beta1 / v1alpha3 share one schema) with its converter and model attribute.
Fields the model does not keep (``attr=""``) are still type-checked, so a typo
anywhere is an error, as the Kubernetes API server's strict field validation
makes it.  Semantic (webhook) rules are
attached as ``check`` hooks and live in ``simulator.config.rules``.

Entry point: ``parse_spec(kind, spec, ctx)``.
"""

from __future__ import annotations

from typing import Any

from simulator.config.parse.destination_rule import DESTINATION_RULE_SPEC
from simulator.config.parse.gateway import GATEWAY_SPEC
from simulator.config.parse.service_entry import SERVICE_ENTRY_SPEC, WORKLOAD_ENTRY_SPEC
from simulator.config.parse.virtual_service import VIRTUAL_SERVICE_SPEC
from simulator.config.rules.destination_rule import check_destination_rule
from simulator.config.rules.gateway import check_gateway
from simulator.config.rules.service_entry import check_service_entry, check_workload_entry
from simulator.config.rules.virtual_service import check_virtual_service
from simulator.config.schema import INVALID, Ctx, Obj
from simulator.model import istio as m

# ------------------------------------------------------------------ resources

SPECS: dict[str, Obj] = {
    "VirtualService": VIRTUAL_SERVICE_SPEC,
    "DestinationRule": DESTINATION_RULE_SPEC,
    "ServiceEntry": SERVICE_ENTRY_SPEC,
    "WorkloadEntry": WORKLOAD_ENTRY_SPEC,
    "Gateway": GATEWAY_SPEC,
}


def parse_spec(kind: str, meta: m.Meta, spec: Any, ctx: Ctx) -> Any:
    """Parse the ``spec`` of one resource into its model object (never raises)."""
    if spec is None:
        spec = {}
    values = SPECS[kind](ctx, spec, "spec")
    if values is INVALID:
        values = {}
    src = ctx.source
    if kind == "VirtualService":
        obj: Any = m.VirtualService(meta=meta, src=src, **values)
        check_virtual_service(ctx, obj)
    elif kind == "DestinationRule":
        obj = m.DestinationRule(meta=meta, src=src, **{"host": "", **values})
        check_destination_rule(ctx, obj)
    elif kind == "ServiceEntry":
        obj = m.ServiceEntry(meta=meta, src=src, **values)
        check_service_entry(ctx, obj)
    elif kind == "WorkloadEntry":
        spec_obj = values if isinstance(values, m.WorkloadEntrySpec) else m.WorkloadEntrySpec()
        obj = m.WorkloadEntry(meta=meta, spec=spec_obj, src=src)
        check_workload_entry(ctx, spec_obj, "spec")
    else:
        obj = m.Gateway(meta=meta, src=src, **values)
        check_gateway(ctx, obj)
    return obj
