"""Config reload: ``mirrorsim run --watch`` (the files changed) and SIGHUP re-read the ``-f``
files and swap the route table in place, keeping the last good config when the new one has
errors.

One attempt (:meth:`Reloader.reload`) runs the start-up steps again (load and validate,
translate, the ``--gateway`` servers): a config with errors is rejected with the usual
``FILE:LINE`` diagnostics and ``mirrorsim.config_reload_rejected`` counts it; a good one
becomes the next version (``mirrorsim.config_reload_ok``), shown by ``/server_info`` and
``/config_dump``.

Swapping (:func:`apply`) is one assignment per listener, between two requests: a request
routes once, on the table of the moment, and keeps its decision and its cluster's connection
pool to the end (retries included), so requests in flight finish on the table they started
with.  A cluster whose definition changed (its Envoy translation differs) gets a new pool
(fresh circuit breakers and outlier detection, as Envoy warms a changed cluster); the old pool
is retired: its idle connections close now, the rest once its last request is done.  An
unchanged cluster keeps its pool.

With ``--workers N`` the parent reads and validates (its messages, its counters) and tells
every worker ``reload V``; each worker reads the files itself and applies them as version V.
A worker forked later (a restart) starts from the parent's newest table.

The file I/O (reading, and ``--watch``'s stat calls) is the ``ConfigSource``'s.
"""

from __future__ import annotations

import asyncio
import os
import stat
import sys
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Final, Protocol, TextIO

from simulator.core.table import RouteTable
from simulator.envoy.export import cluster as envoy_cluster
from simulator.proxy.tasks import TaskSet

if TYPE_CHECKING:
    from simulator.proxy.server import Proxy
    from simulator.proxy.upstream import ClusterPool


# What this module needs of runner's classes (runner imports admin, which imports this module)
class GatewayListener(Protocol):
    @property
    def name(self) -> str: ...
    @property
    def table(self) -> RouteTable: ...


class RunningProxy(Protocol):
    @property
    def proxy(self) -> Proxy: ...
    @property
    def proxies(self) -> list[Proxy]: ...
    @property
    def gateway_ports(self) -> dict[str, int]: ...

WATCH_INTERVAL: Final = 0.25  # seconds between two looks at the files' metadata
RETIRE_INTERVAL: Final = 1.0  # how often a retired pool is checked for its last request
MAX_WATCHED: Final = 10_000  # files looked at under the -f directories
CONFIG_VERSION_STAT: Final = "mirrorsim.config_version"  # a worker's, in its stats reply
OK_STAT: Final = "mirrorsim.config_reload_ok"
REJECTED_STAT: Final = "mirrorsim.config_reload_rejected"


@dataclass(slots=True)
class ConfigState:
    """Which config is loaded: its version (1 at start, +1 per accepted reload), when, and
    the last rejected attempt.  ``listeners`` are called after each attempt (the live page)."""

    version: int = 1
    loaded_at: float = field(default_factory=time.time)
    files: tuple[str, ...] = ()  # the -f paths
    last_rejected_at: float | None = None
    last_error: tuple[str, ...] = ()
    listeners: list[Callable[[ConfigState, bool], None]] = field(default_factory=list)

    def describe(self) -> dict[str, Any]:
        """The ``config`` object of ``/server_info``."""
        out: dict[str, Any] = {"version": self.version, "loaded_at": iso_time(self.loaded_at),
                               "files": list(self.files)}
        if self.last_rejected_at is not None:
            out["last_rejected_at"] = iso_time(self.last_rejected_at)
            out["last_error"] = list(self.last_error)
        return out


def iso_time(t: float) -> str:
    """Envoy's timestamp form in admin output (``2026-12-02T16:23:00.957Z``)."""
    return time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(t)) + f".{int(t * 1000) % 1000:03d}Z"


@dataclass(frozen=True, slots=True)
class Loaded:
    table: RouteTable
    gateways: dict[str, RouteTable]  # GatewayListener.name -> its table


@dataclass(frozen=True, slots=True)
class Attempt:
    loaded: Loaded | None  # None: rejected
    messages: tuple[str, ...]  # formatted diagnostics (errors and warnings), in order
    files: tuple[str, ...]
    summary: str = ""  # why it was rejected, when it was


