"""Reading YAML input within bounds, with the line of every field: the one YAML
reader (Istio config in simulator/config/loader.py, route tests in
simulator/routecheck/, and any other input format use it).

:func:`read_documents` (or :func:`parse_documents` for text) gives one
:class:`Document` per YAML document: its plain value, the 1-based line of every
field path (``spec.http[1].route[0].destination.subset``, ``tests[0].expect``) and
the problems found while converting (duplicate keys, bad tags, merge keys).

Hostile or broken input ends in an :class:`InputError` (message and line) within a
second, never in a hang, a traceback or unbounded memory:

* only regular files are read (a FIFO, device or socket is refused from ``stat``,
  without opening it for reading), at most :func:`max_file_bytes` bytes of them;
* aliases may not multiply the document (``billion laughs``): :class:`Expansion`
  lets aliases and merge keys (``<<: *a``) add :data:`ALIAS_FLOOR` values to a
  file, and past that no more than it holds itself (stricter than Go's yaml.v3,
  which allows 99% up to 400,000 values: converting is slower here); merge keys
  copy at most :data:`MAX_MERGED_ENTRIES` entries;
* nesting deeper than :data:`MAX_DEPTH` and scalars longer than
  :data:`MAX_SCALAR_CHARS` are refused.
"""

from __future__ import annotations

import gc
import os
import stat
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any

import yaml
from yaml.constructor import ConstructorError, SafeConstructor
from yaml.nodes import MappingNode, Node, ScalarNode, SequenceNode

from simulator.model.istio import line_of

try:  # libyaml's composer is several times faster; both are safe loaders
    LOADER: Any = yaml.CSafeLoader
except AttributeError:  # pragma: no cover - PyYAML without libyaml
    LOADER = yaml.SafeLoader

MAX_FILE_BYTES_ENV = "MIRRORSIM_MAX_CONFIG_BYTES"
DEFAULT_MAX_FILE_BYTES = 8 * 1024 * 1024
MAX_DEPTH = 100  # nested mappings and sequences (an Istio resource needs about 10)
MAX_SCALAR_CHARS = 256 * 1024  # Kubernetes' limit on all of an object's annotations together
ALIAS_FLOOR = 10_000  # values aliases may add to any file; past it, no more than its own
MAX_MERGED_ENTRIES = 100_000  # entries merge keys (<<: *base) may copy, per file
MERGE_KEY_TAG = "tag:yaml.org,2002:merge"


class InputError(Exception):
    """Input mirrorsim refuses to read: ``message``, at ``line`` (1-based; 0: the file)."""

    def __init__(self, message: str, line: int = 0) -> None:
        super().__init__(message)
        self.message = message
        self.line = line


def max_file_bytes() -> int:
    """The largest file read: ``MIRRORSIM_MAX_CONFIG_BYTES`` or 8 MiB."""
    raw = os.environ.get(MAX_FILE_BYTES_ENV, "")
    try:
        value = int(raw)
    except ValueError:
        return DEFAULT_MAX_FILE_BYTES
    return value if value > 0 else DEFAULT_MAX_FILE_BYTES


_KINDS = ((stat.S_ISFIFO, "a FIFO (named pipe)"), (stat.S_ISCHR, "a character device"),
          (stat.S_ISBLK, "a block device"), (stat.S_ISSOCK, "a socket"))


def not_a_file(mode: int) -> str:
    for test, what in _KINDS:
        if test(mode):
            return what
    return "not a regular file"


STDIN = "-"  # ``-f -``: the YAML stream on standard input
STDIN_NAME = "<stdin>"  # its name in diagnostics (<stdin>:LINE)
_stdin_text: str | None = None


