"""Loading ``-f`` paths: files and directories, multi-document YAML, ``kind:
List``, line tracking, and dispatch to the parser and the analyzers.

simulator/config/yamlio.py reads the YAML into plain values with the 1-based
line of every field path (``spec.http[1].route[0].destination.subset``); that
map travels with each resource as ``model.Source.lines``.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from simulator.config import k8s
from simulator.config.parse import SPECS, parse_spec
from simulator.config.schema import Ctx, F, Obj, any_value, string, string_map, suggest
from simulator.config.validate import analyze
from simulator.config.yamlio import STDIN, STDIN_NAME, Document, InputError, parse_documents, read_stdin, read_text
from simulator.diagnostics import Diagnostic, Diagnostics
from simulator.model import istio as m
from simulator.model.names import DEFAULT_NAMESPACE
from simulator.model.syntax import is_dns1123_label

GROUP = "networking.istio.io"
API_VERSIONS = ("v1", "v1beta1", "v1alpha3")
# Real networking.istio.io kinds that mirrorsim does not simulate.
OTHER_GROUP_KINDS = ("Sidecar", "EnvoyFilter", "WorkloadGroup", "ProxyConfig")
YAML_SUFFIXES = (".yaml", ".yml", ".json")
ROUTE_TEST_SUFFIXES = (".test.yaml", ".test.yml")


@dataclass(slots=True)
class LoadResult:
    config: m.Config
    diagnostics: Diagnostics
    files: tuple[str, ...] = ()  # every file (or path) read, in order
    # with load(..., keep_specs=True): each resource's spec as written, by (kind, namespace, name)
    specs: dict[tuple[str, str, str], Any] = field(default_factory=dict)
    skipped: tuple[str, ...] = ()  # Kubernetes objects read and skipped (Deployment ns/name (apps/v1))

    @property
    def ok(self) -> bool:
        return not self.diagnostics.has_errors()


def load(paths: Iterable[str | os.PathLike[str]] | str, default_namespace: str = DEFAULT_NAMESPACE, *,
         keep_specs: bool = False) -> LoadResult:
    """Load files and directories (``kubectl apply -f`` style).  ``keep_specs``:
    keep each resource's spec as written (``LoadResult.specs``)."""
    if isinstance(paths, str | os.PathLike):
        paths = [paths]
    loader = _Loader(default_namespace)
    loader.specs = {} if keep_specs else None
    for path in paths:
        loader.add_path(Path(path))
    return loader.finish()


def load_text(text: str, filename: str = "<inline>", default_namespace: str = DEFAULT_NAMESPACE) -> LoadResult:
    """Load YAML given as a string (``filename`` names it in diagnostics)."""
    loader = _Loader(default_namespace)
    loader.add_text(text, filename)
    return loader.finish()


# ------------------------------------------------------------------ the loader

_METADATA = Obj(
    "ObjectMeta",
    [
        F("name", string),
        F("namespace", string),
        F("labels", string_map),
        F("annotations", string_map),
        *(
            F(n, any_value)
            for n in (
                "generateName", "uid", "resourceVersion", "generation", "creationTimestamp",
                "deletionTimestamp", "deletionGracePeriodSeconds", "ownerReferences",
                "finalizers", "managedFields", "selfLink",
            )
        ),
    ],
)  # fmt: skip
_TOP_LEVEL = ("apiVersion", "kind", "metadata", "spec", "status")


