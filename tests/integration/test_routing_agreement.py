"""`mirrorsim run`, `explain`, `check` and the pytest plugin route every request alike:
the same route configuration (port), virtual host, rule, upstream and upstream path, for
hosts with and without a port, short names, FQDNs, unknown hosts and IPs, paths that
normalization changes or rejects, and calling workloads with other labels.

`run` is the real proxy on loopback in front of one recording backend per cluster; the
others go through their public entry points (CLI `main`, `Mesh.route`)."""

from __future__ import annotations

import asyncio
import json
from pathlib import Path

import pytest

from simulator.cli import main
from simulator.config import load
from simulator.core.translate import TranslateOptions, translate
from simulator.routecheck.workspace import Mesh
from tests.support.client import get
from tests.support.recorder import Recorder

NAMES = ("httpbin-v1", "httpbin-v2", "web-80", "web-9090", "api")


def config(ports: dict[str, int]) -> str:
    return f"""
apiVersion: networking.istio.io/v1
kind: ServiceEntry
metadata: {{name: httpbin, namespace: default}}
spec:
  hosts: [httpbin.default.svc.cluster.local]
  location: MESH_INTERNAL
  resolution: STATIC
  ports: [{{number: 8000, name: http, protocol: HTTP}}]
  endpoints:
  - {{address: 127.0.0.1, ports: {{http: {ports['httpbin-v1']}}}, labels: {{version: v1}}}}
  - {{address: 127.0.0.1, ports: {{http: {ports['httpbin-v2']}}}, labels: {{version: v2}}}}
---
apiVersion: networking.istio.io/v1
kind: ServiceEntry
metadata: {{name: web, namespace: default}}
spec:
  hosts: [web.default.svc.cluster.local]
  location: MESH_INTERNAL
  resolution: STATIC
  ports:
  - {{number: 80, name: http, protocol: HTTP}}
  - {{number: 9090, name: http-alt, protocol: HTTP}}
  endpoints:
  - {{address: 127.0.0.1, ports: {{http: {ports['web-80']}, http-alt: {ports['web-9090']}}}}}
---
apiVersion: networking.istio.io/v1
kind: ServiceEntry
metadata: {{name: api, namespace: default}}
spec:
  hosts: [api.example.com]
  addresses: [240.0.0.7]
  location: MESH_EXTERNAL
  resolution: STATIC
  ports: [{{number: 8080, name: http, protocol: HTTP}}]
  endpoints: [{{address: 127.0.0.1, ports: {{http: {ports['api']}}}}}]
---
apiVersion: networking.istio.io/v1
kind: DestinationRule
metadata: {{name: httpbin, namespace: default}}
spec:
  host: httpbin
  subsets:
  - {{name: v1, labels: {{version: v1}}}}
  - {{name: v2, labels: {{version: v2}}}}
---
apiVersion: networking.istio.io/v1
kind: VirtualService
metadata: {{name: httpbin, namespace: default}}
spec:
  hosts: [httpbin]
  http:
  - match: [{{uri: {{prefix: /admin}}}}]
    route: [{{destination: {{host: httpbin, subset: v2}}}}]
  - match: [{{sourceLabels: {{app: productpage}}, uri: {{prefix: /pp}}}}]
    route: [{{destination: {{host: httpbin, subset: v2}}}}]
  - route: [{{destination: {{host: httpbin, subset: v1}}}}]
"""


CLUSTERS = {
    "outbound|8000|v1|httpbin.default.svc.cluster.local": "httpbin-v1",
    "outbound|8000|v2|httpbin.default.svc.cluster.local": "httpbin-v2",
    "outbound|80||web.default.svc.cluster.local": "web-80",
    "outbound|9090||web.default.svc.cluster.local": "web-9090",
    "outbound|8080||api.example.com": "api",
}

PRODUCTPAGE = {"labels": {"app": "productpage"}, "namespace": "default"}

