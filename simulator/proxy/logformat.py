"""The access log's other formats (``--access-log-format istio|json``); Envoy's default is
written by ``AccessLog.log`` itself, on its fast path.

``istio``: Istio's mesh default text format (``EnvoyTextLogFormat`` in istio/istio
pilot/pkg/model/telemetry_logging.go), which adds ``%RESPONSE_CODE_DETAILS%`` and the upstream
cluster to Envoy's.  ``json``: Istio's ``EnvoyJSONLogFormatIstio`` (meshConfig
``accessLogEncoding: JSON``), one JSON object per line, numbers for the numeric operators and
``null`` for an empty value, as Envoy's JSON formatter writes them.  Both formats are parsed
by the one command-operator parser (``simulator.core.header_format.parse``); each operator
then reads the facts of one log line (``Line``).  A shadow copy's line names its mirror
cluster in ``%UPSTREAM_CLUSTER%``.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Final

from simulator.core.header_format import Command, Template, parse

ISTIO_TEXT: Final = (
    '[%START_TIME%] "%REQ(:METHOD)% %REQ(X-ENVOY-ORIGINAL-PATH?:PATH)% %PROTOCOL%" %RESPONSE_CODE% '
    '%RESPONSE_FLAGS% %RESPONSE_CODE_DETAILS% %CONNECTION_TERMINATION_DETAILS% '
    '"%UPSTREAM_TRANSPORT_FAILURE_REASON%" %BYTES_RECEIVED% %BYTES_SENT% %DURATION% '
    '%RESP(X-ENVOY-UPSTREAM-SERVICE-TIME)% "%REQ(X-FORWARDED-FOR)%" "%REQ(USER-AGENT)%" '
    '"%REQ(X-REQUEST-ID)%" "%REQ(:AUTHORITY)%" "%UPSTREAM_HOST%" %UPSTREAM_CLUSTER_RAW% '
    '%UPSTREAM_LOCAL_ADDRESS% %DOWNSTREAM_LOCAL_ADDRESS% %DOWNSTREAM_REMOTE_ADDRESS% '
    '%REQUESTED_SERVER_NAME% %ROUTE_NAME%\n'
)

ISTIO_JSON: Final = (
    ("start_time", "%START_TIME%"), ("route_name", "%ROUTE_NAME%"), ("method", "%REQ(:METHOD)%"),
    ("path", "%REQ(X-ENVOY-ORIGINAL-PATH?:PATH)%"), ("protocol", "%PROTOCOL%"),
    ("response_code", "%RESPONSE_CODE%"), ("response_flags", "%RESPONSE_FLAGS%"),
    ("response_code_details", "%RESPONSE_CODE_DETAILS%"),
    ("connection_termination_details", "%CONNECTION_TERMINATION_DETAILS%"),
    ("bytes_received", "%BYTES_RECEIVED%"), ("bytes_sent", "%BYTES_SENT%"), ("duration", "%DURATION%"),
    ("upstream_service_time", "%RESP(X-ENVOY-UPSTREAM-SERVICE-TIME)%"),
    ("x_forwarded_for", "%REQ(X-FORWARDED-FOR)%"), ("user_agent", "%REQ(USER-AGENT)%"),
    ("request_id", "%REQ(X-REQUEST-ID)%"), ("authority", "%REQ(:AUTHORITY)%"),
    ("upstream_host", "%UPSTREAM_HOST%"), ("upstream_cluster", "%UPSTREAM_CLUSTER_RAW%"),
    ("upstream_local_address", "%UPSTREAM_LOCAL_ADDRESS%"),
    ("downstream_local_address", "%DOWNSTREAM_LOCAL_ADDRESS%"),
    ("downstream_remote_address", "%DOWNSTREAM_REMOTE_ADDRESS%"),
    ("requested_server_name", "%REQUESTED_SERVER_NAME%"),
    ("upstream_transport_failure_reason", "%UPSTREAM_TRANSPORT_FAILURE_REASON%"),
)

FORMATS: Final = ("envoy", "istio", "json")
_NUMERIC: Final = frozenset({"RESPONSE_CODE", "BYTES_RECEIVED", "BYTES_SENT", "DURATION"})

# %RESPONSE_CODE_DETAILS% from the response flag (mirrorsim keeps the flag, not the detail;
# these are the details Envoy's router and connection manager set with each flag)
_DETAILS: Final = {
    "NR": "route_not_found", "NC": "cluster_not_found", "UH": "no_healthy_upstream",
    "UO": "upstream_reset_before_response_started{overflow}", "UT": "upstream_response_timeout",
    # Envoy adds the transport failure: a refused connection (a connect timeout would be
    # {connection_timeout}; mirrorsim's log does not tell them apart: docs/deviations.md)
    "UF": "upstream_reset_before_response_started{remote_connection_failure|delayed_connect_error:_Connection_refused}",
    "UC": "upstream_reset_before_response_started{connection_termination}",
    "UPE": "upstream_reset_before_response_started{protocol_error}",
    "DC": "downstream_remote_disconnect", "FI": "fault_filter_abort", "DPE": "http1.codec_error",
}


@dataclass(slots=True)
class Line:
    """The facts of one access log line."""

    start_time: str
    method: str
    path: str
    protocol: str
    code: int
    flags: str
    bytes_received: int
    bytes_sent: int
    duration_ms: int
    upstream_service_time: str
    xff: str | None
    user_agent: str | None
    request_id: str | None
    authority: str
    upstream_host: str
    cluster: str
    route_name: str


def details(line: Line) -> str:
    """%RESPONSE_CODE_DETAILS%: ``via_upstream`` for a response from the upstream, the
    flag's detail for a local reply, ``direct_response`` for a route's own answer."""
    if line.flags != "-":
        for f in line.flags.split(","):
            d = _DETAILS.get(f)
            if d is not None:
                return d
    if line.upstream_host and line.upstream_service_time != "-":
        return "via_upstream"
    return "direct_response" if line.code else "-"


def _value(c: Command, line: Line) -> str | int | None:
    """One operator's value ("" or None: nothing, written ``-`` or ``null``)."""
    n = c.name
    if n == "START_TIME":
        return line.start_time
    if n == "REQ" or n == "RESP":
        for h in c.args:
            v: str | None
            if n == "RESP":
                v = line.upstream_service_time if h == "x-envoy-upstream-service-time" else None
                v = None if v == "-" else v
            elif h == ":method":
                v = line.method
            elif h == ":path":
                v = line.path
            elif h == ":authority" or h == "host":
                v = line.authority
            elif h == "x-forwarded-for":
                v = line.xff
            elif h == "user-agent":
                v = line.user_agent
            elif h == "x-request-id":
                v = line.request_id
            else:
                v = None
            if v:
                return v
        return None
    if n == "PROTOCOL":
        return line.protocol
    if n == "RESPONSE_CODE":
        return line.code
    if n == "RESPONSE_FLAGS":
        return line.flags
    if n == "RESPONSE_CODE_DETAILS":
        return details(line)
    if n == "BYTES_RECEIVED":
        return line.bytes_received
    if n == "BYTES_SENT":
        return line.bytes_sent
    if n == "DURATION":
        return line.duration_ms
    if n == "UPSTREAM_HOST":
        return line.upstream_host or None
    if n == "UPSTREAM_CLUSTER" or n == "UPSTREAM_CLUSTER_RAW":
        # the router's cluster: none when it does not exist (NC)
        return None if "NC" in line.flags.split(",") else (line.cluster or None)
    if n == "ROUTE_NAME":
        return line.route_name or None
    return None  # addresses, TLS, termination details: not modelled (docs/deviations.md)


