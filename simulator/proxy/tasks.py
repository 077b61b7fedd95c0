"""The one place that starts asyncio tasks (tests/proxy/test_tasks.py checks that no other
module calls ``create_task``): every task belongs to a ``TaskSet`` that holds a strong
reference to it until it ends and cancels whatever is left when its owner closes.  A bare
``loop.create_task`` keeps no reference (the task can be collected mid-flight) and outlives
the object that started it (a connection opened after shutdown joined a closed pool)."""

from __future__ import annotations

import asyncio
from collections.abc import Coroutine
from typing import Any, TypeVar

T = TypeVar("T")


class TaskSet:
    """Tasks started on ``loop`` on behalf of one owner; ``close()`` cancels the live ones
    and refuses new ones (their coroutine is closed unstarted)."""

    __slots__ = ("loop", "tasks", "closed")

    def __init__(self, loop: asyncio.AbstractEventLoop) -> None:
        self.loop = loop
        self.tasks: set[asyncio.Task[Any]] = set()
        self.closed = False

    def spawn(self, coro: Coroutine[Any, Any, T]) -> asyncio.Task[T] | None:
        """Start ``coro`` as a task; None (and ``coro`` closed) once the set is closed."""
        if self.closed:
            coro.close()
            return None
        task = self.loop.create_task(coro)
        self.tasks.add(task)
        task.add_done_callback(self.tasks.discard)
        return task

    def close(self) -> None:
        self.closed = True
        for task in list(self.tasks):
            task.cancel()

    async def wait_closed(self) -> None:
        """Close, then wait until every task has ended (their exceptions are dropped)."""
        self.close()
        if self.tasks:
            await asyncio.gather(*self.tasks, return_exceptions=True)

    def __len__(self) -> int:
        return len(self.tasks)
