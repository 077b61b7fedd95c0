"""``mirrorsim run --workers N``: N supervised processes serving the same ports.

Sockets.  For each worker the parent binds one listening socket per port with SO_REUSEPORT
(the kernel spreads new connections over the workers' sockets), forks the worker and
closes its own copy at once; the worker closes every other descriptor it inherited.  So
each listening socket is open in exactly one process: when a worker dies its socket goes
with it and the kernel stops handing it connections.  (A socket also open in the siblings
kept its share of new connections, which nobody accepted: they hung.)

Supervision.  A worker that dies is restarted on a fresh socket after
``--worker-restart-delay`` (0.2 s), doubled for each earlier death of the same worker within
30 s; its 5th death within 30 s stops mirrorsim with exit code 1 and a message.  Each
worker reports ``ready`` over its socketpair once it serves.

Admin.  The parent serves ``/ready`` (200 ``LIVE``; 503 ``INITIALIZING`` while a worker is
starting or restarting, 503 ``DRAINING`` while shutting down) and ``/stats``: every live
worker's counters added up, fetched over the socketpairs, so the numbers mean what they
mean with one process, plus ``mirrorsim.workers_live`` and ``mirrorsim.worker.<i>.live``
(0 for a worker that is down: its counters are missing from the sum, and a restarted
worker counts from zero).  Each worker has its own connection pools, circuit breakers,
shadow cap and random generator (seeded ``seed + i``); see docs/performance.md.

Signals go to the parent: the first SIGTERM or SIGINT drains every worker
(simulator/proxy/lifecycle.py; workers ignore SIGINT, so Ctrl-C reaches them through the
parent only), the second makes them exit at once.  docs/operations.md has the whole story.
"""

from __future__ import annotations

import asyncio
import json
import os
import signal
import socket
import sys
import traceback
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field, replace
from typing import Any, Final, TextIO

from aiohttp import web

from simulator.core.table import RouteTable
from simulator.proxy.admin import add_supervisor_routes, proxy_stats, ready_response, stats_response
from simulator.proxy.events import EventTap
from simulator.proxy.launch import GatewayListener, RunOptions, freeze_startup_objects, start_proxy
from simulator.proxy.lifecycle import DEFAULT_DRAIN_TIME, Shutdown, drain, say, signal_name
from simulator.proxy.live.app import add_live_routes
from simulator.proxy.reload import CONFIG_VERSION_STAT, Loaded, Reloader, worker_reload
from simulator.proxy.tasks import TaskSet

DEFAULT_RESTART_DELAY: Final = 0.2
MAX_RESTART_DELAY: Final = 5.0
DEATH_WINDOW: Final = 30.0  # seconds over which a worker's deaths are counted
MAX_DEATHS: Final = 5  # deaths of one worker within DEATH_WINDOW that stop mirrorsim
STARTUP_TIMEOUT: Final = 30.0  # a worker not ready by then is killed (and counts as a death)
STATS_TIMEOUT: Final = 2.0  # a worker that does not answer /stats by then is counted missing
FORCE_GRACE: Final = 1.0  # after "exit", how long a worker may take before SIGKILL
_BLOCKED: Final = {signal.SIGINT, signal.SIGTERM, signal.SIGCHLD}


def bind_reuseport(host: str, port: int) -> socket.socket:
    """A listening socket on ``host:port`` that shares the port (SO_REUSEPORT)."""
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    s = socket.socket(family, socket.SOCK_STREAM)
    try:
        s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEPORT, 1)
        s.bind((host, port))
        s.listen(1024)
        s.setblocking(False)
    except OSError:
        s.close()
        raise
    return s


def close_inherited_fds(keep: set[int]) -> None:
    """Close every descriptor of this process but ``keep`` (after fork: the parent's
    listening sockets, event loop and sibling socketpairs are not the worker's)."""
    lo = 0
    for fd in sorted(keep):
        if fd > lo:
            os.closerange(lo, fd)
        lo = fd + 1
    os.closerange(lo, os.sysconf("SC_OPEN_MAX"))


def describe_status(status: int) -> str:
    if os.WIFSIGNALED(status):
        return f"was killed by {signal_name(os.WTERMSIG(status))}"
    return f"exited with code {os.waitstatus_to_exitcode(status)}"


