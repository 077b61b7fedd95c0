"""``mirrorsim run --diff`` end to end on loopback: the primary and the mirror answer, the
proxy pairs and compares their responses (proxy/diff.py, core/response_diff.py)."""

from __future__ import annotations

import asyncio
import json

import aiohttp

from simulator.core.response_diff import make_rules
from simulator.proxy.diff import DiffOptions
from tests.integration.test_mirroring import mirror_table
from tests.support.client import get
from tests.support.recorder import Recorder

D = "mirrorsim.diff.outbound|8000|v2|httpbin.default.svc.cluster.local."
JSON = [("content-type", "application/json")]


def counts(rp) -> dict[str, int]:
    snap = rp.stats.snapshot()
    return {k[len(D):]: v for k, v in snap.items() if k.startswith(D)}


async def diff_run(run_proxy, a, b, n=1, path="/get", **opts):
    opts.setdefault("rules", make_rules())
    rp = await run_proxy(mirror_table(a.port, b.port), diff=DiffOptions(**opts))
    responses = [await get(rp.port, path) for _ in range(n)]
    await rp.proxy.diff.settled(5)
    return rp, responses


async def admin_diffs(rp) -> dict:
    async with aiohttp.ClientSession() as s, s.get(f"http://127.0.0.1:{rp.admin_port}/diffs") as r:
        assert r.status == 200
        return await r.json()


async def test_equal_json_responses_match(run_proxy):
    async with Recorder("v1", body=b'{"a": 1, "b": [1, 2]}', headers=JSON) as a, \
            Recorder("v2", body=b'{"b":[1.0,2],"a":1}', headers=JSON) as b:
        rp, _ = await diff_run(run_proxy, a, b, n=3)
        assert counts(rp) == {"match": 3}
        assert (await admin_diffs(rp))["mismatches"] == []


async def test_different_status_is_recorded_everywhere(run_proxy, tmp_path):
    log = tmp_path / "diffs.jsonl"
    async with Recorder("v1") as a, Recorder("v2", status=500) as b:
        rp, (resp,) = await diff_run(run_proxy, a, b, log_path=str(log))
        assert resp.status == 200
        assert counts(rp) == {"mismatch": 1}
        (rec,) = (await admin_diffs(rp))["mismatches"]
        (req,) = a.requests
    assert rec["request"] == "GET /get HTTP/1.1" and rec["authority"] == "httpbin:8000"
    assert rec["x_request_id"] == req.header("x-request-id")
    assert (rec["primary_status"], rec["mirror_status"]) == (200, 500)
    assert rec["differences"] == [{"field": "status", "primary": "200", "mirror": "500"}]
    assert rec["cluster"] == "outbound|8000|v2|httpbin.default.svc.cluster.local"
    (line,) = log.read_text().splitlines()
    assert json.loads(line) == rec


async def test_different_header_and_an_ignored_one(run_proxy):
    async with Recorder("v1", headers=[("x-version", "1"), ("etag", "a")]) as a, \
            Recorder("v2", headers=[("x-version", "2"), ("etag", "b")]) as b:
        rp, _ = await diff_run(run_proxy, a, b, rules=make_rules(ignore_headers=["etag"]))
        (rec,) = rp.proxy.diff.mismatches()
    assert rec["differences"] == [{"field": "header x-version", "primary": "1", "mirror": "2"}]


async def test_json_field_difference_and_ignored_field(run_proxy):
    v1 = b'{"origin": "10.0.0.1", "json": {"version": "v1"}}'
    v2 = b'{"origin": "10.0.0.2", "json": {"version": "v2"}}'
    async with Recorder("v1", body=v1, headers=JSON) as a, Recorder("v2", body=v2, headers=JSON) as b:
        rp, _ = await diff_run(run_proxy, a, b, rules=make_rules(json_paths=["$.origin"]))
        (rec,) = rp.proxy.diff.mismatches()
        assert counts(rp) == {"mismatch": 1}
    assert rec["differences"] == [{"field": "$.json.version", "primary": '"v1"', "mirror": '"v2"'}]
    assert '-    "version": "v1"\n+    "version": "v2"' in rec["body_diff"]
    async with Recorder("v1", body=v1, headers=JSON) as a, \
            Recorder("v2", body=v1.replace(b"10.0.0.1", b"10.9.9.9"), headers=JSON) as b:
        rp, _ = await diff_run(run_proxy, a, b, rules=make_rules(json_paths=["$.origin"]))
        assert counts(rp) == {"match": 1}


async def test_binary_bodies(run_proxy):
    png = [("content-type", "image/png")]
    async with Recorder("v1", body=b"\x89PNG\x00\xff", headers=png) as a, \
            Recorder("v2", body=b"\x89PNG\x00\xfe", headers=png) as b:
        rp, (resp,) = await diff_run(run_proxy, a, b)
        assert resp.body == b"\x89PNG\x00\xff"
        (rec,) = rp.proxy.diff.mismatches()
    assert rec["differences"][0]["field"] == "body (binary, first difference at byte 5)"


async def test_over_cap_bodies_compared_by_digest(run_proxy):
    big = bytes(range(256)) * 40  # 10240 bytes, over a 1000-byte cap
    async with Recorder("v1", body=big) as a, Recorder("v2", body=big) as b:
        rp, (resp,) = await diff_run(run_proxy, a, b, rules=make_rules(body_cap=1000))
        assert resp.body == big and counts(rp) == {"match": 1}
    async with Recorder("v1", body=big) as a, Recorder("v2", body=big[:-1] + b"!") as b:
        rp, _ = await diff_run(run_proxy, a, b, rules=make_rules(body_cap=1000))
        (rec,) = rp.proxy.diff.mismatches()
    assert rec["differences"][0]["field"] == "body" and "10240 bytes, sha256" in rec["differences"][0]["mirror"]
    assert "SHA-256" in rec["notes"][0]
    assert rp.proxy.diff.pending_bytes == 0


