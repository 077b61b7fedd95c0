"""The live page's hub: the data plane's event sink while at least one page watches.

Cost.  While no page is open the hub is not the tap's sink (``tap.sink is None``) and the
data plane builds no record.  While pages are open, each record costs the data plane one
call here: its edge is counted (every request and copy: the counts on the picture are
exact), and it is kept for the pages only while this tick's budget lasts
(``MAX_EVENTS_PER_TICK`` records per ``TICK`` seconds, 24 a second: more than a class can
read); the rest are only counted (``skipped``).  Every ``TICK`` the flusher turns the kept
records into one JSON batch (with the counts), encoded once for every page.

Slow pages.  Each page has a queue of at most ``QUEUE_BATCHES`` batches; when a page does
not take them (a stalled browser, a slow network) the oldest batch is dropped and its
events counted as ``lost`` for that page.  A write to a page blocked for ``WRITE_TIMEOUT``
seconds closes it (the browser's EventSource reconnects).  So memory per page is bounded
(its queue, plus aiohttp's 64 KiB write buffer), and the data plane never waits for a page.

More event kinds.  ``publish(event)`` sends any JSON-ready dict with a ``kind`` to the pages
under the same budget; the page renders the kinds it knows (``request``, ``shadow``,
``annotate``: add fields, e.g. ``diff``, to a request already shown, found by its ``id``;
``note``) and shows other kinds as a plain line.  Request and shadow events take an
optional ``diff`` field (a status string the page shows as a badge).
"""

from __future__ import annotations

import asyncio
import collections
import json
import os
import time
from collections.abc import Callable
from typing import Any, Final

from simulator.core.table import Forward, LocalReply, RouteTable
from simulator.proxy.events import DROPPED, EventTap, RequestRecord, ShadowRecord
from simulator.proxy.live.graph import picture
from simulator.proxy.tasks import TaskSet

TICK: Final = 0.5  # seconds between batches to the pages
MAX_EVENTS_PER_TICK: Final = 12  # records kept for the pages per tick (24 a second); the rest only counted
QUEUE_BATCHES: Final = 20  # batches a page may have waiting before the oldest is dropped
WRITE_TIMEOUT: Final = 20.0  # a page whose write is blocked this long is closed
KEEPALIVE: Final = 15.0  # an SSE comment this often when nothing happens
MAX_WATCHERS: Final = 32


class Watcher:
    """One open page: its queue of encoded batches."""

    __slots__ = ("queue", "wake", "lost", "closed", "queued_events")

    def __init__(self) -> None:
        self.queue: collections.deque[tuple[bytes, int]] = collections.deque()
        self.wake = asyncio.Event()
        self.lost = 0  # events dropped because this page did not keep up
        self.closed = False
        self.queued_events = 0

    def offer(self, data: bytes, nevents: int) -> None:
        if len(self.queue) >= QUEUE_BATCHES:
            _, n = self.queue.popleft()
            self.lost += n
            self.queued_events -= n
        self.queue.append((data, nevents))
        self.queued_events += nevents
        self.wake.set()

    async def next(self, timeout: float) -> bytes | None:
        """The next batch, or None after ``timeout`` seconds without one."""
        if not self.queue:
            self.wake.clear()
            try:
                await asyncio.wait_for(self.wake.wait(), timeout)
            except TimeoutError:
                return None
        if not self.queue:
            return None
        data, n = self.queue.popleft()
        self.queued_events -= n
        return data


def _short_source(file: str, line: int) -> str:
    return f"{os.path.basename(file)}:{line}" if file else ""