# (Host, path, calling workload or None, expected: backend name and upstream path, or a status)
REQUESTS: list[tuple[str, str, dict | None, tuple[str, str] | int]] = [
    ("httpbin:8000", "/get", None, ("httpbin-v1", "/get")),
    ("httpbin", "/get", None, ("httpbin-v1", "/get")),  # no port: the service's only port
    ("httpbin.default", "/get", None, ("httpbin-v1", "/get")),
    ("httpbin.default.svc", "/get", None, ("httpbin-v1", "/get")),
    ("httpbin.default.svc.cluster.local", "/get", None, ("httpbin-v1", "/get")),
    ("httpbin.default.svc.cluster.local:8000", "/get", None, ("httpbin-v1", "/get")),
    ("HTTPBIN:8000", "/get", None, ("httpbin-v1", "/get")),
    ("httpbin:80", "/get", None, 502),  # a port httpbin does not serve
    ("httpbin:9999", "/get", None, 502),
    ("web", "/", None, ("web-80", "/")),  # no port and the service has 80: port 80
    ("web:80", "/", None, ("web-80", "/")),
    ("web:9090", "/", None, ("web-9090", "/")),
    ("web.default.svc.cluster.local:9090", "/", None, ("web-9090", "/")),
    ("api.example.com", "/v1", None, ("api", "/v1")),
    ("api.example.com:8080", "/v1", None, ("api", "/v1")),
    ("api", "/v1", None, 502),  # no short name for a host outside the cluster domain
    ("unknown", "/", None, 502),
    ("unknown:8000", "/", None, 502),
    ("10.1.2.3", "/", None, 502),
    ("240.0.0.7:8080", "/v1", None, ("api", "/v1")),  # a ServiceEntry address is one of its domains
    ("240.0.0.7", "/v1", None, ("api", "/v1")),
    ("240.0.0.7:80", "/v1", None, 502),
    ("127.0.0.1:8000", "/", None, 502),
    ("[::1]:8000", "/", None, 502),
    ("httpbin", "/public/../admin/x", None, ("httpbin-v2", "/admin/x")),
    ("httpbin:8000", "/x/%2e%2e/admin", None, ("httpbin-v2", "/admin")),
    ("httpbin:8000", "/%61dmin?a=/../b", None, ("httpbin-v2", "/admin?a=/../b")),
    ("httpbin:8000", "/a/./b", None, ("httpbin-v1", "/a/b")),
    ("httpbin:8000", "/..", None, ("httpbin-v1", "/")),
    ("httpbin:8000", "//admin", None, ("httpbin-v1", "//admin")),  # BASE does not merge slashes
    ("httpbin:8000", "/x/%00", None, 400),
    ("httpbin:8000", "/pp", None, ("httpbin-v1", "/pp")),  # an unlabelled caller: sourceLabels rule left out
    ("httpbin:8000", "/pp", PRODUCTPAGE, ("httpbin-v2", "/pp")),
    ("httpbin", "/pp", PRODUCTPAGE, ("httpbin-v2", "/pp")),
]


def _outcome_of_cluster(cluster: str | None, path: str | None, status: int | None) -> tuple[str, str] | int:
    if cluster is None:
        assert status is not None
        return status
    assert path is not None
    return (CLUSTERS[cluster], path)


async def test_run_explain_check_and_plugin_agree(tmp_path: Path, run_proxy, capsys) -> None:
    recs = {n: Recorder(n) for n in NAMES}
    for r in recs.values():
        await r.start()
    try:
        cfg = tmp_path / "mesh.yaml"
        cfg.write_text(config({n: r.port for n, r in recs.items()}), encoding="utf-8")
        loaded = load([str(cfg)])
        assert loaded.ok, [d.format() for d in loaded.diagnostics]
        proxies = {}
        for src in (None, PRODUCTPAGE):
            labels = tuple(sorted(src["labels"].items())) if src else ()
            proxies[json.dumps(src)] = await run_proxy(translate(loaded.config, TranslateOptions(source_labels=labels)))
        mesh = Mesh([cfg])

        # run: the real proxy
        got_run = []
        for host, path, src, _ in REQUESTS:
            before = {n: len(r.requests) for n, r in recs.items()}
            resp = await get(proxies[json.dumps(src)].port, path, host=host)
            hit = [n for n, r in recs.items() if len(r.requests) > before[n]]
            if hit:
                assert resp.status == 200 and len(hit) == 1, (host, path, hit)
                got_run.append((hit[0], recs[hit[0]].requests[-1].target))
            else:
                got_run.append(resp.status)

        # the plugin's Mesh.route
        got_plugin = []
        for host, path, src, _ in REQUESTS:
            d = mesh.route("GET", f"http://{host}{path}", source=src)
            got_plugin.append(_outcome_of_cluster(d.cluster, d.path, d.status))

        # explain (the CLI)
        got_explain = []
        for host, path, src, _ in REQUESTS:
            argv = ["explain", "-f", str(cfg), "--json", f"http://{host}{path}"]
            if src:
                argv += ["--source-labels", ",".join(f"{k}={v}" for k, v in src["labels"].items())]
            assert main(argv) == 0
            e = json.loads(capsys.readouterr().out)
            cluster = e["destination"]["cluster"] if e["result"] == "forward" else None
            got_explain.append(_outcome_of_cluster(cluster, e.get("path"), e.get("status")))

        # check (the CLI): a test per request expecting what run did
        tests = []
        for (host, path, src, _), outcome in zip(REQUESTS, got_run, strict=True):
            expect = {"status": outcome} if isinstance(outcome, int) else {
                "cluster": next(c for c, n in CLUSTERS.items() if n == outcome[0])}
            t = {"name": f"{host}{path}", "request": {"url": f"http://{host}{path}"}, "expect": expect}
            if src:
                t["source"] = src
            tests.append(t)
        tf = tmp_path / "agree.test.yaml"
        tf.write_text(json.dumps({"tests": tests}), encoding="utf-8")
        code = main(["check", "-f", str(cfg), str(tf), "--json"])
        report = json.loads(capsys.readouterr().out)
        assert code == 0, [t for t in report["tests"] if not t["passed"]]
        assert report["summary"]["passed"] == len(REQUESTS)
    finally:
        for r in recs.values():
            await r.stop()

    want = [w for *_, w in REQUESTS]
    rows = [(h, p, s and "productpage") for h, p, s, _ in REQUESTS]
    for name, got in (("run", got_run), ("plugin", got_plugin), ("explain", got_explain)):
        diff = [(row, g, w) for row, g, w in zip(rows, got, want, strict=True) if g != w]
        assert not diff, f"{name} differs from the expected routing: {diff}"


