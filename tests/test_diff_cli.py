"""``mirrorsim run --diff`` options: flags and ``--diff-rules FILE`` (problems at FILE:LINE)."""

from __future__ import annotations

from pathlib import Path

from simulator.cli import build_parser, main
from simulator.diffargs import diff_options

CONFIG = str(Path(__file__).resolve().parents[1] / "configs" / "examples" / "mirroring")


def options(*argv: str):
    return diff_options(build_parser().parse_args(["run", "-f", CONFIG, *argv]))


def test_off_by_default():
    assert options() == (None, [])


def test_flags_and_file_add_up(tmp_path):
    rules = tmp_path / "rules.yaml"
    rules.write_text("ignoreHeaders: [x-backend]\nignoreJsonPaths: ['$.origin']\n"
                     "ignoreRegexes: ['\\d+ms']\nbodyCap: 4096\n")
    opts, problems = options("--diff", "--diff-rules", str(rules), "--diff-ignore-header", "ETag",
                             "--diff-ignore-json-path", "$.headers.X-Amzn-Trace-Id", "--diff-wait", "2",
                             "--diff-log", str(tmp_path / "d.jsonl"))
    assert problems == []
    r = opts.rules
    assert {"x-backend", "etag", "date"} <= r.ignore_headers
    assert [p.text for p in r.json_paths] == ["$.origin", "$.headers.X-Amzn-Trace-Id"]
    assert r.regexes == ("\\d+ms",) and r.body_cap == 4096
    assert opts.wait == 2.0 and opts.log_path.endswith("d.jsonl")
    opts, _ = options("--diff", "--diff-rules", str(rules), "--diff-body-cap", "10")
    assert opts.rules.body_cap == 10


def test_rules_file_problems_name_file_and_line(tmp_path):
    rules = tmp_path / "rules.yaml"
    rules.write_text("ignoreHeaders: [x-backend]\n"
                     "ignoreJsonPaths:\n"
                     "  - '$.ok'\n"
                     "  - 'headers.Date'\n"
                     "ignoreRegexes: ['(x']\n"
                     "bodycap: 10\n")
    opts, problems = options("--diff", "--diff-rules", str(rules))
    assert opts is None
    text = [d.format(default_code=False) for d in problems]
    assert any(t.startswith(f"{rules}:6:") and 'unknown field "bodycap"' in t and '"bodyCap"' in t for t in text)
    assert any(t.startswith(f"{rules}:5:") and "invalid regex" in t for t in text)
    rules.write_text("ignoreJsonPaths:\n  - '$.ok'\n  - 'headers.Date'\n")
    _, problems = options("--diff", "--diff-rules", str(rules))
    assert [(d.line, d.message) for d in problems] == [(3, 'JSON path "headers.Date" must start with "$"')]


def test_yaml_syntax_error_and_missing_file(tmp_path):
    rules = tmp_path / "rules.yaml"
    rules.write_text("ignoreHeaders: [x\nfoo: 1\n")
    _, problems = options("--diff", "--diff-rules", str(rules))
    assert problems and problems[0].file == str(rules) and problems[0].line > 0
    _, problems = options("--diff", "--diff-rules", str(tmp_path / "none.yaml"))
    assert problems and "none.yaml" in problems[0].message


def test_diff_flags_need_diff():
    opts, problems = options("--diff-ignore-header", "x")
    assert opts is None and "need --diff" in problems[0].message


def test_run_refuses_bad_rules(tmp_path, capsys):
    rules = tmp_path / "rules.yaml"
    rules.write_text("ignoreRegexes: ['(x']\n")
    assert main(["run", "-f", CONFIG, "--diff", "--diff-rules", str(rules), "--admin", "127.0.0.1:0",
                 "--listen", "127.0.0.1:0"]) == 1
    assert f"{rules}:1: error" in capsys.readouterr().err


async def test_run_with_diff_end_to_end(tmp_path):
    """``mirrorsim run --diff --diff-log``: counters in /stats, records in /diffs and the log."""
    import asyncio
    import json
    import re
    import sys

    import aiohttp

    from tests.conftest import registry_yaml, virtual_service
    from tests.integration.test_mirroring import MIRROR_V2
    from tests.support.client import get
    from tests.support.recorder import Recorder

    log = tmp_path / "diffs.jsonl"
    async with Recorder("v1") as a, Recorder("v2", status=500) as b:
        cfg = tmp_path / "httpbin.yaml"
        cfg.write_text(registry_yaml({"v1": a.port, "v2": b.port}) + virtual_service(MIRROR_V2))
        proc = await asyncio.create_subprocess_exec(
            sys.executable, "-m", "simulator", "run", "-f", str(cfg), "--listen", "127.0.0.1:0",
            "--admin", "127.0.0.1:0", "--access-log", "off", "--diff", "--diff-log", str(log),
            stdout=asyncio.subprocess.DEVNULL, stderr=asyncio.subprocess.PIPE)
        try:
            line = ""
            while "listening on" not in line:
                line = (await asyncio.wait_for(proc.stderr.readline(), 20)).decode()  # type: ignore[union-attr]
                assert line, "mirrorsim exited"
            port, admin = map(int, re.findall(r"http://127\.0\.0\.1:(\d+)", line))
            for _ in range(2):
                assert (await get(port, "/get")).status == 200
            async with aiohttp.ClientSession() as s:
                loop = asyncio.get_running_loop()
                deadline = loop.time() + 10
                while True:  # the comparisons follow the mirror's answers
                    async with s.get(f"http://127.0.0.1:{admin}/diffs") as r:
                        diffs = await r.json()
                    if len(diffs["mismatches"]) == 2 or loop.time() > deadline:
                        break
                async with s.get(f"http://127.0.0.1:{admin}/stats?filter=mirrorsim.diff") as r:
                    stats = await r.text()
        finally:
            proc.terminate()
            await proc.wait()
    assert [m["differences"] for m in diffs["mismatches"]] == [
        [{"field": "status", "primary": "200", "mirror": "500"}]] * 2
    assert "mirrorsim.diff.outbound|8000|v2|httpbin.default.svc.cluster.local.mismatch: 2" in stats
    assert [json.loads(ln) for ln in log.read_text().splitlines()] == diffs["mismatches"]
