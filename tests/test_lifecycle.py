"""Signals, drain and worker supervision, as a user runs ``mirrorsim run``: real
subprocesses, loopback backends; every wait is on a log line, a response or an exit, and
bounded (docs/operations.md, "Signals and workers")."""

from __future__ import annotations

import asyncio
import os
import re
import signal
import time
from collections.abc import AsyncIterator
from contextlib import AsyncExitStack
from pathlib import Path

import aiohttp
import pytest

from tests.conftest import registry_yaml, virtual_service
from tests.support.client import Client, get, request
from tests.support.recorder import Recorded, Recorder
from tests.test_cli import _read_until, _spawn

pytestmark = pytest.mark.slow

ROUTE = """
- route:
  - destination: {host: httpbin, subset: v1}
  mirror: {host: httpbin, subset: v2}
"""


class Backends:
    """The primary (holds ``/slow*`` until ``release``) and the mirror."""

    def __init__(self, primary: Recorder, mirror: Recorder) -> None:
        self.primary = primary
        self.mirror = mirror
        self.release = asyncio.Event()

        @primary.responder
        async def hold(req: Recorded) -> None:
            if req.target.startswith("/slow"):
                await self.release.wait()


@pytest.fixture
async def backends() -> AsyncIterator[Backends]:
    async with Recorder("v1") as a, Recorder("v2") as b:
        yield Backends(a, b)


class Run:
    def __init__(self, proc: asyncio.subprocess.Process, port: int, admin: int, log: Path) -> None:
        self.proc = proc
        self.port = port
        self.admin = admin
        self.log = log

    @property
    def stderr(self) -> asyncio.StreamReader:
        assert self.proc.stderr is not None
        return self.proc.stderr

    async def admin_get(self, path: str) -> tuple[int, str]:
        async with aiohttp.ClientSession() as s, s.get(f"http://127.0.0.1:{self.admin}{path}") as r:
            return r.status, await r.text()

    async def exit_code(self, within: float) -> int:
        return await asyncio.wait_for(self.proc.wait(), within)


async def start(tmp_path: Path, b: Backends, *flags: str, workers: int = 1) -> Run:
    cfg = tmp_path / "httpbin.yaml"
    cfg.write_text(registry_yaml({"v1": b.primary.port, "v2": b.mirror.port}) + virtual_service(ROUTE))
    log = tmp_path / "access.log"
    proc = await _spawn("run", "-f", str(cfg), "--listen", "127.0.0.1:0", "--admin", "127.0.0.1:0",
                        "--workers", str(workers), "--access-log", str(log), *flags)
    line = await _read_until(proc.stderr, r"listening on")  # type: ignore[arg-type]
    port, admin = map(int, re.findall(r"http://127\.0\.0\.1:(\d+)", line))
    return Run(proc, port, admin, log)


async def stop(run: Run) -> None:
    if run.proc.returncode is None:
        run.proc.kill()
        await run.proc.wait()


async def draining(run: Run, workers: int) -> None:
    """Wait until the process (each worker) says it drains: its listener is closed then."""
    if workers == 1:
        await _read_until(run.stderr, r"SIGTERM: draining")
        return
    for _ in range(workers):
        await _read_until(run.stderr, r"mirrorsim worker \d+ draining")


def worker_of(run: Run, client: Client) -> int:
    """The pid of the worker that accepted ``client``'s connection (/proc: the inode of the
    accepted socket, whose remote port is the client's, among each worker's descriptors)."""
    assert client.writer is not None
    cport = client.writer.get_extra_info("sockname")[1]
    inode = ""
    for line in Path("/proc/net/tcp").read_text().splitlines()[1:]:
        f = line.split()
        if int(f[1].split(":")[1], 16) == run.port and int(f[2].split(":")[1], 16) == cport:
            inode = f[9]
    assert inode, "accepted socket not found"
    for pid in Path(f"/proc/{run.proc.pid}/task/{run.proc.pid}/children").read_text().split():
        for fd in Path(f"/proc/{pid}/fd").iterdir():
            try:
                if os.readlink(fd) == f"socket:[{inode}]":
                    return int(pid)
            except OSError:
                continue
    raise AssertionError("no worker holds the connection")


async def refused(port: int) -> bool:
    try:
        _, w = await asyncio.open_connection("127.0.0.1", port)
    except ConnectionRefusedError:
        return True
    w.close()
    return False


@pytest.mark.parametrize("workers", [1, 2])
async def test_sigterm_drains_the_requests_in_flight_then_exits_0(tmp_path: Path, backends: Backends,
                                                                  workers: int):
    run = await start(tmp_path, backends, "--drain-time", "20", workers=workers)
    try:
        async with Client(run.port) as slow, AsyncExitStack() as stack:
            slow.writer.write(request(path="/slow"))  # type: ignore[union-attr]
            await backends.primary.wait_for(1)  # the primary has it
            # each worker drains on its own: the idle connection must be on the same one
            for _ in range(30):
                idle = await stack.enter_async_context(Client(run.port))
                (first,) = await idle.send(request(path="/fast"))
                assert first.status == 200 and first.header("connection") is None  # keep-alive
                if workers == 1 or worker_of(run, idle) == worker_of(run, slow):
                    break

            t0 = time.monotonic()
            run.proc.send_signal(signal.SIGTERM)
            await draining(run, workers)
            assert await refused(run.port)  # no new connections
            assert await run.admin_get("/ready") == (503, "DRAINING\n")
            # a request on an existing keep-alive connection is served, with connection: close
            (during,) = await idle.send(request(path="/during"))
            assert during.status == 200 and during.header("connection") == "close"
            assert await idle.closed()

            backends.release.set()  # the request in flight finishes, and is told to close
            (done,) = await slow.send(b"", timeout=10)
            assert done.status == 200 and done.body == b"ok"
            assert done.header("connection") == "close"
            assert await run.exit_code(within=10) == 0
            assert time.monotonic() - t0 < 20  # exited when nothing was left, not at the drain time
    finally:
        await stop(run)
    log = run.log.read_text()
    assert re.search(r'"GET /slow HTTP/1.1" 200 - ', log), log
    assert " DC " not in log


