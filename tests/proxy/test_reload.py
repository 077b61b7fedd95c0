"""Config reload (simulator/proxy/reload.py): a change of the files is picked up, a config
with errors is rejected and the last good one keeps serving, and a request in flight finishes
on the table (and the endpoint) it started with."""

from __future__ import annotations

import asyncio
import json
import os
import signal
from pathlib import Path

import aiohttp

from simulator.core.translate import TranslateOptions
from simulator.proxy.launch import RunOptions, start_proxy
from simulator.proxy.reload import ConfigSource, serve_reloads
from tests.conftest import registry_yaml, table_from_yaml, virtual_service
from tests.support.client import Client, get, request
from tests.support.recorder import Recorder
from tests.support.subproxy import SubprocessProxy

ALL_TO = """
- route:
  - destination: {{host: httpbin, subset: {subset}}}
"""


def config(ports: dict[str, int], subset: str) -> str:
    return registry_yaml(ports) + virtual_service(ALL_TO.format(subset=subset))


def write(path: Path, text: str) -> None:
    """Replace the file at once (rename), as editors and `kubectl`-style tools do."""
    tmp = path.with_suffix(".tmp")
    tmp.write_text(text)
    os.replace(tmp, path)


async def server_info(admin_port: int) -> dict:  # type: ignore[type-arg]
    async with aiohttp.ClientSession() as s, s.get(f"http://127.0.0.1:{admin_port}/server_info") as r:
        return await r.json()  # type: ignore[no-any-return]


async def wait_version(admin_port: int, version: int, timeout: float = 10.0) -> dict:  # type: ignore[type-arg]
    """Poll /server_info until the config version is ``version`` (bounded)."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout
    while True:
        info = await server_info(admin_port)
        if info["config"]["version"] == version:
            return info
        assert loop.time() < deadline, f"config version still {info['config']}"
        await asyncio.sleep(0.02)


async def start(run_proxy, path: Path):  # type: ignore[no-untyped-def]
    source = ConfigSource([str(path)], "default", TranslateOptions(), lambda c, t: [])
    rp = await run_proxy(table_from_yaml(path.read_text()), config_source=source)
    reloader = serve_reloads(rp, source, asyncio.get_running_loop(), watch=True, interval=0.02)
    return rp, reloader


async def test_a_changed_file_is_served_and_a_bad_one_rejected(run_proxy, tmp_path, capsys):
    async with Recorder("v1") as a, Recorder("v2") as b:
        ports = {"v1": a.port, "v2": b.port}
        path = tmp_path / "vs.yaml"
        path.write_text(config(ports, "v1"))
        rp, reloader = await start(run_proxy, path)
        try:
            assert (await get(rp.port, "/x")).status == 200 and len(a.requests) == 1
            write(path, config(ports, "v2"))
            info = await wait_version(rp.admin_port, 2)
            assert (await get(rp.port, "/x")).status == 200 and len(b.requests) == 1
            # a config with an error: rejected with its FILE:LINE, v2 keeps serving
            write(path, config(ports, "v1").replace("subset: v1", "subset: 12 v1!"))
            loop = asyncio.get_running_loop()
            deadline = loop.time() + 10
            while rp.stats.snapshot().get("mirrorsim.config_reload_rejected", 0) == 0:
                assert loop.time() < deadline, "the bad config was never read"
                await asyncio.sleep(0.02)
            assert (await get(rp.port, "/x")).status == 200 and len(b.requests) == 2 and len(a.requests) == 1
            after = await server_info(rp.admin_port)
            assert after["config"]["version"] == 2 and after["config"]["loaded_at"] == info["config"]["loaded_at"]
            assert any(str(path) in line for line in after["config"]["last_error"])
            snap = rp.stats.snapshot()
            assert snap["mirrorsim.config_reload_ok"] == 1 and snap["mirrorsim.config_reload_rejected"] == 1
        finally:
            await reloader.close()
    err = capsys.readouterr().err
    assert f"{path}:" in err and "rejected" in err and "still serving config version 2" in err


async def test_a_request_in_flight_finishes_on_its_table(run_proxy, tmp_path):
    release = asyncio.Event()
    async with Recorder("old", delay_event=release) as old, Recorder("new") as new:
        path = tmp_path / "vs.yaml"
        path.write_text(config({"v1": old.port}, "v1"))
        rp, reloader = await start(run_proxy, path)
        try:
            async with Client(rp.port) as c:
                slow = asyncio.create_task(c.send(request("GET", "/slow")))
                await old.wait_for(1)
                # v1's endpoint moves: a new cluster definition, a new pool; the old one is retired
                write(path, config({"v1": new.port}, "v1"))
                await wait_version(rp.admin_port, 2)
                assert (await get(rp.port, "/fast")).status == 200 and len(new.requests) == 1
                release.set()
                (resp,) = await slow
            assert resp.status == 200 and resp.body == b"ok"
            assert [r.target for r in old.requests] == ["/slow"] and [r.target for r in new.requests] == ["/fast"]
        finally:
            await reloader.close()


async def test_sighup_reloads_and_the_admin_shows_the_envoy_config(tmp_path):
    async with Recorder("v1") as a, Recorder("v2") as b:
        ports = {"v1": a.port, "v2": b.port}
        async with SubprocessProxy(tmp_path, config(ports, "v1")) as sp:
            assert (await get(sp.port, "/")).status == 200 and len(a.requests) == 1
            (tmp_path / "config.yaml").write_text(config(ports, "v2"))
            assert sp.proc is not None
            sp.proc.send_signal(signal.SIGHUP)
            await wait_version(sp.admin_port, 2)
            assert (await get(sp.port, "/")).status == 200 and len(b.requests) == 1
            async with aiohttp.ClientSession() as s:
                async with s.get(f"http://127.0.0.1:{sp.admin_port}/config_dump") as r:
                    dump = json.loads(await r.text())
            types = [c["@type"].rpartition(".")[2] for c in dump["configs"]]
            assert types[:3] == ["BootstrapConfigDump", "ClustersConfigDump", "ListenersConfigDump"]
            assert dump["configs"][1]["version_info"] == "2"
            (rc,) = dump["configs"][4]["static_route_configs"]
            (vh,) = [v for v in rc["route_config"]["virtual_hosts"] if "httpbin:8000" in v["domains"]]
            assert vh["routes"][0]["route"]["cluster"] == "outbound|8000|v2|httpbin.default.svc.cluster.local"
        assert "config version 2 loaded (SIGHUP)" in sp.stderr()


GATEWAY = """
---
apiVersion: networking.istio.io/v1
kind: Gateway
metadata: {{name: web-gateway, namespace: default}}
spec:
  selector: {{istio: ingressgateway}}
  servers:
  - port: {{number: 80, name: http, protocol: HTTP}}
    hosts: ["*"]