def read_stdin() -> str:
    """Standard input as UTF-8 text, read once per process (every later call gets the
    same text) and within :func:`max_file_bytes` bytes."""
    global _stdin_text
    if _stdin_text is None:
        limit = max_file_bytes()
        stream = sys.stdin
        if stream is None:  # started with standard input closed (`<&-`)
            raise InputError("standard input is closed: -f - has nothing to read")
        if stream.isatty():  # not a hang: the shell waits for the user's YAML
            print("mirrorsim: reading the configuration from standard input (a terminal); "
                  "end it with Ctrl-D", file=sys.stderr, flush=True)
        try:
            data = getattr(stream, "buffer", stream).read(limit + 1)
        except OSError as exc:
            raise InputError(f"cannot read standard input: {exc.strerror or exc}") from None
        if isinstance(data, str):
            data = data.encode("utf-8", "surrogateescape")
        if len(data) > limit:  # a pipe's size is unknown: only that it is past the limit
            raise InputError(f"{STDIN_NAME} is more than the limit of {limit} bytes "
                             f"(set {MAX_FILE_BYTES_ENV} to read more)")
        _stdin_text = _decode(data, STDIN_NAME)
    return _stdin_text


def read_text(path: str | os.PathLike[str]) -> str:
    """The UTF-8 text of a regular file of at most :func:`max_file_bytes` bytes
    (``-``: standard input)."""
    name = os.fspath(path)
    if name == STDIN:
        return read_stdin()
    limit = max_file_bytes()
    try:
        st = os.stat(name)
        if stat.S_ISDIR(st.st_mode):
            raise InputError(f"{name} is a directory")
        if not stat.S_ISREG(st.st_mode):
            raise InputError(f"{name} is {not_a_file(st.st_mode)}: mirrorsim reads only "
                             f"regular files and directories")
        if st.st_size > limit:
            raise InputError(_too_large(name, st.st_size, limit))
        # O_NONBLOCK: should the path have become a FIFO since the stat, opening it does not wait
        fd = os.open(name, os.O_RDONLY | os.O_NONBLOCK | getattr(os, "O_NOCTTY", 0))
        try:
            st = os.fstat(fd)
            if not stat.S_ISREG(st.st_mode):
                raise InputError(f"{name} is {not_a_file(st.st_mode)}: mirrorsim reads only "
                                 f"regular files and directories")
            chunks = []
            size = 0
            while size <= limit:
                chunk = os.read(fd, min(1 << 20, limit + 1 - size))
                if not chunk:
                    break
                chunks.append(chunk)
                size += len(chunk)
        finally:
            os.close(fd)
    except OSError as exc:
        raise InputError(f"cannot read {name}: {exc.strerror or exc}") from None
    data = b"".join(chunks)
    if len(data) > limit:  # it grew after the stat
        raise InputError(_too_large(name, len(data), limit))
    return _decode(data, name)


def _decode(data: bytes, name: str) -> str:
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError as exc:
        line = data.count(b"\n", 0, exc.start) + 1
        raise InputError(f"{name} is not UTF-8 text (byte 0x{data[exc.start]:02x} at line {line}); "
                         f"YAML files must be UTF-8", line) from None


def _too_large(name: str, size: int, limit: int) -> str:
    return (f"{name} is {size} bytes, more than the limit of {limit} bytes "
            f"(set {MAX_FILE_BYTES_ENV} to read larger files)")


def compose(text: str, expansion: Expansion | None = None) -> Iterator[Node]:
    """The non-empty documents of ``text`` as YAML nodes (aliases share their node).
    Raises InputError for a YAML syntax error (after yielding the documents before it).
    ``expansion``, which the caller converts the nodes with, is told where each
    document starts: its limits hold for the whole text, not each document."""
    try:
        for node in yaml.compose_all(text, Loader=LOADER):
            if node is None or (isinstance(node, ScalarNode) and node.tag == "tag:yaml.org,2002:null"):
                continue  # empty document
            if expansion is not None:
                expansion.next_document()
            yield node
    except yaml.reader.ReaderError as exc:  # a character YAML does not allow
        line = text.count("\n", 0, exc.position) + 1
        what = f"#x{exc.character:04x}" if isinstance(exc.character, int) else repr(exc.character)
        raise InputError(f"YAML syntax error: unacceptable character {what} ({exc.reason}) "
                         f"at line {line}", line) from None
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None) or getattr(exc, "context_mark", None)
        line = mark.line + 1 if mark is not None else 0
        problem = getattr(exc, "problem", None) or str(exc)
        context = getattr(exc, "context", None)
        where = f" ({context})" if context else ""
        col = f", column {mark.column + 1}" if mark is not None else ""
        raise InputError(f"YAML syntax error: {problem}{where} at line {line}{col}", line) from None
    except UnicodeEncodeError as exc:  # a str with lone surrogates (load_text), not from a file
        line = text.count("\n", 0, exc.start) + 1
        raise InputError(f"YAML syntax error: character U+{ord(text[exc.start]):04X} is not valid "
                         f"Unicode at line {line}", line) from None
    except RecursionError:  # the pure-Python composer on deep nesting (libyaml stops at 1000)
        raise InputError(f"YAML nesting is deeper than {MAX_DEPTH} levels") from None


