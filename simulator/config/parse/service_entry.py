"""The schema of a ServiceEntry and a WorkloadEntry."""

from __future__ import annotations

from simulator.config.schema import (
    F,
    Obj,
    enum,
    list_of,
    map_of,
    string,
    string_list,
    string_map,
    uint32,
)
from simulator.model import istio as m

# ------------------------------------------------------------------ ServiceEntry / WorkloadEntry

WORKLOAD_ENTRY_SPEC = Obj(
    "WorkloadEntry",
    [
        F("address", string),
        F("ports", map_of(uint32)),
        F("labels", string_map),
        F("network", string),
        F("locality", string),
        F("weight", uint32),
        F("serviceAccount", string),
    ],
    build=m.WorkloadEntrySpec,
)
SERVICE_PORT = Obj(
    "ServicePort",
    [F("number", uint32), F("protocol", string), F("name", string), F("targetPort", uint32)],
    build=m.ServicePort,
    required=("number", "name"),
    defaults={"number": 0},
)
SERVICE_ENTRY_SPEC = Obj(
    "ServiceEntry",
    [
        F("hosts", string_list),
        F("addresses", string_list),
        F("ports", list_of(SERVICE_PORT)),
        F("location", enum("MESH_EXTERNAL", "MESH_INTERNAL")),
        F("resolution", enum("NONE", "STATIC", "DNS", "DNS_ROUND_ROBIN", "DYNAMIC_DNS")),
        F("endpoints", list_of(WORKLOAD_ENTRY_SPEC)),
        F(
            "workloadSelector",
            Obj(
                "WorkloadSelector",
                [F("labels", string_map)],
                build=lambda labels=None: labels or {},
            ),
        ),
        F("exportTo", string_list),
        F("subjectAltNames", string_list, attr=""),
    ],
    required=("hosts",),
)
