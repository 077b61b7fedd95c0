"""Every asyncio task is tracked (simulator/proxy/tasks.py), and a closed pool stays closed."""

from __future__ import annotations

import asyncio
import random
import re
from pathlib import Path

import simulator
from simulator.core.envoy_config import Cluster, Endpoint
from simulator.proxy.stats import Stats
from simulator.proxy.tasks import TaskSet
from simulator.proxy.upstream import ClusterPool
from tests.support.recorder import Recorder

SOURCE = Path(simulator.__file__).parent
ALLOWED = {SOURCE / "proxy" / "tasks.py"}  # the helper that tracks every task it starts
BARE = re.compile(r"\b(create_task|ensure_future)\s*\(")


def test_no_bare_create_task_in_the_simulator():
    offenders = []
    for path in sorted(SOURCE.rglob("*.py")):
        if path in ALLOWED:
            continue
        for n, line in enumerate(path.read_text().splitlines(), 1):
            code = line.split("#", 1)[0]
            if BARE.search(code):
                offenders.append(f"{path.relative_to(SOURCE.parent)}:{n}: {line.strip()}")
    assert not offenders, ("start tasks through simulator.proxy.tasks.TaskSet, which keeps and "
                           "cancels them:\n" + "\n".join(offenders))


def test_the_lint_sees_a_bare_create_task():
    assert BARE.search("        self.loop.create_task(self._open(endpoint))")
    assert BARE.search("asyncio.ensure_future(x)")
    assert not BARE.search("self.tasks.spawn(self._open(endpoint))")


async def test_a_connection_started_before_close_never_joins_the_closed_pool():
    async with Recorder("upstream") as rec:
        loop = asyncio.get_running_loop()
        ep = Endpoint("127.0.0.1", rec.port)
        cluster = Cluster(name="c", service="c", port=80, endpoints=(ep,))
        pool = ClusterPool(cluster, Stats().cluster("c"), random.Random(1), loop)
        # (what submit() does when no idle connection is left; Exchange is compiled in the
        # mypyc build, so a test cannot subclass it)
        pool._connect(ep)
        assert pool.connecting == 1 and len(pool.tasks) == 1  # the attempt is a tracked task
        pool.close()  # shutdown before the attempt ran
        await pool.tasks.wait_closed()
        assert pool.connections == set()
        assert rec.connections == 0
        # and a closed pool starts no new attempt
        pool._connect(ep)
        assert len(pool.tasks) == 0 and rec.connections == 0


async def test_taskset_cancels_and_refuses_after_close():
    ts = TaskSet(asyncio.get_running_loop())
    started = asyncio.Event()

    async def forever() -> None:
        started.set()
        await asyncio.Event().wait()

    task = ts.spawn(forever())
    assert task is not None
    await started.wait()
    await ts.wait_closed()
    assert task.cancelled() and len(ts) == 0

    async def never() -> None:
        raise AssertionError("a closed TaskSet must not start a task")

    assert ts.spawn(never()) is None
