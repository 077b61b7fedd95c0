"""Protocol edges through the real Envoy 1.40 and through mirrorsim, byte for byte: the same
raw client exchange and the same raw upstreams, on the exported bootstrap (which has Istio's
``upgrade_configs: websocket``).  Compared: what the client received and what each upstream
received, with dates, request ids and service times blanked.  See docs/mirroring.md,
"Protocol edges"."""

from __future__ import annotations

import asyncio
import re
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest
import pytest_asyncio

from simulator.envoy.export import bootstrap
from simulator.proxy.launch import RunOptions, start_proxy
from tests.conformance.harness import ENVOY, EnvoyProcess
from tests.conftest import registry_yaml, table_from_yaml, virtual_service

pytestmark = [pytest.mark.slow, pytest.mark.asyncio(loop_scope="module")]

HTTP = """
- match: [{uri: {prefix: /t/}}]
  timeout: 0.5s
  route: [{destination: {host: httpbin, subset: v1}}]
  mirror: {host: httpbin, subset: v2}
- route: [{destination: {host: httpbin, subset: v1}}]
  mirror: {host: httpbin, subset: v2}
"""
SWITCH = b"HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n\r\n"


class Upstream:
    """A raw upstream (v1 or v2) whose behaviour depends on the request path; logs every
    read as (connection number, bytes)."""

    def __init__(self, name: bytes) -> None:
        self.name = name
        self.log: list[tuple[int, bytes]] = []
        self.count = 0
        self.port = 0

    def received(self) -> list[bytes]:
        """Each request this case sent here, with what followed it on its connection (a
        tunnel's bytes), sorted: which pooled connection carried it may differ."""
        by_conn: dict[int, bytes] = {}
        for n, data in self.log:
            by_conn[n] = by_conn.get(n, b"") + data
        out: list[bytes] = []
        for raw in by_conn.values():
            out.extend(p for p in re.split(rb"(?=(?:GET|POST|OPTIONS) /)", _norm(raw)) if p)
        return sorted(out)

    async def start(self) -> asyncio.Server:
        server = await asyncio.start_server(self._run, "127.0.0.1", 0)
        self.port = server.sockets[0].getsockname()[1]
        return server

    async def _run(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.count += 1
        n = self.count
        try:
            while True:
                head = await reader.readuntil(b"\r\n\r\n")
                self.log.append((n, head))
                path = head.split(b" ", 2)[1]
                m = re.search(rb"content-length: (\d+)", head, re.I)
                if b"expect: 100-continue" in head.lower() and b"/silent" not in path:
                    # as aiohttp, gunicorn and nginx do: Istio's Envoy proxies it (proxy_100_continue)
                    writer.write(b"HTTP/1.1 100 Continue\r\n\r\n")
                if m and b"upgrade" not in head.lower():
                    self.log.append((n, await reader.readexactly(int(m.group(1)))))
                if b"/ws" in path and b"/wsfail" not in path:
                    writer.write(SWITCH[:-2] + b"x-b: " + self.name + b"\r\n\r\n")
                    while data := await reader.read(65536):
                        self.log.append((n, data))
                        writer.write(b"echo:" + data)
                    self.log.append((n, b"<closed>"))
                    return
                if b"/wsfail200" in path:
                    writer.write(b"HTTP/1.1 200 OK\r\nx-b: x\r\ncontent-length: 2\r\n\r\nok")
                elif b"/wsfail403" in path:
                    writer.write(b"HTTP/1.1 403 Forbidden\r\ncontent-length: 4\r\n\r\nnope")
                elif b"/noanswer" in path:
                    return
                elif b"/garbage" in path:
                    writer.write(b"GARBAGE\r\n\r\n")
                else:
                    writer.write(b"HTTP/1.1 200 OK\r\ncontent-length: 1\r\nx-b: %s\r\n\r\n%s" % (self.name, self.name))
                await writer.drain()
        except (ConnectionError, asyncio.IncompleteReadError):
            pass
        finally:
            writer.close()


# ("send", bytes) | ("read", marker; b"": until closed or 0.3 s quiet) | ("pause", seconds)
Step = tuple[str, bytes]


async def exchange(port: int, steps: list[Step]) -> bytes:
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    got = bytearray()
    mark = 0  # a read waits for its bytes among those that came after the last send
    try:
        for kind, arg in steps:
            if kind == "send":
                mark = len(got)
                writer.write(arg)
                await writer.drain()
                continue
            if kind == "pause":
                await asyncio.sleep(float(arg))
                continue
            while not arg or arg not in got[mark:]:
                try:
                    data = await asyncio.wait_for(reader.read(65536), 0.3 if not arg else 5)
                except TimeoutError:
                    break
                except ConnectionResetError:
                    got += b"<reset>"
                    break
                if not data:
                    got += b"<closed>"
                    break
                got += data
    finally:
        writer.close()
    return bytes(got)


def _norm(raw: bytes) -> bytes:
    # Envoy closes after its delayed_close_timeout (1 s), mirrorsim at once (deviation P4)
    raw = raw.replace(b"<closed>", b"")
    raw = re.sub(rb"date: [^\r]*", b"date: D", raw)
    raw = re.sub(rb"x-request-id: [^\r]*", b"x-request-id: ID", raw)
    return re.sub(rb"x-envoy-upstream-service-time: \d+", b"x-envoy-upstream-service-time: T", raw)


H = b"Host: httpbin:8000\r\n"
WS = b"Connection: Upgrade\r\nUpgrade: websocket\r\n"
CASES: dict[str, list[Step]] = {
    "websocket": [("send", b"GET /ws HTTP/1.1\r\n" + H + WS + b"\r\nEARLY"), ("read", b"echo:EARLY"),
                  ("send", b"hello"), ("read", b"echo:hello")],
    "websocket_connection_tokens": [
        ("send", b"GET /ws HTTP/1.1\r\n" + H + b"Connection: keep-alive, Upgrade, x-foo\r\nx-foo: bar\r\n"
                 b"Upgrade: WebSocket\r\n\r\n"), ("read", b"\r\n\r\n")],
    "websocket_timeout_before_101_only": [("send", b"GET /t/ws HTTP/1.1\r\n" + H + WS + b"\r\n"),
                                          ("read", b"\r\n\r\n"), ("pause", b"0.7"),  # the route timeout: 0.5 s
                                          ("send", b"late"), ("read", b"echo:late")],
    "websocket_failed_200": [("send", b"GET /wsfail200 HTTP/1.1\r\n" + H + WS + b"\r\n"), ("read", b"")],
    "websocket_failed_403": [("send", b"GET /wsfail403 HTTP/1.1\r\n" + H + WS + b"\r\n"), ("read", b"")],
    "other_upgrade": [("send", b"GET /x HTTP/1.1\r\n" + H + b"Connection: Upgrade\r\nUpgrade: foo\r\n\r\n"),
                      ("read", b"")],
    "h2c": [("send", b"POST /x HTTP/1.1\r\n" + H + b"Connection: Upgrade, HTTP2-Settings\r\nUpgrade: h2c\r\n"
                     b"HTTP2-Settings: AAMAAABkAARAAAAAAAIAAAAA\r\nContent-Length: 3\r\n\r\nabc"),
            ("read", b"\r\n\r\nA"), ("send", b"GET /y HTTP/1.1\r\n" + H + b"\r\n"), ("read", b"")],
    "expect_100_continue": [("send", b"POST /x HTTP/1.1\r\n" + H
                                     + b"Expect: 100-continue\r\nContent-Length: 5\r\n\r\n"),
                            ("read", b"Continue\r\n\r\n"), ("send", b"hello"), ("read", b"\r\n\r\nA"),
                            ("send", b"POST /y HTTP/1.1\r\n" + H + b"Expect: other\r\nContent-Length: 1\r\n\r\nz"),
                            ("read", b"")],
    "upstream_closes_reused_connection": [
        ("send", b"GET /x HTTP/1.1\r\n" + H + b"\r\n"), ("read", b"\r\n\r\nA"),
        ("send", b"GET /noanswer HTTP/1.1\r\n" + H + b"\r\n"), ("read", b"termination"),
        ("send", b"POST /noanswer HTTP/1.1\r\n" + H + b"Content-Length: 1\r\n\r\nz"), ("read", b"termination")],
    "garbage_response": [("send", b"GET /garbage HTTP/1.1\r\n" + H + b"\r\n"), ("read", b"protocol error")],
    "connect": [("send", b"CONNECT httpbin:8000 HTTP/1.1\r\n" + H + b"\r\n"), ("read", b"")],
    "transfer_coding_not_chunked": [
        ("send", b"POST /x HTTP/1.1\r\n" + H + b"Transfer-Encoding: gzip, chunked\r\n\r\n3\r\nabc\r\n0\r\n\r\n"),
        ("read", b"")],
    "http2_version_on_http1": [("send", b"GET /x HTTP/2.0\r\n" + H + b"\r\n"), ("read", b"")],
    "no_host": [("send", b"GET /x HTTP/1.1\r\n\r\n"), ("read", b"")],
    "empty_host_and_options_star": [("send", b"GET /x HTTP/1.1\r\nHost:\r\n\r\n"), ("read", b"\r\n\r\n"),
                                    ("send", b"OPTIONS * HTTP/1.1\r\n" + H + b"\r\n"), ("read", b"")],
}


@pytest_asyncio.fixture(scope="module", loop_scope="module")
async def targets(tmp_path_factory: pytest.TempPathFactory) -> AsyncIterator[dict[str, Any]]:
    if ENVOY is None:
        pytest.fail("the real Envoy is a test dependency: python3 -m pip install -e '.[test]'")
    v1, v2 = Upstream(b"A"), Upstream(b"B")
    servers = [await v1.start(), await v2.start()]
    table = table_from_yaml(registry_yaml({"v1": v1.port, "v2": v2.port}) + virtual_service(HTTP))
    envoy = EnvoyProcess(bootstrap(table, listen=("127.0.0.1", 0), admin=("127.0.0.1", 0)),
                         Path(tmp_path_factory.mktemp("envoy")))
    await envoy.start()
    rp = await start_proxy(table, RunOptions(listen_port=0, admin_port=0, local_address="192.0.2.2"))
    try:
        yield {"envoy": envoy.port, "mirrorsim": rp.port, "v1": v1, "v2": v2}
    finally:
        await rp.close()
        await envoy.stop()
        for s in servers:
            s.close()


async def _settle(ups: list[Upstream], deadline: float = 3.0) -> None:
    """Poll until the upstreams' logs stop growing (shadow copies and closes arrive after
    the client's last byte): unchanged over 4 polls 50 ms apart, 3 s at most."""
    last, same = -1, 0
    end = asyncio.get_running_loop().time() + deadline
    while same < 4 and asyncio.get_running_loop().time() < end:
        n = sum(len(u.log) for u in ups)
        same = same + 1 if n == last else 0
        last = n
        await asyncio.sleep(0.05)


async def _observe(targets: dict[str, Any], port: int, steps: list[Step]) -> dict[str, Any]:
    ups = [targets["v1"], targets["v2"]]
    for u in ups:
        u.log.clear()
    client = await exchange(port, steps)
    await _settle(ups)
    return {"client": _norm(client), "v1": ups[0].received(), "v2": ups[1].received()}


@pytest.mark.parametrize("case", list(CASES))
async def test_protocol_edge_matches_envoy(targets: dict[str, Any], case: str) -> None:
    steps = CASES[case]
    envoy = await _observe(targets, targets["envoy"], steps)
    sim = await _observe(targets, targets["mirrorsim"], steps)
    assert sim == envoy
