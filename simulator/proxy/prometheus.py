"""Envoy's stat views for the admin surface: ``/stats/prometheus`` (tag extraction and the
Prometheus text exposition) and ``/stats?filter=REGEX&usedonly``.

Tags.  An Istio sidecar's Envoy runs with istio-agent's bootstrap ``stats_config``
(tools/packaging/common/envoy_bootstrap.json): ``use_all_default_tags: false`` and Istio's own
``stats_tags``, so ``cluster.outbound|8000|v1|httpbin.default.svc.cluster.local.upstream_rq_200``
becomes ``envoy_cluster_upstream_rq{response_code="200",cluster_name="outbound|8000|v1|..."}``
with the whole cluster name as the label.
The regexes below are Istio's, applied as Envoy's ``TagExtractorStdRegexImpl`` does: the
first group is cut from the name, the second is the value.  Extractors whose regex starts
with a literal first token (``^cluster\\.``) run after the ones that do not, and the
labels come out in that order, as Envoy 1.40 prints them (checked against the binary).

Exposition (Envoy's ``PrometheusStatsFormatter``): names are ``envoy_`` + the tag-extracted
name with every character outside ``[a-zA-Z0-9_]`` turned into ``_``; one ``# TYPE`` line per
metric, counters first then gauges, each group sorted by metric name and its series by stat
name; a series without labels is written ``name{} value``.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping
from typing import Final

import re2  # type: ignore[import-untyped,unused-ignore]

from simulator.envoy.export import ISTIO_STATS_TAGS


def _compile(regex: str) -> tuple[re.Pattern[str], str]:
    """Istio's regex for Python's re (std::regex's ``[:digit:]`` inside brackets is ``0-9``)
    and the first token Envoy indexes it under ("" when it is not anchored on one)."""
    m = re.match(r"\^([a-z_]+)(?:\\\.|\(\?=\\\.\))", regex)
    return re.compile(regex.replace("[:digit:]", "0-9")), (m.group(1) if m else "")


_EXTRACTORS: Final = tuple((name, *_compile(rx)) for name, rx in ISTIO_STATS_TAGS)

# Stats that are gauges in Envoy (the rest of mirrorsim's are counters)
GAUGE_SUFFIXES: Final = (
    ".upstream_cx_active", ".upstream_rq_active", ".upstream_rq_pending_active",
    ".outlier_detection.ejections_active", ".downstream_cx_active", ".downstream_rq_active",
    "mirrorsim.shadow_inflight", "mirrorsim.shadow_inflight_bytes", "mirrorsim.workers_live",
    ".live", ".config_version", "mirrorsim.config_version",
)
_NOT_NAME: Final = re.compile(r"[^a-zA-Z0-9_]")


def is_gauge(name: str) -> bool:
    return name.endswith(GAUGE_SUFFIXES)


def extract_tags(name: str) -> tuple[str, tuple[tuple[str, str], ...]]:
    """Envoy's tag extraction with Istio's stats_tags: (tag-extracted name, tags in order)."""
    token = name.partition(".")[0]
    tags: list[tuple[str, str]] = []
    for wanted_prefix in (False, True):
        for tag, rx, first in _EXTRACTORS:
            if bool(first) != wanted_prefix or (first and first != token):
                continue
            m = rx.search(name)
            if m is None or m.group(2) is None:
                continue
            tags.append((tag, m.group(2)))
            name = name[: m.start(1)] + name[m.end(1):]
    return name, tuple(tags)


def metric_name(extracted: str) -> str:
    """Envoy's sanitizeName with the ``envoy_`` namespace."""
    out = "envoy_" + _NOT_NAME.sub("_", extracted)
    return out


def _label_value(v: str) -> str:
    return v.replace("\\", "\\\\").replace('"', '\\"').replace("\n", "\\n")


def prometheus_text(snap: Mapping[str, int]) -> str:
    """The ``/stats/prometheus`` body for a ``/stats`` snapshot (name -> value)."""
    groups: dict[tuple[bool, str], list[tuple[str, tuple[tuple[str, str], ...], int]]] = {}
    for stat in sorted(snap):
        extracted, tags = extract_tags(stat)
        key = (is_gauge(stat), metric_name(extracted))
        groups.setdefault(key, []).append((stat, tags, snap[stat]))
    lines: list[str] = []
    for (gauge, metric), series in sorted(groups.items()):
        lines.append(f"# TYPE {metric} {'gauge' if gauge else 'counter'}")
        for _stat, tags, value in series:
            labels = ",".join(f'{_NOT_NAME.sub("_", k)}="{_label_value(v)}"' for k, v in tags)
            lines.append(f"{metric}{{{labels}}} {value}")
    return "\n".join(lines) + "\n" if lines else ""


# ------------------------------------------------------------------ /stats query parameters

_RE2_OPTIONS = re2.Options()
_RE2_OPTIONS.log_errors = False
_RE2_OPTIONS.max_mem = 1 << 20


class FilterError(ValueError):
    """Envoy's 400 text for a bad ``filter``."""


def select(snap: Mapping[str, int], query: Mapping[str, str]) -> dict[str, int]:
    """Envoy's ``filter`` (an RE2 partial match on the stat name) and ``usedonly``
    (mirrorsim: the stats whose value is not 0; docs/deviations.md)."""
    items: Iterable[tuple[str, int]] = snap.items()
    flt = query.get("filter")
    if flt:
        try:
            rx = re2.compile(flt, _RE2_OPTIONS)
        except re2.error as exc:
            msg = exc.args[0] if exc.args else exc
            msg = msg.decode("utf-8", "replace") if isinstance(msg, bytes) else str(msg)
            raise FilterError(f"Invalid re2 regex: {msg}") from None
        items = [(k, v) for k, v in items if rx.search(k)]
    if "usedonly" in query:
        items = [(k, v) for k, v in items if v]
    return dict(items)