@dataclass(eq=False)
class Slot:
    """One worker position: the process in it comes and goes."""

    index: int
    pid: int = 0
    state: str = "down"  # starting | ready | down
    reader: asyncio.StreamReader | None = None
    writer: asyncio.StreamWriter | None = None
    lock: asyncio.Lock = field(default_factory=asyncio.Lock)
    deaths: list[float] = field(default_factory=list)
    restarts: int = 0
    version: int = 1  # the config version it was forked with (reload.py)
    seq: int = 0  # numbers stats requests, so a late answer is never taken for a newer one

    def send(self, line: bytes) -> None:
        if self.writer is not None and not self.writer.is_closing():
            try:
                self.writer.write(line)
            except OSError:  # pragma: no cover - the worker is gone; the reaper sees it
                pass


class Supervisor:
    def __init__(self, n: int, table: RouteTable, opts: RunOptions, gateways: Sequence[GatewayListener],
                 loop_factory: Callable[[], asyncio.AbstractEventLoop], drain_time: float,
                 restart_delay: float, out: TextIO) -> None:
        self.table = table
        self.opts = opts
        self.gateways = list(gateways)
        self.loop_factory = loop_factory
        self.drain_time = drain_time
        self.restart_delay = restart_delay
        self.out = out
        self.slots = [Slot(i) for i in range(n)]
        self.port = opts.listen_port
        self.gateway_ports = [gw.port for gw in gateways]
        self.loop = asyncio.get_running_loop()
        self.tasks = TaskSet(self.loop)
        self.shutdown = Shutdown(self.loop)
        self.draining = False
        self.gave_up = False
        self.done: asyncio.Future[int] = self.loop.create_future()
        self.all_ready: asyncio.Future[None] = self.loop.create_future()
        self.force_timer: asyncio.TimerHandle | None = None
        self.reloader: Reloader | None = None  # SIGHUP / --watch: every worker reloads (reload.py)
        self.counters: dict[str, int] = {}  # the parent's own (config reloads)

    def say(self, msg: str) -> None:
        say(self.out, msg)

    # -- workers
    def spawn(self, slot: Slot) -> None:
        """Bind the worker's sockets and fork it.  Raises OSError if binding fails."""
        socks: list[socket.socket] = []
        try:
            socks.append(bind_reuseport(self.opts.listen_host, self.port))
            for k, gw in enumerate(self.gateways):
                socks.append(bind_reuseport(gw.host, self.gateway_ports[k]))
        except OSError:
            for s in socks:
                s.close()
            raise
        self.port = socks[0].getsockname()[1]
        for k in range(len(self.gateways)):
            self.gateway_ports[k] = socks[k + 1].getsockname()[1]
        parent_end, child_end = socket.socketpair()
        old_mask = signal.pthread_sigmask(signal.SIG_BLOCK, _BLOCKED)
        try:
            pid = os.fork()
        except OSError:
            signal.pthread_sigmask(signal.SIG_SETMASK, old_mask)
            parent_end.close()
            child_end.close()
            for s in socks:
                s.close()
            raise
        if pid == 0:  # the worker: never returns
            code = 1
            try:
                signal.set_wakeup_fd(-1)  # the parent loop's: signals here are not its
                for sig in _BLOCKED:
                    signal.signal(sig, signal.SIG_DFL)
                signal.signal(signal.SIGINT, signal.SIG_IGN)  # Ctrl-C: the parent tells us
                signal.signal(signal.SIGHUP, signal.SIG_IGN)  # a reload: the parent tells us
                close_inherited_fds({0, 1, 2, child_end.fileno(), *(s.fileno() for s in socks)})
                signal.pthread_sigmask(signal.SIG_SETMASK, old_mask)
                code = self._worker(slot.index, socks, child_end)
            except BaseException:  # noqa: BLE001 - report anything, then leave
                traceback.print_exc()
            finally:
                try:
                    sys.stdout.flush()
                    sys.stderr.flush()
                finally:
                    os._exit(code)
        signal.pthread_sigmask(signal.SIG_SETMASK, old_mask)
        child_end.close()
        for s in socks:
            s.close()  # only the worker holds its listening sockets
        slot.pid = pid
        slot.state = "starting"
        slot.version = self.reloader.state.version if self.reloader is not None else 1
        self.tasks.spawn(self._await_ready(slot, pid, parent_end))

    def _worker(self, index: int, socks: list[socket.socket], control: socket.socket) -> int:
        opts = replace(self.opts, sock=socks[0], admin_port=None,
                       seed=None if self.opts.seed is None else self.opts.seed + index)
        gws = [replace(gw, sock=socks[k + 1]) for k, gw in enumerate(self.gateways)]
        return run_worker(index, self.table, opts, gws, control, self.loop_factory, self.drain_time)

    async def _await_ready(self, slot: Slot, pid: int, control: socket.socket) -> None:
        reader, writer = await asyncio.open_connection(sock=control)
        if slot.pid != pid:  # pragma: no cover - died before we got here
            writer.close()
            return
        slot.reader, slot.writer = reader, writer
        try:
            line = await asyncio.wait_for(reader.readline(), STARTUP_TIMEOUT)
        except TimeoutError:
            line = b""
            if slot.pid == pid:
                self.say(f"mirrorsim: worker {slot.index} (pid {pid}) not ready after "
                         f"{STARTUP_TIMEOUT:g} s; killing it")
                os.kill(pid, signal.SIGKILL)
        except OSError:
            line = b""
        if line != b"ready\n" or slot.pid != pid:
            return
        slot.state = "ready"
        self.say(f"mirrorsim worker {slot.index} ready (pid {pid})")
        if self.reloader is not None and slot.version < self.reloader.state.version:
            slot.send(b"reload %d\n" % self.reloader.state.version)  # reloaded while it started
        if self.draining:
            slot.send(b"exit\n" if self.shutdown.forced.is_set() else b"drain\n")
        elif all(s.state == "ready" for s in self.slots) and not self.all_ready.done():
            self.all_ready.set_result(None)

    def reap(self) -> None:
        while True:
            try:
                pid, status = os.waitpid(-1, os.WNOHANG)
            except ChildProcessError:
                return
            if pid == 0:
                return
            for slot in self.slots:
                if slot.pid == pid:
                    self._worker_exited(slot, status)
                    break

    def _worker_exited(self, slot: Slot, status: int) -> None:
        pid = slot.pid
        slot.pid = 0
        slot.state = "down"
        if slot.writer is not None:
            slot.writer.close()
        slot.reader = slot.writer = None
        if self.draining:
            if all(s.state == "down" for s in self.slots):
                self._finish()
            return
        how = describe_status(status)
        now = self.loop.time()
        slot.deaths = [t for t in slot.deaths if now - t < DEATH_WINDOW] + [now]
        if len(slot.deaths) >= MAX_DEATHS:
            self.say(f"mirrorsim: worker {slot.index} (pid {pid}) {how}: its {len(slot.deaths)}th "
                     f"failure within {DEATH_WINDOW:g} s; giving up")
            self.gave_up = True
            self.begin_drain(force=True)
            return
        delay = min(self.restart_delay * 2 ** (len(slot.deaths) - 1), MAX_RESTART_DELAY)
        self.say(f"mirrorsim: worker {slot.index} (pid {pid}) {how}; restarting it in {delay:g} s")
        self.loop.call_later(delay, self._restart, slot)

    def _restart(self, slot: Slot) -> None:
        if self.draining or slot.state != "down":
            return
        slot.restarts += 1
        try:
            self.spawn(slot)
        except OSError as exc:
            self.say(f"mirrorsim: worker {slot.index}: cannot listen: {exc}")
            self._worker_exited(slot, 1 << 8)

    # -- shutdown
    def on_signal(self, sig: int) -> None:
        self.shutdown.on_signal(sig)
        if len(self.shutdown.signals) == 1:
            live = sum(1 for s in self.slots if s.state != "down")
            self.say(f"mirrorsim: {signal_name(sig)}: draining {live} worker(s): no new connections, "
                     f"up to {self.drain_time:g} s for the requests in flight; a second signal cuts them")
            self.begin_drain(force=False)
        else:
            self.say(f"mirrorsim: {signal_name(sig)}: cutting the requests in flight")
            self.begin_drain(force=True)

    def begin_drain(self, force: bool) -> None:
        if force:
            self.shutdown.force()
        self.draining = True
        if not self.all_ready.done():
            self.all_ready.set_result(None)
        for slot in self.slots:
            if slot.state == "ready":
                slot.send(b"exit\n" if force else b"drain\n")
        if all(s.state == "down" for s in self.slots):
            self._finish()
            return
        if self.force_timer is not None:
            self.force_timer.cancel()
        # the workers end their drain by themselves; this only catches one that does not
        delay = FORCE_GRACE if force else self.drain_time + FORCE_GRACE
        self.force_timer = self.loop.call_later(delay, self._overdue, force)

    def _overdue(self, forced: bool) -> None:
        if not forced:
            self.begin_drain(force=True)
            return
        for slot in self.slots:
            if slot.pid:
                os.kill(slot.pid, signal.SIGKILL)

    def _finish(self) -> None:
        if self.force_timer is not None:
            self.force_timer.cancel()
        if not self.done.done():
            self.done.set_result(1 if self.gave_up else self.shutdown.exit_code)

    # -- admin
    def state(self) -> str:
        if self.draining:
            return "DRAINING"
        return "LIVE" if all(s.state == "ready" for s in self.slots) else "INITIALIZING"

    async def _worker_stats(self, slot: Slot) -> dict[str, int] | None:
        if slot.state != "ready":
            return None
        async with slot.lock:
            reader, writer = slot.reader, slot.writer
            if reader is None or writer is None:
                return None
            slot.seq += 1
            tag = b"%d " % slot.seq
            try:
                writer.write(b"stats " + tag)
                writer.write(b"\n")
                async with asyncio.timeout(STATS_TIMEOUT):
                    while True:
                        line = await reader.readline()
                        if not line:
                            return None
                        if line.startswith(tag):
                            data = json.loads(line[len(tag):])
                            return data if isinstance(data, dict) else None
            except (OSError, ValueError, TimeoutError):
                return None

    async def gather_stats(self) -> dict[str, int]:
        snaps = await asyncio.gather(*(self._worker_stats(s) for s in self.slots))
        total: dict[str, int] = {}
        for slot, snap in zip(self.slots, snaps, strict=True):
            total[f"mirrorsim.worker.{slot.index}.live"] = int(snap is not None)
            total[f"mirrorsim.worker.{slot.index}.restarts"] = slot.restarts
            if snap is not None and CONFIG_VERSION_STAT in snap:
                total[f"mirrorsim.worker.{slot.index}.config_version"] = snap.pop(CONFIG_VERSION_STAT)
            for k, v in (snap or {}).items():
                total[k] = total.get(k, 0) + v
        for k, v in self.counters.items():
            total[k] = total.get(k, 0) + v
        total["mirrorsim.workers_live"] = sum(1 for s in snaps if s is not None)
        return total

    async def start_admin(self) -> tuple[web.AppRunner | None, str]:
        if self.opts.admin_port is None:
            return None, ""

        async def stats_handler(request: web.Request) -> web.Response:
            return stats_response(request, await self.gather_stats())

        async def ready_handler(request: web.Request) -> web.Response:
            return ready_response(self.state())

        app = web.Application()
        app.router.add_get("/stats", stats_handler)
        app.router.add_get("/stats/prometheus", stats_handler)
        app.router.add_get("/ready", ready_handler)
        add_supervisor_routes(app, self)
        # the live page: the config, and counts from /stats (the events stay in the workers)
        add_live_routes(app, EventTap(), lambda: self.table, workers=len(self.slots))
        runner = web.AppRunner(app, access_log=None)
        await runner.setup()
        site = web.TCPSite(runner, self.opts.admin_host, self.opts.admin_port)
        await site.start()
        aport = site._server.sockets[0].getsockname()[1]  # type: ignore[union-attr]
        return runner, f" (admin http://{self.opts.admin_host}:{aport})"

    async def run(self) -> int:
        for sig in (signal.SIGINT, signal.SIGTERM):
            self.loop.add_signal_handler(sig, self.on_signal, sig)
        self.loop.add_signal_handler(signal.SIGCHLD, self.reap)
        if self.opts.config_source is not None:
            self.reloader = Reloader(self.opts.config_source, self._reloaded, self._count, self.out)
            self.reloader.install(self.loop, self.opts.watch)
        for slot in self.slots:
            self.spawn(slot)  # an OSError here (cannot listen) ends the run
        runner, admin = await self.start_admin()
        try:
            first: list[asyncio.Future[Any]] = [self.all_ready, self.done]
            await asyncio.wait(first, return_when=asyncio.FIRST_COMPLETED)
            if not self.draining:
                self.say(f"mirrorsim listening on http://{self.opts.listen_host}:{self.port} with "
                         f"{len(self.slots)} workers{admin}")
            code = await self.done
        finally:
            await self.tasks.wait_closed()
            if runner is not None:
                await runner.cleanup()
        if not self.gave_up:
            self.say(f"mirrorsim: workers stopped; exit {code}")
        return code

    def _count(self, stat: str) -> None:
        self.counters[stat] = self.counters.get(stat, 0) + 1

    def _reloaded(self, loaded: Loaded, version: int) -> None:
        """A new config passed in the parent: later forks start from it, every worker reads it."""
        self.table = loaded.table
        self.gateways = [replace(gw, table=loaded.gateways.get(gw.name, gw.table)) for gw in self.gateways]
        for slot in self.slots:
            if slot.state == "ready":
                slot.send(b"reload %d\n" % version)

    def kill_all(self) -> None:
        """Last resort when the parent leaves abnormally: no worker outlives it."""
        for slot in self.slots:
            if slot.pid:
                try:
                    os.kill(slot.pid, signal.SIGKILL)
                    os.waitpid(slot.pid, 0)
                except (ProcessLookupError, ChildProcessError):
                    pass
                slot.pid = 0