class Expansion:
    """Counts the values one file's documents convert into, to refuse excessive aliasing.

    The converter calls :meth:`enter` for every node (``depth``: how many collections
    enclose it), and :meth:`leave` after the children of a collection it entered
    without a problem.  When :meth:`enter` returns a problem, the node converts to
    None and the problem is reported at it, unless it is ``""``: after excessive
    aliasing every further node is refused silently (the problem was reported).
    """

    __slots__ = ("values", "aliased", "_seen", "_stack", "_alias_level", "_failed", "_merge_budget")

    def __init__(self) -> None:
        self.values = 0
        self.aliased = 0  # values converted a second (third, ...) time through an alias
        self._seen: set[int] = set()
        self._stack: list[bool] = []  # per open collection: is it an alias expansion?
        self._alias_level = 0
        self._failed = False
        self._merge_budget = MAX_MERGED_ENTRIES

    def enter(self, node: Node, depth: int) -> str | None:
        if self._failed:
            return ""
        if depth > MAX_DEPTH:
            return f"YAML nesting is deeper than {MAX_DEPTH} levels (a recursive alias?)"
        self.values += 1
        if type(node) is ScalarNode:
            if len(node.value) > MAX_SCALAR_CHARS:
                return (f"a YAML value of {len(node.value)} characters, more than the limit of "
                        f"{MAX_SCALAR_CHARS}")
            return self._aliased() if self._alias_level else None
        key = id(node)
        repeated = key in self._seen
        if repeated or self._alias_level:
            problem = self._aliased()
            if problem is not None:
                return problem
        else:
            self._seen.add(key)
        self._stack.append(repeated)
        if repeated:
            self._alias_level += 1
        return None

    def _aliased(self, n: int = 1) -> str | None:
        self.aliased += n
        if self.aliased > ALIAS_FLOOR and self.aliased > self.values - self.aliased:
            self._failed = True
            return (f"excessive aliasing: the document's aliases and merge keys expand to more "
                    f"than {self.aliased} values, more than the document itself holds "
                    f"(a \"billion laughs\" YAML bomb?)")
        return None

    def next_document(self) -> None:
        """Forget the nodes of the last document (their ids may be reused now); the
        counts go on: many small bombs in one file add up."""
        self._seen.clear()
        self._stack.clear()
        self._alias_level = 0

    def leave(self) -> None:
        if self._stack.pop():
            self._alias_level -= 1

    def merge(self, node: MappingNode) -> str | None:
        """Resolve YAML merge keys (``<<: *base`` / ``<<: [*a, *b]``) in ``node``, in
        place: the merged mappings' entries first, each key once (the mapping's own
        keys win, then the first mapping listed), as PyYAML's ``flatten_mapping``
        gives them but without copying entries again at every level of nested
        merges; at most MAX_MERGED_ENTRIES entries are copied per file."""
        if not _has_merge_key(node):
            return None
        own = sum(1 for k, _ in node.value if k.tag != MERGE_KEY_TAG)
        budget = [self._merge_budget]
        problem = _merge(node, set(), budget)
        self._merge_budget = budget[0]
        if problem is not None:
            if problem.startswith("excessive"):
                self._failed = True
            return problem
        return self._aliased(len(node.value) - own)  # the merged entries are converted again


