"""Oracle harness: the same requests through the real Envoy 1.40, running a bootstrap written by
hand the way istiod writes a sidecar's outbound listener (tests/oracle/envoy/*.yaml), and through
mirrorsim, run as a user runs it (``python -m simulator run -f DIR ...``) on the same Istio YAML
(tests/oracle/istio/*.yaml).

Independence: nothing here imports or runs mirrorsim's Envoy exporter; mirrorsim is only started
as a subprocess through its public CLI.  The Envoy configs cite the Istio source for every
setting (see README.md).

One ``Group`` = one hand-written Envoy config + one Istio directory + the loopback backends both
configs point at.  ``Group`` starts the backends, renders ``${name}`` placeholders (backend ports)
in both templates, starts Envoy (``--concurrency 1``, a unique ``--base-id``, readiness polled on
admin ``/ready``) and mirrorsim (readiness polled on its admin ``/ready``), and
``Group.both(exchange)`` runs one exchange through Envoy, waits until Envoy is quiescent, snapshots
what the client and every backend saw, resets the backends, and does the same through mirrorsim.

Waiting, never sleeping a fixed time: after the client's last byte, Envoy is polled on its admin
``/stats`` until every ``upstream_rq_active`` gauge is 0 (a shadow copy is active from dispatch,
which happens before the primary answers); mirrorsim until its ``mirrorsim.shadow_inflight`` is 0.
"""

from __future__ import annotations

import asyncio
import itertools
import os
import re
import shutil
import socket
import sys
import tempfile
import time
from collections.abc import Awaitable, Callable, Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httptools

from tests.support.process import terminate
from tests.support.stats_text import parse_stats

HERE = Path(__file__).resolve().parent
REPO = HERE.parent.parent


def _find_envoy() -> str | None:
    found = shutil.which("envoy")
    if found:
        return found
    beside = Path(sys.executable).parent / "envoy"  # the venv's bin, when not activated
    return str(beside) if beside.exists() else None


ENVOY = _find_envoy()
_base_ids = itertools.count(1)


class Mismatch(AssertionError):
    """Envoy and mirrorsim disagree (the only failure a strict xfail of the oracle accepts)."""


# --------------------------------------------------------------------------- backends


@dataclass
class Seen:
    """One request exactly as a backend received it."""

    method: str
    target: str
    version: str
    headers: list[tuple[str, str]]  # wire order, names lower-cased
    body: bytes
    trailers: list[tuple[str, str]] = field(default_factory=list)
    tunnel: bytes = b""  # bytes received after a 101 (upgrade tunnels)

    def header(self, name: str) -> str | None:
        return next((v for k, v in self.headers if k == name.lower()), None)

    def header_values(self, name: str) -> list[str]:
        return [v for k, v in self.headers if k == name.lower()]

    def header_names(self) -> list[str]:
        return [k for k, _ in self.headers]


