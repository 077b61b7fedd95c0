"""The data plane's event seam: what the live page (simulator/proxy/live/) watches.

The data plane calls its ``EventTap``'s sink once when a downstream request finishes
(``request_done``) and once when a shadow copy finishes or is not sent
(``shadow_done``), each time with a plain record of what happened.  ``tap.sink`` is
None while nobody watches, and then the whole cost is that None check: the record is
only built when there is a sink.  Gateway listeners share their mesh listener's tap.

The calls (keep them when code moves): ``Stream._log`` (every finished request, before the
access-log line), ``ShadowDispatcher.submit``'s four paths that send no copy (unknown
cluster, over the cap, over the pace: ``DROPPED``; fast-failed: ``FAILED`` 503 UF) through
``ShadowDispatcher.tell_unsent``, and ``ShadowExchange._end`` (every copy sent).

A sink must be cheap and must not raise: it runs inside the data plane's callbacks.
The live page's hub (``simulator.proxy.live.hub.LiveHub``) counts every record and
samples the rest for the browsers.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Protocol

if TYPE_CHECKING:
    from simulator.core.table import Forward, LocalReply


class RequestRecord:
    """One downstream request, when its response is done (or the client went away)."""

    __slots__ = ("start", "method", "path", "authority", "decision", "status", "flags",
                 "duration", "request_id", "diff")

    def __init__(self, start: float, method: str, path: str, authority: str,
                 decision: Forward | LocalReply | None, status: int, flags: str,
                 duration: float, request_id: str | None, diff: str | None = None) -> None:
        self.start = start  # wall clock (time.time()) when the request began
        self.method = method
        self.path = path  # as logged: the normalized path, or x-envoy-original-path
        self.authority = authority
        self.decision = decision  # the core's decision (route, cluster, sampled mirrors)
        self.status = status  # 0: no response (client gone)
        self.flags = flags  # Envoy response flags, "-" for none
        self.duration = duration  # seconds
        self.request_id = request_id
        self.diff = diff  # a response comparison's verdict, shown as a badge (e.g. "mismatch")


# a shadow copy's fate
ANSWERED = "answered"  # the mirror answered (status); flags may say it was cut after
FAILED = "failed"  # no answer: reset, timeout, refused, no healthy host (flags say which)
DROPPED = "dropped"  # never sent: over the in-flight cap or the slow mirror's pace
UNKNOWN_CLUSTER = "unknown cluster"  # never sent: the mirror cluster does not exist


class ShadowRecord:
    """One shadow copy: answered, failed or never sent (``fate``)."""

    __slots__ = ("start", "method", "path", "request_id", "cluster", "authority", "status",
                 "flags", "duration", "fate", "diff")

    def __init__(self, start: float, method: str, path: str, request_id: str | None, cluster: str,
                 authority: str, status: int, flags: str, duration: float, fate: str,
                 diff: str | None = None) -> None:
        self.start = start
        self.method = method
        self.path = path
        self.request_id = request_id  # the primary's (the copy carries the same x-request-id)
        self.cluster = cluster
        self.authority = authority  # the copy's Host, e.g. httpbin-shadow:8000
        self.status = status  # 0 when never sent
        self.flags = flags
        self.duration = duration
        self.fate = fate
        self.diff = diff  # the copy's response compared with the primary's (e.g. "match")


class EventSink(Protocol):
    def request_done(self, record: RequestRecord) -> None: ...

    def shadow_done(self, record: ShadowRecord) -> None: ...


class EventTap:
    """Where the data plane finds its sink: one per proxy family (listener and gateways)."""

    __slots__ = ("sink",)

    def __init__(self) -> None:
        self.sink: EventSink | None = None


def shadow_fate(status: int, head_status: int, flags: str) -> str:
    """A finished copy's fate: ANSWERED when it ended with no flag or with the status of
    the response head the mirror sent (cut after it), else FAILED."""
    if flags == "-" or (head_status and status == head_status):
        return ANSWERED
    return FAILED
