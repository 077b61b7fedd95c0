"""`mirrorsim run` in a child process, for tests that measure it from outside: its RSS
(VmRSS from /proc/<pid>/status), everything it wrote to stderr (tracebacks), its port.

    async with SubprocessProxy(tmp_path, config_yaml, "--max-buffered-bytes", "1000") as sp:
        resp = await get(sp.port, "/")
        assert sp.rss_mb() < 100 and "Traceback" not in sp.stderr()
"""

from __future__ import annotations

import asyncio
import re
import sys
from pathlib import Path

from tests.support.process import terminate

__all__ = ["SubprocessProxy", "rss_mb"]


def rss_mb(pid: int) -> float:
    """Resident set size of process ``pid`` in MiB."""
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    raise AssertionError(f"no VmRSS for {pid}")


class SubprocessProxy:
    def __init__(self, tmp_path: Path, config: str, *args: str, start_timeout: float = 20.0) -> None:
        self.tmp_path = tmp_path
        self.config = config
        self.args = args
        self.start_timeout = start_timeout
        self.proc: asyncio.subprocess.Process | None = None
        self.port = 0
        self.admin_port = 0
        self.access_log = tmp_path / "access.log"
        self._lines: list[str] = []
        self._reader: asyncio.Task[None] | None = None
        self._listening: asyncio.Future[str] | None = None

    @property
    def pid(self) -> int:
        assert self.proc is not None
        return self.proc.pid

    def rss_mb(self) -> float:
        return rss_mb(self.pid)

    def stderr(self) -> str:
        return "".join(self._lines)

    async def __aenter__(self) -> SubprocessProxy:
        cfg = self.tmp_path / "config.yaml"
        cfg.write_text(self.config)
        self.proc = await asyncio.create_subprocess_exec(
            sys.executable, "-m", "simulator", "run", "-f", str(cfg), "--listen", "127.0.0.1:0",
            "--admin", "127.0.0.1:0", "--access-log", str(self.access_log), *self.args,
            stdin=asyncio.subprocess.DEVNULL, stdout=asyncio.subprocess.DEVNULL,
            stderr=asyncio.subprocess.PIPE)
        self._listening = asyncio.get_running_loop().create_future()
        self._reader = asyncio.create_task(self._read_stderr())
        try:
            line = await asyncio.wait_for(asyncio.shield(self._listening), self.start_timeout)
        except BaseException:
            await self.__aexit__()
            raise
        m = re.search(r"http://127\.0\.0\.1:(\d+) \(admin http://127\.0\.0\.1:(\d+)\)", line)
        if m is None:  # stop the child before failing: a test must not leave it running
            await self.__aexit__()
            raise AssertionError(f"unexpected listening line: {line!r}")
        self.port, self.admin_port = int(m.group(1)), int(m.group(2))
        return self

    async def _read_stderr(self) -> None:
        assert self.proc is not None and self.proc.stderr is not None and self._listening is not None
        while True:
            line = (await self.proc.stderr.readline()).decode(errors="replace")
            if not line:
                if not self._listening.done():
                    self._listening.set_exception(
                        AssertionError("mirrorsim ended before listening:\n" + self.stderr()))
                return
            self._lines.append(line)
            if "listening on" in line and not self._listening.done():
                self._listening.set_result(line)

    async def __aexit__(self, *exc: object) -> None:
        await terminate(self.proc)
        if self._reader is not None:
            await asyncio.wait_for(self._reader, 10)
