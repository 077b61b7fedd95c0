"""``mirrorsim run --diff``: pair each shadow copy's response with its primary's and
compare them (simulator/core/response_diff.py) without ever delaying the primary.

Theory of operation
-------------------
* The primary's stream gets a :class:`PrimaryCapture` when its route mirrors and diff
  is on (``DiffRecorder.begin``); each shadow copy of it gets a :class:`Side` of its own
  (``PrimaryCapture.mirror``), or is recorded as skipped (``PrimaryCapture.refused``)
  when the dispatcher did not send it.  With diff off, the data plane's only cost is
  one ``is not None`` test per response callback.
* A :class:`Side` keeps the status, the headers and at most ``body_cap`` bytes of the
  body; past the cap it keeps only a running SHA-256 and the length.  The bytes kept
  by every pending capture together are bounded (``max_pending_bytes``), and so is the
  number of primaries being paired (``max_pending``): over either, the comparison is
  skipped and counted (``skipped.pending_limit``), never queued.
* The client's bytes are written before a capture sees them (the capture only copies
  a reference); the comparison itself runs later on the loop (``call_soon``), never
  inside a primary's callbacks.  Once one side has ended, the other has ``wait``
  seconds to end (one timer for all pairs); past that the pair is skipped
  (``skipped.timeout``).
* Results: ``mirrorsim.diff.<cluster>.match|mismatch|skipped`` and
  ``mirrorsim.diff.<cluster>.skipped.<reason>``; each mismatch as a JSON object kept in
  the last ``keep`` (admin ``GET /diffs``), written as one line to ``--diff-log``, and
  passed to every listener (the live page's event seam).
"""

from __future__ import annotations

import collections
import hashlib
import json
import os
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from simulator.core.response_diff import DiffRules, Response, compare, make_rules

if TYPE_CHECKING:
    import asyncio

    from simulator.core.table import Forward
    from simulator.proxy.stats import Stats

DEFAULT_WAIT = 5.0  # seconds the later side may take after the first ended
DEFAULT_MAX_PENDING = 1024  # primaries being paired at once
DEFAULT_MAX_PENDING_BYTES = 64 * 1024 * 1024  # body bytes kept by pending captures
DEFAULT_KEEP = 100  # mismatches kept for GET /diffs

_NO_HEADERS: list[tuple[bytes, bytes]] = []  # never changed: a Side's headers until it has some
# Side.state (CLOSED: its pairs are settled, nothing more is kept)
WAITING, HEADERS, DONE, FAILED, CLOSED = 0, 1, 2, 3, 4
# skip reasons (mirrorsim.diff.<cluster>.skipped.<reason>)
PRIMARY_FAILED = "primary_failed"
COPY_DROPPED = "copy_dropped"
PENDING_LIMIT = "pending_limit"
TIMEOUT = "timeout"
UNKNOWN_CLUSTER = "unknown_cluster"
COMPARE_FAILED = "compare_failed"  # comparing raised: a bug, counted; the batch's other pairs go on
FAST_FAILED = "fast_failed"  # not a skip: the copy failed as its mirror is down (503 UF)


@dataclass(slots=True)
class DiffOptions:
    rules: DiffRules = field(default_factory=make_rules)
    log_path: str | None = None
    wait: float = DEFAULT_WAIT
    max_pending: int = DEFAULT_MAX_PENDING
    max_pending_bytes: int = DEFAULT_MAX_PENDING_BYTES
    keep: int = DEFAULT_KEEP


