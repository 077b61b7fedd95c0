"""The ONE place where values that legitimately differ between Envoy and mirrorsim
are normalised before the conformance suite compares them.

Everything not listed here is compared exactly: client status, response header
names in order with their values, response body; and for every request a backend
received: method, request target (path and query), HTTP version, every header
line in wire order with its value (Host, x-forwarded-for, x-forwarded-proto,
x-envoy-internal, x-envoy-original-path, x-envoy-original-host,
x-envoy-expected-rq-timeout-ms, x-envoy-attempt-count, header operations, ...),
framing (Content-Length value or chunked) and a digest of the body.

Normalised values, and why each may differ:

* Response ``date``: the wall clock at the moment each proxy answered -> ``<date>``.
* Response ``x-envoy-upstream-service-time``: milliseconds measured by each proxy
  -> ``<ms>`` (its presence and position are still compared).
* ``x-request-id`` that the client did not send: each proxy generates its own UUID.
  Values are replaced by ``<uuid-N>`` where N is the client request number (a second,
  different id generated for the same request would be ``<uuid-Nb>``), so "the
  primary and its shadow copies carry the same generated id" is still compared.
* The recorders' peer ports and connection numbers: the proxies' ephemeral ports
  differ.  Not compared, except in scenarios that ask for it
  (``compare_connections``), where each request gets the ordinal of its upstream
  connection in order of first appearance (``conn-1``, ``conn-2``, ...), so
  "same connection as the previous request" is compared but port numbers are not.
* Arrival order at one backend of requests that belong to the same client request
  (a shadow and a retry, two shadows): they race.  Records are sorted by the
  client request number (header ``x-seq``, added by the harness to every client
  request) and then by their normalised content.
* Bodies are compared by length and SHA-256 prefix (a 1 MiB body would make
  failure messages unreadable).
"""

from __future__ import annotations

import hashlib
import re
from dataclasses import dataclass, field
from typing import Any

from tests.support.client import Response
from tests.support.recorder import Recorded

SEQ_HEADER = "x-seq"
UUID_RE = re.compile(r"^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$")

_RESPONSE_VALUES = {"date": "<date>", "x-envoy-upstream-service-time": "<ms>"}


def body_digest(body: bytes) -> str:
    return f"{len(body)}B sha256:{hashlib.sha256(body).hexdigest()[:16]}"


def response(resp: Response) -> dict[str, Any]:
    """A client response: status, header lines in order (names lower-cased), body."""
    headers = [(k.lower(), _RESPONSE_VALUES.get(k.lower(), v)) for k, v in resp.headers]
    body: str | bytes = resp.body if len(resp.body) <= 256 else body_digest(resp.body)
    return {"status": resp.status, "headers": headers, "body": body}


@dataclass
class _Ids:
    """Names generated request ids by client request: ``<uuid-3>`` is the first id generated
    for request #3 (``x-seq: 3``), ``<uuid-3b>`` a second, different one."""

    client_ids: set[str]
    tokens: dict[str, str] = field(default_factory=dict)
    per_seq: dict[int, int] = field(default_factory=dict)

    def __call__(self, value: str, seq: int = -1) -> str:
        if value in self.client_ids or not UUID_RE.match(value):
            return value
        tok = self.tokens.get(value)
        if tok is None:
            k = self.per_seq.get(seq, 0)
            self.per_seq[seq] = k + 1
            tok = self.tokens[value] = f"<uuid-{seq}{'' if k == 0 else chr(ord('a') + k)}>"
        return tok


def seq_of(rec: Recorded) -> int:
    v = rec.header(SEQ_HEADER)
    return int(v) if v is not None and v.isdigit() else -1


def record(rec: Recorded, ids: _Ids, conn: str | None = None) -> dict[str, Any]:
    headers = [(k, ids(v) if k == "x-request-id" else v) for k, v in rec.headers]
    out: dict[str, Any] = {
        "request": f"{rec.method} {rec.target} HTTP/{rec.version}",
        "headers": headers,
        "body": body_digest(rec.body),
        "framing": "chunked" if rec.chunked else f"content-length: {rec.content_length}",
    }
    if rec.trailers:
        out["trailers"] = rec.trailers
    if conn is not None:
        out["conn"] = conn
    return out


def backends(
    recorded: dict[str, list[Recorded]],
    client_ids: set[str],
    compare_connections: bool = False,
) -> dict[str, list[dict[str, Any]]]:
    """Every backend's requests, normalised and sorted by client request number."""
    # generated ids are numbered over all backends in (seq, backend, wire order) order so
    # the numbering is the same for two runs whose requests arrived in a different order
    ordered: list[tuple[int, str, int, Recorded]] = []
    for name, recs in recorded.items():
        for i, r in enumerate(recs):
            ordered.append((seq_of(r), name, i, r))
    ordered.sort(key=lambda t: (t[0], t[1], repr(sorted(t[3].headers))))
    ids = _Ids(client_ids)
    for _, _, _, r in ordered:
        rid = r.header("x-request-id")
        if rid is not None:
            ids(rid, seq_of(r))
    out: dict[str, list[dict[str, Any]]] = {}
    for name, recs in recorded.items():
        conns: dict[int, str] = {}
        items = []
        for r in recs:  # arrival order, for connection ordinals
            conn = None
            if compare_connections:
                conn = conns.setdefault(r.peer_port, f"conn-{len(conns) + 1}")
            items.append((seq_of(r), record(r, ids, conn)))
        items.sort(key=lambda t: (t[0], repr(t[1])))
        out[name] = [rec for _, rec in items]
    return out
