"""The text form of an admin ``/stats`` page (Envoy's and mirrorsim's): ``name: value`` lines."""

from __future__ import annotations


def parse_stats(text: str) -> dict[str, int]:
    """The counters and gauges of ``text`` (histogram lines are skipped)."""
    out = {}
    for line in text.splitlines():
        name, sep, value = line.rpartition(": ")
        if sep and value.strip().lstrip("-").isdigit():
            out[name] = int(value)
    return out
