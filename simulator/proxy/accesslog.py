"""Access log lines in Envoy's default format (or Istio's, ``--access-log-format``:
simulator/proxy/logformat.py), written in batches.

Envoy's default format::

    [%START_TIME%] "%REQ(:METHOD)% %REQ(X-ENVOY-ORIGINAL-PATH?:PATH)% %PROTOCOL%"
    %RESPONSE_CODE% %RESPONSE_FLAGS% %BYTES_RECEIVED% %BYTES_SENT% %DURATION%
    %RESP(X-ENVOY-UPSTREAM-SERVICE-TIME)% "%REQ(X-FORWARDED-FOR)%" "%REQ(USER-AGENT)%"
    "%REQ(X-REQUEST-ID)%" "%REQ(:AUTHORITY)%" "%UPSTREAM_HOST%"

Shadow copies get a line too (Envoy's async client logs nothing; mirrorsim
shows them so a user can see the mirror's fate); their ``:authority`` is the
shadow host, e.g. ``httpbin-shadow:8000``.  Lines are buffered and written every
second or every 64 KiB, whichever comes first (Envoy's file access log flushes
every second too), so logging costs no syscall per request.
"""

from __future__ import annotations

import asyncio
import os
import sys
import time
from typing import IO, Final

from simulator.proxy.logformat import Formatter, Line

FLUSH_INTERVAL: Final = 1.0  # seconds, as Envoy's file_flush_interval default
FLUSH_BYTES: Final = 64 * 1024
ATOMIC_WRITE: Final = 4096  # PIPE_BUF on Linux: a pipe write up to this size is atomic
_MILLIS: Final = [f".{ms:03d}Z" for ms in range(1000)]
SMALL_NUMBERS: Final = 1024
_SMALL: Final = [str(n) for n in range(SMALL_NUMBERS)]


class AccessLog:
    def __init__(self, stream: IO[str] | None, loop: asyncio.AbstractEventLoop | None = None,
                 owned: bool = False, fmt: str = "envoy") -> None:
        self.stream = stream
        self._owned = owned  # close() closes the stream: it was opened for this log
        # istio / json (simulator/proxy/logformat.py); None: Envoy's default, written here
        self.formatter: Formatter | None = None if fmt == "envoy" else Formatter(fmt)
        self._buf: list[str] = []
        self._size = 0
        self._scheduled = False
        self._handle: asyncio.TimerHandle | None = None
        self._loop = loop
        self._sec = -1
        self._sec_str = ""
        self._ms = -1
        self._ms_str = ""

    def _start_time(self, t: float) -> str:
        ms = int(t * 1000)
        if ms == self._ms:
            return self._ms_str
        sec = ms // 1000
        if sec != self._sec:
            self._sec = sec
            self._sec_str = time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(sec))
        self._ms = ms
        self._ms_str = self._sec_str + _MILLIS[ms % 1000]
        return self._ms_str

    def log(
        self,
        start: float,
        method: str,
        path: str,
        protocol: str,
        code: int,
        flags: str,
        bytes_received: int,
        bytes_sent: int,
        duration_ms: int,
        upstream_service_time: str,
        xff: str | None,
        user_agent: str | None,
        request_id: str | None,
        authority: str,
        upstream_host: str,
        cluster: str = "",
        route_name: str = "",
    ) -> None:
        if self.stream is None:
            return
        if self.formatter is not None:
            self._buf.append(self.formatter.render(Line(
                self._start_time(start), method, path, protocol, code, flags, bytes_received, bytes_sent,
                duration_ms, upstream_service_time, xff, user_agent, request_id, authority, upstream_host,
                cluster, route_name)))
        else:
            self._buf.append(
                f'[{self._start_time(start)}] "{method} {path} {protocol}" {_num(code)} {flags} '
                f"{_num(bytes_received)} {_num(bytes_sent)} {_num(duration_ms)} {upstream_service_time} "
                f'"{xff or "-"}" "{user_agent or "-"}" "{request_id or "-"}" "{authority or "-"}" '
                f'"{upstream_host or "-"}"\n'
            )
        self._size += len(self._buf[-1])
        if self._size >= FLUSH_BYTES:
            self.flush()
        elif not self._scheduled:
            self._scheduled = True
            loop = self._loop or asyncio.get_running_loop()
            self._handle = loop.call_later(FLUSH_INTERVAL, self.flush)

    def close(self) -> None:
        """Flush, then close the file if this log opened it (never the process's stdout)."""
        self.flush()
        stream = self.stream
        if stream is not None and self._owned and stream is not sys.stdout and stream is not sys.stderr:
            self.stream = None
            try:
                stream.close()
            except OSError:
                pass

    def flush(self) -> None:
        if self._handle is not None:
            self._handle.cancel()
            self._handle = None
        self._scheduled = False
        self._size = 0
        if self._buf and self.stream is not None:
            lines = self._buf
            self._buf = []
            try:
                self.stream.flush()
                fd = self.stream.fileno()
            except (OSError, ValueError, AttributeError):
                fd = -1
            try:
                if fd < 0:
                    self.stream.write("".join(lines))
                    self.stream.flush()
                    return
                # Whole lines per write(), each at most PIPE_BUF bytes: with --workers
                # several processes share stdout, and writes that size do not interleave.
                chunk: list[bytes] = []
                size = 0
                for line in lines:
                    b = line.encode("utf-8", "replace")
                    if size + len(b) > ATOMIC_WRITE and chunk:
                        _write_all(fd, b"".join(chunk))
                        chunk, size = [], 0
                    chunk.append(b)
                    size += len(b)
                if chunk:
                    _write_all(fd, b"".join(chunk))
            except (OSError, ValueError):  # closed stdout: keep serving
                self.stream = None


def protocol(version: str) -> str:
    """%PROTOCOL% for an HTTP version as httptools gives it ("1.1" -> "HTTP/1.1")."""
    return "HTTP/1.1" if version == "1.1" else "HTTP/" + version


def _num(n: int) -> str:
    """str(n), from a table for the small numbers most fields of a line are."""
    return _SMALL[n] if 0 <= n < SMALL_NUMBERS else str(n)


def _write_all(fd: int, data: bytes) -> None:
    view = memoryview(data)
    while view:
        n = os.write(fd, view)
        view = view[n:]


def access_log_for(spec: str, loop: asyncio.AbstractEventLoop | None = None, fmt: str = "envoy") -> AccessLog:
    """The access log a ``--access-log`` value names (in format ``fmt``); its close() closes
    the file it opened."""
    return AccessLog(open_access_log(spec), loop, owned=True, fmt=fmt)


def open_access_log(spec: str) -> IO[str] | None:
    """``-`` = stdout, ``off`` = none, anything else = a file path (appended)."""
    if spec == "off":
        return None
    if spec == "-":
        return sys.stdout
    return open(spec, "a", encoding="utf-8", buffering=1 << 16)  # noqa: SIM115