@pytest.mark.parametrize("workers", [1, 2])
async def test_a_second_signal_cuts_the_requests_in_flight_at_once(tmp_path: Path, backends: Backends,
                                                                   workers: int):
    run = await start(tmp_path, backends, "--drain-time", "30", workers=workers)
    try:
        async with Client(run.port) as slow:
            slow.writer.write(request(path="/slow"))  # type: ignore[union-attr]
            await backends.primary.wait_for(1)
            run.proc.send_signal(signal.SIGTERM)
            # the parent took the first signal (a worker's own drain line may come later:
            # the second one cuts it either way)
            await _read_until(run.stderr, r"SIGTERM: draining")  # type: ignore[arg-type]
            t0 = time.monotonic()
            run.proc.send_signal(signal.SIGINT)
            assert await run.exit_code(within=10) == 128 + signal.SIGINT
            assert time.monotonic() - t0 < 5  # not the 30 s drain time
            assert await slow.closed()  # cut without a response
    finally:
        backends.release.set()
        await stop(run)
    assert re.search(r'"GET /slow HTTP/1.1" 0 DC ', run.log.read_text())


async def _stats(run: Run) -> dict[str, str]:
    status, text = await run.admin_get("/stats?filter=worker")
    assert status == 200
    return dict(ln.split(": ") for ln in text.strip().splitlines())


async def test_a_killed_worker_leaves_no_connection_hanging_and_is_restarted(tmp_path: Path,
                                                                            backends: Backends):
    run = await start(tmp_path, backends, "--worker-restart-delay", "3", workers=2)
    try:
        assert await run.admin_get("/ready") == (200, "LIVE\n")
        children = Path(f"/proc/{run.proc.pid}/task/{run.proc.pid}/children").read_text().split()
        assert len(children) == 2
        pid = int(children[0])
        os.kill(pid, signal.SIGKILL)
        line = await _read_until(run.stderr, rf"\(pid {pid}\) was killed by SIGKILL; restarting it in 3 s")
        index = int(re.search(r"worker (\d+)", line).group(1))  # type: ignore[union-attr]

        # while it is down: not ready, and /stats adds up the live worker and marks the other
        assert await run.admin_get("/ready") == (503, "INITIALIZING\n")
        stats = await _stats(run)
        assert stats[f"mirrorsim.worker.{index}.live"] == "0"
        assert stats[f"mirrorsim.worker.{1 - index}.live"] == "1"
        assert stats["mirrorsim.workers_live"] == "1"
        # every new connection is accepted by the live worker: none hangs
        results = await asyncio.gather(*(asyncio.wait_for(get(run.port, f"/n{i}"), 5) for i in range(20)),
                                       return_exceptions=True)
        assert [getattr(r, "status", r) for r in results] == [200] * 20

        line = await _read_until(run.stderr, rf"mirrorsim worker {index} ready")
        assert int(re.search(r"pid (\d+)", line).group(1)) != pid  # type: ignore[union-attr]
        assert await run.admin_get("/ready") == (200, "LIVE\n")
        stats = await _stats(run)
        assert stats[f"mirrorsim.worker.{index}.restarts"] == "1"
        assert stats["mirrorsim.workers_live"] == "2"
        results = await asyncio.gather(*(asyncio.wait_for(get(run.port, f"/m{i}"), 5) for i in range(20)))
        assert [r.status for r in results] == [200] * 20
        run.proc.send_signal(signal.SIGTERM)
        assert await run.exit_code(within=10) == 0
    finally:
        await stop(run)


async def test_a_worker_that_keeps_dying_stops_mirrorsim(tmp_path: Path, backends: Backends):
    run = await start(tmp_path, backends, "--worker-restart-delay", "0.05", workers=2)
    try:
        children = Path(f"/proc/{run.proc.pid}/task/{run.proc.pid}/children").read_text().split()
        other = int(children[1])
        pid = int(children[0])
        for death in range(1, 6):
            os.kill(pid, signal.SIGKILL)
            if death < 5:
                line = await _read_until(run.stderr, r"mirrorsim worker \d+ ready \(pid \d+\)")
                pid = int(re.search(r"pid (\d+)", line).group(1))  # type: ignore[union-attr]
        await _read_until(run.stderr, r"its 5th failure within 30 s; giving up")
        assert await run.exit_code(within=10) == 1
        with pytest.raises(ProcessLookupError):  # the other worker went too (and was reaped)
            os.kill(other, 0)
    finally:
        await stop(run)
