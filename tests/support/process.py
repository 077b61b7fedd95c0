"""Stopping a child process the tests started: SIGTERM, then SIGKILL after 10 s."""

from __future__ import annotations

import asyncio


async def terminate(proc: asyncio.subprocess.Process | None) -> None:
    if proc is not None and proc.returncode is None:
        proc.terminate()
        try:
            await asyncio.wait_for(proc.wait(), 10)
        except TimeoutError:
            proc.kill()
            await proc.wait()
