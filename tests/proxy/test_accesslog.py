"""The access log: Envoy's default format, and whole-line writes no larger than PIPE_BUF."""

from __future__ import annotations

import asyncio
import os
import re

from simulator.proxy.accesslog import ATOMIC_WRITE, AccessLog


class RecordingPipe:
    """A stream whose fileno() is the write end of a real pipe; records each write()."""

    def __init__(self) -> None:
        self.r, self.w = os.pipe()
        os.set_blocking(self.r, False)

    def fileno(self) -> int:
        return self.w

    def flush(self) -> None:
        pass

    def write(self, s: str) -> None:  # used only without a file descriptor
        raise AssertionError("lines must go through os.write")


async def test_lines_are_written_whole_in_pipe_sized_chunks(monkeypatch):
    pipe = RecordingPipe()
    sizes: list[int] = []
    real_write = os.write

    def recording_write(fd: int, data) -> int:  # noqa: ANN001
        sizes.append(len(data))
        return real_write(fd, data)

    monkeypatch.setattr(os, "write", recording_write)
    log = AccessLog(pipe, asyncio.get_running_loop())  # type: ignore[arg-type]
    for i in range(300):
        log.log(1795786943.5, "GET", f"/p{i}", "HTTP/1.1", 200, "-", 0, 2, 1, "1", None, "curl",
                f"id-{i}", "httpbin:8000", "127.0.0.1:18081")
    log.flush()
    data = b""
    while True:
        try:
            part = os.read(pipe.r, 1 << 16)
        except BlockingIOError:
            break
        data += part
    lines = data.decode().splitlines()
    assert len(lines) == 300 and len(sizes) > 1
    assert all(n <= ATOMIC_WRITE for n in sizes)
    assert re.fullmatch(r'\[2026-11-27T\d\d:\d\d:\d\d\.500Z\] "GET /p0 HTTP/1\.1" 200 - 0 2 1 1 "-" "curl" '
                        r'"id-0" "httpbin:8000" "127\.0\.0\.1:18081"', lines[0])
    os.close(pipe.r)
    os.close(pipe.w)