async def test_mirror_that_fails(run_proxy):
    async with Recorder("v1") as a, Recorder("v2", refuse=True) as b:
        rp, (resp, _) = await diff_run(run_proxy, a, b, n=2)
        assert resp.status == 200
        assert counts(rp) == {"mismatch": 2}  # the first connect failure, then failed at once
        recs = rp.proxy.diff.mismatches()
    for rec in recs:
        assert rec["differences"] == [{"field": "status", "primary": "200",
                                       "mirror": "503 (no response: UF)"}]


async def test_dropped_copy_is_skipped(run_proxy):
    async with Recorder("v1") as a, Recorder("v2") as b:
        rp = await run_proxy(mirror_table(a.port, b.port), diff=DiffOptions(), max_shadow_inflight=0)
        assert (await get(rp.port, "/")).status == 200
        await rp.proxy.diff.settled(5)
        assert counts(rp) == {"skipped": 1, "skipped.copy_dropped": 1}


async def test_primary_that_fails_is_skipped(run_proxy):
    async with Recorder("v1", refuse=True) as a, Recorder("v2") as b:
        rp, (resp,) = await diff_run(run_proxy, a, b)
        assert resp.status == 503
        await b.wait_for(1)
        assert counts(rp) == {"skipped": 1, "skipped.primary_failed": 1}
        assert rp.proxy.diff.pending == 0


async def test_primary_never_waits_for_a_slow_mirror(run_proxy):
    """The mirror's response is held until the client has the primary's; only then does
    the comparison happen (and it is a match)."""
    release = asyncio.Event()
    async with Recorder("v1", body=b"same") as a, Recorder("v2", body=b"same", delay_event=release) as b:
        rp = await run_proxy(mirror_table(a.port, b.port), diff=DiffOptions())
        for _ in range(3):
            resp = await asyncio.wait_for(get(rp.port, "/slow"), 5)
            assert resp.status == 200 and resp.body == b"same"
        await b.wait_for(3)
        assert rp.proxy.diff.pending == 3 and counts(rp) == {}  # every copy still held
        release.set()
        await rp.proxy.diff.settled(5)
        assert counts(rp) == {"match": 3}


async def test_mirror_slower_than_the_wait_is_skipped(run_proxy):
    release = asyncio.Event()
    async with Recorder("v1") as a, Recorder("v2", delay_event=release) as b:
        rp, (resp,) = await diff_run(run_proxy, a, b, wait=0.05)
        assert resp.status == 200
        assert counts(rp) == {"skipped": 1, "skipped.timeout": 1}
        release.set()
        await rp.proxy.shadows.drain(5)
        assert counts(rp) == {"skipped": 1, "skipped.timeout": 1}  # not compared late


async def test_pending_limits(run_proxy):
    async with Recorder("v1") as a, Recorder("v2") as b:
        rp, _ = await diff_run(run_proxy, a, b, max_pending=0)
        assert counts(rp) == {"skipped": 1, "skipped.pending_limit": 1}
    async with Recorder("v1", body=b"x" * 5000) as a, Recorder("v2", body=b"x" * 5000) as b:
        rp, (resp,) = await diff_run(run_proxy, a, b, max_pending_bytes=6000)
        assert resp.body == b"x" * 5000
        assert counts(rp) == {"skipped": 1, "skipped.pending_limit": 1}
        assert rp.proxy.diff.pending_bytes == 0


async def test_diff_off_records_nothing(run_proxy):
    async with Recorder("v1") as a, Recorder("v2", status=500) as b:
        rp = await run_proxy(mirror_table(a.port, b.port))
        assert (await get(rp.port, "/")).status == 200
        await rp.proxy.shadows.drain(5)
        assert rp.proxy.diff is None and counts(rp) == {}
        assert (await admin_diffs(rp))["diff"].startswith("off")


async def test_bodies_in_many_pieces_under_the_cap(run_proxy):
    big = b"line of text\n" * 30000  # 390 kB: read in many pieces, kept whole under the 1 MiB cap
    async with Recorder("v1", body=big) as a, Recorder("v2", body=big) as b:
        rp, (resp,) = await diff_run(run_proxy, a, b)
        assert resp.body == big and counts(rp) == {"match": 1}
    async with Recorder("v1", body=big) as a, Recorder("v2", body=big + b"one more\n") as b:
        rp, _ = await diff_run(run_proxy, a, b)
        (rec,) = rp.proxy.diff.mismatches()
        assert rp.proxy.diff.pending_bytes == 0
    assert rec["differences"] == [{"field": "body", "primary": "390000 bytes of text",
                                   "mirror": "390009 bytes of text"}]
    assert rec["body_diff"].endswith(" line of text\n+one more\n")


async def test_mismatch_marked_on_the_live_page(run_proxy):
    from simulator.proxy.live.app import HUB_KEY

    async with Recorder("v1") as a, Recorder("v2", status=500) as b:
        rp = await run_proxy(mirror_table(a.port, b.port), diff=DiffOptions())
        hub = rp.admin.app[HUB_KEY]
        w = hub.add_watcher()  # a page is open
        try:
            assert (await get(rp.port, "/get")).status == 200
            await rp.proxy.diff.settled(5)
            (req,) = a.requests
            marks = [e for e in hub.pending if isinstance(e, dict) and e.get("kind") == "annotate"]
            assert marks == [{"kind": "annotate", "id": req.header("x-request-id"),
                              "cluster": "outbound|8000|v2|httpbin.default.svc.cluster.local",
                              "fields": {"diff": "mismatch"}}]
        finally:
            hub.remove_watcher(w)
