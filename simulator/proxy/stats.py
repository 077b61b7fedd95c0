"""Counters with Envoy's names, cheap to bump on the hot path.

Each cluster has a ``ClusterStats`` with plain int attributes and a per-code
dict; ``render()`` turns everything into Envoy's ``/stats`` names:
``cluster.<name>.upstream_rq_total``, ``cluster.<name>.upstream_rq_200``,
``cluster.<name>.internal.upstream_rq_2xx`` (shadow copies carry
``x-envoy-internal: true`` and so count as *internal*), ``http.async-client.rq_total``
(every dispatched shadow), ``http.<prefix>.downstream_rq_2xx`` ...
mirrorsim's own counters live under ``mirrorsim.``.
"""

from __future__ import annotations

from collections import defaultdict
from typing import Final

_COUNTERS: Final = (
    "upstream_rq_total", "upstream_rq_completed", "upstream_rq_timeout",
    "upstream_rq_retry", "upstream_rq_retry_overflow", "upstream_rq_pending_total",
    "upstream_rq_pending_overflow", "upstream_rq_pending_failure_eject", "upstream_cx_total",
    "upstream_cx_active", "upstream_cx_connect_fail", "upstream_cx_connect_timeout",
    "upstream_cx_overflow", "upstream_cx_destroy", "upstream_cx_destroy_local",
    "upstream_cx_destroy_remote", "upstream_cx_destroy_with_active_rq",
    "upstream_rq_retry_success", "upstream_rq_retry_limit_exceeded",
    "outlier_detection_ejections_active", "outlier_detection_ejections_enforced_total",
    "outlier_detection_ejections_enforced_consecutive_5xx", "upstream_rq_per_try_timeout",
    "upstream_cx_protocol_error",
)


_GAUGES: Final = frozenset({"upstream_cx_active", "outlier_detection_ejections_active"})


