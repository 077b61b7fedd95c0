"""Benchmark ``mirrorsim check``: 1,000 VirtualServices, 10,000 route tests.

    python benchmarks/routecheck_bench.py [--services 1000] [--tests 10000]

Generates, in a temporary directory, one ServiceEntry, DestinationRule and
VirtualService per service (a header match with a mirror, a prefix match with
a rewrite, a weighted catch-all) and route tests spread over every rule, then
times ``mirrorsim check`` in-process (load + validate + compile + run) and
prints the phases.  Not a test: numbers depend on the machine.
"""

from __future__ import annotations

import argparse
import contextlib
import io
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from simulator.cli import main  # noqa: E402


def config(n: int) -> str:
    docs = []
    for i in range(n):
        s = f"svc{i}"
        docs.append(f"""\
apiVersion: networking.istio.io/v1
kind: ServiceEntry
metadata: {{name: {s}, namespace: default}}
spec:
  hosts: [{s}.default.svc.cluster.local]
  location: MESH_INTERNAL
  resolution: STATIC
  ports: [{{number: 8080, name: http, protocol: HTTP}}]
  endpoints:
  - {{address: 10.0.{i // 250}.{i % 250 + 1}, labels: {{version: v1}}}}
  - {{address: 10.1.{i // 250}.{i % 250 + 1}, labels: {{version: v2}}}}
---
apiVersion: networking.istio.io/v1
kind: DestinationRule
metadata: {{name: {s}, namespace: default}}
spec:
  host: {s}
  subsets:
  - {{name: v1, labels: {{version: v1}}}}
  - {{name: v2, labels: {{version: v2}}}}
---
apiVersion: networking.istio.io/v1
kind: VirtualService
metadata: {{name: {s}, namespace: default}}
spec:
  hosts: [{s}]
  http:
  - name: canary
    match:
    - headers: {{x-canary: {{exact: "true"}}}}
    route:
    - destination: {{host: {s}, subset: v2}}
    mirror: {{host: {s}, subset: v1}}
    mirrorPercentage: {{value: 10.0}}
  - name: api
    match:
    - uri: {{prefix: /api/}}
    rewrite: {{uri: /v1/}}
    timeout: 2s
    route:
    - destination: {{host: {s}, subset: v1}}
  - name: default
    route:
    - destination: {{host: {s}, subset: v1}}
      weight: 90
    - destination: {{host: {s}, subset: v2}}
      weight: 10
""")
    return "---\n".join(docs)


def tests(n_services: int, n_tests: int) -> str:
    out = ["tests:"]
    for t in range(n_tests):
        s = f"svc{t % n_services}"
        kind = t % 3
        if kind == 0:
            out.append(f"""\
- name: canary {t}
  request: {{url: "http://{s}:8080/x", headers: {{x-canary: "true"}}}}
  expect:
    destination: {{host: {s}, subset: v2, port: 8080}}
    mirrors: [{{host: {s}, subset: v1, percentage: 10, shadowHost: "{s}-shadow:8080"}}]""")
        elif kind == 1:
            out.append(f"""\
- name: api {t}
  request: {{url: "http://{s}:8080/api/items?page={t}"}}
  expect:
    destination: {{subset: v1}}
    rewrite: {{path: "/v1/items?page={t}"}}
    timeout: 2s
    mirrors: []""")
        else:
            out.append(f"""\
- name: split {t}
  request: {{url: "http://{s}:8080/", randomValue: {t}}}
  expect:
    split: [{{subset: v1, weight: 90}}, {{subset: v2, weight: 10}}]
    destination: {{subset: {"v1" if t % 100 < 90 else "v2"}}}""")
    return "\n".join(out) + "\n"


def main_() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--services", type=int, default=1000)
    ap.add_argument("--tests", type=int, default=10000)
    ap.add_argument("--repeat", type=int, default=3)
    args = ap.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        cfg = Path(tmp) / "mesh.yaml"
        cfg.write_text(config(args.services))
        tf = Path(tmp) / "routes.test.yaml"
        tf.write_text(tests(args.services, args.tests))
        print(f"{args.services} VirtualServices ({cfg.stat().st_size // 1024} KiB), "
              f"{args.tests} tests ({tf.stat().st_size // 1024} KiB)")

        from simulator.routecheck.suite import load_tests, run_tests
        from simulator.routecheck.workspace import Mesh

        t0 = time.perf_counter()
        mesh = Mesh([str(cfg)])
        t1 = time.perf_counter()
        mesh.table()
        t2 = time.perf_counter()
        files = load_tests([str(tf)], mesh)
        t3 = time.perf_counter()
        res = run_tests(mesh, files)
        t4 = time.perf_counter()
        assert not res.failed and not res.file_errors, "the generated tests should pass"
        print(f"phases: load+validate {t1 - t0:.2f}s, compile {t2 - t1:.2f}s, parse tests {t3 - t2:.2f}s, "
              f"run {t4 - t3:.2f}s ({res.coverage:.0f}% coverage)")
        best = float("inf")
        for _ in range(args.repeat):
            t0 = time.perf_counter()
            with contextlib.redirect_stdout(io.StringIO()):
                code = main(["check", "-f", str(cfg), str(tf)])
            best = min(best, time.perf_counter() - t0)
            assert code == 0
        print(f"mirrorsim check, end to end (best of {args.repeat}): {best:.2f}s")
    return 0


if __name__ == "__main__":
    sys.exit(main_())