class ConfigSource:
    """The ``-f`` paths and how ``mirrorsim run`` turns them into tables."""

    def __init__(self, files: Sequence[str], namespace: str, options: Any,
                 gateways: Callable[[Any, RouteTable], Sequence[GatewayListener]],
                 has_resources: Callable[[Any], bool] = lambda c: True) -> None:
        self.paths = tuple(files)
        self.namespace = namespace
        self.options = options  # core.translate.TranslateOptions
        self.gateways = gateways
        self.has_resources = has_resources
        self.state = ConfigState(files=self.paths)

    def read(self) -> Attempt:
        from simulator.config import load
        from simulator.config.yamlio import STDIN
        from simulator.core.translate import translate

        if STDIN in self.paths:  # read once, at start: there is nothing to read again
            return Attempt(None, ("mirrorsim: -f - (standard input) cannot be read again; reload reads "
                                  "files only",), (), "the config came from standard input")

        result = load(self.paths, default_namespace=self.namespace)
        messages = tuple(d.format() for d in result.diagnostics)
        if not result.ok:
            n = sum(1 for d in result.diagnostics if d.severity == "error")
            return Attempt(None, messages, result.files, f"{n} error(s) in the configuration")
        if not self.has_resources(result.config):
            return Attempt(None, messages, result.files,
                           "no VirtualService, DestinationRule, ServiceEntry, WorkloadEntry or Gateway")
        table = translate(result.config, self.options)
        try:
            gws = self.gateways(result.config, table)
        except ValueError as exc:
            return Attempt(None, (*messages, f"mirrorsim: {exc}"), result.files, "a --gateway no longer fits")
        return Attempt(Loaded(table, {g.name: g.table for g in gws}), messages, result.files)

    def fingerprint(self) -> tuple[tuple[str, int, int, int], ...]:
        """Name, inode, size and mtime of every file under the paths (directories walked),
        so that a change, an addition, a removal or a file replaced by rename shows."""
        out: list[tuple[str, int, int, int]] = []
        dirs: set[tuple[int, int]] = set()
        for p in self.paths:
            _walk(p, out, dirs)
        return tuple(sorted(out))


def _walk(path: str, out: list[tuple[str, int, int, int]], dirs: set[tuple[int, int]]) -> None:
    try:
        st = os.stat(path)
    except OSError:
        out.append((path, -1, -1, -1))
        return
    if stat.S_ISDIR(st.st_mode):
        if (st.st_dev, st.st_ino) in dirs:  # a symlink back to a directory already walked
            return
        dirs.add((st.st_dev, st.st_ino))
        try:
            names = sorted(os.listdir(path))
        except OSError:
            names = []
        for name in names:
            if len(out) >= MAX_WATCHED:
                return
            _walk(os.path.join(path, name), out, dirs)
        return
    out.append((path, st.st_ino, st.st_size, st.st_mtime_ns))


