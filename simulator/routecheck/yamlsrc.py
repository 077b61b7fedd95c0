"""Read route-test YAML keeping the line of every field path.

``read_documents(text, filename)`` returns one ``Doc`` per YAML document: the
plain value and ``lines`` mapping ``tests[0].expect.destination.subset`` to its
1-based line; YAML syntax errors come back as diagnostics, never exceptions.
"""

from __future__ import annotations

import gc
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any

from yaml.constructor import ConstructorError, SafeConstructor
from yaml.nodes import MappingNode, Node, ScalarNode, SequenceNode

from simulator.config.yamlio import Expansion, InputError, compose
from simulator.diagnostics import Diagnostic
from simulator.model.istio import line_of

_CONSTRUCTOR = SafeConstructor()
_STRING_TAGS = ("tag:yaml.org,2002:str", "tag:yaml.org,2002:timestamp")


@dataclass(slots=True)
class Doc:
    value: Any
    file: str
    line: int
    lines: dict[str, int] = field(default_factory=dict)
    expansion: Expansion = field(default_factory=Expansion, repr=False, compare=False)

    def line_of(self, path: str) -> int:
        return line_of(self.lines, path, self.line)


@contextmanager
def no_gc() -> Iterator[None]:
    """Pause the cyclic garbage collector while building large, acyclic trees:
    with it on, reading 10,000 tests takes several times longer (its full
    collections rescan every object already built)."""
    was = gc.isenabled()
    gc.disable()
    try:
        yield
    finally:
        if was:
            gc.enable()


def read_documents(text: str, filename: str) -> tuple[list[Doc], list[Diagnostic]]:
    docs: list[Doc] = []
    problems: list[Diagnostic] = []
    expansion = Expansion()
    try:
        for node in compose(text, expansion):
            doc = Doc(None, filename, node.start_mark.line + 1, expansion=expansion)
            doc.value = _convert(node, "", doc, problems, 0)
            docs.append(doc)
    except InputError as exc:
        problems.append(Diagnostic("error", exc.message, filename, exc.line))
    return docs, problems


def _convert(node: Node, path: str, doc: Doc, problems: list[Diagnostic], depth: int) -> Any:
    line = node.start_mark.line + 1
    problem = doc.expansion.enter(node, depth)
    if problem is not None:
        if problem:
            problems.append(Diagnostic("error", problem, doc.file, line, path))
        return None
    if isinstance(node, MappingNode):
        problem = doc.expansion.merge(node)
        if problem is not None:
            problems.append(Diagnostic("error", f"invalid merge key: {problem}", doc.file, line, path))
        out: dict[str, Any] = {}
        for key_node, value_node in node.value:
            key = _scalar(key_node, path, doc, problems) if isinstance(key_node, ScalarNode) else None
            if not isinstance(key, str):
                key = str(key).lower() if isinstance(key, bool) else str(key)
            p = f"{path}.{key}" if path else key
            if key in out:
                problems.append(Diagnostic("error", f'duplicate key "{key}" (first at line {doc.lines.get(p)})',
                                           doc.file, key_node.start_mark.line + 1, p))
                continue
            doc.lines[p] = key_node.start_mark.line + 1
            out[key] = _convert(value_node, p, doc, problems, depth + 1)
        doc.expansion.leave()
        return out
    if isinstance(node, SequenceNode):
        items = []
        for i, item in enumerate(node.value):
            p = f"{path}[{i}]"
            doc.lines[p] = item.start_mark.line + 1
            items.append(_convert(item, p, doc, problems, depth + 1))
        doc.expansion.leave()
        return items
    return _scalar(node, path, doc, problems)


def _scalar(node: Node, path: str, doc: Doc, problems: list[Diagnostic]) -> Any:
    if node.tag in _STRING_TAGS:
        return str(node.value)
    constructor = SafeConstructor.yaml_constructors.get(node.tag)
    if constructor is None:
        problems.append(Diagnostic("error", f"unsupported YAML tag {node.tag}", doc.file,
                                   node.start_mark.line + 1, path))
        return str(node.value)
    try:
        return constructor(_CONSTRUCTOR, node)
    except (ConstructorError, ValueError) as exc:
        problems.append(Diagnostic("error", f"invalid YAML value: {exc}", doc.file, node.start_mark.line + 1, path))
        return str(node.value)