class _BackendConn(asyncio.Protocol):
    def __init__(self, backend: Backend) -> None:
        self.b = backend
        self.transport: asyncio.Transport | None = None
        self.parser = httptools.HttpRequestParser(self)
        self.upgraded: Seen | None = None
        self._new()

    def _new(self) -> None:
        self.url = b""
        self.headers: list[tuple[str, str]] = []
        self.trailers: list[tuple[str, str]] = []
        self.body = b""
        self.head_done = False
        self.recorded: Seen | None = None

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = transport  # type: ignore[assignment]

    def data_received(self, data: bytes) -> None:
        if self.upgraded is not None:  # tunnel: record and echo
            self.upgraded.tunnel += data
            self._write(b"echo:" + data)
            return
        try:
            self.parser.feed_data(data)
        except httptools.HttpParserUpgrade as exc:
            seen = self._record()
            rest = data[exc.args[0]:] if exc.args and isinstance(exc.args[0], int) else b""
            if self.b.mode == "ws" and (seen.header("upgrade") or "").lower() == "websocket":
                self.upgraded = seen
                self._write(b"HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n\r\n")
                if rest:
                    self.data_received(rest)
            else:
                self._respond(seen, close=True)
        except httptools.HttpParserError:
            self._write(b"HTTP/1.1 400 Bad Request\r\nContent-Length: 0\r\nConnection: close\r\n\r\n", close=True)

    def _write(self, data: bytes, close: bool = False) -> None:
        if self.transport is not None and not self.transport.is_closing():
            self.transport.write(data)
            if close:
                self.transport.close()

    # parser callbacks
    def on_message_begin(self) -> None:
        self._new()

    def on_url(self, url: bytes) -> None:
        self.url += url

    def on_header(self, name: bytes, value: bytes) -> None:
        pair = (name.decode("latin-1").lower(), value.decode("latin-1"))
        (self.trailers if self.head_done else self.headers).append(pair)

    def on_headers_complete(self) -> None:
        self.head_done = True
        expect = (next((v for k, v in self.headers if k == "expect"), "") or "").lower()
        if self.b.mode == "close":
            self._record()
            if self.transport is not None:
                self.transport.close()  # closes without answering
            return
        if expect == "100-continue":
            self._write(b"HTTP/1.1 100 Continue\r\n\r\n")

    def on_body(self, body: bytes) -> None:
        self.body += body

    def on_message_complete(self) -> None:
        if self.b.mode == "close":
            return
        if self.b.mode == "hang":  # recorded, never answered (route timeouts)
            self._record()
            return
        if self.parser.should_upgrade():  # answered when the parser raises HttpParserUpgrade
            self._record()
            return
        seen = self._record()
        self._respond(seen, close=not self.parser.should_keep_alive())

    def _record(self) -> Seen:
        if self.recorded is None:
            self.recorded = Seen(
                method=self.parser.get_method().decode("latin-1"),
                target=self.url.decode("latin-1"),
                version=self.parser.get_http_version(),
                headers=self.headers,
                body=self.body,
                trailers=self.trailers,
            )
            self.b.seen.append(self.recorded)
            self.b.changed()
        return self.recorded

    def _respond(self, seen: Seen, close: bool) -> None:
        if self.b.mode == "garbage":
            self._write(b"THIS IS NOT HTTP\r\n\r\n", close=True)
            return
        if self.b.raw_response is not None:  # exact bytes, then close
            self._write(self.b.raw_response, close=True)
            return
        status, headers, body = self.b.response
        lines = [f"HTTP/1.1 {status} X"] + [f"{k}: {v}" for k, v in headers]
        lines.append(f"Content-Length: {len(body)}")
        if close:
            lines.append("Connection: close")
        self._write(("\r\n".join(lines) + "\r\n\r\n").encode("latin-1") + body, close=close)


class Backend:
    """A recording upstream on 127.0.0.1.  ``mode``: ``ok`` (200, ``x-backend: NAME``, body NAME),
    ``close`` (closes the connection after the request head, without answering), ``garbage``
    (answers bytes that are not HTTP), ``ws`` (answers a websocket upgrade with 101 and echoes
    the tunnel, prefixing ``echo:``), ``hang`` (records the request and never answers).
    ``raw_response`` (bytes) replaces the response of any mode but ``close``/``garbage``: written
    as is, then the connection is closed."""

    def __init__(self, name: str, mode: str = "ok") -> None:
        self.name = name
        self.mode = mode
        self.port = 0
        self.seen: list[Seen] = []
        self.response: tuple[int, list[tuple[str, str]], bytes] = (200, [("x-backend", name)], name.encode())
        self.raw_response: bytes | None = None  # when set: these bytes are the response, then close
        self._server: asyncio.Server | None = None
        self._event = asyncio.Event()

    async def start(self) -> None:
        loop = asyncio.get_running_loop()
        self._server = await loop.create_server(lambda: _BackendConn(self), "127.0.0.1", 0)
        self.port = self._server.sockets[0].getsockname()[1]

    async def stop(self) -> None:
        if self._server is not None:
            self._server.close()

    def changed(self) -> None:
        self._event.set()

    def reset(self) -> None:
        self.seen = []


# --------------------------------------------------------------------------- raw client


@dataclass
class Got:
    """What the client got: the final response (``status`` 0 = none), interim 1xx statuses, the
    bytes echoed through a tunnel, or an error text."""

    status: int = 0
    headers: list[tuple[str, str]] = field(default_factory=list)
    body: bytes = b""
    interim: list[int] = field(default_factory=list)
    tunnel: bytes = b""
    error: str = ""

    def header(self, name: str) -> str | None:
        return next((v for k, v in self.headers if k.lower() == name.lower()), None)


