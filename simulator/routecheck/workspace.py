"""A loaded configuration ready to answer routing questions.

``Mesh(paths)`` loads and validates the Istio YAML once, compiles the mesh
route table (and, on demand, one per Gateway) and routes requests:
``mesh.route("GET", "http://reviews:9080/", headers={"end-user": "jason"})``
returns a ``CheckedRoute`` (a ``RouteOutcome`` with assertion helpers).  Used by
``explain``, ``check`` and the pytest plugin.
"""

from __future__ import annotations

import os
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

from simulator.config import load
from simulator.config.loader import ROUTE_TEST_SUFFIXES, YAML_SUFFIXES
from simulator.config.schema import Ctx
from simulator.config.yamlio import no_gc
from simulator.core.envoy_config import Route
from simulator.core.explain import Explanation, RouteQuery, explain
from simulator.core.options import TranslateOptions, Workload
from simulator.core.registry import user_gateway_ref
from simulator.core.table import RouteTable
from simulator.core.translate import gateway_servers, translate, translate_gateway
from simulator.diagnostics import Diagnostic, Diagnostics
from simulator.model import istio as m
from simulator.model.names import DEFAULT_NAMESPACE, MESH
from simulator.routecheck.assertions import CheckedRoute
from simulator.routecheck.request_spec import parse_source, request_from_url


def is_test_file(path: Path) -> bool:
    return path.name.lower().endswith(ROUTE_TEST_SUFFIXES)


def test_paths(paths: Iterable[str | os.PathLike[str]]) -> list[str]:
    """Route-test files: files as given; in a directory its ``*.test.yaml`` /
    ``*.test.yml`` files, or, when it has none, every YAML and JSON file."""
    out: list[str] = []
    for p in paths:
        path = Path(p)
        if path.is_dir():
            files = sorted(f for f in path.rglob("*") if f.is_file() and f.suffix.lower() in YAML_SUFFIXES)
            tests = [f for f in files if is_test_file(f)]
            out.extend(str(f) for f in (tests or files))
        else:
            out.append(str(p))
    return out


def as_source(source: Workload | Mapping[str, Any] | None) -> Workload | None:
    """``{"labels": {...}, "namespace": "..."}`` (or a Workload, or None) as a Workload,
    checked as a route test's ``source:`` block is (``request_spec.parse_source``); an
    empty namespace means the client's.  Raises ValueError for a malformed one, quoting
    the bad value and the valid form."""
    if source is None or isinstance(source, Workload):
        return source
    value: Any = source
    if isinstance(source, Mapping):
        value = {k: v for k, v in source.items() if not (k == "namespace" and v in (None, ""))}
    ctx = Ctx(m.Source("source"))
    src = parse_source(ctx, value, "source")
    if src is None or ctx.diagnostics:
        raise ValueError(ctx.diagnostics[0].message if ctx.diagnostics else f"source: got {source!r}")
    return src


class ConfigError(Exception):
    """The configuration has errors; ``diagnostics`` lists every problem."""

    def __init__(self, diagnostics: list[Diagnostic]) -> None:
        self.diagnostics = diagnostics
        errors = [d for d in diagnostics if d.severity == "error"]
        super().__init__(f"{len(errors)} error(s) in the configuration:\n"
                         + "\n".join(d.format() for d in errors))


@dataclass(frozen=True, slots=True)
class Rule:
    """One routing rule as written (a match block, or a rule without match):
    the unit of route coverage."""

    file: str
    line: int
    origin: str  # VirtualService ns/name, or HTTPRoute ns/name
    path: str  # spec.http[1].match[0]
    name: str = ""

    @property
    def key(self) -> tuple[str, str, str]:
        return (self.file, self.origin, self.path)

    def __str__(self) -> str:
        name = f' "{self.name}"' if self.name else ""
        return f"{self.file}:{self.line}: {self.origin} {self.path}{name}"


