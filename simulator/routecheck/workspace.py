"""A loaded configuration ready to answer routing questions.

``Mesh(paths)`` loads and validates the Istio YAML once, compiles the mesh
route table (and, on demand, one per Gateway) and routes requests:
``mesh.route("GET", "http://reviews:9080/", headers={"end-user": "jason"})``
returns a ``Decision``.  Used by ``explain``, ``check`` and the pytest plugin.
"""

from __future__ import annotations

import os
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

from simulator.config import load
from simulator.config.loader import documents
from simulator.core.explain import Explanation, Request, explain
from simulator.core.options import Source, TranslateOptions
from simulator.core.table import Route, RouteTable
from simulator.core.translate import gateway_servers, translate, translate_gateway
from simulator.diagnostics import Diagnostic, Diagnostics
from simulator.model import istio as m
from simulator.model.names import MESH
from simulator.routecheck.decision import Decision
from simulator.routecheck.spec import request_from_url
from simulator.routecheck.yamlsrc import no_gc

CONFIG_SUFFIXES = (".yaml", ".yml", ".json")
TEST_SUFFIXES = (".test.yaml", ".test.yml")


def is_test_file(path: Path) -> bool:
    return path.name.lower().endswith(TEST_SUFFIXES)


def config_paths(paths: Iterable[str | os.PathLike[str]]) -> list[str]:
    """``-f`` paths for the loader, leaving out route-test files (``*.test.yaml``)
    found in directories, so tests can live next to the config they test."""
    out: list[str] = []
    for p in paths:
        path = Path(p)
        if path.is_dir():
            files = sorted(f for f in path.rglob("*") if f.is_file() and f.suffix.lower() in CONFIG_SUFFIXES)
            if any(is_test_file(f) for f in files):
                kept = [str(f) for f in files if not is_test_file(f)]
                out.extend(kept or [str(path)])
                continue
        out.append(str(p))
    return out


def test_paths(paths: Iterable[str | os.PathLike[str]]) -> list[str]:
    """Route-test files: files as given; in a directory its ``*.test.yaml`` /
    ``*.test.yml`` files, or, when it has none, every YAML and JSON file."""
    out: list[str] = []
    for p in paths:
        path = Path(p)
        if path.is_dir():
            files = sorted(f for f in path.rglob("*") if f.is_file() and f.suffix.lower() in CONFIG_SUFFIXES)
            tests = [f for f in files if is_test_file(f)]
            out.extend(str(f) for f in (tests or files))
        else:
            out.append(str(p))
    return out


def as_source(source: Source | Mapping[str, Any] | None) -> Source | None:
    """``{"labels": {...}, "namespace": "..."}`` (or a Source, or None) as a Source.
    Raises ValueError for a malformed one, naming the valid form."""
    if source is None or isinstance(source, Source):
        return source
    if not isinstance(source, Mapping) or set(source) - {"labels", "namespace"}:
        raise ValueError(f"source: expected {{'labels': {{...}}, 'namespace': '...'}}, got {source!r}")
    from simulator.model.syntax import check_label_key, check_label_value

    labels = source.get("labels") or {}
    if not isinstance(labels, Mapping):
        raise ValueError(f"source labels: expected a mapping like {{'app': 'productpage'}}, got {labels!r}")
    for k, v in labels.items():
        problem = check_label_key(str(k)) or check_label_value(str(v))
        if problem:
            raise ValueError(f"source labels: {problem}; expected a mapping like {{'app': 'productpage'}}")
    ns = source.get("namespace") or ""
    if not isinstance(ns, str):
        raise ValueError(f"source namespace: expected a string, got {ns!r}")
    return Source(tuple(sorted((str(k), str(v)) for k, v in labels.items())), ns)


class ConfigError(Exception):
    """The configuration has errors; ``diagnostics`` lists every problem."""

    def __init__(self, diagnostics: list[Diagnostic]) -> None:
        self.diagnostics = diagnostics
        errors = [d for d in diagnostics if d.severity == "error"]
        super().__init__(f"{len(errors)} error(s) in the configuration:\n"
                         + "\n".join(format_diagnostic(d) for d in errors))


