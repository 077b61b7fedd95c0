"""Reload storms against ``run --watch`` and SIGHUP (simulator/proxy/reload.py): a flood of
SIGHUPs (was: 50 signals, 50 whole reloads in a row on the loop), and a watched directory
whose symlinks loop (was: 10,000 paths stat'ed per look, 0.35 s of the loop, 4 looks a second)."""

from __future__ import annotations

import asyncio
import io
import os
import signal
import time
from pathlib import Path

from simulator.proxy.reload import Attempt, ConfigSource, ConfigState, Reloader


class _CountingSource:
    def __init__(self) -> None:
        self.state = ConfigState()
        self.reads = 0

    def read(self) -> Attempt:
        self.reads += 1
        time.sleep(0.01)  # a small config's load
        return Attempt(None, (), (), "rejected on purpose")


async def test_a_sighup_flood_is_coalesced():
    source = _CountingSource()
    attempts: asyncio.Queue[bool] = asyncio.Queue()
    source.state.listeners.append(lambda state, ok: attempts.put_nowait(ok))  # each reload attempt ends here
    reloader = Reloader(source, lambda loaded, version: None, lambda name: None, out=io.StringIO())  # type: ignore[arg-type]
    loop = asyncio.get_running_loop()
    reloader.install(loop, watch=False)
    try:
        for _ in range(50):
            os.kill(os.getpid(), signal.SIGHUP)  # the handler has written to the loop's wakeup fd on return
        await asyncio.wait_for(attempts.get(), 10)
        for _ in range(10):  # turns of the loop (no time passes): any signal still unread is handled
            await asyncio.sleep(0)
        assert 1 <= source.reads <= 2, source.reads
        assert not reloader._hup_queued
        while not attempts.empty():
            attempts.get_nowait()
        # a later SIGHUP still reloads
        before = source.reads
        os.kill(os.getpid(), signal.SIGHUP)
        await asyncio.wait_for(attempts.get(), 10)
        assert source.reads == before + 1
    finally:
        loop.remove_signal_handler(signal.SIGHUP)


def test_a_watched_directory_with_looping_symlinks_is_walked_once(tmp_path: Path):
    (tmp_path / "vs.yaml").write_text("# config\n")
    for name in ("x", "y", "z"):
        (tmp_path / name).symlink_to(".")
    source = ConfigSource([str(tmp_path)], "default", None, lambda c, t: [])
    t0 = time.perf_counter()
    fp = source.fingerprint()
    assert time.perf_counter() - t0 < 0.05
    assert len(fp) <= 4, len(fp)
