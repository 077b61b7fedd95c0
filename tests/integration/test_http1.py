"""HTTP/1.1 details of the data plane: upstream keep-alive and Connection: close, chunked and
read-until-close responses, large responses with back-pressure, WorkloadEntry endpoints."""

from __future__ import annotations

import asyncio
import hashlib

from tests.conftest import registry_yaml, table_from_yaml, virtual_service
from tests.support.client import Client, get, request
from tests.support.recorder import Recorder

ROUTE = "- route: [{destination: {host: httpbin, subset: v1}}]"


async def test_upstream_connection_close_is_not_reused(run_proxy):
    async with Recorder("v1", close_after_response=True) as a:
        rp = await run_proxy(table_from_yaml(registry_yaml({"v1": a.port}) + virtual_service(ROUTE)))
        for _ in range(3):
            assert (await get(rp.port, "/")).status == 200
        reqs = await a.wait_for(3)
    assert len({r.peer_port for r in reqs}) == 3 and a.connections == 3


async def _raw_upstream(response: bytes) -> tuple[asyncio.Server, int]:
    async def handler(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await reader.readuntil(b"\r\n\r\n")
        writer.write(response)
        await writer.drain()
        writer.close()

    server = await asyncio.start_server(handler, "127.0.0.1", 0)
    return server, server.sockets[0].getsockname()[1]


async def test_chunked_response_is_forwarded_chunked(run_proxy):
    server, port = await _raw_upstream(
        b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n5\r\nhello\r\n6\r\n world\r\n0\r\n\r\n")
    rp = await run_proxy(table_from_yaml(registry_yaml({"v1": port}) + virtual_service(ROUTE)))
    resp = await get(rp.port, "/")
    server.close()
    assert resp.body == b"hello world" and resp.header("transfer-encoding") == "chunked"
    assert resp.header("content-length") is None


async def test_read_until_close_response_becomes_chunked_for_the_client(run_proxy):
    server, port = await _raw_upstream(b"HTTP/1.1 200 OK\r\nConnection: close\r\n\r\nuntil the end")
    rp = await run_proxy(table_from_yaml(registry_yaml({"v1": port}) + virtual_service(ROUTE)))
    async with Client(rp.port) as c:
        (resp,) = await c.send(request("GET", "/"))
        # the client connection stays usable: the body was delimited by chunking
        (again,) = await c.send(request("GET", "/"))
    server.close()
    assert resp.body == b"until the end" and resp.header("transfer-encoding") == "chunked"
    assert again.status == 200 and again.body == b"until the end"


async def test_large_response_streams_to_a_slow_client(run_proxy):
    body = bytes(range(256)) * (16 * 1024)  # 4 MiB
    async with Recorder("v1", body=body) as a:
        rp = await run_proxy(table_from_yaml(registry_yaml({"v1": a.port}) + virtual_service(ROUTE)))
        reader, writer = await asyncio.open_connection("127.0.0.1", rp.port)
        writer.write(request("GET", "/big"))
        await writer.drain()
        head = await reader.readuntil(b"\r\n\r\n")
        assert b"content-length: 4194304" in head.lower()
        received = bytearray()
        while len(received) < len(body):  # read in small steps, as a slow client would
            chunk = await asyncio.wait_for(reader.read(65536), 10)
            assert chunk
            received += chunk
        writer.close()
    assert hashlib.sha256(received).digest() == hashlib.sha256(body).digest()


async def test_workload_entries_selected_by_service_entry():
    text = """
apiVersion: networking.istio.io/v1
kind: ServiceEntry
metadata: {name: reviews, namespace: default}
spec:
  hosts: [reviews.default.svc.cluster.local]
  location: MESH_INTERNAL
  resolution: STATIC
  ports: [{number: 9080, name: http, protocol: HTTP}]
  workloadSelector: {labels: {app: reviews}}
---
apiVersion: networking.istio.io/v1
kind: WorkloadEntry
metadata: {name: reviews-v1, namespace: default}
spec: {address: 127.0.0.1, ports: {http: 19081}, labels: {app: reviews, version: v1}}
---
apiVersion: networking.istio.io/v1
kind: WorkloadEntry
metadata: {name: reviews-v2, namespace: default}
spec: {address: 127.0.0.2, labels: {app: reviews, version: v2}}
---
apiVersion: networking.istio.io/v1
kind: WorkloadEntry
metadata: {name: other, namespace: default}
spec: {address: 127.0.0.3, labels: {app: ratings}}
---
apiVersion: networking.istio.io/v1
kind: DestinationRule
metadata: {name: reviews, namespace: default}
spec:
  host: reviews
  subsets:
  - {name: v2, labels: {version: v2}}
"""
    table = table_from_yaml(text)
    all_eps = table.clusters["outbound|9080||reviews.default.svc.cluster.local"].endpoints
    assert sorted((e.address, e.port) for e in all_eps) == [("127.0.0.1", 19081), ("127.0.0.2", 9080)]
    v2 = table.clusters["outbound|9080|v2|reviews.default.svc.cluster.local"].endpoints
    assert [(e.address, e.port) for e in v2] == [("127.0.0.2", 9080)]


async def test_idle_timeout_closes_pooled_connections(run_proxy):
    policy = """  trafficPolicy:
    connectionPool:
      http: {idleTimeout: 1s}
  subsets:"""
    async with Recorder("v1") as a:
        text = registry_yaml({"v1": a.port}).replace("  subsets:", policy) + virtual_service(ROUTE)
        rp = await run_proxy(table_from_yaml(text))
        for _ in range(3):
            assert (await get(rp.port, "/")).status == 200
            pool = rp.proxy.pools["outbound|8000|v1|httpbin.default.svc.cluster.local"]
            for conns in pool.idle.values():
                for conn in conns:
                    conn.idle_since -= 2  # as if it had stayed idle for 2 s, past the 1 s timeout
        reqs = await a.wait_for(3)
    # each request found its pooled connection idle for longer than 1 s: a new one each time
    assert len({r.peer_port for r in reqs}) == 3


async def test_oversized_request_head_gets_431_and_nothing_is_forwarded(run_proxy):
    async with Recorder("v1") as a:
        rp = await run_proxy(table_from_yaml(registry_yaml({"v1": a.port}) + virtual_service(ROUTE)))
        big = [(f"x-filler-{i}", "v" * 1000) for i in range(70)]  # ~72 KiB of headers
        async with Client(rp.port) as c:
            (resp,) = await c.send(request("GET", "/", headers=big))
            assert resp.status == 431 and resp.header("connection") == "close"
        # under the limit (Envoy's default 60 KiB) is fine
        ok = await get(rp.port, "/", headers=[(f"x-filler-{i}", "v" * 1000) for i in range(50)])
        assert ok.status == 200
        (only,) = await a.wait_for(1)
    assert only.header("x-filler-0") == "v" * 1000


async def test_head_sent_in_small_pieces_is_bounded(run_proxy):
    async with Recorder("v1") as a:
        rp = await run_proxy(table_from_yaml(registry_yaml({"v1": a.port}) + virtual_service(ROUTE)))
        reader, writer = await asyncio.open_connection("127.0.0.1", rp.port)
        writer.write(b"GET / HTTP/1.1\r\nHost: httpbin:8000\r\nx-endless: ")
        for _ in range(200):  # a header value that never ends, 1 KiB at a time, 200 KiB at most
            try:
                writer.write(b"v" * 1024)
                await writer.drain()
            except (ConnectionResetError, BrokenPipeError):
                break  # the proxy gave up on the request and closed
        try:
            reply = await asyncio.wait_for(reader.read(), 5)
        except ConnectionResetError:  # the 431 may be lost to the reset the close causes
            reply = b""
        writer.close()
    # the proxy closed the connection (a buffering proxy would leave read() waiting and
    # the wait_for above would time out), answered 431 if the answer survived the reset,
    # and forwarded nothing
    assert reply == b"" or reply.startswith(b"HTTP/1.1 431 "), reply[:80]
    assert a.requests == []


async def test_header_names_that_change_between_messages_on_one_connection(run_proxy):
    """Header names are remembered per connection by position (headers.memo_name): a
    request or response whose names differ from the previous message's, in order, case
    or count, still goes out with its own names, lower-cased."""
    async with Recorder("v1", headers=[("X-First", "1")]) as a:
        rp = await run_proxy(table_from_yaml(registry_yaml({"v1": a.port}) + virtual_service(ROUTE)))
        async with Client(rp.port) as c:
            (r1,) = await c.send(request("GET", "/1", headers=[("X-A", "a"), ("X-B", "b")]))
            a.headers = [("x-second", "2"), ("X-FIRST", "3")]
            (r2,) = await c.send(request("GET", "/2", headers=[("X-B", "b2"), ("x-a", "a2"), ("X-C", "c")]))
            a.headers = [("X-Third", "4")]
            (r3,) = await c.send(request("GET", "/3", headers=[("X-A", "a3")]))
        reqs = await a.wait_for(3)
    assert len({r.peer_port for r in reqs}) == 1  # one pooled upstream connection
    sent = [[(k, v) for k, v in r.headers if k.startswith("x-") and len(k) == 3] for r in reqs]
    assert sent == [[("x-a", "a"), ("x-b", "b")], [("x-b", "b2"), ("x-a", "a2"), ("x-c", "c")],
                    [("x-a", "a3")]]
    got = [[(k, v) for k, v in r.headers if k.startswith(("x-f", "x-s", "x-t"))] for r in (r1, r2, r3)]
    assert got == [[("x-first", "1")], [("x-second", "2"), ("x-first", "3")], [("x-third", "4")]]


async def test_protocol_in_the_access_log_with_and_without_connection_header(run_proxy, tmp_path):
    """HTTP/1.1 is told from keep-alive without a Connection header (skipping the parser's
    version string); with one, the parser's version is read: the log says HTTP/1.1 both ways."""
    log = tmp_path / "access.log"
    async with Recorder("v1") as a:
        rp = await run_proxy(table_from_yaml(registry_yaml({"v1": a.port}) + virtual_service(ROUTE)),
                             access_log_spec=str(log))
        async with Client(rp.port) as c:
            (r1,) = await c.send(request("GET", "/plain"))
            (r2,) = await c.send(request("GET", "/keep", headers=[("Connection", "keep-alive")]))
            (r3,) = await c.send(request("GET", "/close", headers=[("Connection", "close")]))
        await a.wait_for(3)
        await rp.close()
    assert [r.status for r in (r1, r2, r3)] == [200, 200, 200] and not r3.keep_alive
    lines = log.read_text().splitlines()
    assert [line.split('"')[1] for line in lines] == [
        "GET /plain HTTP/1.1", "GET /keep HTTP/1.1", "GET /close HTTP/1.1"]