class _Loader:
    def __init__(self, default_namespace: str) -> None:
        self.default_namespace = default_namespace
        self.diagnostics: list[Diagnostic] = []
        self.file_order: dict[str, int] = {}
        self.resources: dict[tuple[str, str, str], Any] = {}  # (kind, ns, name) -> model, load order
        self.specs: dict[tuple[str, str, str], Any] | None = None  # (kind, ns, name) -> spec as written
        self.order = 0
        self.skipped: list[str] = []  # Kubernetes objects of kinds mirrorsim has no use for

    # ----------------------------------------------------------------- inputs

    def add_path(self, path: Path) -> None:
        if str(path) == STDIN:
            if STDIN_NAME in self.file_order:  # `-f - -f -`: one stream, read once
                return
            try:
                self.add_text(read_stdin(), STDIN_NAME)
            except InputError as exc:
                self._file_error(STDIN_NAME, exc.line, exc.message)
            return
        if path.is_dir():
            # route-test files (*.test.yaml, read by `mirrorsim check`) may live beside the config
            files = sorted(p for p in path.rglob("*") if p.is_file() and p.suffix.lower() in YAML_SUFFIXES
                           and not p.name.lower().endswith(ROUTE_TEST_SUFFIXES))
            if not files:
                self._file_error(
                    str(path),
                    0,
                    f"directory {path} contains no .yaml, .yml or .json files",
                    "warning",
                )
            for f in files:
                self.add_file(f)
        elif path.exists():
            self.add_file(path)
        else:
            self._file_error(str(path), 0, f"path {path} does not exist")

    def add_file(self, path: Path) -> None:
        name = str(path)
        try:
            text = read_text(path)
        except InputError as exc:
            self._file_error(name, exc.line, exc.message)
            return
        self.add_text(text, name)

    def add_text(self, text: str, filename: str) -> None:
        self.file_order.setdefault(filename, len(self.file_order))
        try:
            for doc in parse_documents(text):
                self._add_document(doc, filename)
        except InputError as exc:
            self._file_error(filename, exc.line, exc.message)

    # ----------------------------------------------------------------- documents

    def _add_document(self, doc: Document, filename: str) -> None:
        source = m.Source(file=filename, line=doc.line, lines=doc.lines)
        ctx = Ctx(source=source)
        for path, line, message in doc.problems:
            self.diagnostics.append(Diagnostic("error", message, filename, line, path))
        value = doc.value
        if not isinstance(value, Mapping):
            ctx.error(
                "",
                f"a document must be a mapping (a Kubernetes object), got {type(value).__name__}",
            )
            self.diagnostics.extend(ctx.diagnostics)
            return
        kind = value.get("kind")
        if isinstance(kind, str) and kind.endswith("List") and isinstance(value.get("items"), list):
            self._add_list(doc, filename)
            return
        self._add_object(value, ctx)

    def _add_list(self, doc: Document, filename: str) -> None:
        """``kind: List`` (or ``*List``): each item is a document of its own
        with its own path map (``items[3].spec.x`` -> ``spec.x``)."""
        for i, item in enumerate(doc.value["items"]):
            prefix = f"items[{i}]"
            lines = {k[len(prefix) + 1 :]: v for k, v in doc.lines.items() if k.startswith(prefix + ".")}
            first = min(lines.values(), default=doc.lines.get(prefix, doc.line))
            item_doc = Document(value=item, line=first, lines=lines)
            self._add_document(item_doc, filename)

    def _add_object(self, value: Mapping[str, Any], ctx: Ctx) -> None:
        api_version, kind = value.get("apiVersion"), value.get("kind")
        if not isinstance(api_version, str) or not isinstance(kind, str) or not api_version or not kind:
            missing = [k for k, v in (("apiVersion", api_version), ("kind", kind)) if not isinstance(v, str) or not v]
            ctx.error(
                missing[0],
                f"{' and '.join(missing)} must be set to a string (e.g. apiVersion: "
                f"networking.istio.io/v1, kind: VirtualService)",
            )
            self.diagnostics.extend(ctx.diagnostics)
            return
        group, _, version = api_version.rpartition("/")
        meta = value.get("metadata")
        if isinstance(meta, Mapping) and isinstance(meta.get("name"), str):
            ns = meta.get("namespace") if isinstance(meta.get("namespace"), str) else self.default_namespace
            ctx.resource = f"{kind} {ns}/{meta['name']}"
        if k8s.handles(group, version, kind):
            parse, store_as = k8s.reader(value, ctx)
            self._add_resource(kind, value, ctx, parse=parse, store_as=store_as)
        elif k8s.skipped(group, kind):
            self.skipped.append(f"{kind} {ctx.resource.partition(' ')[2] or '<unnamed>'} ({api_version})")
        elif group != GROUP:
            ctx.warn(
                "kind",
                f"{kind} ({api_version}) ignored: mirrorsim reads only networking.istio.io "
                f"VirtualService, DestinationRule, ServiceEntry, WorkloadEntry and Gateway, "
                f"Gateway API HTTPRoute, Gateway and ReferenceGrant, and core v1 Service",
            )
        elif kind in OTHER_GROUP_KINDS:
            ctx.warn("kind", f"{kind} ignored: mirrorsim does not simulate {kind} resources")
        elif kind not in SPECS:
            ctx.error(
                "kind",
                f'unknown kind "{kind}" in {GROUP}; valid kinds: '
                f"{', '.join(sorted(SPECS))}{suggest(kind, sorted(SPECS))}",
            )
        elif version not in API_VERSIONS:
            ctx.error(
                "apiVersion",
                f'unknown apiVersion "{api_version}" for {kind}; valid: '
                + ", ".join(f"{GROUP}/{v}" for v in API_VERSIONS),
            )
        else:
            self._add_resource(kind, value, ctx)
        self.diagnostics.extend(ctx.diagnostics)

    def _add_resource(self, kind: str, value: Mapping[str, Any], ctx: Ctx,
                      parse: Callable[[str, m.Meta, Any, Ctx], Any] = parse_spec, store_as: str = "") -> None:
        for key in value:
            if key not in _TOP_LEVEL:
                Obj(kind, [F(k, any_value) for k in _TOP_LEVEL]).unknown_field(ctx, key, key)
        meta = self._meta(value.get("metadata"), ctx)
        ctx.resource = f"{kind} {meta.namespace}/{meta.name or '<unnamed>'}"
        ctx.namespace = meta.namespace
        rkey = (store_as or kind, meta.namespace, meta.name)
        previous = self.resources.get(rkey)
        if previous is not None:
            meta = m.Meta(
                name=meta.name,
                namespace=meta.namespace,
                labels=meta.labels,
                order=previous.meta.order,
            )
            ctx.warn(
                "metadata.name",
                f"{ctx.resource} is defined again (first at {previous.src.file}:"
                f"{previous.src.line}); like kubectl apply, this definition replaces it",
            )
        obj = parse(kind, meta, value.get("spec"), ctx)
        if meta.name:
            self.resources[rkey] = obj
            if self.specs is not None:
                self.specs[rkey] = value.get("spec")
        else:
            self.resources[(store_as or kind, meta.namespace, f"<unnamed {self.order}>")] = obj

    def _meta(self, raw: Any, ctx: Ctx) -> m.Meta:
        values = _METADATA(ctx, raw, "metadata") if raw is not None else {}
        if not isinstance(values, dict):
            values = {}
        name = values.get("name", "")
        if not name:
            ctx.error("metadata", "metadata.name is required")
        elif len(name) > 253:  # the API server's limit on an object's name (a DNS subdomain)
            ctx.error("metadata.name", f"metadata.name: must be no more than 253 characters (has {len(name)})")
        namespace = values.get("namespace") or self.default_namespace
        if not is_dns1123_label(namespace):
            ctx.error(
                "metadata.namespace",
                f'metadata.namespace: "{namespace}" is not a valid namespace name',
            )
        meta = m.Meta(name=name, namespace=namespace, labels=values.get("labels", {}), order=self.order)
        self.order += 1
        return meta

    # ----------------------------------------------------------------- results

    def _file_error(self, filename: str, line: int, message: str, severity: str = "error") -> None:
        self.file_order.setdefault(filename, len(self.file_order))
        self.diagnostics.append(Diagnostic(severity, message, filename, line))  # type: ignore[arg-type]

    def finish(self) -> LoadResult:
        objs = list(self.resources.values())
        config = m.Config(
            virtual_services=tuple(o for o in objs if isinstance(o, m.VirtualService)),
            destination_rules=tuple(o for o in objs if isinstance(o, m.DestinationRule)),
            service_entries=tuple(o for o in objs if isinstance(o, m.ServiceEntry)),
            workload_entries=tuple(o for o in objs if isinstance(o, m.WorkloadEntry)),
            gateways=tuple(o for o in objs if isinstance(o, m.Gateway)),
        )
        config = k8s.finish(config, objs, self.diagnostics)
        diagnostics = self.diagnostics + analyze(k8s.analyzable(config))
        diagnostics.sort(key=lambda d: (self.file_order.get(d.file, -1), d.line))
        return LoadResult(config=config, diagnostics=Diagnostics(items=diagnostics), files=tuple(self.file_order),
                          specs=self.specs or {}, skipped=tuple(self.skipped))