def run_worker(index: int, table: RouteTable, opts: RunOptions, gateways: Sequence[GatewayListener],
               control: socket.socket, loop_factory: Callable[[], asyncio.AbstractEventLoop],
               drain_time: float) -> int:
    """One worker process: serve until the parent says drain (or exit), or goes away."""
    loop = loop_factory()
    asyncio.set_event_loop(loop)

    async def main() -> None:
        rp = await start_proxy(table, opts, gateways)
        freeze_startup_objects()
        shutdown = Shutdown(loop)
        loop.add_signal_handler(signal.SIGTERM, shutdown.request)  # a drain; never forced
        reader, writer = await asyncio.open_connection(sock=control)
        tasks = TaskSet(loop)

        async def commands() -> None:
            while True:
                line = await reader.readline()
                if not line:  # the parent is gone
                    shutdown.request()
                    return
                cmd, _, arg = line.strip().partition(b" ")
                if cmd == b"stats":
                    snap = proxy_stats(rp.proxy)
                    if opts.config_source is not None:
                        snap[CONFIG_VERSION_STAT] = opts.config_source.state.version
                    writer.write(arg + b" " + json.dumps(snap).encode() + b"\n")
                elif cmd == b"reload" and opts.config_source is not None:
                    worker_reload(rp, opts.config_source, int(arg), index)
                elif cmd == b"reset":
                    rp.proxy.stats.reset_counters()
                elif cmd == b"drain":
                    shutdown.request()
                elif cmd == b"exit":
                    shutdown.force()

        tasks.spawn(commands())
        writer.write(b"ready\n")
        await shutdown.requested.wait()
        rp.begin_drain()
        say(sys.stderr, f"mirrorsim worker {index} draining (pid {os.getpid()})")
        await drain(rp, drain_time, shutdown.forced)
        await tasks.wait_closed()
        writer.close()

    try:
        loop.run_until_complete(main())
    finally:
        loop.close()
    return 0


def run_workers(n: int, table: RouteTable, opts: RunOptions, gateways: Sequence[GatewayListener],
                loop_factory: Callable[[], asyncio.AbstractEventLoop],
                drain_time: float = DEFAULT_DRAIN_TIME, restart_delay: float = DEFAULT_RESTART_DELAY,
                out: TextIO = sys.stderr) -> int:
    """Fork ``n`` workers, supervise them and serve the aggregated admin surface until a
    signal (see the module doc); returns the exit code.  The parent runs asyncio's own loop,
    not ``loop_factory``'s: workers are forked from inside it."""
    loop = asyncio.new_event_loop()
    asyncio.set_event_loop(loop)
    freeze_startup_objects()  # the table lives until exit: no collection walks it (nor at exit)
    sup: Supervisor | None = None

    async def main() -> int:
        nonlocal sup
        sup = Supervisor(n, table, opts, gateways, loop_factory, drain_time, restart_delay, out)
        return await sup.run()

    try:
        return loop.run_until_complete(main())
    finally:
        if sup is not None:
            sup.kill_all()
        loop.close()
