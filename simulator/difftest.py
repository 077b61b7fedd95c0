"""The proxy with ``--diff`` for a test suite (the pytest plugin's ``mirrorsim_diff`` fixture).

:class:`DiffProxy` runs mirrorsim on its own event loop in a thread, on a free loopback
port, in front of backends the test started (the config's ServiceEntry endpoint ports are
rebound to theirs, as ``mirrorsim demo`` does), so sync and async tests can both send it
requests with any client.  :meth:`DiffProxy.assert_no_mismatch` waits for the pending
comparisons and fails with every mismatch's readable diff (:func:`format_mismatch`)."""

from __future__ import annotations

import asyncio
import os
import threading
from collections.abc import Mapping, Sequence
from typing import Any

from simulator.core.response_diff import DiffRules, format_mismatch, make_rules

SETTLE_TIMEOUT = 10.0


class DiffProxyError(Exception):
    """The config could not be loaded, or the proxy could not start."""


class DiffProxy:
    """``mirrorsim run --diff`` on ``config`` (files or directories), in a thread."""

    def __init__(self, paths: Sequence[str | os.PathLike[str]], *, ports: Mapping[int, int] | None = None,
                 namespace: str = "default", shadow_suffix: bool = True, rules: DiffRules | None = None,
                 **rule_args: Any) -> None:
        self.paths = [os.fspath(p) for p in paths]
        self.ports = dict(ports or {})
        self.namespace = namespace
        self.shadow_suffix = shadow_suffix
        self.rules = rules if rules is not None else make_rules(**rule_args)
        self.port = 0
        self.admin_port = 0
        self._loop: asyncio.AbstractEventLoop | None = None
        self._thread: threading.Thread | None = None
        self._running: Any = None

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def start(self) -> DiffProxy:
        from simulator.config import load
        from simulator.core.translate import TranslateOptions, translate
        from simulator.demo import rebind_endpoints

        result = load(self.paths, self.namespace)
        if not result.ok:
            raise DiffProxyError("\n".join(d.format() for d in result.diagnostics.errors))
        cfg = rebind_endpoints(result.config, self.ports) if self.ports else result.config
        table = translate(cfg, TranslateOptions(namespace=self.namespace, shadow_suffix=self.shadow_suffix))
        loop = self._loop = asyncio.new_event_loop()
        self._thread = threading.Thread(target=loop.run_forever, name="mirrorsim-diff", daemon=True)
        self._thread.start()
        self._running = self._call(self._start(table), 30)
        self.port = self._running.port
        self.admin_port = self._running.admin_port or 0
        return self

    async def _start(self, table: Any) -> Any:
        from simulator.proxy.diff import DiffOptions
        from simulator.proxy.launch import RunOptions, start_proxy

        return await start_proxy(table, RunOptions(listen_port=0, admin_port=0, seed=1,
                                                   local_address="127.0.0.1",
                                                   diff=DiffOptions(rules=self.rules)))

    def _call(self, coro: Any, timeout: float) -> Any:
        assert self._loop is not None
        return asyncio.run_coroutine_threadsafe(coro, self._loop).result(timeout)

    def settle(self, timeout: float = SETTLE_TIMEOUT) -> None:
        """Wait until every copy sent so far was answered and compared (or skipped)."""
        rp = self._running

        async def wait() -> None:
            await rp.drain_shadows(timeout)
            await rp.proxy.diff.settled(timeout)

        self._call(wait(), timeout * 2 + 1)

    def mismatches(self) -> list[dict[str, Any]]:
        self.settle()
        return list(self._call(self._get(lambda: self._running.proxy.diff.mismatches()), 10))

    def counts(self) -> dict[str, int]:
        """``mirrorsim.diff.*`` counters, without the prefix."""
        self.settle()
        snap = self._call(self._get(lambda: self._running.stats.snapshot()), 10)
        return {k[len("mirrorsim.diff."):]: v for k, v in snap.items() if k.startswith("mirrorsim.diff.")}

    @staticmethod
    async def _get(fn: Any) -> Any:
        return fn()

    def report(self) -> str:
        """Every mismatch recorded, readably; "" when none."""
        recs = self.mismatches()
        if not recs:
            return ""
        return f"{len(recs)} mirror response(s) differ from the primary's:\n\n" + "\n\n".join(
            format_mismatch(r) for r in recs)

    def stop(self) -> None:
        loop = self._loop
        if loop is None:
            return
        try:
            if self._running is not None:
                self._call(self._running.close(), 30)
        finally:
            self._loop = None
            loop.call_soon_threadsafe(loop.stop)
            if self._thread is not None:
                self._thread.join(10)
            loop.close()

    def __enter__(self) -> DiffProxy:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()