@dataclass(frozen=True, slots=True)
class Rule:
    """One routing rule as written (a match block, or a rule without match):
    the unit of route coverage."""

    file: str
    line: int
    origin: str  # VirtualService ns/name
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

    def __init__(self, paths: Iterable[str | os.PathLike[str]] | str, namespace: str = "default",
                 shadow_suffix: bool = True, *, allow_errors: bool = False, path_normalization: str = "BASE",
                 source: Source | Mapping[str, Any] | None = None) -> None:
        if isinstance(paths, str | os.PathLike):
            paths = [paths]
        with no_gc():
            result = load(config_paths(paths), default_namespace=namespace)
        self.namespace = namespace
        self.shadow_suffix = shadow_suffix
        self.config: m.Config = result.config
        self.diagnostics: Diagnostics = result.diagnostics
        if not result.ok and not allow_errors:
            raise ConfigError(list(result.diagnostics))
        src = as_source(source)
        self.options = TranslateOptions(namespace=namespace, shadow_suffix=shadow_suffix,
                                        path_normalization=path_normalization,
                                        source_labels=src.labels if src else (),
                                        source_namespace=src.namespace if src else "")
        self._tables: dict[tuple[str, int | None, Source | None], RouteTable] = {}
        self._raw: dict[str, dict[tuple[str, str], Any]] = {}

    @property
    def warnings(self) -> list[Diagnostic]:
        return [d for d in self.diagnostics if d.severity != "error"]

    # ----------------------------------------------------------------- tables

    def table(self, gateway: str = MESH, port: int | None = None,
              source: Source | Mapping[str, Any] | None = None) -> RouteTable:
        """The route table of the mesh (sidecars), or of one server of Gateway
        ``ns/name``: the server on ``port``, else the only server, else the
        first one.  ``source``: the calling workload, when not the Mesh's own
        (a sidecar's routes depend on it; a gateway's on the gateway).  Raises
        KeyError for an unknown Gateway."""
        src = as_source(source)
        if gateway == MESH:
            key: tuple[str, int | None, Source | None] = (MESH, None, src)
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

    def explain(self, request: Request, gateway: str = MESH,
                source: Source | Mapping[str, Any] | None = None) -> Explanation:
        if gateway != MESH and "/" not in gateway:
            gateway = f"{self.namespace}/{gateway}"
        port = request.port
        if gateway != MESH and port is None:
            _, servers = gateway_servers(self.config, gateway)
            ports = [s.port.number for s in servers]
            port = request.implied_port if request.implied_port in ports else None
        return explain(self.table(gateway, port, source), request, gateway)

    def decide(self, request: Request, gateway: str = MESH,
               source: Source | Mapping[str, Any] | None = None) -> Decision:
        return Decision(self.explain(request, gateway, source), self.namespace, self.options.domain)

    def route(self, method: str, url: str, headers: Mapping[str, str] | None = None, *,
              random_value: int = 0, port: int | None = None, gateway: str = MESH,
              source: Source | Mapping[str, Any] | None = None) -> Decision:
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
        return self.decide(Request(method, authority, path, hdrs, scheme, port, random_value), gateway, source)

    # ----------------------------------------------------------------- rules

    def rules(self) -> list[Rule]:
        """Every routing rule the VirtualServices declare: each match block (a
        rule without match counts once); a delegate VirtualService's rules count
        once each (their routes are merged with the delegating rule's matches);
        delegating rules themselves are left out."""
        out = []
        for vs in self.config.virtual_services:
            origin = f"VirtualService {vs.meta.namespace}/{vs.meta.name}"
            for i, rule in enumerate(vs.http):
                if rule.delegate is not None:
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
        by_name = self._raw.get(route.file)
        if by_name is None:
            by_name = self._raw[route.file] = _raw_virtual_services(route.file, self.namespace)
        ns, _, name = route.origin.split(" ", 1)[1].partition("/")
        spec = by_name.get((ns, name))
        if not isinstance(spec, dict):
            return None
        i = int(route.origin_path.split("[", 1)[1].split("]", 1)[0])
        http = spec.get("http")
        return http[i] if isinstance(http, list) and i < len(http) and isinstance(http[i], dict) else None


def _raw_virtual_services(file: str, namespace: str) -> dict[tuple[str, str], Any]:
    out: dict[tuple[str, str], Any] = {}
    stack = [d for d in documents(file) if isinstance(d, dict)]
    while stack:
        d = stack.pop(0)
        if isinstance(d.get("items"), list) and str(d.get("kind", "")).endswith("List"):
            stack.extend(x for x in d["items"] if isinstance(x, dict))
            continue
        raw_meta = d.get("metadata")
        meta: dict[str, Any] = raw_meta if isinstance(raw_meta, dict) else {}
        if d.get("kind") == "VirtualService" and isinstance(meta.get("name"), str):
            out[(str(meta.get("namespace") or namespace), meta["name"])] = d.get("spec")
    return out


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


def diagnostic_code(d: Diagnostic) -> str:
    return d.display_code


def diagnostic_message(d: Diagnostic) -> str:
    return d.display_message


def format_diagnostic(d: Diagnostic, code: bool = True) -> str:
    """``FILE:LINE: error|warning CODE message (at PATH in Kind ns/name)``."""
    return d.format(code)


def diagnostic_dict(d: Diagnostic) -> dict[str, Any]:
    out = d.as_dict()
    out["code"] = diagnostic_code(d)
    out["message"] = diagnostic_message(d)
    return out
