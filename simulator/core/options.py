"""What a translation is for besides the YAML: the client namespace, the cluster domain,
the calling workload (its labels and namespace decide sourceLabels / sourceNamespace
matches at translation, as istiod's sourceMatchHTTP does), the shadow host suffix and the
mesh's path normalization."""

from __future__ import annotations

from dataclasses import dataclass

from simulator.core.paths import BASE
from simulator.core.registry import labels_select
from simulator.model import istio as m
from simulator.model.names import DEFAULT_DOMAIN, DEFAULT_NAMESPACE


@dataclass(frozen=True, slots=True)
class Workload:
    """The calling workload: its pod labels and namespace ("" = the default namespace)."""

    labels: tuple[tuple[str, str], ...] = ()
    namespace: str = ""

    def __str__(self) -> str:
        labels = ",".join(f"{k}={v}" for k, v in self.labels) or "no labels"
        return f"{labels} in namespace {self.namespace or '(default)'}"


@dataclass(frozen=True, slots=True)
class TranslateOptions:
    namespace: str = DEFAULT_NAMESPACE  # the client's (mirrorsim's) namespace, for short host names
    domain: str = DEFAULT_DOMAIN
    shadow_suffix: bool = True  # False = Envoy disable_shadow_host_suffix_append (Istio >= 1.28)
    path_normalization: str = BASE  # meshConfig.pathNormalization.normalization (core/paths.py)
    # The calling workload, the proxy istiod builds these routes for: its pod labels and
    # namespace ("" = ``namespace``).  A match whose sourceLabels / sourceNamespace do not
    # select it is left out at translation time, as istiod's sourceMatchHTTP does.
    source_labels: tuple[tuple[str, str], ...] = ()
    source_namespace: str = ""

    @property
    def client_namespace(self) -> str:
        """The calling workload's namespace (short host names resolve relative to it)."""
        return self.source_namespace or self.namespace

    def selects_source(self, match: m.HTTPMatchRequest) -> bool:
        """Istio's sourceMatchHTTP for a match without ``gateways``: its sourceLabels
        are a subset of the workload's labels and its sourceNamespace (if any) is the
        workload's namespace."""
        if match.source_labels:
            if not labels_select(match.source_labels, dict(self.source_labels)):
                return False
        return not match.source_namespace or match.source_namespace == self.client_namespace