class Reloader:
    """Runs reload attempts for one process: ``apply`` swaps the tables in (a running
    proxy, or the supervisor telling its workers), ``count`` bumps a counter."""

    def __init__(self, source: ConfigSource, apply: Callable[[Loaded, int], None],
                 count: Callable[[str], None], out: TextIO | None = None) -> None:
        self.source = source
        self.state = source.state
        self.apply = apply
        self.count = count
        self.out = out
        self._tasks: TaskSet | None = None
        self._seen: tuple[tuple[str, int, int, int], ...] = ()
        self._hup_queued = False

    def say(self, msg: str) -> None:
        try:
            print(msg, file=self.out or sys.stderr, flush=True)
        except (OSError, ValueError):  # a closed stderr: keep serving
            pass

    def reload(self, why: str) -> bool:
        """One attempt; True when the new config is now serving."""
        state = self.state
        try:
            attempt = self.source.read()
        except Exception as exc:  # noqa: BLE001 - a reload must never take the proxy down
            attempt = Attempt(None, (f"mirrorsim: reading the config failed: {exc!r}",), (), "internal error")
        for m in attempt.messages:
            self.say(m)
        if attempt.loaded is None:
            state.last_rejected_at = time.time()
            state.last_error = attempt.messages or (attempt.summary,)
            self.count(REJECTED_STAT)
            self.say(f"mirrorsim: config reload ({why}) rejected: {attempt.summary}; "
                     f"still serving config version {state.version}")
            self._notify(False)
            return False
        self.apply(attempt.loaded, state.version + 1)
        state.version += 1
        state.loaded_at = time.time()
        self.count(OK_STAT)
        t = attempt.loaded.table
        nhosts = sum(len(rc.virtual_hosts) for rc in t.route_configs.values())
        self.say(f"mirrorsim: config version {state.version} loaded ({why}): "
                 f"{nhosts} virtual host(s), {len(t.clusters)} cluster(s)")
        self._notify(True)
        return True

    def _notify(self, ok: bool) -> None:
        for fn in list(self.state.listeners):
            fn(self.state, ok)

    def install(self, loop: asyncio.AbstractEventLoop, watch: bool, interval: float = WATCH_INTERVAL) -> None:
        """SIGHUP re-reads; with ``watch``, so does a change of the files (seen by polling
        their metadata every ``interval`` seconds; a change is taken once the files have
        stayed the same for one more look, so that a file being written is not read half-way)."""
        import signal

        loop.add_signal_handler(signal.SIGHUP, self._sighup, loop)
        if watch:
            self._seen = self.source.fingerprint()
            self._tasks = TaskSet(loop)
            self._tasks.spawn(self._watch(interval))

    def _sighup(self, loop: asyncio.AbstractEventLoop) -> None:
        """A flood of SIGHUPs is one reload (each would be a whole load on the loop)."""
        if not self._hup_queued:
            self._hup_queued = True
            loop.call_soon(self._hup_reload)

    def _hup_reload(self) -> None:
        self._hup_queued = False
        self.reload("SIGHUP")

    async def _watch(self, interval: float) -> None:
        pending: tuple[tuple[str, int, int, int], ...] | None = None
        while True:
            await asyncio.sleep(interval)
            now = self.source.fingerprint()
            if now == self._seen:
                pending = None
                continue
            if now != pending:  # still changing: look again
                pending = now
                continue
            self._seen = now
            pending = None
            self.reload("files changed")

    async def close(self) -> None:
        if self._tasks is not None:
            await self._tasks.wait_closed()


# ------------------------------------------------------------------ swapping a running proxy

def apply(rp: RunningProxy, loaded: Loaded) -> None:
    """Serve ``loaded`` from now on (see the module doc)."""
    proxy = rp.proxy
    proxy.table = loaded.table
    for name, sibling in zip(rp.gateway_ports, rp.proxies[1:], strict=False):
        gw = loaded.gateways.get(name)
        if gw is not None:
            sibling.table = gw
    pools = proxy.pools  # shared by the gateway listeners
    for name, pool in list(pools.items()):
        new = loaded.table.clusters.get(name)
        # the same cluster as Envoy sees it (endpoints compare by identity, so not ==)
        if new is None or envoy_cluster(new) != envoy_cluster(pool.cluster):
            del pools[name]
            retire(pool, proxy.loop)


def retire(pool: ClusterPool, loop: asyncio.AbstractEventLoop) -> None:
    """Close ``pool`` once its requests are done; its idle connections now."""
    for conns in list(pool.idle.values()):
        for conn in list(conns):
            conn.abort()
    pool.idle.clear()
    if pool.active_rq <= 0 and not pool.pending and not pool.connecting:
        _close(pool)
        return
    loop.call_later(RETIRE_INTERVAL, retire, pool, loop)


def _close(pool: ClusterPool) -> None:
    pool.stats.outlier_detection_ejections_active -= len(pool.ejected)
    pool.ejected.clear()
    pool.close()


def serve_reloads(rp: RunningProxy, source: ConfigSource, loop: asyncio.AbstractEventLoop,
                  watch: bool, interval: float = WATCH_INTERVAL, out: TextIO | None = None) -> Reloader:
    """SIGHUP (and with ``watch`` a change of the files) reloads ``rp``."""
    reloader = Reloader(source, lambda loaded, version: apply(rp, loaded), rp.proxy.stats.inc, out)
    reloader.install(loop, watch, interval)
    return reloader


def worker_reload(rp: RunningProxy, source: ConfigSource, version: int, index: int) -> bool:
    """A worker told ``reload V``: read the files (the parent accepted them) and serve them as
    version V.  Should they have changed again in between and no longer load, the worker keeps
    its table and says so; the parent's next reload (``--watch`` sees the change) catches up."""
    attempt = source.read()
    if attempt.loaded is None:
        print(f"mirrorsim worker {index}: config version {version} did not load here "
              f"({attempt.summary}); still serving version {source.state.version}", file=sys.stderr, flush=True)
        return False
    apply(rp, attempt.loaded)
    source.state.version = version
    source.state.loaded_at = time.time()
    return True