@pytest.mark.parametrize("value", ["app", "=v1", "app=x=y", "app=productpage,,x=1", "app=a b", "a=1,a=2"])
def test_bad_source_labels_are_usage_errors(value, capsys, tmp_path):
    cfg = tmp_path / "c.yaml"
    cfg.write_text(config(dict.fromkeys(NAMES, 1)), encoding="utf-8")
    for cmd in (["explain", "-f", str(cfg), "http://httpbin:8000/"], ["run", "-f", str(cfg)],
                ["check", "-f", str(cfg), str(cfg)], ["validate", "-f", str(cfg)]):
        with pytest.raises(SystemExit) as exc:
            main([*cmd, "--source-labels", value])
        assert exc.value.code == 2
        err = capsys.readouterr().err
        assert f"bad value {value!r}" in err and "KEY=VALUE[,KEY=VALUE...]" in err, err


def test_bad_path_normalization_is_a_usage_error(capsys, tmp_path):
    with pytest.raises(SystemExit):
        main(["explain", "-f", str(tmp_path), "--path-normalization", "all", "http://x/"])
    assert "expected one of NONE, BASE, MERGE_SLASHES, DECODE_AND_MERGE_SLASHES" in capsys.readouterr().err


def test_run_flags_become_translation_inputs():
    from simulator.cli import build_parser, translate_options

    args = build_parser().parse_args(["run", "-f", "x", "--namespace", "shop", "--source-labels",
                                      "app=productpage, version=v1", "--path-normalization", "merge-slashes"])
    opts = translate_options(args)
    assert opts.source_labels == (("app", "productpage"), ("version", "v1"))
    assert opts.client_namespace == "shop" and opts.path_normalization == "MERGE_SLASHES"
    args = build_parser().parse_args(["run", "-f", "x", "--source-namespace", "canary"])
    opts = translate_options(args)
    assert opts.source_labels == () and opts.client_namespace == "canary" and opts.path_normalization == "BASE"