class LiveHub:
    """Counts and samples the data plane's records for the open pages (see the module doc)."""

    def __init__(self, tap: EventTap, table: Callable[[], RouteTable],
                 version: Callable[[], str | None] | None = None, workers: int = 1) -> None:
        self.tap = tap
        self.get_table = table
        self.get_version = version
        self.workers = workers
        self.watchers: set[Watcher] = set()
        self.tasks: TaskSet | None = None
        self.table: RouteTable | None = None
        self.picture: dict[str, Any] = {}
        self.route_ids: dict[int, str] = {}
        self.loaded_at = time.time()
        self.counts: dict[str, int] = {}
        self.fates: dict[str, dict[str, int]] = {}
        self.pending: list[RequestRecord | ShadowRecord | dict[str, Any]] = []
        self.budget = MAX_EVENTS_PER_TICK
        self.skipped = 0
        self.counted_since = time.time()
        self.closed = False
        self.dirty = False  # something was counted since the last batch

    # ------------------------------------------------------------------ the sink
    def request_done(self, r: RequestRecord) -> None:
        self.dirty = True
        counts = self.counts
        counts["client"] = counts.get("client", 0) + 1
        d = r.decision
        route = d.route if d is not None else None
        rid = self.route_ids.get(id(route), "") if route is not None else ""
        if rid:
            counts[rid] = counts.get(rid, 0) + 1
            if isinstance(d, Forward):
                key = rid + ">" + d.cluster
                counts[key] = counts.get(key, 0) + 1
                for m in d.mirrors:
                    key = rid + "~" + m.cluster
                    counts[key] = counts.get(key, 0) + 1
        else:
            counts["local"] = counts.get("local", 0) + 1
        if self.budget > 0:
            self.budget -= 1
            self.pending.append(r)
        else:
            self.skipped += 1

    def shadow_done(self, r: ShadowRecord) -> None:
        self.dirty = True
        f = self.fates.get(r.cluster)
        if f is None:
            f = self.fates[r.cluster] = {}
        f[r.fate] = f.get(r.fate, 0) + 1
        if self.budget > 0:
            self.budget -= 1
            self.pending.append(r)
        else:
            self.skipped += 1

    def publish(self, event: dict[str, Any]) -> None:
        """Send any JSON-ready event with a ``kind`` to the open pages (same budget)."""
        if not self.watchers:
            return
        self.dirty = True
        if self.budget > 0:
            self.budget -= 1
            self.pending.append(event)
        else:
            self.skipped += 1

    # ------------------------------------------------------------------ records -> JSON
    def _request_json(self, r: RequestRecord) -> dict[str, Any]:
        d = r.decision
        route = d.route if d is not None else None
        ev: dict[str, Any] = {
            "kind": "request", "id": r.request_id, "t": round(r.start, 3), "method": r.method,
            "path": r.path, "host": r.authority, "status": r.status, "flags": r.flags,
            "ms": round(r.duration * 1000, 1),
        }
        if route is not None:
            ev["route"] = self.route_ids.get(id(route), "")
            ev["rule"] = _short_source(route.file, route.line) or route.origin
            ev["rule_path"] = f"{route.file}:{route.line}" if route.file else route.origin
        if isinstance(d, Forward):
            ev["cluster"] = d.cluster
            if d.original_path is not None:
                ev["path"] = d.original_path
            ev["mirrors"] = [m.cluster for m in d.mirrors]
        elif isinstance(d, LocalReply):
            ev["local"] = d.details or "local reply"
        if r.diff is not None:
            ev["diff"] = r.diff
        return ev

    @staticmethod
    def _shadow_json(r: ShadowRecord) -> dict[str, Any]:
        ev: dict[str, Any] = {
            "kind": "shadow", "id": r.request_id, "t": round(r.start, 3), "method": r.method,
            "path": r.path, "host": r.authority, "cluster": r.cluster, "status": r.status,
            "flags": r.flags, "ms": round(r.duration * 1000, 1), "fate": r.fate, "dropped": r.fate == DROPPED}
        if r.diff is not None:
            ev["diff"] = r.diff
        return ev

    # ------------------------------------------------------------------ config
    def refresh_config(self) -> bool:
        """Rebuild the picture when the proxy's table changed; True when it did."""
        table = self.get_table()
        if table is self.table:
            return False
        self.table = table
        pic, ids = picture(table)
        self.route_ids = ids
        self.loaded_at = time.time()
        pic["loaded_at"] = round(self.loaded_at, 3)
        pic["version"] = self.get_version() if self.get_version is not None else None
        pic["workers"] = self.workers
        self.picture = pic
        self.counts = {}
        self.fates = {}
        self.counted_since = self.loaded_at
        self.dirty = True
        return True

    def config_attempt(self, state: Any, accepted: bool) -> None:
        """A reload was tried (proxy/reload.py's ConfigState listener): a rejected one is
        said on the page (an accepted one redraws the picture at the next tick)."""
        if not accepted:
            errors = list(getattr(state, "last_error", ()))
            self.publish({"kind": "note", "text": "config reload rejected, the last good config keeps serving"
                          + (": " + errors[0] if errors else "")})

    def config_message(self) -> bytes:
        self.refresh_config()
        return sse("config", self.picture) + self._batch_bytes([])

    # ------------------------------------------------------------------ pages
    def add_watcher(self) -> Watcher | None:
        if self.closed or len(self.watchers) >= MAX_WATCHERS:
            return None
        w = Watcher()
        self.watchers.add(w)
        if self.tasks is None or self.tasks.closed:
            self.tasks = TaskSet(asyncio.get_running_loop())
            self.tasks.spawn(self._flusher())
        self.tap.sink = self
        return w

    def remove_watcher(self, w: Watcher) -> None:
        w.closed = True
        w.wake.set()
        self.watchers.discard(w)
        if not self.watchers:
            self.tap.sink = None
            self.pending.clear()
            if self.tasks is not None:
                self.tasks.close()

    def close(self) -> None:
        """Close every page (admin shutdown): their handlers return."""
        self.closed = True
        for w in list(self.watchers):
            self.remove_watcher(w)

    def _batch_bytes(self, events: list[dict[str, Any]]) -> bytes:
        msg = {"events": events, "counts": self.counts, "fates": self.fates, "skipped": self.skipped,
               "since": round(self.counted_since, 3)}
        return sse("batch", msg)

    def flush(self) -> None:
        """One tick: send the kept records and the counts to every page."""
        if self.refresh_config():
            cfg = sse("config", self.picture)
            for w in self.watchers:
                w.offer(cfg, 0)
        if not self.dirty:
            return
        self.dirty = False
        pending = self.pending
        self.pending = []
        self.budget = MAX_EVENTS_PER_TICK
        events: list[dict[str, Any]] = []
        for r in pending:
            if isinstance(r, RequestRecord):
                events.append(self._request_json(r))
            elif isinstance(r, ShadowRecord):
                events.append(self._shadow_json(r))
            else:
                events.append(r)
        data = self._batch_bytes(events)
        for w in self.watchers:
            w.offer(data, len(events))

    async def _flusher(self) -> None:
        while self.watchers:
            await asyncio.sleep(TICK)
            self.flush()


def sse(event: str, payload: dict[str, Any]) -> bytes:
    return b"event: " + event.encode() + b"\ndata: " + json.dumps(
        payload, separators=(",", ":")).encode() + b"\n\n"