class Conn:
    """One raw client connection with a minimal HTTP/1.1 response reader (own code, so what is
    compared is exactly the bytes on the wire)."""

    def __init__(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.reader, self.writer = reader, writer

    async def send(self, data: bytes) -> None:
        self.writer.write(data)
        await self.writer.drain()

    async def head(self, timeout: float = 5.0) -> tuple[int, list[tuple[str, str]]]:
        raw = await asyncio.wait_for(self.reader.readuntil(b"\r\n\r\n"), timeout)
        lines = raw.decode("latin-1").split("\r\n")
        status = int(lines[0].split(" ", 2)[1])
        headers = []
        for line in lines[1:]:
            if line:
                k, _, v = line.partition(":")
                headers.append((k.lower(), v.strip()))
        return status, headers

    async def response(self, got: Got, method: str = "GET", timeout: float = 5.0) -> Got:
        """Read interim responses and the final one into ``got``."""
        try:
            while True:
                status, headers = await self.head(timeout)
                if 100 <= status < 200 and status != 101:
                    got.interim.append(status)
                    continue
                break
            got.status, got.headers = status, headers
            await self.body(got, method, timeout)
        except (asyncio.IncompleteReadError, ConnectionError) as exc:
            got.error = f"connection closed ({type(exc).__name__})"
        except TimeoutError:
            got.error = "timeout"
        return got

    async def body(self, got: Got, method: str = "GET", timeout: float = 5.0) -> None:
        """Read the body of the final response whose head is in ``got``."""
        h = dict(got.headers)
        if got.status == 101 or method == "HEAD" or got.status in (204, 304):
            return
        if "content-length" in h:
            got.body = await asyncio.wait_for(self.reader.readexactly(int(h["content-length"])), timeout)
        elif "chunked" in h.get("transfer-encoding", "").lower():
            body = b""
            while True:
                size = int((await self.reader.readuntil(b"\r\n")).split(b";")[0], 16)
                if size == 0:
                    await self.reader.readuntil(b"\r\n")  # no response trailers expected
                    break
                body += (await self.reader.readexactly(size + 2))[:-2]
            got.body = body
        else:
            got.body = await asyncio.wait_for(self.reader.read(), timeout)

    def close(self) -> None:
        self.writer.close()


async def connect(port: int) -> Conn:
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    return Conn(reader, writer)


Exchange = Callable[[int], Awaitable[Got]]


def simple(raw: bytes | str, method: str | None = None) -> Exchange:
    """An exchange: send ``raw`` on a new connection, read one response."""
    data = raw.encode("latin-1") if isinstance(raw, str) else raw
    verb = method or data.split(b" ", 1)[0].decode()

    async def run(port: int) -> Got:
        c = await connect(port)
        try:
            await c.send(data)
            return await c.response(Got(), verb)
        finally:
            c.close()

    return run


def req(method: str = "GET", path: str = "/", host: str | None = "httpbin:8000",
        headers: Iterable[tuple[str, str]] = (), body: bytes | None = None) -> bytes:
    """Request bytes (``host=None``: no Host header)."""
    lines = [f"{method} {path} HTTP/1.1"]
    if host is not None:
        lines.append(f"Host: {host}")
    lines += [f"{k}: {v}" for k, v in headers]
    if body is not None:
        lines.append(f"Content-Length: {len(body)}")
    return ("\r\n".join(lines) + "\r\n\r\n").encode("latin-1") + (body or b"")


# --------------------------------------------------------------------------- normaliser

UUID_RE = re.compile(r"[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}")
PORT_RE = re.compile(r"127\.0\.0\.1:\d+")


class Normalizer:
    """The ONE place where values that legitimately differ between the two proxies are replaced.
    Everything else (status, header names and values, bodies, request line, trailers, tunnel
    bytes) is compared exactly; header ORDER is not compared (lines are sorted), because the
    oracle is about semantics, and order is the conformance suite's business.

    * ``date`` response header: each proxy's wall clock -> ``<date>``.
    * ``x-envoy-upstream-service-time``: milliseconds measured by each proxy -> ``<ms>``.
    * generated UUIDs (``x-request-id`` and anything else carrying one): each proxy generates its
      own -> ``<uuid-N>``, N numbered in order of first appearance within one observation, so
      "the primary and the mirror carry the same generated id" is still compared.
    * ``127.0.0.1:PORT`` anywhere in a value or a body: ephemeral and listener ports differ
      -> ``127.0.0.1:<port>`` (e.g. %DOWNSTREAM_REMOTE_ADDRESS%).
    """

    def __init__(self) -> None:
        self.ids: dict[str, str] = {}

    def text(self, value: str) -> str:
        value = UUID_RE.sub(self._id, value)
        return PORT_RE.sub("127.0.0.1:<port>", value)

    def _id(self, m: re.Match[str]) -> str:
        return self.ids.setdefault(m.group(0), f"<uuid-{len(self.ids) + 1}>")

    def headers(self, headers: Iterable[tuple[str, str]], response: bool = False) -> list[tuple[str, str]]:
        out = []
        for k, v in headers:
            k = k.lower()
            if response and k == "date":
                v = "<date>"
            elif response and k == "x-envoy-upstream-service-time":
                v = "<ms>"
            else:
                v = self.text(v)
            out.append((k, v))
        return sorted(out)

    def body(self, body: bytes) -> str:
        return self.text(body.decode("latin-1"))


@dataclass
class Observation:
    proxy: str
    got: Got
    seen: dict[str, list[Seen]]

    def at(self, backend: str) -> list[Seen]:
        return self.seen[backend]

    def normalized(self) -> dict[str, Any]:
        n = Normalizer()
        g = self.got
        client: dict[str, Any] = {"status": g.status, "interim": g.interim,
                                  "headers": n.headers(g.headers, response=True), "body": n.body(g.body)}
        if g.tunnel:
            client["tunnel"] = n.body(g.tunnel)
        if g.error:
            client["error"] = g.error
        backends: dict[str, Any] = {}
        for name, reqs in sorted(self.seen.items()):
            backends[name] = [
                {"request": f"{r.method} {n.text(r.target)} HTTP/{r.version}", "headers": n.headers(r.headers),
                 "body": n.body(r.body), "trailers": n.headers(r.trailers), "tunnel": n.body(r.tunnel)}
                for r in reqs
            ]
        return {"client": client, "backends": backends}


def differences(e: Observation, m: Observation) -> list[str]:
    ne, nm = e.normalized(), m.normalized()
    out = []
    for key in ("status", "interim", "headers", "body", "tunnel", "error"):
        a, b = ne["client"].get(key), nm["client"].get(key)
        if a != b:
            out.append(f"client {key}:\n    envoy:     {a!r}\n    mirrorsim: {b!r}")
    for name in sorted(set(ne["backends"]) | set(nm["backends"])):
        a, b = ne["backends"].get(name, []), nm["backends"].get(name, [])
        if a != b:
            out.append(f"backend {name} ({len(a)} vs {len(b)} request(s)):\n    envoy:     {a!r}\n    mirrorsim: {b!r}")
    return out


# --------------------------------------------------------------------------- proxies


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


async def admin_get(port: int, path: str, timeout: float = 2.0) -> Got:
    c = await connect(port)
    try:
        await c.send(f"GET {path} HTTP/1.1\r\nHost: admin\r\nConnection: close\r\n\r\n".encode())
        return await c.response(Got(), timeout=timeout)
    finally:
        c.close()


class Proxy:
    name = ""
    port = 0
    admin_port = 0
    proc: asyncio.subprocess.Process | None = None
    log_path: Path
    error = ""  # why it did not start (mirrorsim: compared scenarios then fail as a Mismatch)

    async def _ready(self, deadline: float, addr: Callable[[], int | None]) -> None:
        end = time.monotonic() + deadline
        while True:
            assert self.proc is not None
            if self.proc.returncode is not None:
                raise RuntimeError(f"{self.name} exited with {self.proc.returncode}:\n{self._log()}")
            if time.monotonic() > end:
                raise RuntimeError(f"{self.name} not ready after {deadline}s:\n{self._log()}")
            port = addr()
            if port:
                self.admin_port = port
                try:
                    if (await admin_get(port, "/ready", timeout=1.0)).status == 200:
                        return
                except OSError:
                    pass
            await asyncio.sleep(0.02)  # polling a subprocess's readiness

    def _log(self) -> str:
        try:
            return self.log_path.read_text(errors="replace")[-3000:]
        except OSError:
            return ""

    async def stop(self) -> None:
        await terminate(self.proc)

    async def busy(self) -> dict[str, int]:
        raise NotImplementedError

    async def quiesce(self, deadline: float = 10.0) -> None:
        end = time.monotonic() + deadline
        while True:
            busy = await self.busy()
            if not any(busy.values()):
                return
            if time.monotonic() > end:
                raise AssertionError(f"{self.name} still busy after {deadline}s: {busy}")
            await asyncio.sleep(0.01)  # polling the admin gauges


class EnvoyProxy(Proxy):
    name = "envoy"

    def __init__(self, config: str, workdir: Path) -> None:
        self.config, self.workdir = config, workdir
        self.log_path = workdir / "envoy.log"

    async def start(self) -> None:
        assert ENVOY
        cfg = self.workdir / "envoy.yaml"
        cfg.write_text(self.config)
        addr_file = self.workdir / "envoy-admin"
        base_id = 100_000 + (os.getpid() % 20_000) * 16 + next(_base_ids) % 16
        with open(self.log_path, "wb") as log:
            self.proc = await asyncio.create_subprocess_exec(
                ENVOY, "-c", str(cfg), "--concurrency", "1", "--base-id", str(base_id),
                "--log-level", "warning", "--admin-address-path", str(addr_file),
                stdout=log, stderr=asyncio.subprocess.STDOUT)

        def addr() -> int | None:
            text = addr_file.read_text().strip() if addr_file.exists() else ""
            return int(text.rpartition(":")[2]) if text else None

        await self._ready(30.0, addr)
        import json

        listeners = json.loads((await admin_get(self.admin_port, "/listeners?format=json")).body)
        self.port = listeners["listener_statuses"][0]["local_address"]["socket_address"]["port_value"]

    async def busy(self) -> dict[str, int]:
        got = await admin_get(self.admin_port, "/stats?filter=upstream_rq_active%24")
        return parse_stats(got.body.decode())


class MirrorsimProxy(Proxy):
    name = "mirrorsim"

    def __init__(self, istio_dir: Path, workdir: Path, args: Iterable[str]) -> None:
        self.istio_dir, self.workdir, self.args = istio_dir, workdir, list(args)
        self.log_path = workdir / "mirrorsim.log"

    async def start(self) -> None:
        self.port, admin = free_port(), free_port()
        env = dict(os.environ)
        env["PYTHONPATH"] = str(REPO) + os.pathsep + env.get("PYTHONPATH", "")
        with open(self.log_path, "wb") as log:
            self.proc = await asyncio.create_subprocess_exec(
                sys.executable, "-m", "simulator", "run", "-f", str(self.istio_dir),
                "--listen", f"127.0.0.1:{self.port}", "--admin", f"127.0.0.1:{admin}",
                "--access-log", "off", *self.args,
                stdout=log, stderr=asyncio.subprocess.STDOUT, cwd=str(REPO), env=env)
        await self._ready(30.0, lambda: admin)

    async def busy(self) -> dict[str, int]:
        got = await admin_get(self.admin_port, "/stats")
        stats = parse_stats(got.body.decode())
        return {k: v for k, v in stats.items() if k == "mirrorsim.shadow_inflight"}


# --------------------------------------------------------------------------- groups


def render(template: str, values: dict[str, Any]) -> str:
    """Replace ``${name}`` by ``values[name]`` (unknown names, e.g. in comments, stay)."""
    return re.sub(r"\$\{(\w+)\}", lambda m: str(values.get(m.group(1), m.group(0))), template)


class Group:
    """Backends + one hand-written Envoy + one mirrorsim for one group of scenarios."""

    def __init__(self, envoy_yaml: str, istio_yaml: str, backends: dict[str, str],
                 mirrorsim_args: Iterable[str] = ()) -> None:
        self.envoy_yaml, self.istio_yaml = envoy_yaml, istio_yaml
        self.backends = {name: Backend(name, mode) for name, mode in backends.items()}
        self.mirrorsim_args = ["--no-shadow-suffix", *mirrorsim_args]  # see README: Istio's default
        self.tmp = tempfile.TemporaryDirectory(prefix="oracle-")
        self.workdir = Path(self.tmp.name)
        self.envoy: EnvoyProxy | None = None
        self.mirrorsim: MirrorsimProxy | None = None

    async def __aenter__(self) -> Group:
        try:
            for b in self.backends.values():
                await b.start()
            values: dict[str, Any] = {name: b.port for name, b in self.backends.items()}
            values["refused"] = free_port()  # nothing listens there: connection refused
            econf = render((HERE / "envoy" / self.envoy_yaml).read_text(), values)
            idir = self.workdir / "istio"
            idir.mkdir()
            (idir / "istio.yaml").write_text(render((HERE / "istio" / self.istio_yaml).read_text(), values))
            self.envoy = EnvoyProxy(econf, self.workdir)
            self.mirrorsim = MirrorsimProxy(idir, self.workdir, self.mirrorsim_args)
            await asyncio.gather(self.envoy.start(), self._start_mirrorsim())
        except BaseException:
            await self.__aexit__()
            raise
        return self

    async def _start_mirrorsim(self) -> None:
        assert self.mirrorsim is not None
        try:
            await self.mirrorsim.start()
        except RuntimeError as exc:  # reported by every comparison (a Mismatch), not here
            self.mirrorsim.error = str(exc)
            await self.mirrorsim.stop()

    async def __aexit__(self, *exc: object) -> None:
        for p in (self.envoy, self.mirrorsim):
            if p is not None:
                await p.stop()
        for b in self.backends.values():
            await b.stop()
        self.tmp.cleanup()

    async def observe(self, proxy: Proxy, exchange: Exchange) -> Observation:
        for b in self.backends.values():
            b.reset()
        got = await exchange(proxy.port)
        await proxy.quiesce()
        return Observation(proxy.name, got, {name: list(b.seen) for name, b in self.backends.items()})

    async def envoy_only(self, exchange: Exchange) -> Observation:
        assert self.envoy is not None
        return await self.observe(self.envoy, exchange)

    async def both(self, exchange: Exchange) -> tuple[Observation, Observation | None]:
        """Envoy's observation, and mirrorsim's (None when mirrorsim did not start)."""
        assert self.envoy is not None and self.mirrorsim is not None
        e = await self.observe(self.envoy, exchange)
        if self.mirrorsim.error:
            return e, None
        return e, await self.observe(self.mirrorsim, exchange)

    def compare(self, e: Observation, m: Observation | None) -> None:
        """Raise Mismatch unless the normalised observations agree."""
        if m is None:
            assert self.mirrorsim is not None
            raise Mismatch(f"mirrorsim did not start ({' '.join(self.mirrorsim_args)}):\n{self.mirrorsim.error}")
        diffs = differences(e, m)
        if diffs:
            raise Mismatch("envoy and mirrorsim differ:\n  " + "\n  ".join(diffs))


def websocket(path: str = "/ws", host: str = "httpbin:8000", data: bytes = b"ping") -> Exchange:
    """An exchange: a websocket upgrade; after a 101, ``data`` through the tunnel and its echo."""

    async def run(port: int) -> Got:
        c = await connect(port)
        try:
            await c.send(req("GET", path, host, [("Connection", "Upgrade"), ("Upgrade", "websocket"),
                                                 ("Sec-WebSocket-Key", "dGhlIHNhbXBsZSBub25jZQ=="),
                                                 ("Sec-WebSocket-Version", "13")]))
            got = await c.response(Got())
            if got.status == 101:
                await c.send(data)
                want = len(b"echo:" + data)
                try:
                    while len(got.tunnel) < want:
                        chunk = await asyncio.wait_for(c.reader.read(want - len(got.tunnel)), 5.0)
                        if not chunk:
                            break
                        got.tunnel += chunk
                except TimeoutError:
                    got.error = "tunnel timeout"
            return got
        finally:
            c.close()

    return run


def expect_continue(path: str = "/post", host: str = "httpbin:8000", body: bytes = b"payload") -> Exchange:
    """An exchange: a POST with ``Expect: 100-continue``; the body is sent after an interim
    response (or after 1 s without one, as curl does)."""

    async def run(port: int) -> Got:
        c = await connect(port)
        try:
            await c.send(req("POST", path, host, [("Expect", "100-continue"), ("Content-Length", str(len(body)))]))
            got = Got()
            try:
                status, headers = await c.head(1.0)
            except TimeoutError:  # no interim response: send the body anyway
                await c.send(body)
                return await c.response(got, "POST")
            except (asyncio.IncompleteReadError, ConnectionError) as exc:
                got.error = f"connection closed ({type(exc).__name__})"
                return got
            if status != 100:  # a final response before the body was sent
                got.status, got.headers = status, headers
                await c.body(got, "POST")
                return got
            got.interim.append(100)
            await c.send(body)
            return await c.response(got, "POST")
        finally:
            c.close()

    return run
