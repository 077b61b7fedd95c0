"""Shutting down as an Istio sidecar does (docs/operations.md, "Signals and workers").

On SIGTERM (or SIGINT) pilot-agent starts Envoy's drain (``drain_listeners?inboundonly&
graceful``; Istio runs Envoy with ``--drain-strategy immediate``) and gives in-flight work
``terminationDrainDuration`` (default 5 s) before Envoy is stopped.  mirrorsim does the same
in one process: it stops accepting connections, answers every request from then on
(including those arriving on existing keep-alive connections) with ``connection: close``,
lets the requests and shadow copies in flight finish for up to ``--drain-time`` and exits 0
as soon as none is left (pilot-agent sleeps the whole duration unless
EXIT_ON_ZERO_ACTIVE_CONNECTIONS is set).  A second signal cuts what is in flight at once
(their access-log lines say ``0 DC``) and the exit code is 128 + that signal's number.
"""

from __future__ import annotations

import asyncio
import signal
import sys
from typing import Final, TextIO

from simulator.proxy.launch import RunningProxy

DEFAULT_DRAIN_TIME: Final = 5.0  # Istio's terminationDrainDuration default
DRAIN_POLL: Final = 0.01  # how often the drain looks whether anything is still in flight


class Shutdown:
    """Signals counted on one loop: the first starts the drain, the second forces the exit."""

    def __init__(self, loop: asyncio.AbstractEventLoop) -> None:
        self.loop = loop
        self.signals: list[int] = []
        self.requested = asyncio.Event()
        self.forced = asyncio.Event()

    def install(self, *sigs: int) -> None:
        for sig in sigs:
            try:
                self.loop.add_signal_handler(sig, self.on_signal, sig)
            except (NotImplementedError, RuntimeError):  # pragma: no cover - not the main thread
                pass

    def on_signal(self, sig: int) -> None:
        self.signals.append(sig)
        if len(self.signals) == 1:
            self.requested.set()
        else:
            self.forced.set()

    def request(self) -> None:
        """Start the drain without a signal (a worker told by its parent)."""
        self.requested.set()

    def force(self) -> None:
        self.requested.set()
        self.forced.set()

    @property
    def exit_code(self) -> int:
        """0 after a drain; 128 + the second signal's number when it was forced by one."""
        if self.forced.is_set() and len(self.signals) >= 2:
            return 128 + self.signals[1]
        return 0


def say(out: TextIO, msg: str) -> None:
    """A status line on ``out`` (stderr); a closed terminal or pipe must not stop a shutdown."""
    try:
        print(msg, file=out, flush=True)
    except (OSError, ValueError):
        pass


def signal_name(sig: int) -> str:
    try:
        return signal.Signals(sig).name
    except ValueError:
        return f"signal {sig}"


async def drain(rp: RunningProxy, drain_time: float, forced: asyncio.Event | None = None) -> int:
    """Drain ``rp`` (see the module doc) and close it; returns how many requests and shadow
    copies were still in flight when it closed (cut at the drain time or when ``forced``)."""
    loop = asyncio.get_running_loop()
    rp.begin_drain()
    deadline = loop.time() + drain_time
    while rp.in_flight() and loop.time() < deadline and not (forced is not None and forced.is_set()):
        await asyncio.sleep(DRAIN_POLL)
    cut = rp.in_flight()
    await rp.close()
    return cut


async def serve_until_signalled(rp: RunningProxy, drain_time: float, shutdown: Shutdown | None = None,
                                out: TextIO = sys.stderr) -> int:
    """Serve until SIGTERM or SIGINT, drain, close; returns the exit code.  Pass a
    ``shutdown`` installed before the proxy says it listens, so no signal is missed."""
    if shutdown is None:
        shutdown = Shutdown(asyncio.get_running_loop())
        shutdown.install(signal.SIGINT, signal.SIGTERM)
    await shutdown.requested.wait()
    rp.begin_drain()  # before saying so: whoever reads the line finds the listener closed
    name = signal_name(shutdown.signals[0]) if shutdown.signals else "shutdown"
    say(out, f"mirrorsim: {name}: draining: no new connections, up to {drain_time:g} s for the "
             f"{rp.in_flight()} request(s) in flight; a second signal cuts them")
    cut = await drain(rp, drain_time, shutdown.forced)
    code = shutdown.exit_code
    how = f"cut by {signal_name(shutdown.signals[1])}" if code else "drained"
    say(out, f"mirrorsim: {how}" + (f", {cut} request(s) cut" if cut else "") + f"; exit {code}")
    return code
