"""Hostile input against the whole request path of a `mirrorsim run` child process:
generated malformed requests (seeded random bytes, every truncation of a valid request,
oversized request lines, header names, values and counts, conflicting framing, bad chunk
sizes, pipelining with errors, slow clients).

After each batch: nothing in the proxy's stderr looks like a traceback, every connection
got an answer or a close within a bound (no hang), a normal request is still answered
promptly, and the proxy's RSS stays within a bound.  Bounded in count and time: the file
runs in well under 30 s."""

from __future__ import annotations

import asyncio
import random
import re
import time
from collections.abc import AsyncIterator, Iterable
from pathlib import Path

import httptools
import pytest

from tests.conftest import registry_yaml, virtual_service
from tests.support.recorder import Recorder
from tests.support.subproxy import SubprocessProxy

MIRROR = """
- route: [{destination: {host: httpbin, subset: v1}}]
  mirror: {host: httpbin, subset: v2}
"""
H = b"Host: httpbin:8000\r\n"
GOOD = b"GET /ok HTTP/1.1\r\n" + H + b"\r\n"
VALID_POST = (b"POST /post?q=1 HTTP/1.1\r\n" + H + b"User-Agent: fuzz\r\nX-Request-Id: abc\r\n"
              b"Transfer-Encoding: chunked\r\n\r\n5\r\nhello\r\n6\r\n world\r\n0\r\n\r\n")
ANSWER_BOUND = 3.0  # seconds for each connection to get its answers or a close
RSS_GROWTH_MB = 60  # the proxy's RSS after a batch, over its RSS after start-up
CONCURRENCY = 25


class Proxy:
    def __init__(self, sp: SubprocessProxy) -> None:
        self.sp = sp
        self.port = sp.port
        self.base_rss = sp.rss_mb()

    async def check(self, batch: str) -> None:
        err = self.sp.stderr()
        assert not re.search(r"Traceback|Exception in callback|Error on reading", err), (
            f"after {batch}:\n{err[-3000:]}")
        t0 = time.monotonic()
        reply = await exchange(self.port, [GOOD], half_close=False, responses=1)
        assert reply.startswith(b"HTTP/1.1 200 "), (batch, reply[:200])
        assert time.monotonic() - t0 < 1.0, f"a normal request took {time.monotonic() - t0:.2f}s after {batch}"
        rss = self.sp.rss_mb()
        assert rss < self.base_rss + RSS_GROWTH_MB, f"RSS {self.base_rss:.0f} -> {rss:.0f} MB after {batch}"


@pytest.fixture
async def proxy(tmp_path: Path) -> AsyncIterator[Proxy]:
    async with Recorder("v1") as a, Recorder("v2") as b:
        config = registry_yaml({"v1": a.port, "v2": b.port}) + virtual_service(MIRROR)
        async with SubprocessProxy(tmp_path, config) as sp:
            p = Proxy(sp)
            await p.check("start-up")
            yield p
            await p.check("the test")


async def exchange(port: int, chunks: Iterable[bytes], *, half_close: bool = True, pause: float = 0.0,
                   responses: int | None = None, bound: float = ANSWER_BOUND) -> bytes:
    """Send ``chunks`` (``pause`` seconds apart), then half-close unless told not to; read
    until the proxy closes, or until ``responses`` answers arrived.  Fails if that takes
    longer than ``bound`` after the last byte was sent (a hang)."""
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    data = b""
    try:
        for i, chunk in enumerate(chunks):
            if i and pause:
                await asyncio.sleep(pause)  # a slow client, not a wait for an event
            try:
                writer.write(chunk)
                await writer.drain()
            except (ConnectionResetError, BrokenPipeError):
                break  # the proxy refused and closed
        if half_close and writer.can_write_eof():
            try:
                writer.write_eof()
            except OSError:
                pass

        async def read() -> None:
            nonlocal data
            while responses is None or len(statuses(data)) < responses:
                try:
                    more = await reader.read(1 << 16)
                except (ConnectionResetError, BrokenPipeError):
                    return  # a refusal may be lost to the reset a close while sending causes
                if not more:
                    return
                data += more

        try:
            await asyncio.wait_for(read(), bound)
        except TimeoutError:
            raise AssertionError(f"no answer or close within {bound}s; sent {b''.join(chunks)[:120]!r}, "
                                 f"got {data[:200]!r}") from None
    finally:
        writer.close()
    return data


async def run_all(port: int, cases: list[list[bytes]], **kw: object) -> list[bytes]:
    sem = asyncio.Semaphore(CONCURRENCY)

    async def one(chunks: list[bytes]) -> bytes:
        async with sem:
            return await exchange(port, chunks, **kw)  # type: ignore[arg-type]

    return await asyncio.gather(*(one(c) for c in cases))


