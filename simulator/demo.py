"""``mirrorsim demo``: Istio's mirroring task end to end, on loopback, in one process.

Starts httpbin v1 and v2 (the built-in backend) on free ports, points the bundled
config's ServiceEntry endpoints at them, starts the proxy on the bundled config
(configs/examples/mirroring/), sends a few requests and shows side by side what
the client received (v1's answers) and what v2 received (the shadow copies).
"""

from __future__ import annotations

import dataclasses
import json
from pathlib import Path

import aiohttp

from simulator.backend import Backend
from simulator.config import load
from simulator.core.translate import TranslateOptions, translate
from simulator.demo_diff import diff_step
from simulator.model import istio as m
from simulator.proxy.launch import RunOptions, start_proxy

# configs/examples/mirroring/ in a clone; a wheel carries the same file as package data
# (simulator/examples/httpbin.yaml is a symlink to it, copied into the wheel)
_REPO_DEMO = Path(__file__).resolve().parent.parent / "configs" / "examples" / "mirroring"
DEMO_DIR = _REPO_DEMO if _REPO_DEMO.is_dir() else Path(__file__).resolve().parent / "examples"


def rebind_endpoints(cfg: m.Config, ports: dict[int, int]) -> m.Config:
    """Point ServiceEntry endpoints and WorkloadEntries declared on the bundled ports at the
    ports actually bound."""
    def rebind(e: m.WorkloadEntrySpec) -> m.WorkloadEntrySpec:
        return dataclasses.replace(e, ports={k: ports.get(v, v) for k, v in e.ports.items()})

    ses = [dataclasses.replace(se, endpoints=tuple(rebind(e) for e in se.endpoints)) for se in cfg.service_entries]
    wes = [dataclasses.replace(we, spec=rebind(we.spec)) for we in cfg.workload_entries]
    return dataclasses.replace(cfg, service_entries=tuple(ses), workload_entries=tuple(wes))


class _Style:
    def __init__(self, color: bool) -> None:
        self.color = color

    def __call__(self, s: str, code: str) -> str:
        return f"\033[{code}m{s}\033[0m" if self.color else s


async def run_demo(requests: int = 3, color: bool = True, config_dir: Path = DEMO_DIR) -> int:
    st = _Style(color)
    result = load([str(config_dir)])
    for d in result.diagnostics:
        print(d.format())
    if not result.ok:
        return 1
    print(st("mirrorsim demo", "1") + ": Istio's mirroring task on one machine")
    print(f"  config: {config_dir}")
    print("  VirtualService httpbin: 100% of traffic to subset v1, mirror to subset v2 "
          "(mirrorPercentage 100)\n")
    logs: list[str] = []
    v2_fields = {"version": "1"}  # step 3 changes v2's (demo_diff.py)
    async with Backend("httpbin-v1", log=logs.append, fields={"version": "1"}) as v1, \
            Backend("httpbin-v2", log=logs.append, fields=v2_fields) as v2:
        cfg = rebind_endpoints(result.config, {18081: v1.port, 18082: v2.port})
        table = translate(cfg, TranslateOptions(shadow_suffix=True))
        rp = await start_proxy(table, RunOptions(listen_port=0, admin_port=0, seed=1))
        try:
            print(f"  httpbin-v1 on {v1.url}, httpbin-v2 on {v2.url}, "
                  f"proxy on http://127.0.0.1:{rp.port} (admin :{rp.admin_port})\n")
            sent = 0
            async with aiohttp.ClientSession(auto_decompress=False) as session:
                for i in range(requests):
                    method, path, body = [("GET", "/headers", None), ("GET", f"/get?n={i}", None),
                                          ("POST", "/anything", b'{"hello": "mirror"}')][i % 3]
                    url = f"http://127.0.0.1:{rp.port}{path}"
                    data = f" -d '{body.decode()}'" if body else ""
                    print(st(f"$ curl -X {method} -H 'Host: httpbin:8000'{data} "
                             f"http://127.0.0.1:{rp.port}{path}", "36"))
                    async with session.request(method, url, headers={"Host": "httpbin:8000"},
                                               data=body) as resp:
                        payload = await resp.read()
                        backend = resp.headers.get("x-backend")
                    sent += backend == "httpbin-v1"
                    try:
                        echoed = json.loads(payload).get("headers", {}).get("Host")
                    except ValueError:
                        echoed = None
                    print(f"  client got:  {resp.status} from {backend}"
                          + (f" (which saw Host: {echoed})" if echoed else ""))
                    shadow = (await v2.wait_for_requests(i + 1, timeout=5))[i]
                    print(f"  v2 received: {shadow.method} {shadow.path}  " + st(
                        f"Host: {shadow.header('host')}", "33")
                        + f"  x-envoy-internal: {shadow.header('x-envoy-internal')}"
                        + f"  x-forwarded-for: {shadow.header('x-forwarded-for')}"
                        + (f"  body: {len(shadow.body)} bytes" if shadow.body else "")
                        + "  (response discarded)\n")
                await rp.drain_shadows()
            snap = rp.stats.snapshot()
            v1c = "cluster.outbound|8000|v1|httpbin.default.svc.cluster.local."
            v2c = "cluster.outbound|8000|v2|httpbin.default.svc.cluster.local."
            print(st("Envoy-style stats", "1") + f" (curl http://127.0.0.1:{rp.admin_port}/stats):")
            for key in (v1c + "external.upstream_rq_200", v2c + "internal.upstream_rq_200",
                        "http.async-client.rq_total"):
                print(f"  {key}: {snap.get(key, 0)}")
            print("\nBackend logs:")
            for line in logs:
                print("  " + line)
            ok = (len(v2.requests) == requests and sent == requests
                  and all(s.header("host") == "httpbin-shadow:8000" for s in v2.requests))
            print("\n" + (st("OK", "32") if ok else st("UNEXPECTED", "31"))
                  + ": the client only ever saw v1; v2 got a copy of every request with "
                  "Host httpbin-shadow:8000 and x-envoy-internal: true.")
            diffed = await diff_step(st, table, v2_fields)  # step 3: --diff (demo_diff.py)
            print("\n" + (st("OK", "32") if diffed else st("UNEXPECTED", "31"))
                  + ": the diff named the one field v2 answers differently.")
            return 0 if ok and diffed else 1
        finally:
            await rp.close()