---
apiVersion: networking.istio.io/v1
kind: VirtualService
metadata: {{name: web, namespace: default}}
spec:
  hosts: ["*"]
  gateways: [web-gateway]
  http:
  - route:
    - destination: {{host: httpbin, subset: {subset}}}
"""


async def test_a_gateway_listener_serves_the_new_config(tmp_path):
    from simulator.cli import build_gateways

    async with Recorder("v1") as a, Recorder("v2") as b:
        ports = {"v1": a.port, "v2": b.port}
        path = tmp_path / "gw.yaml"
        path.write_text(registry_yaml(ports) + GATEWAY.format(subset="v1"))
        options = TranslateOptions()

        def gateways(config, table):  # type: ignore[no-untyped-def]
            return build_gateways(config, ["web-gateway:80=127.0.0.1:0"], "default", True, table, options)

        source = ConfigSource([str(path)], "default", options, gateways)
        config, table = _config_and_table(path, options)
        rp = await start_proxy(table, RunOptions(listen_port=0, admin_port=0, config_source=source,
                                                 local_address="192.0.2.2"), gateways(config, table))
        reloader = serve_reloads(rp, source, asyncio.get_running_loop(), watch=True, interval=0.02)
        try:
            gw_port = rp.gateway_ports["default/web-gateway:80"]
            assert (await get(gw_port, "/p", host="shop.example")).status == 200 and len(a.requests) == 1
            write(path, registry_yaml(ports) + GATEWAY.format(subset="v2"))
            await wait_version(rp.admin_port, 2)
            assert (await get(gw_port, "/p", host="shop.example")).status == 200
            assert len(b.requests) == 1 and len(a.requests) == 1
            # a --gateway that no longer names a server is a rejected config
            write(path, registry_yaml(ports))
            loop = asyncio.get_running_loop()
            deadline = loop.time() + 10
            while "last_error" not in (await server_info(rp.admin_port))["config"]:
                assert loop.time() < deadline, "the config without the Gateway was never read"
                await asyncio.sleep(0.02)
            assert (await get(gw_port, "/p", host="shop.example")).status == 200 and len(b.requests) == 2
        finally:
            await reloader.close()
            await rp.close()


def _config_and_table(path: Path, options: TranslateOptions):  # type: ignore[no-untyped-def]
    from simulator.config import load
    from simulator.core.translate import translate

    result = load([str(path)])
    return result.config, translate(result.config, options)
