"""``mirrorsim demo``'s step 3: did v2 answer the same as v1?  (``mirrorsim run --diff``)

The proxy runs again with ``--diff`` in front of the demo's v1 and v2; one request while
v2 answers like v1 (a match), then v2 changes one field of its answers and the next
request's comparison shows exactly that field (docs/diff.md)."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import aiohttp

from simulator.core.response_diff import format_mismatch, make_rules
from simulator.core.table import RouteTable
from simulator.proxy.diff import DiffOptions
from simulator.proxy.launch import RunOptions, start_proxy

# What differs between any primary and its shadow copy with the built-in backend, whatever
# the version: which backend answered, and the request as each one saw it (Host -shadow,
# x-envoy-internal, x-forwarded-for).
IGNORE_HEADERS = ("x-backend",)
IGNORE_JSON_PATHS = ("$.backend", "$.url", "$.headers.Host", "$.headers.X-Envoy-Internal",
                     "$.headers.X-Forwarded-For")
V2_CLUSTER = "outbound|8000|v2|httpbin.default.svc.cluster.local"


async def diff_step(style: Callable[[str, str], str], table: RouteTable, v2_fields: dict[str, Any]) -> bool:
    """Run step 3; ``v2_fields`` are the fields v2 adds to its JSON answers (changed here)."""
    st = style
    flags = " ".join([*(f"--diff-ignore-header {h}" for h in IGNORE_HEADERS),
                      *(f"--diff-ignore-json-path '{p}'" for p in IGNORE_JSON_PATHS)])
    print("\n" + st("Step 3", "1") + ": did v2 answer the same as v1?  The proxy compares each shadow "
          "copy's response with the primary's:")
    print(st(f"$ mirrorsim run -f <config> --diff {flags}", "36"))
    rules = make_rules(ignore_headers=IGNORE_HEADERS, json_paths=IGNORE_JSON_PATHS)
    rp = await start_proxy(table, RunOptions(listen_port=0, admin_port=0, seed=1, diff=DiffOptions(rules=rules)))
    diff = rp.proxy.diff
    assert diff is not None
    try:
        url = f"http://127.0.0.1:{rp.port}/get"
        async with aiohttp.ClientSession(auto_decompress=False) as session:
            v1_version = v2_fields.get("version", "1")
            for step in range(2):
                if step == 0:
                    label = "v2 answers like v1"
                else:
                    v2_fields["version"] = "2"
                    label = f'v2 now answers "version": "2" where v1 says "{v1_version}"'
                print(f"  ({label})")
                print(st(f"$ curl -H 'Host: httpbin:8000' {url}", "36"))
                async with session.get(url, headers={"Host": "httpbin:8000"}) as resp:
                    await resp.read()
                    print(f"  client got:  {resp.status} from {resp.headers.get('x-backend')}")
                await rp.drain_shadows()
                await diff.settled(5)
        snap = rp.stats.snapshot()
        counts = {k.rsplit(".", 1)[1]: v for k, v in snap.items() if k.startswith(f"mirrorsim.diff.{V2_CLUSTER}.")}
        print(st("\nDiff counters", "1") + f" (curl http://127.0.0.1:{rp.admin_port}/stats?filter=diff): "
              + ", ".join(f"{k} {v}" for k, v in sorted(counts.items())))
        recs = diff.mismatches()
        print(st("The mismatch", "1") + f" (curl http://127.0.0.1:{rp.admin_port}/diffs):")
        for rec in recs:
            for line in format_mismatch(rec).split("\n"):
                print("  " + (st(line, "31") if line.lstrip().startswith("-") and not line.lstrip().startswith("---")
                              else st(line, "32") if line.lstrip().startswith("+")
                              and not line.lstrip().startswith("+++") else line))
        return (counts == {"match": 1, "mismatch": 1} and len(recs) == 1
                and [d["field"] for d in recs[0]["differences"]] == ["$.version"])
    finally:
        await rp.close()
