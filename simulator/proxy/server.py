"""The data plane: an HTTP/1.1 proxy that executes the core's routing decisions.

Theory of operation
-------------------
The modules, in the order they depend on each other (each imports only those before it):

* ``client.py``: one parsed request (``DownstreamRequest``) and the client connection as a
  stream uses it (``ClientConnection``).
* ``upstream.py``: per-cluster pools of upstream connections (``ClusterPool``), and
  ``Exchange``, what a pool's connection reports a response to.
* ``mirror.py``: ``ShadowDispatcher`` sends shadow copies, each described by a plain
  ``ShadowRequest`` value; it never blocks and never delays the primary.
* this module: ``Proxy``, the shared state of one listener (route table, pools, stats,
  access log, body budget, random values, the shadow dispatcher) and ``ProxyOptions``.
* ``heads.py``: the heads the proxy writes (upstream request, relayed response, local reply).
* ``tunnel.py``, ``expect.py``, ``header_ops.py``: upgrades, ``Expect: 100-continue`` and
  header values with command operators, each taken only by the requests that need it.
* ``stream.py``: ``Stream``, one request's life: ``RouteTable.route()`` decides; a local
  reply is written at once; a forward runs Envoy's fault filter (core/faults.py), sends the
  primary to an endpoint of its cluster through that cluster's ``ClusterPool`` under the
  route and per-try timers and the retry policy (core/retry_policy.py), hands each sampled
  mirror to the ``ShadowDispatcher`` once the primary is written to an upstream connection,
  and streams the response back as it arrives, with back-pressure both ways; it ends in
  ``Stream.finish``, which writes the access-log line.
* ``downstream.py``: ``DownstreamConnection``, the asyncio protocol per client connection:
  parses requests with llhttp (httptools) and runs them one at a time, in order
  (pipelined requests wait in a short queue; reading pauses when it is full).
* ``launch.py``: starts the listeners and the admin surface.

The whole request body is buffered before routing (see docs/deviations.md: Envoy 1.40
streams it).  Bodies above ``max_request_bytes`` get 413.  Bodies held at once share the
proxy's ``BodyBudget`` (limits.py: 503 over ``max_buffered_bytes``); a request's bytes are
given back when it ends.  Rule: nothing on the request path awaits.  Callbacks drive
everything; only opening a new upstream connection runs as a task (tasks.py).
"""

from __future__ import annotations

import asyncio
import dataclasses
import random
from dataclasses import dataclass
from typing import TYPE_CHECKING

from simulator.core.table import RouteTable
from simulator.proxy.accesslog import AccessLog
from simulator.proxy.client import ClientConnection
from simulator.proxy.events import EventTap
from simulator.proxy.headers import DateCache
from simulator.proxy.ids import RandomValues, RequestIds
from simulator.proxy.limits import DEFAULT_MAX_BUFFERED_BYTES, BodyBudget
from simulator.proxy.mirror import PoolSource, ShadowDispatcher
from simulator.proxy.stats import Stats
from simulator.proxy.upstream import ClusterPool

if TYPE_CHECKING:
    from simulator.proxy.diff import DiffRecorder


@dataclass(slots=True)
class ProxyOptions:
    server_name: bytes = b"envoy"
    max_request_bytes: int = 64 * 1024 * 1024
    max_buffered_bytes: int = DEFAULT_MAX_BUFFERED_BYTES  # all bodies held at once (limits.py)
    local_address: str = "127.0.0.1"  # appended to x-forwarded-for of shadow copies
    seed: int | None = None


class Proxy(PoolSource):
    """Shared state of one listener: the route table, pools, stats, logs, the shadow
    dispatcher, the body budget and the random values."""

    def __init__(
        self,
        table: RouteTable,
        *,
        stats: Stats | None = None,
        access_log: AccessLog | None = None,
        options: ProxyOptions | None = None,
        loop: asyncio.AbstractEventLoop | None = None,
    ) -> None:
        self.table = table
        self.stats = stats or Stats()
        self.options = options or ProxyOptions()
        self.loop = loop or asyncio.get_event_loop()
        self.access_log = access_log or AccessLog(None, self.loop)
        self.rng = random.Random(self.options.seed)
        # request ids come from their own generator, so whether clients send ids does not
        # shift the sequence of routing/sampling random values
        self.random_values = RandomValues(self.rng)
        self.request_ids = RequestIds(random.Random(None if self.options.seed is None else self.options.seed + 1))
        self.pools: dict[str, ClusterPool] = {}
        self.dates = DateCache(self.options.server_name)
        self.shadows: ShadowDispatcher | None = None
        self.diff: DiffRecorder | None = None  # --diff (proxy/diff.py)
        self.connections: set[ClientConnection] = set()  # downstream.DownstreamConnection
        self.budget = BodyBudget(self.options.max_buffered_bytes, self.loop)
        self.draining = False  # shutting down: every response says connection: close (lifecycle.py)
        self.tap = EventTap()  # the live page's sink when one watches (events.py)

    def sibling(self, table: RouteTable, http_prefix: str, server_name: bytes = b"istio-envoy") -> Proxy:
        """A proxy for another listener (a gateway server) sharing this one's
        connection pools, circuit breakers, cluster stats, shadow dispatcher and logs,
        with its own HTTP stat prefix and server name (Istio's gateways say istio-envoy)."""
        options = dataclasses.replace(self.options, server_name=server_name)
        other = Proxy(table, stats=self.stats.listener(http_prefix), access_log=self.access_log,
                      options=options, loop=self.loop)
        other.pools = self.pools
        other.shadows = self.shadows
        other.diff = self.diff
        other.budget = self.budget
        other.tap = self.tap
        return other

    def pool(self, cluster_name: str) -> ClusterPool | None:
        pool = self.pools.get(cluster_name)
        if pool is None:
            cluster = self.table.clusters.get(cluster_name)
            if cluster is None:
                return None
            pool = self.pools[cluster_name] = ClusterPool(
                cluster, self.stats.cluster(cluster_name), self.rng, self.loop)
        return pool

    def begin_drain(self) -> None:
        """Every response from now on says ``connection: close``, also those of requests
        in flight whose response has not started (lifecycle.py)."""
        self.draining = True
        for conn in self.connections:
            conn.drain()

    def requests_in_flight(self) -> int:
        """Downstream requests in progress or queued."""
        return sum(1 for c in self.connections if c.busy())

    def close(self) -> None:
        for conn in list(self.connections):
            conn.close()
        for pool in self.pools.values():
            pool.close()