async def test_run_path_normalization_modes_on_the_wire(run_proxy) -> None:
    from tests.conftest import registry_yaml, virtual_service

    yaml_text = registry_yaml({"v1": 0}).replace("http: 0", "http: {port}") + virtual_service(
        "- route: [{destination: {host: httpbin, subset: v1}}]")
    async with Recorder("v1") as rec:
        cfg = load_text_config(yaml_text.replace("{port}", str(rec.port)))
        seen = {}
        for mode in ("NONE", "BASE", "MERGE_SLASHES", "DECODE_AND_MERGE_SLASHES"):
            rp = await run_proxy(translate(cfg, TranslateOptions(path_normalization=mode)))
            for path in ("/a/../b", "//c/%2Fd", "/%7e"):
                resp = await get(rp.port, path)
                assert resp.status == 200
                seen[(mode, path)] = rec.requests[-1].target
            resp = await get(rp.port, "/x/%00")
            seen[(mode, "/x/%00")] = rec.requests[-1].target if resp.status == 200 else resp.status
    assert seen == {
        ("NONE", "/a/../b"): "/a/../b", ("NONE", "//c/%2Fd"): "//c/%2Fd", ("NONE", "/%7e"): "/%7e",
        ("NONE", "/x/%00"): "/x/%00",
        ("BASE", "/a/../b"): "/b", ("BASE", "//c/%2Fd"): "//c/%2Fd", ("BASE", "/%7e"): "/~", ("BASE", "/x/%00"): 400,
        ("MERGE_SLASHES", "/a/../b"): "/b", ("MERGE_SLASHES", "//c/%2Fd"): "/c/%2Fd", ("MERGE_SLASHES", "/%7e"): "/~",
        ("MERGE_SLASHES", "/x/%00"): 400,
        ("DECODE_AND_MERGE_SLASHES", "/a/../b"): "/b", ("DECODE_AND_MERGE_SLASHES", "//c/%2Fd"): "/c/d",
        ("DECODE_AND_MERGE_SLASHES", "/%7e"): "/~", ("DECODE_AND_MERGE_SLASHES", "/x/%00"): 400,
    }


def load_text_config(text: str):  # type: ignore[no-untyped-def]
    from simulator.config import load_text

    result = load_text(text, "mesh.yaml")
    assert result.ok, [d.format() for d in result.diagnostics]
    return result.config


async def test_connect_is_not_normalized_into_a_matching_path(run_proxy) -> None:
    from tests.conftest import registry_yaml, virtual_service

    yaml_text = registry_yaml({"v1": 0}).replace("http: 0", "http: {port}") + virtual_service(
        "- route: [{destination: {host: httpbin, subset: v1}}]")
    async with Recorder("v1") as rec:
        cfg = load_text_config(yaml_text.replace("{port}", str(rec.port)))
        rp = await run_proxy(translate(cfg, TranslateOptions()))
        reader, writer = await asyncio.open_connection("127.0.0.1", rp.port)
        writer.write(b"CONNECT httpbin:8000 HTTP/1.1\r\nHost: httpbin:8000\r\n\r\n")
        head = await asyncio.wait_for(reader.readuntil(b"\r\n\r\n"), 5)
        writer.close()
    assert head.startswith(b"HTTP/1.1 404 ") and rec.requests == []  # CONNECT has no :path: no route matches


async def test_mirrorsim_run_process_with_routing_flags(tmp_path: Path) -> None:
    """The `mirrorsim run` process: its flags reach the route table; port-less Host, normalized
    path and the workload's rules on the wire; the access log shows the normalized path."""
    import re

    from tests.test_cli import _read_until, _spawn

    recs = {n: Recorder(n) for n in NAMES}
    for r in recs.values():
        await r.start()
    try:
        cfg = tmp_path / "mesh.yaml"
        cfg.write_text(config({n: r.port for n, r in recs.items()}), encoding="utf-8")
        proc = await _spawn("run", "-f", str(cfg), "--listen", "127.0.0.1:0", "--admin", "127.0.0.1:0",
                            "--source-labels", "app=productpage", "--path-normalization", "MERGE_SLASHES")
        try:
            banner = await _read_until(proc.stderr, r"virtual host")  # type: ignore[arg-type]
            assert banner.rstrip().endswith("; routes of a workload with app=productpage in namespace default; "
                                            "path normalization MERGE_SLASHES"), banner
            line = await _read_until(proc.stderr, r"listening on")  # type: ignore[arg-type]
            port = int(re.search(r"http://127\.0\.0\.1:(\d+)", line).group(1))  # type: ignore[union-attr]
            for host, path, backend, seen in (("httpbin", "/pp", "httpbin-v2", "/pp"),
                                              ("httpbin", "//public/../admin", "httpbin-v2", "/admin"),
                                              ("web", "/a/./b", "web-80", "/a/b")):
                resp = await get(port, path, host=host)
                assert resp.status == 200 and recs[backend].requests[-1].target == seen, (host, path)
            assert (await get(port, "/x/%00", host="httpbin")).status == 400
            log = await _read_until(proc.stdout, r'"GET //?admin HTTP/1.1"')  # type: ignore[arg-type]
            assert '"GET /admin HTTP/1.1"' in log
        finally:
            proc.terminate()
            await proc.wait()
    finally:
        for r in recs.values():
            await r.stop()