class Side:
    """One response as it arrives: a copy's (``cluster`` its mirror cluster), or the
    primary's (:class:`PrimaryCapture`).  ``primary`` is the capture it is compared with."""

    __slots__ = ("recorder", "primary", "cluster", "status", "headers", "first", "chunks", "length",
                 "hasher", "state", "failure", "held", "waiting")

    def __init__(self, recorder: DiffRecorder, primary: PrimaryCapture | None, cluster: str) -> None:
        self.recorder = recorder
        # the primary's own side is the PrimaryCapture itself
        self.primary: PrimaryCapture = primary if primary is not None else self  # type: ignore[assignment]
        self.cluster = cluster
        self.status = 0
        self.headers: list[tuple[bytes, bytes]] = _NO_HEADERS  # the upstream's list, kept as is
        self.first = b""  # the body while it is one piece (the common case: no list)
        self.chunks: list[bytes] | None = None  # the body's pieces from the second on
        self.length = 0
        self.hasher: Any = None  # hashlib.sha256 once the body went over the cap
        self.state = WAITING
        self.failure = ""
        self.held = 0  # bytes counted in recorder.pending_bytes
        self.waiting = False  # in recorder.waiting

    def on_headers(self, status: int, headers: list[tuple[bytes, bytes]]) -> None:
        if self.state == WAITING:
            self.status = status
            self.headers = headers
            self.state = HEADERS

    def on_body(self, data: bytes) -> None:
        if self.state != HEADERS:
            return
        n = len(data)
        self.length += n
        if self.hasher is not None:
            self.hasher.update(data)
            return
        rec = self.recorder
        if self.length > rec.body_cap:
            h = hashlib.sha256()
            h.update(self.body())
            h.update(data)
            self.hasher = h
            self.drop_body()
            rec.release(self)
            return
        if rec.pending_bytes + n > rec.max_pending_bytes:
            self.primary.abandon()
            return
        if self.held == 0:
            self.first = data
        elif self.chunks is None:
            self.chunks = [self.first, data]
        else:
            self.chunks.append(data)
        self.held += n
        rec.pending_bytes += n

    def ended(self, status: int, flags: str) -> None:
        """A copy's exchange ended (ShadowExchange._end): complete, or failed with ``flags``."""
        state = self.state
        if state >= DONE:
            return
        if flags == "-" and state == HEADERS:
            self.state = DONE
        else:
            self.state = FAILED
            self.failure = "101" if flags == "-" else flags  # a 101 (upgrade): nothing to compare
            if not self.headers:
                self.status = status
        primary = self.primary
        if primary.state >= DONE:
            self.recorder.both_ended(self)
        else:
            self.recorder.wait(self)

    def body(self) -> bytes:
        chunks = self.chunks
        return self.first if chunks is None else b"".join(chunks)

    def drop_body(self) -> None:
        self.first = b""
        self.chunks = None

    def response(self) -> Response:
        return Response(self.status,
                        [(n.decode("latin-1").lower(), v.decode("latin-1")) for n, v in self.headers],
                        self.body(), self.length,
                        self.hasher.hexdigest() if self.hasher is not None else "", self.failure)


class PrimaryCapture(Side):
    """The primary's response, the request it answers, and the copies compared with it."""

    __slots__ = ("mirrors", "request", "decision", "authority", "request_id", "released")

    def __init__(self, recorder: DiffRecorder, request: Any, decision: Forward, authority: str,
                 request_id: str | None) -> None:
        super().__init__(recorder, None, "")
        self.mirrors: list[Side] = []  # the copies not yet compared or skipped
        # what a mismatch record says about the request, read only when there is one
        self.request = request  # the proxy's Request: method, target, version, start
        self.decision = decision
        self.authority = authority
        self.request_id = request_id
        self.released = False  # counted out of recorder.pending

    # the primary's stream
    def end(self, complete: bool, flags: str) -> None:
        """The primary's stream ended: ``complete`` when its whole response was relayed."""
        if self.state >= DONE:
            return
        if complete and self.state == HEADERS:
            self.state = DONE
        else:
            self.state = FAILED
            self.failure = flags
        mirrors = self.mirrors
        if not mirrors:
            self.settle()
            return
        rec = self.recorder
        for side in mirrors.copy() if len(mirrors) > 1 else mirrors:
            if side.state >= DONE:
                rec.both_ended(side)
            else:
                rec.wait(side)

    # the shadow dispatcher
    def mirror(self, cluster: str) -> Side | None:
        """A capture for one copy now being sent to ``cluster``."""
        if self.released:
            self.recorder.skip(cluster, PENDING_LIMIT)
            return None
        side = Side(self.recorder, self, cluster)
        self.mirrors.append(side)
        return side

    def refused(self, cluster: str, reason: str) -> None:
        """The dispatcher did not send the copy to ``cluster``: dropped by its caps
        (skipped), or failed at once (FAST_FAILED: the mirror is down, a mismatch)."""
        if reason == FAST_FAILED:
            side = self.mirror(cluster)
            if side is not None:
                side.ended(503, "UF")
            return
        self.recorder.skip(cluster, reason)

    def abandon(self) -> None:
        """Stop pairing this primary (over max_pending_bytes): its copies are skipped."""
        rec = self.recorder
        for side in list(self.mirrors):
            rec.close_side(side, PENDING_LIMIT)
        self.settle()

    def settle(self) -> None:
        """No copy is left to compare: free the primary's bytes and its place in pending."""
        if self.released:
            return
        self.released = True
        self.state = CLOSED
        rec = self.recorder
        rec.release(self)
        self.drop_body()
        rec.pending -= 1
        if rec.pending == 0 and rec.idle_waiters:
            rec.wake()


