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

# Side.state (CLOSED: its pairs are settled, nothing more is kept)
WAITING, HEADERS, DONE, FAILED, CLOSED = 0, 1, 2, 3, 4
# skip reasons (mirrorsim.diff.<cluster>.skipped.<reason>)
PRIMARY_FAILED = "primary_failed"
COPY_DROPPED = "copy_dropped"
PENDING_LIMIT = "pending_limit"
TIMEOUT = "timeout"
UNKNOWN_CLUSTER = "unknown_cluster"
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
    """One response as it arrives (the primary's or a copy's)."""

    __slots__ = ("recorder", "capture", "status", "headers", "chunks", "length", "hasher", "state",
                 "failure", "held")

    def __init__(self, recorder: DiffRecorder, capture: PrimaryCapture) -> None:
        self.recorder = recorder
        self.capture = capture  # the primary this side belongs to or is compared with
        self.status = 0
        self.headers: list[tuple[bytes, bytes]] = []
        self.chunks: list[bytes] = []
        self.length = 0
        self.hasher: Any = None  # hashlib.sha256 once the body went over the cap
        self.state = WAITING
        self.failure = ""
        self.held = 0  # bytes counted in recorder.pending_bytes

    def on_headers(self, status: int, headers: list[tuple[bytes, bytes]]) -> None:
        if self.state == WAITING:
            self.status = status
            self.headers = headers
            self.state = HEADERS

    def on_body(self, data: bytes) -> None:
        if self.state != HEADERS:
            return
        self.length += len(data)
        if self.hasher is not None:
            self.hasher.update(data)
            return
        rec = self.recorder
        if self.length > rec.rules.body_cap:
            h = hashlib.sha256()
            for c in self.chunks:
                h.update(c)
            h.update(data)
            self.hasher = h
            self.chunks = []
            rec.release(self)
            return
        if rec.pending_bytes + len(data) > rec.options.max_pending_bytes:
            self.capture.abandon(PENDING_LIMIT)
            return
        self.chunks.append(data)
        self.held += len(data)
        rec.pending_bytes += len(data)

    def ended(self, status: int, flags: str) -> None:
        """A copy's exchange ended (ShadowExchange._end): complete, or failed with ``flags``."""
        if self.state >= DONE:
            return
        if self.state == WAITING and flags == "-":  # an upgrade's 101: nothing to compare
            flags = "101"
        if flags == "-" and self.state == HEADERS:
            self.state = DONE
        else:
            self.state = FAILED
            self.failure = flags
            if not self.headers:
                self.status = status
        rec = self.recorder
        pair = rec.pairs_of.get(self)
        if pair is not None:
            rec.side_ended(pair)

    def response(self) -> Response:
        return Response(self.status,
                        [(n.decode("latin-1").lower(), v.decode("latin-1")) for n, v in self.headers],
                        b"".join(self.chunks), self.length,
                        self.hasher.hexdigest() if self.hasher is not None else "", self.failure)


class Pair:
    __slots__ = ("primary", "cluster", "mirror", "deadline", "closed")

    def __init__(self, primary: PrimaryCapture, cluster: str, mirror: Side) -> None:
        self.primary = primary
        self.cluster = cluster
        self.mirror = mirror
        self.deadline = 0.0
        self.closed = False


class PrimaryCapture:
    """The primary's response and the copies it is compared with."""

    __slots__ = ("recorder", "side", "pairs", "method", "path", "authority", "request_id", "version",
                 "abandoned", "released", "start")

    def __init__(self, recorder: DiffRecorder, method: str, path: str, authority: str,
                 request_id: str, version: str) -> None:
        self.recorder = recorder
        self.side = Side(recorder, self)
        self.pairs: list[Pair] = []
        self.method = method
        self.path = path
        self.authority = authority
        self.request_id = request_id
        self.version = version
        self.abandoned = False
        self.released = False  # counted out of recorder.pending
        self.start = time.time()

    # the primary's stream
    def on_headers(self, status: int, headers: list[tuple[bytes, bytes]]) -> None:
        self.side.on_headers(status, headers)

    def on_body(self, data: bytes) -> None:
        self.side.on_body(data)

    def end(self, complete: bool, flags: str) -> None:
        """The primary's stream ended: ``complete`` when its whole response was relayed."""
        side = self.side
        if side.state >= DONE:
            return
        if complete and side.state == HEADERS:
            side.state = DONE
        else:
            side.state = FAILED
            side.failure = flags
        rec = self.recorder
        for pair in list(self.pairs):
            rec.side_ended(pair)
        if not self.pairs:
            self.settle()

    def abandon(self, reason: str) -> None:
        """Stop pairing this primary (over max_pending_bytes): its pairs are skipped."""
        self.abandoned = True
        for pair in list(self.pairs):
            self.recorder.close_pair(pair, reason)
        self.settle()

    def settle(self) -> None:
        """No pair is left: free the primary's bytes and its place in pending."""
        if self.released:
            return
        self.released = True
        self.side.state = CLOSED
        rec = self.recorder
        rec.release(self.side)
        self.side.chunks = []
        rec.pending -= 1
        if rec.pending == 0 and rec.idle_waiters:
            rec.wake()

    # the shadow dispatcher
    def mirror(self, cluster: str) -> Side | None:
        """A capture for one copy now being sent to ``cluster``."""
        if self.released:
            self.recorder.skip(cluster, PENDING_LIMIT)
            return None
        side = Side(self.recorder, self)
        pair = Pair(self, cluster, side)
        self.pairs.append(pair)
        self.recorder.pairs_of[side] = pair
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