def _has_merge_key(node: MappingNode) -> bool:
    for k, _ in node.value:
        if k.tag == MERGE_KEY_TAG:
            return True
    return False


def _merge(node: MappingNode, active: set[int], budget: list[int]) -> str | None:
    """Expansion.merge's work: ``budget[0]`` entries may still be copied."""
    if not _has_merge_key(node):
        return None
    if id(node) in active:
        return "a merge key (<<) that includes its own mapping"
    active.add(id(node))
    try:
        merged: list[tuple[Node, Node]] = []
        own: list[tuple[Node, Node]] = []
        done: set[int] = set()
        for key, value in node.value:
            if not (isinstance(key, ScalarNode) and key.tag == MERGE_KEY_TAG):
                own.append((key, value))
                continue
            sources = value.value if isinstance(value, SequenceNode) else [value]
            for src in sources:
                if id(src) in done:
                    continue  # the same mapping merged again adds nothing
                done.add(id(src))
                if not isinstance(src, MappingNode):
                    return (f"a merge key (<<) needs a mapping or a list of mappings, "
                            f"got {_kind(src)} at line {src.start_mark.line + 1}")
                problem = _merge(src, active, budget)
                if problem is not None:
                    return problem
                budget[0] -= len(src.value)
                if budget[0] < 0:
                    return (f"excessive merging: merge keys (<<) copy more than "
                            f"{MAX_MERGED_ENTRIES} entries (a YAML bomb?)")
                merged.extend(src.value)
        seen = {_key_id(k) for k, _ in own}
        first: list[tuple[Node, Node]] = []
        for key, value in merged:  # the first mapping listed wins
            kid = _key_id(key)
            if kid not in seen:
                seen.add(kid)
                first.append((key, value))
        node.value = first + own
        return None
    finally:
        active.discard(id(node))


def _key_id(node: Node) -> object:
    return (node.tag, node.value) if isinstance(node, ScalarNode) else id(node)


def _kind(node: Node) -> str:
    return "a list" if isinstance(node, SequenceNode) else "a scalar" if isinstance(node, ScalarNode) else "a mapping"


# ------------------------------------------------------------------ YAML nodes -> values


@dataclass(slots=True)
class Document:
    """One YAML document's plain value, with the line of every field path."""

    value: Any
    line: int  # of its first key (a mapping), else where it starts
    lines: dict[str, int] = field(default_factory=dict)
    problems: list[tuple[str, int, str]] = field(default_factory=list)  # (path, line, message)
    expansion: Expansion = field(default_factory=Expansion, repr=False, compare=False)

    def line_of(self, path: str) -> int:
        """The line of ``path``, or of its nearest ancestor that has one."""
        return line_of(self.lines, path, self.line)


def parse_documents(text: str, expansion: Expansion | None = None) -> Iterator[Document]:
    """The non-empty documents of ``text``, converted.  Raises InputError (after
    yielding the documents before it) as :func:`compose` does."""
    expansion = expansion or Expansion()  # the limits on aliases hold for the whole text
    for node in compose(text, expansion):
        yield to_document(node, expansion)


def read_documents(path: str | os.PathLike[str]) -> list[Document]:
    """One file's documents (the file read with :func:`read_text`).  Raises
    InputError; use :func:`parse_documents` to keep the documents before a problem."""
    return list(parse_documents(read_text(path)))


def to_document(node: Node, expansion: Expansion) -> Document:
    doc = Document(value=None, line=node.start_mark.line + 1, expansion=expansion)
    doc.value = _convert(node, "", doc, 0)
    if isinstance(node, MappingNode) and node.value:
        doc.line = node.value[0][0].start_mark.line + 1
    return doc


@contextmanager
def no_gc() -> Iterator[None]:
    """Pause the cyclic garbage collector while building large, acyclic trees:
    with it on, reading 10,000 route tests takes several times longer (its full
    collections rescan every object already built)."""
    was = gc.isenabled()
    gc.disable()
    try:
        yield
    finally:
        if was:
            gc.enable()


