"""Export mirrorsim's compiled route table as an Envoy v3 static bootstrap
(``mirrorsim envoy``), so the same Istio YAML can run on the real Envoy."""

from simulator.envoy.export import bootstrap

__all__ = ["bootstrap"]
