"""The command line as a user runs it: real subprocesses, loopback only."""

from __future__ import annotations

import asyncio
import re
import sys
from pathlib import Path

import pytest

from simulator import __version__
from simulator.build import build_info
from tests.conftest import registry_yaml, virtual_service
from tests.support.client import get
from tests.support.recorder import Recorder

pytestmark = pytest.mark.slow

MIRROR = """
- route:
  - destination: {host: httpbin, subset: v1}
  mirror: {host: httpbin, subset: v2}
"""


async def _spawn(*args: str) -> asyncio.subprocess.Process:
    return await asyncio.create_subprocess_exec(
        sys.executable, "-m", "simulator", *args,
        stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE)


async def _read_until(stream: asyncio.StreamReader, pattern: str, timeout: float = 20) -> str:
    seen = []

    async def loop() -> str:
        while True:
            line = (await stream.readline()).decode()
            if not line:
                raise AssertionError(f"process ended before {pattern!r}; output:\n" + "".join(seen))
            seen.append(line)
            if re.search(pattern, line):
                return line

    try:
        return await asyncio.wait_for(loop(), timeout)
    except TimeoutError:
        raise AssertionError(f"no {pattern!r} within {timeout:g} s; output:\n" + "".join(seen)) from None


async def test_run_serves_mirror_and_logs(tmp_path: Path):
    async with Recorder("v1") as a, Recorder("v2") as b:
        cfg = tmp_path / "httpbin.yaml"
        cfg.write_text(registry_yaml({"v1": a.port, "v2": b.port}) + virtual_service(MIRROR))
        proc = await _spawn("run", "-f", str(tmp_path), "--listen", "127.0.0.1:0",
                            "--admin", "127.0.0.1:0", "--seed", "3")
        try:
            banner = await _read_until(proc.stderr, r"virtual host")  # type: ignore[arg-type]
            assert banner == f"mirrorsim {__version__}, {build_info()}: 1 virtual host(s), 3 cluster(s)\n"
            line = await _read_until(proc.stderr, r"listening on")  # type: ignore[arg-type]
            port = int(re.search(r"http://127\.0\.0\.1:(\d+)", line).group(1))  # type: ignore[union-attr]
            resp = await get(port, "/headers")
            assert resp.status == 200 and resp.body == b"ok"
            (shadow,) = await b.wait_for(1)
            assert shadow.header("host") == "httpbin-shadow:8000"
            # one access-log line for the request and one for its shadow copy
            log1 = await _read_until(proc.stdout, r'"GET /headers HTTP/1.1"')  # type: ignore[arg-type]
            log2 = await _read_until(proc.stdout, r'"GET /headers HTTP/1.1"')  # type: ignore[arg-type]
            authorities = sorted(re.findall(r'"(httpbin[^"]*)"', log1 + log2))
            assert authorities == ["httpbin-shadow:8000", "httpbin:8000"]
            assert all(re.match(r'^\[\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z\] "GET /headers '
                                r'HTTP/1\.1" 200 - 0 2 \d+ \d+ ', s) for s in (log1, log2))
        finally:
            proc.terminate()
            await proc.wait()
    assert proc.returncode == 0


async def test_run_refuses_bad_config_and_lists_every_problem(tmp_path: Path):
    bad = registry_yaml({"v1": 1}) + virtual_service("""
- match:
  - uri: {regex: "/(?=lookahead)"}
  route:
  - destination: {host: httpbin, subset: v1}
  mirrorPercentage: {value: 150}
  timout: 1s
""")
    cfg = tmp_path / "bad.yaml"
    cfg.write_text(bad)
    proc = await _spawn("run", "-f", str(cfg), "--listen", "127.0.0.1:0", "--admin",
                        "127.0.0.1:0")
    out, err = await asyncio.wait_for(proc.communicate(), 30)
    text = err.decode()
    assert proc.returncode == 1
    assert "listening" not in text
    lines = [ln for ln in text.splitlines() if ": error" in ln]
    assert len(lines) == 3, text
    for ln in lines:
        assert re.match(rf"^{re.escape(str(cfg))}:\d+: error", ln), ln
    assert any("spec.http[0].match[0].uri.regex" in ln for ln in lines)
    assert any("spec.http[0].mirrorPercentage" in ln for ln in lines)
    assert any("timout" in ln and "timeout" in ln for ln in lines)  # suggests the right name


async def test_demo_shows_shadow_copies():
    proc = await _spawn("demo", "--no-color")
    out, err = await asyncio.wait_for(proc.communicate(), 60)
    text = out.decode()
    assert proc.returncode == 0, text + err.decode()
    assert text.count("client got:  200 from httpbin-v1") == 3 + 2  # step 3 (--diff) sends two
    assert text.count("Host: httpbin-shadow:8000") == 3
    assert "internal.upstream_rq_200: 3" in text
    # step 3: the one field v2 answers differently, and nothing else
    assert "match 1, mismatch 1" in text
    assert '$.version: primary "1" | mirror "2"' in text
    assert '-  "version": "1"\n' in text and '+  "version": "2"\n' in text


async def test_demo_from_the_packaged_config(tmp_path: Path):
    """A wheel has no configs/ folder: the demo then runs on the copy the package carries
    (simulator/examples/, package data), which must be the mirroring example itself."""
    import simulator
    from simulator.demo import run_demo

    packaged = Path(simulator.__file__).parent / "examples"
    repo = Path(__file__).resolve().parents[1] / "configs" / "examples" / "mirroring"
    assert (packaged / "httpbin.yaml").read_text() == (repo / "httpbin.yaml").read_text()
    assert await run_demo(requests=1, color=False, config_dir=packaged) == 0


async def test_workers_share_the_port_and_aggregate_stats(tmp_path: Path):
    import aiohttp

    async with Recorder("v1") as a, Recorder("v2") as b:
        cfg = tmp_path / "httpbin.yaml"
        cfg.write_text(registry_yaml({"v1": a.port, "v2": b.port}) + virtual_service(MIRROR))
        proc = await _spawn("run", "-f", str(cfg), "--listen", "127.0.0.1:0", "--admin", "127.0.0.1:0",
                            "--workers", "2", "--access-log", "off")
        try:
            line = await _read_until(proc.stderr, r"with 2 workers")  # type: ignore[arg-type]
            port, admin = map(int, re.findall(r"http://127\.0\.0\.1:(\d+)", line))
            for _ in range(10):
                assert (await get(port, "/")).status == 200
            await b.wait_for(10)
            async with aiohttp.ClientSession() as s:
                async with s.get(f"http://127.0.0.1:{admin}/stats?filter=rq_total") as r:
                    stats = dict(ln.split(": ") for ln in (await r.text()).strip().splitlines())
        finally:
            proc.terminate()
            await proc.wait()
    assert stats["http.outbound_0.0.0.0_15001.downstream_rq_total"] == "10"
    assert stats["http.async-client.rq_total"] == "10"
    assert proc.returncode == 0