def statuses(data: bytes) -> list[int]:
    """The status of each complete response in ``data``, in order."""
    class Collect:
        def __init__(self) -> None:
            self.codes: list[int] = []

        def on_message_complete(self) -> None:
            self.codes.append(parser.get_status_code())

    c = Collect()
    parser = httptools.HttpResponseParser(c)
    try:
        parser.feed_data(data)
    except httptools.HttpParserError:
        pass
    return c.codes


# --------------------------------------------------------------------------- batches


async def test_random_bytes(proxy: Proxy):
    rng = random.Random(1234)
    alphabet = b"GETPOST /HTP1.0:\r\n\t ;,=-chunkedContent-LengthTransfer-Encoding0123456789abcdefxz\x00\x7f\xff"
    prefixes = [b"", b"GET / HTTP/1.1\r\n", b"POST /p HTTP/1.1\r\n" + H, VALID_POST[:60],
                b"POST /p HTTP/1.1\r\n" + H + b"Transfer-Encoding: chunked\r\n\r\n",
                b"POST /p HTTP/1.1\r\n" + H + b"Content-Length: 10\r\n\r\n"]
    cases = []
    for i in range(240):
        n = rng.randrange(1, 3000)
        if i % 2:
            noise = bytes(rng.randrange(256) for _ in range(n))
        else:
            noise = bytes(rng.choice(alphabet) for _ in range(n))
        cases.append([rng.choice(prefixes) + noise])
    replies = await run_all(proxy.port, cases)
    for (sent,), got in zip(cases, replies, strict=True):
        assert got == b"" or got.startswith(b"HTTP/1.1 "), (sent[:80], got[:80])
    assert sum(1 for r in replies if r) > 100  # most got an answer, not only a close
    await proxy.check("random bytes")


async def test_every_truncation_of_a_valid_request(proxy: Proxy):
    cases = [[VALID_POST[:i]] for i in range(len(VALID_POST))]
    replies = await run_all(proxy.port, cases)
    for (sent,), got in zip(cases, replies, strict=True):
        # an incomplete request is never answered as if complete: a refusal, or a close
        assert got == b"" or statuses(got)[0] >= 400, (sent, got[:80])
    # and the whole request, cut into every pair of pieces, is answered normally
    split = [[VALID_POST[:i], VALID_POST[i:]] for i in range(1, len(VALID_POST), 7)]
    replies = await run_all(proxy.port, split, half_close=False, responses=1)
    assert all(statuses(r) == [200] for r in replies), [r[:60] for r in replies]
    await proxy.check("truncations")


async def test_oversized_heads(proxy: Proxy):
    big = b"v" * (70 * 1024)
    cases = {
        "request line": [b"GET /" + big + b" HTTP/1.1\r\n" + H + b"\r\n"],
        "1 MB request line": [b"GET /" + b"a" * (1 << 20) + b" HTTP/1.1\r\n\r\n"],
        "header name": [b"GET / HTTP/1.1\r\n" + H + big + b": v\r\n\r\n"],
        "header value": [b"GET / HTTP/1.1\r\n" + H + b"x-big: " + big + b"\r\n\r\n"],
        "value in pieces": [b"GET / HTTP/1.1\r\n" + H + b"x-big: "] + [b"v" * 1024] * 80,
        "101 headers": [b"GET / HTTP/1.1\r\n" + H + b"".join(b"x-%d: v\r\n" % i for i in range(100)) + b"\r\n"],
        "5000 headers": [b"GET / HTTP/1.1\r\n" + H + b"".join(b"x-%d: v\r\n" % i for i in range(5000)) + b"\r\n"],
        "trailer": [b"POST / HTTP/1.1\r\n" + H + b"Transfer-Encoding: chunked\r\n\r\n1\r\na\r\n0\r\nx-t: "
                    + big + b"\r\n\r\n"],
    }
    replies = await run_all(proxy.port, list(cases.values()), half_close=False, responses=1)
    for name, got in zip(cases, replies, strict=True):
        # 431, or a close when the refusal was lost to the reset of a still-sending client
        assert got == b"" or statuses(got) == [431], (name, got[:100])
    assert sum(1 for r in replies if r) >= 5
    await proxy.check("oversized heads")