def route_keys(route: Route) -> tuple[tuple[str, str, str], tuple[str, str, str]]:
    """Coverage keys a matched route reaches: its match block and its rule."""
    rule = route.origin_path.split(".match[", 1)[0]
    return (route.file, route.origin, route.origin_path), (route.file, route.origin, rule)


class Mesh:
    """Loaded Istio configuration; see the module docstring."""

    def __init__(self, paths: Iterable[str | os.PathLike[str]] | str, namespace: str = DEFAULT_NAMESPACE,
                 shadow_suffix: bool = True, *, allow_errors: bool = False, path_normalization: str = "BASE",
                 source: Workload | Mapping[str, Any] | None = None) -> None:
        if isinstance(paths, str | os.PathLike):
            paths = [paths]
        with no_gc():
            result = load(paths, default_namespace=namespace, keep_specs=True)  # skips *.test.yaml in directories
        self.namespace = namespace
        self.shadow_suffix = shadow_suffix
        self.config: m.Config = result.config
        self.diagnostics: Diagnostics = result.diagnostics
        self.skipped = result.skipped  # Kubernetes objects of other kinds (listed by check -v)
        if not result.ok and not allow_errors:
            raise ConfigError(list(result.diagnostics))
        src = as_source(source)
        self.options = TranslateOptions(namespace=namespace, shadow_suffix=shadow_suffix,
                                        path_normalization=path_normalization,
                                        source_labels=src.labels if src else (),
                                        source_namespace=src.namespace if src else "")
        self._tables: dict[tuple[str, int | None, Workload | None], RouteTable] = {}
        self._specs = result.specs

    @property
    def warnings(self) -> list[Diagnostic]:
        return [d for d in self.diagnostics if d.severity != "error"]

    # ----------------------------------------------------------------- tables

    def table(self, gateway: str = MESH, port: int | None = None,
              source: Workload | Mapping[str, Any] | None = None) -> RouteTable:
        """The route table of the mesh (sidecars), or of one server of Gateway
        ``ns/name``: the server on ``port``, else the only server, else the
        first one.  ``source``: the calling workload, when not the Mesh's own
        (a sidecar's routes depend on it; a gateway's on the gateway).  Raises
        KeyError for an unknown Gateway."""
        src = as_source(source)
        if gateway == MESH:
            key: tuple[str, int | None, Workload | None] = (MESH, None, src)
            t = self._tables.get(key)
            if t is None:
                opts = self.options
                if src is not None:
                    opts = replace(opts, source_labels=src.labels, source_namespace=src.namespace)
                t = self._tables[key] = translate(self.config, opts)
            return t
        gw, servers = gateway_servers(self.config, gateway)
        server = next((s for s in servers if s.port.number == port), None) or servers[0]
        key = (gateway, server.port.number, None)
        t = self._tables.get(key)
        if t is None:
            t = self._tables[key] = translate_gateway(self.config, gw, server, self.options)
        return t

    def gateways(self) -> list[str]:
        return [f"{g.meta.namespace}/{g.meta.name}" for g in self.config.gateways]

    # ----------------------------------------------------------------- routing

    def explain(self, request: RouteQuery, gateway: str = MESH,
                source: Workload | Mapping[str, Any] | None = None) -> Explanation:
        gateway = user_gateway_ref(gateway, self.namespace)
        port = request.port
        if gateway != MESH and port is None:
            _, servers = gateway_servers(self.config, gateway)
            ports = [s.port.number for s in servers]
            port = request.implied_port if request.implied_port in ports else None
        return explain(self.table(gateway, port, source), request, gateway)

    def decide(self, request: RouteQuery, gateway: str = MESH,
               source: Workload | Mapping[str, Any] | None = None) -> CheckedRoute:
        return CheckedRoute(self.explain(request, gateway, source), self.namespace, self.options.domain)

    def route(self, method: str, url: str, headers: Mapping[str, str] | None = None, *,
              random_value: int = 0, port: int | None = None, gateway: str = MESH,
              source: Workload | Mapping[str, Any] | None = None) -> CheckedRoute:
        """Route one request: ``url`` is ``http://authority/path?query`` (a ``Host``
        header overrides the authority).  ``source``: the calling workload,
        ``{"labels": {"app": "productpage"}, "namespace": "default"}`` (default:
        the Mesh's)."""
        parsed = request_from_url(url)
        if parsed is None:
            raise ValueError(f"expected an absolute http(s) URL like http://reviews:9080/, got {url!r}")
        scheme, authority, path = parsed
        hdrs = {k.lower(): str(v) for k, v in (headers or {}).items()}
        authority = hdrs.pop("host", authority)
        return self.decide(RouteQuery(method, authority, path, hdrs, scheme, port, random_value), gateway, source)

    # ----------------------------------------------------------------- rules

    def rules(self) -> list[Rule]:
        """Every routing rule the VirtualServices declare: each match block (a
        rule without match counts once); a delegate VirtualService's rules count
        once each (their routes are merged with the delegating rule's matches);
        delegating rules themselves are left out."""
        out = []
        seen: set[tuple[str, str, str]] = set()
        for vs in self.config.virtual_services:
            origin = f"VirtualService {vs.meta.namespace}/{vs.meta.name}"
            for i, rule in enumerate(vs.http):
                if rule.delegate is not None:
                    continue
                if rule.src is not None:  # translated from an HTTPRoute: its rule's match, once
                    r = Rule(rule.src.file, rule.src.line_of(rule.origin_path), rule.origin, rule.origin_path,
                             rule.name)
                    if r.key not in seen:
                        seen.add(r.key)
                        out.append(r)
                    continue
                blocks: list[tuple[str, str]] = [
                    (f"spec.http[{i}].match[{j}]", mt.name) for j, mt in enumerate(rule.match)
                ] if vs.hosts else []
                for path, match_name in blocks or [(f"spec.http[{i}]", "")]:
                    name = f"{rule.name}.{match_name}" if rule.name and match_name else (rule.name or match_name)
                    out.append(Rule(vs.src.file, vs.src.line_of(path), origin, path, name))
        return out

    def raw_rule(self, route: Route) -> dict[str, Any] | None:
        """The matched rule (``spec.http[i]``) exactly as written in its file."""
        if not route.file or not route.origin.startswith("VirtualService "):
            return None
        ns, _, name = route.origin.split(" ", 1)[1].partition("/")
        spec = self._specs.get(("VirtualService", ns, name))
        if not isinstance(spec, dict):
            return None
        i = int(route.origin_path.split("[", 1)[1].split("]", 1)[0])
        http = spec.get("http")
        return http[i] if isinstance(http, list) and i < len(http) and isinstance(http[i], dict) else None


