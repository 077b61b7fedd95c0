"""Run an example folder of configs/examples/ as its walkthrough does, on free ports.

``ex = await run_example("traffic-shifting/services.yaml", "traffic-shifting/step2-50-50.yaml", seed=7)``
loads the files (as ``mirrorsim run -f``), starts one built-in backend per loopback endpoint (as
``mirrorsim backend --for``: same :func:`simulator.backend.backends_for`, same names) on a free
port, points the endpoints at those ports (as ``mirrorsim demo`` does) and starts the proxy, plus
the ``gateways`` named (as ``mirrorsim run --gateway NAME=...``). Everything is closed after the test.
"""

from __future__ import annotations

import dataclasses
from collections.abc import AsyncIterator, Callable, Sequence
from pathlib import Path

import pytest

from simulator.backend import Backend, backends_for
from simulator.cli import build_gateways
from simulator.config import load, load_text
from simulator.core.table import RouteTable
from simulator.core.translate import TranslateOptions, translate
from simulator.demo import rebind_endpoints
from simulator.model import istio as m
from simulator.proxy.launch import RunningProxy, RunOptions, start_proxy
from tests.support.client import Response, get

EXAMPLES = Path(__file__).resolve().parents[2] / "configs" / "examples"


def load_example(*paths: str, replace: dict[str, str] | None = None) -> m.Config:
    """The config of ``paths`` (relative to configs/examples/), which must load without errors or
    warnings. ``replace`` edits the text first (old -> new, each must occur), for scaled copies."""
    if replace:
        text = "\n---\n".join((EXAMPLES / p).read_text() for p in paths)
        for old, new in replace.items():
            assert old in text, f"{old!r} not in {paths}"
            text = text.replace(old, new)
        result = load_text(text, "+".join(paths))
    else:
        result = load([str(EXAMPLES / p) for p in paths])
    problems = [d.format() for d in result.diagnostics if d.code != "IST0002"]  # IST0002: deprecated field
    assert result.ok and not problems, "\n".join(problems)
    return result.config


@dataclasses.dataclass
class Example:
    """A running example: the proxy, its route table and the backends by name (``reviews-v2``)."""

    proxy: RunningProxy
    table: RouteTable
    backends: dict[str, Backend]
    config: m.Config  # with the endpoints rebound to the backends' ports

    @property
    def port(self) -> int:
        return self.proxy.port

    def gateway_port(self, name: str) -> int:
        (port,) = [p for gw, p in self.proxy.gateway_ports.items() if gw.split(":")[0].endswith("/" + name)]
        return port

    def stats(self) -> dict[str, int]:
        return self.proxy.stats.snapshot()

    async def get(self, host: str, path: str = "/", headers: list[tuple[str, str]] | None = None,
                  method: str = "GET", port: int | None = None) -> Response:
        return await get(port or self.port, path, host=host, headers=headers, method=method)


async def start_example(cfg: m.Config, *, seed: int | None = 1, gateways: Sequence[str] = (),
                        started: list[Callable[[], object]]) -> Example:
    specs, notes = backends_for(cfg)
    assert specs and not notes, notes
    backends: dict[str, Backend] = {}
    ports: dict[int, int] = {}
    for spec in specs:
        assert spec.host in ("127.0.0.1", "::1")
        b = Backend(spec.name, spec.host, 0, log=None)
        await b.start()
        started.append(b.stop)
        assert spec.name not in backends and spec.port not in ports
        backends[spec.name] = b
        ports[spec.port] = b.port
    cfg = rebind_endpoints(cfg, ports)
    table = translate(cfg, TranslateOptions())
    listeners = build_gateways(cfg, [f"{g}=127.0.0.1:0" for g in gateways], "default", True, table)
    rp = await start_proxy(table, RunOptions(listen_port=0, admin_port=0, seed=seed, local_address="192.0.2.2"),
                           listeners)
    started.append(rp.close)
    return Example(rp, table, backends, cfg)


@pytest.fixture
async def run_example() -> AsyncIterator[Callable[..., object]]:
    """``ex = await run_example(*paths, seed=1, gateways=("httpbin-gateway",), replace={...})``."""
    started: list[Callable[[], object]] = []

    async def _run(*paths: str, seed: int | None = 1, gateways: Sequence[str] = (),
                   replace: dict[str, str] | None = None) -> Example:
        return await start_example(load_example(*paths, replace=replace), seed=seed, gateways=gateways,
                                   started=started)

    yield _run
    for close in reversed(started):
        await close()  # type: ignore[misc]