_CONSTRUCTOR = SafeConstructor()
_STR_TAG = "tag:yaml.org,2002:str"
_STRING_TAGS = ("tag:yaml.org,2002:timestamp", _STR_TAG)


def _convert(node: Node, path: str, doc: Document, depth: int) -> Any:
    problem = doc.expansion.enter(node, depth)
    if problem is not None:
        if problem:
            doc.problems.append((path, node.start_mark.line + 1, problem))
        return None
    if isinstance(node, MappingNode):
        out: Any = _convert_mapping(node, path, doc, depth)
    elif isinstance(node, SequenceNode):
        out = []
        for i, item in enumerate(node.value):
            p = f"{path}[{i}]"
            doc.lines.setdefault(p, item.start_mark.line + 1)
            out.append(_convert(item, p, doc, depth + 1))
    else:
        return _scalar(node, path, doc)
    doc.expansion.leave()
    return out


def _convert_mapping(node: MappingNode, path: str, doc: Document, depth: int) -> dict[str, Any]:
    """A mapping's values; a key given twice is reported, its line is the first's and
    its value the last's.  Merge keys (``<<: *base``) are resolved first."""
    prefix = f"{path}." if path else ""
    lines = doc.lines
    out: dict[str, Any] = {}
    if not any(k.tag == MERGE_KEY_TAG for k, _ in node.value):  # the common case: one pass
        for key_node, value_node in node.value:
            key = key_node.value if key_node.tag == _STR_TAG else _key(key_node, path, doc)
            p = prefix + key
            if key in out:
                doc.problems.append((p, key_node.start_mark.line + 1,
                                     f'duplicate key "{key}" (first defined at line {lines[p]})'))
            else:
                lines[p] = key_node.start_mark.line + 1
            out[key] = _convert(value_node, p, doc, depth + 1)
        return out
    first_line: dict[str, int] = {}
    own_keys: dict[int, str] = {}  # id(key node) -> key, for the mapping's own keys
    for key_node, _ in node.value:
        if isinstance(key_node, ScalarNode) and key_node.tag != MERGE_KEY_TAG:
            key = key_node.value if key_node.tag == _STR_TAG else _key(key_node, path, doc)
            own_keys[id(key_node)] = key
            line = key_node.start_mark.line + 1
            if key in first_line:
                p = f"{path}.{key}" if path else key
                doc.problems.append((p, line, f'duplicate key "{key}" (first defined at line {first_line[key]})'))
            else:
                first_line[key] = line
    problem = doc.expansion.merge(node)  # YAML merge keys (<<: *anchor)
    if problem is not None:
        doc.problems.append((path, node.start_mark.line + 1, f"invalid merge key: {problem}"))
    for key_node, value_node in node.value:
        key = own_keys.get(id(key_node)) or _key(key_node, path, doc)
        p = prefix + key
        own = first_line.get(key)
        lines[p] = own if own is not None else lines.get(p, key_node.start_mark.line + 1)
        out[key] = _convert(value_node, p, doc, depth + 1)
    return out


def _key(node: Node, path: str, doc: Document) -> str:
    if isinstance(node, ScalarNode):
        value = _scalar(node, path, doc)
        if isinstance(value, bool):
            return "true" if value else "false"
        return "null" if value is None else str(value)
    doc.problems.append((path, node.start_mark.line + 1, "a mapping key must be a plain string"))
    return f"<{type(node).__name__}>"


def _scalar(node: Node, path: str, doc: Document) -> Any:
    if node.tag in _STRING_TAGS:
        return str(node.value)
    constructor = SafeConstructor.yaml_constructors.get(node.tag)
    if constructor is None:
        doc.problems.append((path, node.start_mark.line + 1, f"unsupported YAML tag {node.tag}"))
        return str(node.value)
    try:
        return constructor(_CONSTRUCTOR, node)
    except (ConstructorError, ValueError) as exc:
        doc.problems.append((path, node.start_mark.line + 1, f"invalid YAML value: {exc}"))
        return str(node.value)
