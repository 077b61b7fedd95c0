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

from collections.abc import Callable
from dataclasses import dataclass
from json.encoder import encode_basestring  # type: ignore[attr-defined]  # C-accelerated
from operator import attrgetter
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


def _getter(c: Command) -> Callable[[Line], str | int | None]:
    """The reader of one operator's value from a line ("" or None: nothing, written ``-``
    or ``null``), chosen once when the format is parsed."""
    n = c.name
    if n == "REQ" or n == "RESP":
        fields = []
        for h in c.args:
            if n == "RESP":
                if h == "x-envoy-upstream-service-time":
                    fields.append("upstream_service_time")
            elif h in _REQUEST_FIELDS:
                fields.append(_REQUEST_FIELDS[h])
        if not fields:
            return _none
        if n == "RESP":
            return lambda line: None if line.upstream_service_time == "-" else line.upstream_service_time
        if len(fields) == 1:
            return attrgetter(fields[0])
        first, second = fields[0], fields[1]
        return lambda line: getattr(line, first) or getattr(line, second)
    if n in _FIELDS:
        return attrgetter(_FIELDS[n])
    if n == "RESPONSE_CODE_DETAILS":
        return details
    if n == "UPSTREAM_HOST":
        return lambda line: line.upstream_host or None
    if n == "UPSTREAM_CLUSTER" or n == "UPSTREAM_CLUSTER_RAW":
        return _cluster
    if n == "ROUTE_NAME":
        return lambda line: line.route_name or None
    return _none  # addresses, TLS, termination details: not modelled (docs/deviations.md)


def _none(line: Line) -> None:
    return None


def _cluster(line: Line) -> str | None:
    """The router's cluster: none when it does not exist (NC)."""
    if not line.cluster or (line.flags != "-" and "NC" in line.flags.split(",")):
        return None
    return line.cluster


_REQUEST_FIELDS: Final = {":method": "method", ":path": "path", ":authority": "authority", "host": "authority",
                          "x-forwarded-for": "xff", "user-agent": "user_agent", "x-request-id": "request_id"}
_FIELDS: Final = {"START_TIME": "start_time", "PROTOCOL": "protocol", "RESPONSE_CODE": "code",
                  "RESPONSE_FLAGS": "flags", "BYTES_RECEIVED": "bytes_received", "BYTES_SENT": "bytes_sent",
                  "DURATION": "duration_ms"}


class Formatter:
    """A parsed format: ``render(line)`` is the line's text, newline included."""

    def __init__(self, fmt: str) -> None:
        if fmt not in FORMATS[1:]:
            raise ValueError(f"access log format {fmt!r}: expected one of {', '.join(FORMATS)}")
        self.json = fmt == "json"
        # text: (literal before, operator) pairs and the literal after the last operator
        text = parse(ISTIO_TEXT)
        assert isinstance(text, Template)
        self.pairs: list[tuple[str, Callable[[Line], str | int | None]]] = []
        literal = ""
        for p in text.parts:
            if isinstance(p, str):
                literal += p
            else:
                self.pairs.append((literal, _getter(p)))
                literal = ""
        self.tail = literal
        # json: ('"key":' with the separator before it, operator)
        self.fields: list[tuple[str, Callable[[Line], str | int | None]]] = []
        for i, (key, value) in enumerate(ISTIO_JSON):
            t = parse(value)
            assert isinstance(t, Template) and len(t.parts) == 1 and isinstance(t.parts[0], Command)
            self.fields.append((("{" if i == 0 else ",") + encode_basestring(key) + ":", _getter(t.parts[0])))

    def render(self, line: Line) -> str:
        out = []
        if self.json:  # Envoy's JSON formatter: numbers as numbers, an empty value as null
            for key, get in self.fields:
                out.append(key)
                v = get(line)
                if v is None or v == "":
                    out.append("null")
                elif isinstance(v, int):
                    out.append(str(v))
                else:
                    out.append(encode_basestring(v))
            out.append("}\n")
            return "".join(out)
        for literal, get in self.pairs:
            out.append(literal)
            v = get(line)
            out.append("-" if v is None or v == "" else str(v))
        out.append(self.tail)
        return "".join(out)
