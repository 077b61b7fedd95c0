"""mirrorsim: a local traffic-mirroring simulator with Envoy 1.40 / Istio semantics."""

__version__ = "0.1.0"

# Before any data-plane module is imported: use its mypyc-compiled build, or all of the
# pure-Python sources (MIRRORSIM_PURE=1, no compiled build, or a stale one). See build.py.
from simulator import build as _build

_build.choose(__path__[0])