# --------------------------------------------------------------------------- diagnostics

def source_warnings(config: m.Config, options: TranslateOptions) -> list[Diagnostic]:
    """Rules the calling workload's sidecar never applies: in a VirtualService bound
    to the mesh, a rule whose every match has sourceLabels / sourceNamespace that do
    not select the workload (``validate --source-labels/--source-namespace``).  Matches
    naming ``gateways`` are bound by those alone and count as applying."""
    who = ",".join(f"{k}={v}" for k, v in options.source_labels) or "no labels"
    who = f"{who} in namespace {options.client_namespace}"
    out: list[Diagnostic] = []
    for vs in config.virtual_services:
        if vs.gateways and MESH not in vs.gateways:
            continue
        for i, rule in enumerate(vs.http):
            if not rule.match or any(mt.gateways or options.selects_source(mt) for mt in rule.match):
                continue
            path = f"spec.http[{i}]"
            why = "; ".join(
                " and ".join(([f"sourceLabels {dict(mt.source_labels)}"] if mt.source_labels else [])
                             + ([f"sourceNamespace {mt.source_namespace}"] if mt.source_namespace else []))
                for mt in rule.match)
            out.append(Diagnostic(
                "warning", f"{path}: no match of this rule selects the calling workload ({who}): {why}; "
                "its sidecar never applies the rule", vs.src.file, vs.src.line_of(path), path,
                resource=f"VirtualService {vs.meta.namespace}/{vs.meta.name}"))
    return out