class DiffRecorder:
    """One per process: pending pairs, limits, results."""

    def __init__(self, stats: Stats, loop: asyncio.AbstractEventLoop, options: DiffOptions | None = None) -> None:
        self.stats = stats
        self.loop = loop
        self.options = options or DiffOptions()
        self.rules = self.options.rules
        self.pending = 0  # primaries being paired
        self.pending_bytes = 0
        self.pairs_of: dict[Side, Pair] = {}
        self.waiting: dict[Pair, float] = {}  # pairs with one side ended -> deadline (in order)
        self._timer: asyncio.TimerHandle | None = None
        self.recent: collections.deque[dict[str, Any]] = collections.deque(maxlen=max(1, self.options.keep))
        self.listeners: list[Callable[[dict[str, Any]], None]] = []
        self.idle_waiters: list[asyncio.Future[None]] = []
        self._log_fd = -1
        if self.options.log_path:
            self._log_fd = os.open(self.options.log_path, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o644)

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
        """Wait until every pair begun is compared or skipped (for shutdown and tests)."""
        import asyncio

        if self.pending == 0:
            return
        fut: asyncio.Future[None] = self.loop.create_future()
        self.idle_waiters.append(fut)
        await asyncio.wait_for(fut, timeout)

    # -- the data plane's seams
    def begin(self, stream: Any, d: Forward) -> PrimaryCapture | None:
        """A capture for ``stream``'s primary, whose route mirrors to ``d.mirrors``; None
        (the copies counted as skipped) when max_pending primaries are being paired."""
        if self.pending >= self.options.max_pending:
            for policy in d.mirrors:
                self.skip(policy.cluster, PENDING_LIMIT)
            return None
        self.pending += 1
        req = stream.req
        return PrimaryCapture(self, req.method, d.original_path or d.path, stream.authority,
                              stream.request_id or "", f"HTTP/{req.version}")

    # -- accounting
    def release(self, side: Side) -> None:
        self.pending_bytes -= side.held
        side.held = 0

    def skip(self, cluster: str, reason: str) -> None:
        inc = self.stats.inc
        inc(f"mirrorsim.diff.{cluster}.skipped")
        inc(f"mirrorsim.diff.{cluster}.skipped.{reason}")

    def side_ended(self, pair: Pair) -> None:
        if pair.closed:
            return
        p, m = pair.primary.side, pair.mirror
        if p.state >= DONE and m.state >= DONE:
            self.waiting.pop(pair, None)
            if p.state == FAILED:
                self.close_pair(pair, PRIMARY_FAILED)
            else:
                pair.closed = True
                self.loop.call_soon(self._compare, pair)
            return
        if pair not in self.waiting:
            deadline = self.loop.time() + self.options.wait
            self.waiting[pair] = deadline
            if self._timer is None:
                self._timer = self.loop.call_at(deadline, self._sweep)

    def _sweep(self) -> None:
        self._timer = None
        now = self.loop.time()
        expired = []
        for pair, deadline in self.waiting.items():
            if deadline > now:
                break
            expired.append(pair)
        for pair in expired:
            del self.waiting[pair]
            self.close_pair(pair, TIMEOUT)
        for deadline in self.waiting.values():
            self._timer = self.loop.call_at(deadline, self._sweep)
            break

    def close_pair(self, pair: Pair, reason: str | None) -> None:
        """``pair`` is done (compared, or skipped for ``reason``): free what it held."""
        if reason is not None:
            if pair.closed:
                return
            self.skip(pair.cluster, reason)
        pair.closed = True
        self.waiting.pop(pair, None)
        self.pairs_of.pop(pair.mirror, None)
        self.release(pair.mirror)
        pair.mirror.state = CLOSED
        pair.mirror.chunks = []
        primary = pair.primary
        if pair in primary.pairs:
            primary.pairs.remove(pair)
            if not primary.pairs and (primary.side.state >= DONE or primary.abandoned):
                primary.settle()

    def _compare(self, pair: Pair) -> None:
        primary = pair.primary
        try:
            result = compare(primary.side.response(), pair.mirror.response(), self.rules)
        finally:
            self.close_pair(pair, None)
        cluster = pair.cluster
        if result.match:
            self.stats.inc(f"mirrorsim.diff.{cluster}.match")
            return
        self.stats.inc(f"mirrorsim.diff.{cluster}.mismatch")
        record = {
            "time": time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(primary.start))
            + f".{int(primary.start * 1000) % 1000:03d}Z",
            "request": f"{primary.method} {primary.path} {primary.version}",
            "authority": primary.authority,
            "x_request_id": primary.request_id,
            "cluster": cluster,
            "primary_status": primary.side.status,
            "mirror_status": pair.mirror.status,
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
