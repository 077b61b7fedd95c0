"""``mirrorsim run --workers 2 --watch``: a change of the files reaches every worker, a config
with errors is rejected once (by the parent) and every worker keeps serving the last good one;
the parent's admin shows each worker's config version and serves /stats/prometheus."""

from __future__ import annotations

import asyncio
import json
import os
from pathlib import Path

import pytest
from prometheus_client.parser import text_string_to_metric_families

from tests.conftest import registry_yaml, virtual_service
from tests.support.client import get
from tests.test_lifecycle import Backends, Run, start, stop
from tests.test_lifecycle import backends as backends  # noqa: F401 - the fixture

pytestmark = pytest.mark.slow

TO_V2 = """
- route:
  - destination: {host: httpbin, subset: v2}
"""


def replace_file(path: Path, text: str) -> None:
    tmp = path.with_suffix(".tmp")
    tmp.write_text(text)
    os.replace(tmp, path)


async def wait_for(run: Run, cond, what: str, timeout: float = 20.0) -> dict:  # type: ignore[no-untyped-def,type-arg]
    """Poll the parent's /server_info until ``cond(info)`` (bounded)."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout
    while True:
        status, text = await run.admin_get("/server_info")
        info = json.loads(text) if status == 200 else {}
        if info and cond(info):
            return info  # type: ignore[no-any-return]
        assert loop.time() < deadline, f"timed out waiting for {what}: {text}"
        await asyncio.sleep(0.05)


async def test_every_worker_reloads(tmp_path: Path, backends: Backends) -> None:  # noqa: F811
    run = await start(tmp_path, backends, "--watch", workers=2)
    try:
        await wait_for(run, lambda i: i["state"] == "LIVE", "both workers")
        info = await wait_for(run, lambda i: i["config"]["workers"] == {"0": 1, "1": 1}, "version 1")
        assert info["config"]["version"] == 1
        cfg = tmp_path / "httpbin.yaml"
        good = registry_yaml({"v1": backends.primary.port, "v2": backends.mirror.port}) + virtual_service(TO_V2)
        replace_file(cfg, good)
        await wait_for(run, lambda i: i["config"]["workers"] == {"0": 2, "1": 2}, "every worker on version 2")
        before = len(backends.primary.requests)
        for _ in range(6):  # new connections: the kernel spreads them over both workers
            assert (await get(run.port, "/")).status == 200
        assert len(backends.primary.requests) == before and len(backends.mirror.requests) >= 6
        replace_file(cfg, good.replace("subset: v2}", "subset: 12 v2!}"))
        info = await wait_for(run, lambda i: "last_error" in i["config"], "the rejection")
        assert info["config"]["version"] == 2 and info["config"]["workers"] == {"0": 2, "1": 2}
        assert (await get(run.port, "/")).status == 200
        _, text = await run.admin_get("/stats/prometheus")
        samples = {s.name: s.value for fam in text_string_to_metric_families(text) for s in fam.samples
                   if not s.labels}
        assert samples["envoy_mirrorsim_config_reload_ok_total"] == 1
        assert samples["envoy_mirrorsim_config_reload_rejected_total"] == 1
    finally:
        await stop(run)