async def test_conflicting_framing_and_bad_chunks(proxy: Proxy):
    post = b"POST /f HTTP/1.1\r\n" + H
    cases = {
        "CL+TE": (post + b"Content-Length: 5\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n", {400}),
        "TE+CL": (post + b"Transfer-Encoding: chunked\r\nContent-Length: 5\r\n\r\n0\r\n\r\n", {400}),
        "two CL": (post + b"Content-Length: 5\r\nContent-Length: 6\r\n\r\nhello!", {400}),
        "same CL twice": (post + b"Content-Length: 5\r\nContent-Length: 5\r\n\r\nhello", {400}),
        "CL list": (post + b"Content-Length: 5, 5\r\n\r\nhello", {400}),
        "negative CL": (post + b"Content-Length: -1\r\n\r\n", {400}),
        "huge CL": (post + b"Content-Length: 99999999999999999999999\r\n\r\n", {400}),
        "CL junk": (post + b"Content-Length: 5x\r\n\r\nhello", {400}),
        "TE gzip": (post + b"Transfer-Encoding: gzip\r\n\r\nhello", {400, 501}),
        "TE twice": (post + b"Transfer-Encoding: chunked\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n",
                     {400, 501}),
        "chunk size zz": (post + b"Transfer-Encoding: chunked\r\n\r\nzz\r\nhello\r\n0\r\n\r\n", {400}),
        "chunk size -1": (post + b"Transfer-Encoding: chunked\r\n\r\n-1\r\nhello\r\n0\r\n\r\n", {400}),
        "chunk size overflow": (post + b"Transfer-Encoding: chunked\r\n\r\nfffffffffffffffffffff\r\nx\r\n0\r\n\r\n",
                                {400}),
        "chunk too long": (post + b"Transfer-Encoding: chunked\r\n\r\n2\r\nhello\r\n0\r\n\r\n", {400}),
        "chunk no CRLF": (post + b"Transfer-Encoding: chunked\r\n\r\n5\r\nhelloXX0\r\n\r\n", {400}),
        "space in name": (post + b"Bad Name: v\r\nContent-Length: 0\r\n\r\n", {400}),
        "NUL in value": (post + b"X-A: a\x00b\r\nContent-Length: 0\r\n\r\n", {400}),
        "bad version": (b"GET / HTTP/9.9\r\n" + H + b"\r\n", {400, 426, 505}),
        "no version": (b"GET /\r\n\r\n", {426}),  # HTTP/0.9: the real Envoy 1.40 answers 426
        "bad method": (b"G@T / HTTP/1.1\r\n" + H + b"\r\n", {400}),
    }
    replies = await run_all(proxy.port, [[raw] for raw, _ in cases.values()], half_close=False, responses=1)
    for (name, (_, allowed)), got in zip(cases.items(), replies, strict=True):
        st = statuses(got)
        assert len(st) == 1 and st[0] in allowed, (name, got[:120])
        assert b"connection: close" in got, name
    await proxy.check("framing")


async def test_pipelining_with_errors(proxy: Proxy):
    big_post = b"POST /big HTTP/1.1\r\n" + H + b"Content-Length: 70000\r\n\r\n" + b"p" * 70000
    cases = {
        "good, garbage": ([GOOD + b"\x16\x03\x01 tls?\r\n\r\n"], [200, 400]),
        "3 good, garbage": ([GOOD * 3 + b"@\r\n\r\n"], [200, 200, 200, 400]),
        "good, 431": ([GOOD + b"GET /" + b"a" * 70000 + b" HTTP/1.1\r\n\r\n"], [200, 431]),
        "good, CL+TE": ([GOOD + b"POST / HTTP/1.1\r\n" + H + b"Content-Length: 1\r\nTransfer-Encoding: chunked"
                         b"\r\n\r\n0\r\n\r\n"], [200, 400]),
        "big post, next head split": ([big_post + GOOD[:7], GOOD[7:]], [200, 200]),
        "20 pipelined": ([GOOD * 20], [200] * 20),
        "good, truncated": ([GOOD + VALID_POST[:50]], [200]),
        "good, 101 headers": ([GOOD + b"GET / HTTP/1.1\r\n" + H + b"".join(b"x-%d: v\r\n" % i for i in range(100))
                               + b"\r\n"], [200, 431]),
    }
    # no half-close: the proxy (as Envoy, without half-close support) closes on a FIN
    replies = await asyncio.gather(*(exchange(proxy.port, c, half_close=False, responses=len(expect))
                                     for c, expect in cases.values()))
    for (name, (_, expect)), got in zip(cases.items(), replies, strict=True):
        assert statuses(got) == expect, (name, got[:300])
    await proxy.check("pipelining with errors")


async def test_slow_clients_do_not_hold_up_others(proxy: Proxy):
    # a request one byte every 10 ms, ten at once, while normal requests go on
    slow = [[bytes([b]) for b in GOOD] for _ in range(10)]
    pending = asyncio.gather(*(exchange(proxy.port, c, pause=0.01, half_close=False, responses=1)
                               for c in slow))
    # a client whose header never ends, 1 KiB every 10 ms, until the proxy refuses it
    endless = [b"GET / HTTP/1.1\r\n" + H + b"x-endless: "] + [b"v" * 1024] * 100
    loris = asyncio.ensure_future(exchange(proxy.port, endless, pause=0.01, half_close=False))
    for _ in range(5):
        await proxy.check("during slow clients")
    replies = await pending
    assert all(statuses(r) == [200] for r in replies)
    got = await loris
    assert got == b"" or statuses(got) == [431]
    await proxy.check("slow clients")