class DiffRecorder:
    """One per process: pending comparisons, limits, results."""

    def __init__(self, stats: Stats, loop: asyncio.AbstractEventLoop, options: DiffOptions | None = None) -> None:
        self.stats = stats
        self.loop = loop
        self.options = options = options or DiffOptions()
        self.rules = options.rules
        self.body_cap = options.rules.body_cap
        self.max_pending_bytes = options.max_pending_bytes
        self.wait_seconds = options.wait
        self.ignored = frozenset(n.encode("latin-1") for n in options.rules.ignore_headers)
        self.pending = 0  # primaries being paired
        self.pending_bytes = 0
        self.waiting: dict[Side, float] = {}  # copies whose other side ended -> deadline (in order)
        self._timer: asyncio.TimerHandle | None = None
        self.ready: list[Side] = []  # copies to compare at the next turn of the loop
        self.recent: collections.deque[dict[str, Any]] = collections.deque(maxlen=max(1, options.keep))
        self.listeners: list[Callable[[dict[str, Any]], None]] = []
        self.idle_waiters: list[asyncio.Future[None]] = []
        self._names: dict[str, tuple[str, str, str]] = {}
        self._log_fd = -1
        if options.log_path:
            self._log_fd = os.open(options.log_path, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o644)

    def close(self) -> None:
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None
        if self._log_fd >= 0:
            os.close(self._log_fd)
            self._log_fd = -1

    def wake(self) -> None:
        for f in self.idle_waiters:
            if not f.done():
                f.set_result(None)
        self.idle_waiters.clear()

    async def settled(self, timeout: float | None = None) -> None:
        """Wait until every primary begun is compared or skipped (for shutdown and tests)."""
        import asyncio

        if self.pending == 0:
            return
        fut: asyncio.Future[None] = self.loop.create_future()
        self.idle_waiters.append(fut)
        await asyncio.wait_for(fut, timeout)

    # -- the data plane's seam
    def begin(self, stream: Any, d: Forward) -> PrimaryCapture | None:
        """A capture for ``stream``'s primary, whose route mirrors to ``d.mirrors``; None
        (the copies counted as skipped) when max_pending primaries are being paired."""
        if self.pending >= self.options.max_pending:
            for policy in d.mirrors:
                self.skip(policy.cluster, PENDING_LIMIT)
            return None
        self.pending += 1
        return PrimaryCapture(self, stream.req, d, stream.authority, stream.request_id)

    # -- accounting
    def release(self, side: Side) -> None:
        self.pending_bytes -= side.held
        side.held = 0

    def names(self, cluster: str) -> tuple[str, str, str]:
        n = self._names.get(cluster)
        if n is None:
            p = f"mirrorsim.diff.{cluster}."
            n = self._names[cluster] = (p + "match", p + "mismatch", p + "skipped")
        return n

    def skip(self, cluster: str, reason: str) -> None:
        name = self.names(cluster)[2]
        inc = self.stats.inc
        inc(name)
        inc(f"{name}.{reason}")

    def wait(self, side: Side) -> None:
        """One of ``side``'s pair ended: the other has ``wait`` seconds to."""
        if not side.waiting:
            side.waiting = True
            deadline = self.loop.time() + self.wait_seconds
            self.waiting[side] = deadline
            if self._timer is None:
                self._timer = self.loop.call_at(deadline, self._sweep)

    def both_ended(self, side: Side) -> None:
        """The copy ``side`` and its primary have both ended: compare them soon."""
        if side.state == CLOSED:
            return
        if side.waiting:
            side.waiting = False
            del self.waiting[side]
        if side.primary.state == FAILED:
            self.close_side(side, PRIMARY_FAILED)
            return
        side.state = CLOSED  # nothing more is kept; compared by _flush
        ready = self.ready
        ready.append(side)
        if len(ready) == 1:
            self.loop.call_soon(self._flush)

    def _sweep(self) -> None:
        self._timer = None
        now = self.loop.time()
        expired = []
        for side, deadline in self.waiting.items():
            if deadline > now:
                break
            expired.append(side)
        for side in expired:
            del self.waiting[side]
            side.waiting = False
            self.close_side(side, TIMEOUT)
        for deadline in self.waiting.values():
            self._timer = self.loop.call_at(deadline, self._sweep)
            break

    def close_side(self, side: Side, reason: str | None) -> None:
        """The copy ``side`` is done (compared, or skipped for ``reason``): free what it held."""
        if reason is not None:
            if side.state == CLOSED:
                return
            self.skip(side.cluster, reason)
            if side.waiting:
                side.waiting = False
                del self.waiting[side]
        side.state = CLOSED
        self.release(side)
        side.drop_body()
        primary = side.primary
        mirrors = primary.mirrors
        if side in mirrors:
            mirrors.remove(side)
            if not mirrors and primary.state >= DONE:
                primary.settle()

    def _flush(self) -> None:
        ready = self.ready
        self.ready = []
        for side in ready:
            try:
                self._compare(side)
            except Exception:  # noqa: BLE001 - one bad pair must not leave the others unsettled
                self.skip(side.cluster, COMPARE_FAILED)
            finally:
                self.close_side(side, None)

    def _compare(self, m: Side) -> None:
        p = m.primary
        names = self.names(m.cluster)
        if p.status == m.status and p.hasher is None and m.hasher is None and not m.failure and not p.failure \
                and p.body() == m.body() and _same_headers(p.headers, m.headers, self.ignored):
            self.stats.inc(names[0])  # the common case: equal, without building the comparison
            return
        result = compare(p.response(), m.response(), self.rules)
        if result.match:
            self.stats.inc(names[0])
            return
        self.stats.inc(names[1])
        req, d = p.request, p.decision
        start = req.start
        record = {
            "time": time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(start)) + f".{int(start * 1000) % 1000:03d}Z",
            "request": f"{req.method} {d.original_path or d.path} HTTP/{req.version}",
            "authority": p.authority,
            "x_request_id": p.request_id or "",
            "cluster": m.cluster,
            "primary_status": p.status,
            "mirror_status": m.status,
            "differences": [d.as_dict() for d in result.differences],
            "body_diff": result.body_diff,
            "notes": list(result.notes),
        }
        self.recent.append(record)
        if self._log_fd >= 0:
            os.write(self._log_fd, (json.dumps(record) + "\n").encode())
        for listener in list(self.listeners):
            listener(record)

    def mismatches(self, n: int | None = None) -> list[dict[str, Any]]:
        """The last ``n`` mismatches (all kept when None), oldest first."""
        items = list(self.recent)
        return items if n is None else items[-n:] if n > 0 else []


def _same_headers(a: list[tuple[bytes, bytes]], b: list[tuple[bytes, bytes]], ignored: frozenset[bytes]) -> bool:
    """The same headers in the same order, the ignored ones left out (names lower-case)."""
    i = j = 0
    na, nb = len(a), len(b)
    while True:
        while i < na and a[i][0] in ignored:
            i += 1
        while j < nb and b[j][0] in ignored:
            j += 1
        if i == na or j == nb:
            return i == na and j == nb
        if a[i] != b[j]:
            return False
        i += 1
        j += 1


def diffs_view(recorder: DiffRecorder | None, n: str | None) -> dict[str, Any]:
    """Admin ``GET /diffs[?n=N]``: the last N mismatches (all kept when n is absent)."""
    if recorder is None:
        return {"diff": "off (mirrorsim run --diff)", "mismatches": []}
    try:
        count = None if n is None else max(0, int(n))
    except ValueError:
        count = None
    return {"diff": "on", "pending": recorder.pending, "pending_bytes": recorder.pending_bytes,
            "mismatches": recorder.mismatches(count)}