class ClusterStats:
    __slots__ = ("name", *_COUNTERS, "codes", "external_codes", "internal_codes", "retry_codes")

    upstream_rq_total: int
    upstream_rq_completed: int
    upstream_rq_timeout: int
    upstream_rq_retry: int
    upstream_rq_retry_overflow: int
    upstream_rq_pending_total: int
    upstream_rq_pending_overflow: int
    upstream_rq_pending_failure_eject: int
    upstream_cx_total: int
    upstream_cx_active: int
    upstream_cx_connect_fail: int
    upstream_cx_connect_timeout: int
    upstream_cx_overflow: int
    upstream_cx_destroy: int
    upstream_cx_destroy_local: int
    upstream_cx_destroy_remote: int
    upstream_cx_destroy_with_active_rq: int
    upstream_rq_retry_success: int
    upstream_rq_retry_limit_exceeded: int
    outlier_detection_ejections_active: int
    outlier_detection_ejections_enforced_total: int
    outlier_detection_ejections_enforced_consecutive_5xx: int
    upstream_rq_per_try_timeout: int
    upstream_cx_protocol_error: int

    def __init__(self, name: str) -> None:
        self.name = name
        for s in _COUNTERS:
            setattr(self, s, 0)
        self.codes: dict[int, int] = defaultdict(int)
        self.external_codes: dict[int, int] = defaultdict(int)
        self.internal_codes: dict[int, int] = defaultdict(int)
        self.retry_codes: dict[int, int] = defaultdict(int)  # responses that were retried

    def response(self, code: int, internal: bool) -> None:
        """Count one completed upstream request with its status code."""
        self.upstream_rq_completed += 1
        codes = self.codes
        codes[code] = codes.get(code, 0) + 1
        split = self.internal_codes if internal else self.external_codes
        split[code] = split.get(code, 0) + 1

    def reset_counters(self) -> None:
        """Envoy's ``POST /reset_counters``: every counter to 0; gauges keep their value."""
        for s in _COUNTERS:
            if s not in _GAUGES:
                setattr(self, s, 0)
        self.codes.clear()
        self.external_codes.clear()
        self.internal_codes.clear()
        self.retry_codes.clear()

    def render(self, out: dict[str, int]) -> None:
        p = f"cluster.{self.name}."
        for s in _COUNTERS:
            v = getattr(self, s)
            if v or s in ("upstream_rq_total", "upstream_cx_total"):
                name = s.replace("outlier_detection_", "outlier_detection.", 1)
                out[p + name] = v
        for prefix, codes in (("", self.codes), ("external.", self.external_codes),
                              ("internal.", self.internal_codes), ("retry.", self.retry_codes)):
            if not codes:
                continue
            classes: dict[int, int] = defaultdict(int)
            total = 0
            for code, n in codes.items():
                out[f"{p}{prefix}upstream_rq_{code}"] = n
                classes[code // 100] += n
                total += n
            for c, n in classes.items():
                out[f"{p}{prefix}upstream_rq_{c}xx"] = n
            if prefix in ("external.", "internal."):
                out[f"{p}{prefix}upstream_rq_completed"] = total


class Stats:
    """All counters of one proxy process.  Each listener has its own HTTP stat
    prefix (``http.<prefix>.downstream_rq_2xx``...); a gateway listener gets a
    ``listener()`` child sharing the cluster counters."""

    def __init__(self, http_prefix: str = "outbound_0.0.0.0_15001",
                 clusters: dict[str, ClusterStats] | None = None) -> None:
        self.http_prefix = http_prefix
        self.clusters: dict[str, ClusterStats] = {} if clusters is None else clusters
        self.counters: dict[str, int] = defaultdict(int)
        self.downstream_codes: dict[int, int] = defaultdict(int)
        self.flags: dict[str, int] = defaultdict(int)
        self.downstream_rq_total = 0
        self.children: list[Stats] = []

    def listener(self, http_prefix: str) -> Stats:
        """Counters of another listener: own HTTP prefix, shared clusters."""
        child = Stats(http_prefix, self.clusters)
        self.children.append(child)
        return child

    def cluster(self, name: str) -> ClusterStats:
        cs = self.clusters.get(name)
        if cs is None:
            cs = self.clusters[name] = ClusterStats(name)
        return cs

    def inc(self, key: str, n: int = 1) -> None:
        self.counters[key] += n

    def downstream_response(self, code: int, flags: str) -> None:
        codes = self.downstream_codes
        codes[code] = codes.get(code, 0) + 1
        if flags != "-":
            for f in flags.split(","):
                self.flags[f] += 1

    def reset_counters(self) -> None:
        """Every counter of this listener, its children and the clusters to 0."""
        for cs in self.clusters.values():
            cs.reset_counters()
        self._reset_listener()
        for child in self.children:
            child._reset_listener()

    def _reset_listener(self) -> None:
        self.counters.clear()
        self.downstream_codes.clear()
        self.flags.clear()
        self.downstream_rq_total = 0

    def _render_listener(self, out: dict[str, int]) -> None:
        p = f"http.{self.http_prefix}."
        classes: dict[int, int] = defaultdict(int)
        for code, n in self.downstream_codes.items():
            classes[code // 100] += n
        for c, n in classes.items():
            out[f"{p}downstream_rq_{c}xx"] = n
        for f, n in self.flags.items():
            out[f"{p}mirrorsim_response_flag_{f}"] = n
        out[p + "downstream_rq_total"] = self.downstream_rq_total
        for k, v in self.counters.items():
            key = k if k.startswith(("http.", "mirrorsim.", "cluster.")) else p + k
            out[key] = out.get(key, 0) + v

    def snapshot(self) -> dict[str, int]:
        out: dict[str, int] = {}
        for cs in self.clusters.values():
            cs.render(out)
        self._render_listener(out)
        for child in self.children:
            child._render_listener(out)
        return dict(sorted(out.items()))

    def render_text(self) -> str:
        return "".join(f"{k}: {v}\n" for k, v in self.snapshot().items())