class Formatter:
    """A parsed format: ``render(line)`` is the line's text, newline included."""

    def __init__(self, fmt: str) -> None:
        if fmt not in FORMATS[1:]:
            raise ValueError(f"access log format {fmt!r}: expected one of {', '.join(FORMATS)}")
        self.json = fmt == "json"
        text = parse(ISTIO_TEXT)
        assert isinstance(text, Template)
        self.parts = text.parts
        self.fields: list[tuple[str, tuple[str | Command, ...]]] = []
        for key, value in ISTIO_JSON:
            t = parse(value)
            self.fields.append((key, t.parts if isinstance(t, Template) else (t,)))

    def render(self, line: Line) -> str:
        if self.json:
            obj: dict[str, str | int | None] = {}
            for key, parts in self.fields:
                if len(parts) == 1 and isinstance(parts[0], Command):
                    v = _value(parts[0], line)
                    obj[key] = None if v == "" else v
                else:
                    obj[key] = "".join(p if isinstance(p, str) else str(_value(p, line) or "-") for p in parts)
            return json.dumps(obj, separators=(",", ":")) + "\n"
        out = []
        for p in self.parts:
            if isinstance(p, str):
                out.append(p)
            else:
                v = _value(p, line)
                out.append("-" if v is None or v == "" else str(v))
        return "".join(out)
