"""The cost of ``mirrorsim run --diff`` (docs/diff.md): the same load with ``--diff`` off
and on, alternated, on this machine, relative to each other.

    python benchmarks/diff_bench.py [--rounds 4] [--duration 5] [--warmup 1] [--mismatch]

nginx (benchmarks/bench.py's upstreams) serves the primary; the 100 % mirror is the same
nginx server (every comparison a match) or, with ``--mismatch``, the one answering
"v2 hello" (every comparison a mismatch, recorded with its unified diff).  Each round runs
off then on (``wrk -t1 -c32``); the medians of the per-round ratios are the result
(issue 15: throughput on/off >= 0.8, p99 on/off <= 1.1).  Every process started is stopped
by its pid on exit; loopback only; bounded runs.
"""

from __future__ import annotations

import argparse
import atexit
import statistics
import sys
import tempfile
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

import bench  # noqa: E402


def main() -> int:
    ap = argparse.ArgumentParser()
    ap.add_argument("--rounds", type=int, default=4)
    ap.add_argument("--duration", type=int, default=5)
    ap.add_argument("--warmup", type=int, default=1)
    ap.add_argument("--connections", type=int, default=32)
    ap.add_argument("--mismatch", action="store_true", help="the mirror answers differently (every request)")
    args = ap.parse_args()
    args.threads = 1
    atexit.register(bench._stop_all)
    print(f"measuring {bench.mirrorsim_build()}", flush=True)
    tmp = Path(tempfile.mkdtemp(prefix="mirrorsim-diff-bench-"))
    ups = bench.Upstreams(tmp)
    ups.start()
    sc = bench.Scenario("mirror", "100% mirror (GET)", mirror="fast")
    ports = dict(ups.ports)
    if not args.mismatch:
        ports["fast"] = ports["primary"]  # the mirror answers exactly what the primary does
    cfg = tmp / "configs"
    bench.write_config(cfg, sc, ports)
    pports = (bench.free_port(), bench.free_port())
    ratios: list[tuple[float, float]] = []
    try:
        for rnd in range(1, args.rounds + 1):
            got = {}
            for diff in (False, True):
                px = bench.Proxy("mirrorsim", cfg, tmp, "/dev/null", None)
                if diff:
                    px.extra = ["--diff"]
                run = bench.measured_run(px, pports, sc, ups, args, rnd, f"round {rnd} diff {'on ' if diff else 'off'}")
                got[diff] = run
            off, on = got[False], got[True]
            ratios.append((on.rps / off.rps, on.p99_ms / off.p99_ms))
            print(f"round {rnd}: throughput on/off {ratios[-1][0]:.3f}, p99 on/off {ratios[-1][1]:.3f}", flush=True)
    finally:
        ups.stop()
        bench._stop_all()
    tput = statistics.median(r[0] for r in ratios)
    p99 = statistics.median(r[1] for r in ratios)
    verdict = "holds" if tput >= 0.8 and p99 <= 1.1 else "does NOT hold"
    print(f"median over {len(ratios)} rounds: throughput on/off {tput:.3f}, p99 on/off {p99:.3f} "
          f"(target >= 0.8 and <= 1.1: {verdict})")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
