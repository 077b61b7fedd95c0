"""mirrorsim: a local traffic-mirroring simulator with Envoy 1.40 / Istio semantics."""

__version__ = "0.1.0"
