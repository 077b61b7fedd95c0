"""Route header operations whose values carry Envoy command operators
(core/header_format.py), formatted for one request.  Only routes with such values get
here (``HeaderMutations.dynamic``): every other request pays nothing.

Envoy evaluates request ``headers_to_add`` in the router once the route is picked,
before an endpoint is (``%UPSTREAM_REMOTE_ADDRESS%`` is empty there), against the
downstream request as the connection manager left it; response ones against the
upstream response (or the local reply) and the same request.
"""

from __future__ import annotations

import socket
from typing import Final, Protocol

from simulator.core.envoy_config import HeaderMutations
from simulator.core.header_format import FormatContext, address_from_xff
from simulator.core.table import Forward, LocalReply
from simulator.proxy.client import ClientConnection, DownstreamRequest


class FormattedStream(Protocol):
    """What this module uses of a stream (stream.Stream)."""

    conn: ClientConnection
    req: DownstreamRequest
    decision: Forward | LocalReply | None
    authority: str
    path: str
    method: str
    scheme: str
    xff: str | None
    upstream_host: str
    request_id: str | None


HOSTNAME: Final = socket.gethostname()


def _address(info: object) -> str:
    if not isinstance(info, tuple) or len(info) < 2:
        return ""
    host, port = info[0], info[1]
    return f"[{host}]:{port}" if ":" in str(host) else f"{host}:{port}"


def context(stream: FormattedStream, response_headers: list[tuple[bytes, bytes]] | None = None,
            code: int = 0) -> FormatContext:
    transport = stream.conn.transport
    direct = _address(transport.get_extra_info("peername")) if transport is not None else ""
    local = _address(transport.get_extra_info("sockname")) if transport is not None else ""
    d = stream.decision
    return FormatContext(
        request_headers=stream.req.headers,
        authority=stream.authority,
        path=stream.path,
        method=stream.method,
        scheme=stream.scheme,
        downstream_remote=address_from_xff(stream.xff) or direct,
        downstream_direct_remote=direct,
        downstream_local=local,
        upstream_host=stream.upstream_host,
        cluster=d.cluster if isinstance(d, Forward) else "",
        response_headers=response_headers,
        response_code=code,
        hostname=HOSTNAME,
        request_id=stream.request_id or "",
    )


def request_mutations(stream: FormattedStream, mut: HeaderMutations) -> HeaderMutations:
    return mut.resolve(context(stream)) if mut.dynamic else mut


def response_mutations(stream: FormattedStream, mut: HeaderMutations, headers: list[tuple[bytes, bytes]],
                       code: int) -> HeaderMutations:
    return mut.resolve(context(stream, headers, code)) if mut.dynamic else mut
