"""Hostile configuration: the loader fed generated malformed YAML (bombs, deep nesting, huge
scalars, binary bytes, a wrong type at every field of a valid config), with a fixed seed.

After each batch: no exception escaped, nothing hung (each batch is timed), every problem is
a diagnostic with FILE:LINE, and the process's peak memory grew by less than RSS_BOUND.
"""

from __future__ import annotations

import copy
import random
import resource
import time
from collections.abc import Iterator
from typing import Any

import pytest
import yaml

from simulator.config import load, load_text
from simulator.config.yamlio import MAX_DEPTH, MAX_SCALAR_CHARS
from simulator.routecheck.spec import parse_test_text

SEED = 20261202
FILE = "fuzz.yaml"
RSS_BOUND_KB = 300 * 1024  # growth of the peak RSS allowed per batch
BATCH_SECONDS = 10.0

BASE: list[dict[str, Any]] = [
    {
        "apiVersion": "networking.istio.io/v1", "kind": "VirtualService",
        "metadata": {"name": "reviews", "namespace": "default", "labels": {"app": "reviews"}},
        "spec": {
            "hosts": ["reviews"],
            "gateways": ["mesh"],
            "http": [{
                "name": "main",
                "match": [{"uri": {"regex": "/api/v[0-9]+/.*"}, "headers": {"x-user": {"exact": "jason"}},
                           "queryParams": {"q": {"prefix": "a"}}, "ignoreUriCase": True, "port": 9080}],
                "rewrite": {"uriRegexRewrite": {"match": "^/api/(.*)$", "rewrite": "/\\1"}},
                "route": [{"destination": {"host": "reviews", "subset": "v1", "port": {"number": 9080}},
                           "weight": 90, "headers": {"request": {"set": {"x-a": "1"}}}},
                          {"destination": {"host": "reviews", "subset": "v2"}, "weight": 10}],
                "mirror": {"host": "reviews", "subset": "v3"},
                "mirrorPercentage": {"value": 50.0},
                "timeout": "5s",
                "retries": {"attempts": 3, "perTryTimeout": "1s", "retryOn": "5xx"},
                "fault": {"delay": {"fixedDelay": "1s", "percentage": {"value": 10.0}}},
                "corsPolicy": {"allowOrigins": [{"regex": "https://.*\\.example\\.com"}]},
            }, {"route": [{"destination": {"host": "reviews", "subset": "v1"}}]}],
        },
    },
    {
        "apiVersion": "networking.istio.io/v1", "kind": "DestinationRule",
        "metadata": {"name": "reviews"},
        "spec": {
            "host": "reviews",
            "trafficPolicy": {"loadBalancer": {"simple": "ROUND_ROBIN"},
                              "connectionPool": {"http": {"http1MaxPendingRequests": 10}},
                              "outlierDetection": {"consecutive5xxErrors": 5, "interval": "10s"}},
            "subsets": [{"name": "v1", "labels": {"version": "v1"}},
                        {"name": "v2", "labels": {"version": "v2"}},
                        {"name": "v3", "labels": {"version": "v3"}}],
        },
    },
    {
        "apiVersion": "networking.istio.io/v1", "kind": "ServiceEntry",
        "metadata": {"name": "reviews"},
        "spec": {
            "hosts": ["reviews.default.svc.cluster.local"], "location": "MESH_INTERNAL",
            "resolution": "STATIC", "ports": [{"number": 9080, "name": "http", "protocol": "HTTP"}],
            "endpoints": [{"address": "127.0.0.1", "ports": {"http": 18081}, "labels": {"version": "v1"}}],
        },
    },
]

WRONG: list[Any] = [None, 0, -1, 1e308, True, "", "x" * 5000, [], {}, [[["deep"]]], {"a": {"b": 1}},
                    "\x00\x07\ufffd", "*", -(2**70)]


_DUMPER: Any = getattr(yaml, "CSafeDumper", yaml.SafeDumper)


def _dump(docs: list[Any]) -> str:
    return yaml.dump_all(docs, Dumper=_DUMPER, sort_keys=False, allow_unicode=False)


def _paths(value: Any, prefix: tuple[Any, ...] = ()) -> Iterator[tuple[Any, ...]]:
    yield prefix
    if isinstance(value, dict):
        for k, v in value.items():
            yield from _paths(v, (*prefix, k))
    elif isinstance(value, list):
        for i, v in enumerate(value):
            yield from _paths(v, (*prefix, i))


def _replace(docs: list[Any], path: tuple[Any, ...], new: Any) -> list[Any]:
    out = copy.deepcopy(docs)
    target: Any = out
    for key in path[:-1]:
        target = target[key]
    target[path[-1]] = new
    return out


class Batch:
    """Runs inputs through ``check``, timing the batch and its growth of the peak RSS."""

    def __init__(self, name: str) -> None:
        self.name = name
        self.count = 0

    def __enter__(self) -> Batch:
        self.t0 = time.perf_counter()
        self.rss0 = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
        return self

    def __exit__(self, *exc: object) -> None:
        elapsed = time.perf_counter() - self.t0
        grown = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss - self.rss0
        if exc[0] is None:
            assert self.count > 0
            assert elapsed < BATCH_SECONDS, f"{self.name}: {self.count} inputs took {elapsed:.1f}s"
            assert grown < RSS_BOUND_KB, f"{self.name}: peak RSS grew by {grown} KB"


def check(text: str, *, expect_error: bool, what: str, limit_s: float = 1.0) -> None:
    """Load ``text``; no exception, within ``limit_s``, every diagnostic FILE:LINE."""
    t0 = time.perf_counter()
    try:
        result = load_text(text, FILE)
    except Exception as exc:  # noqa: BLE001 - the point: nothing may escape
        pytest.fail(f"{what}: {type(exc).__name__}: {exc}\n--- input ---\n{text[:2000]}")
    elapsed = time.perf_counter() - t0
    assert elapsed < limit_s, f"{what}: loading took {elapsed:.2f}s"
    for d in result.diagnostics:
        assert d.file == FILE and isinstance(d.line, int) and d.line >= 0, (what, d)
        assert d.format().startswith(f"{FILE}:{d.line}: {d.severity}"), (what, d.format())
        assert len(d.message) < 20_000, (what, "a diagnostic repeats the huge input")
    if expect_error:
        assert not result.ok, f"{what}: no error for\n{text[:2000]}"


def _run(batch: Batch, cases: list[tuple[str, str, bool]]) -> None:
    with batch:
        for what, text, expect_error in cases:
            check(text, expect_error=expect_error, what=what)
            batch.count += 1


def test_the_base_config_is_valid():
    result = load_text(_dump(BASE), FILE)
    assert result.ok, [d.format() for d in result.diagnostics]


def test_a_wrong_type_at_every_field():
    """Every field of every resource replaced by values of other types (a seeded sample of
    WRONG per field, always including a scalar/collection swap): errors, never a crash."""
    rnd = random.Random(SEED)
    scalars = [w for w in WRONG if not isinstance(w, dict | list)]
    collections = [w for w in WRONG if isinstance(w, dict | list)]
    cases = []
    for i, doc in enumerate(BASE):
        for path in _paths(doc):
            if not path:
                continue
            original = _value_at(doc, path)
            swap_to = scalars if isinstance(original, dict | list) else collections
            values = [rnd.choice(swap_to), *rnd.sample(WRONG, 3)]
            for new in values:
                if type(new) is type(original) and not isinstance(new, list | dict):
                    continue
                swap = isinstance(original, dict | list) != isinstance(new, dict | list) and new is not None
                mutated = _replace([doc], (0, *path), new)
                cases.append((f"doc {i} {'.'.join(map(str, path))} = {str(new)[:30]!r}", _dump(mutated),
                              swap and _strict(path)))
    assert len(cases) > 400
    _run(Batch("wrong types"), cases)


def _value_at(doc: Any, path: tuple[Any, ...]) -> Any:
    for key in path:
        doc = doc[key]
    return doc


def _strict(path: tuple[Any, ...]) -> bool:
    """Fields where a scalar/collection swap must be an error (not free-form: labels,
    annotations and header values take any string, so some swaps there are valid)."""
    return path[0] == "spec" and "labels" not in path and "set" not in path


def test_byte_level_mutations():
    """Bytes flipped, dropped, duplicated, binary and control bytes inserted."""
    rnd = random.Random(SEED)
    base = _dump(BASE)
    junk = ["\x00", "\x01", "\x7f", "\ufffe", "\ud800", "{", "[", "]", "}", ":", "- ", "&a ", "*a", "<<: ",
            "!!python/object:os.system ", "!!binary ", "%YAML 1.1\n", "---\n", "...\n", "? ", "|", ">", "'", '"',
            "\t", "\n  ", "    ", "~", "0x", "1e999", "&x [*x]"]
    cases = []
    for n in range(600):
        text = list(base)
        for _ in range(rnd.randint(1, 4)):
            pos = rnd.randrange(len(text))
            op = rnd.randrange(4)
            if op == 0:
                text.insert(pos, rnd.choice(junk))
            elif op == 1:
                del text[pos:pos + rnd.randint(1, 40)]
            elif op == 2:
                text[pos] = chr(rnd.randrange(0, 0x250))
            else:
                text.insert(pos, "".join(text[pos:pos + rnd.randint(1, 80)]))
        cases.append((f"byte mutation {n}", "".join(text), False))
    _run(Batch("byte mutations"), cases)


def _bomb(levels: int, width: int, merge: bool = False) -> str:
    lines = ["apiVersion: networking.istio.io/v1", "kind: VirtualService", "metadata: {name: bomb}",
             "spec:", "  hosts: [a]", "  http:", "  - route: [{destination: {host: a}}]"]
    if merge:
        lines.append("    b0: &b0 {" + ", ".join(f"k{i}: v" for i in range(width)) + "}")
        for i in range(1, levels):
            lines.append(f"    b{i}: &b{i} {{<<: [" + ", ".join(f"*b{i - 1}" for _ in range(width)) + "]}")
        return "\n".join(lines) + "\n"
    lines.append("    x0: &a0 [" + ", ".join(['"lol"'] * width) + "]")
    for i in range(1, levels):
        lines.append(f"    x{i}: &a{i} [" + ", ".join([f"*a{i - 1}"] * width) + "]")
    return "\n".join(lines) + "\n"


def _distinct_merges(n: int, keys: int) -> str:
    """n distinct mappings each merging one big mapping, then all of them merged:
    PyYAML's flatten_mapping would copy n * keys entries."""
    big = "{" + ", ".join(f"k{i}: v" for i in range(keys)) + "}"
    lines = ["apiVersion: v1", "kind: ConfigMap", "metadata: {name: c}", "data:", f"  big: &big {big}", "  ms:"]
    lines += [f"  - &m{i} {{<<: *big, own{i}: x}}" for i in range(n)]
    lines.append("  all: {<<: [" + ", ".join(f"*m{i}" for i in range(n)) + "]}")
    return "\n".join(lines) + "\n"


def test_bombs_nesting_and_huge_scalars():
    cases = [
        ("billion laughs 9x9", _bomb(9, 9), True),
        ("alias bomb 30x2", _bomb(30, 2), True),
        ("alias bomb 5x100", _bomb(5, 100), True),
        ("merge bomb 6x50", _bomb(6, 50, merge=True), False),  # merges of one mapping stay small
        ("distinct merges", _distinct_merges(200, 2000), True),
        ("many small bombs", ("a0: &a0 [" + ", ".join("x" * 10) + "]\na1: &a1 [" + ", ".join(["*a0"] * 10)
                              + "]\na2: [" + ", ".join(["*a1"] * 10) + "]\n---\n") * 1000, True),
        ("recursive alias", "a: &a [*a, *a]\n", True),
        ("recursive mapping alias", "a: &a {x: *a, y: *a}\n", True),
        ("self merge", "a: &a {<<: *a}\n", True),
        ("deep flow nesting", "a: " + "[" * (MAX_DEPTH + 50) + "]" * (MAX_DEPTH + 50) + "\n", True),
        ("deeper than libyaml", "a: " + "[" * 5000 + "]" * 5000 + "\n", True),
        ("deep block nesting", "".join("  " * i + f"k{i}:\n" for i in range(MAX_DEPTH + 20)) + "  " * 120 + "v: 1\n",
         True),
        ("huge scalar", "apiVersion: networking.istio.io/v1\nkind: VirtualService\nmetadata: {name: a}\n"
                        "spec: {hosts: [" + "h" * (MAX_SCALAR_CHARS + 1) + "]}\n", True),
        ("huge key", "{" + "k" * (MAX_SCALAR_CHARS + 1) + ": 1}\n", True),
        ("huge regex", _dump([_replace(BASE, (0, "spec", "http", 0, "match", 0, "uri", "regex"), "a" * 100_000)[0]]),
         True),
        ("many documents", "---\n" * 5000, False),
        ("many tiny documents", "a: 1\n---\n" * 1000, True),
        ("binary", "".join(chr(b) for b in random.Random(SEED).randbytes(4000)), True),
        ("python tag", "!!python/object/apply:os.system ['true']\n", True),
        ("unknown tag", "a: !Ref x\n", True),
        ("long line", "a: " + "b " * 100_000 + "\n", True),
    ]
    with Batch("bombs") as batch:
        for what, text, expect_error in cases:
            check(text, expect_error=expect_error, what=what)
            batch.count += 1
    big = _bomb(9, 9)
    t0 = time.perf_counter()
    tf = parse_test_text(big.replace("apiVersion", "tests: []\nx", 1), "t.test.yaml")
    assert time.perf_counter() - t0 < 1 and any("aliasing" in d.message for d in tf.diagnostics)


def test_hostile_files(tmp_path, monkeypatch):
    """Files: too large, FIFO, devices, binary, a directory holding a FIFO."""
    import os

    monkeypatch.setenv("MIRRORSIM_MAX_CONFIG_BYTES", "4096")
    big = tmp_path / "big.yaml"
    big.write_text("a: " + "x" * 5000 + "\n")
    fifo = tmp_path / "pipe.yaml"
    os.mkfifo(fifo)
    binary = tmp_path / "bin.yaml"
    binary.write_bytes(b"apiVersion: v1\nkind: \xff\xfe\x00\n")
    cases = [(big, "more than the limit of 4096 bytes"), (fifo, "is a FIFO"),
             ("/dev/zero", "character device"), ("/dev/null", "character device"),
             (binary, "not UTF-8 text (byte 0xff at line 2)")]
    with Batch("files") as batch:
        for path, message in cases:
            t0 = time.perf_counter()
            result = load([path])
            assert time.perf_counter() - t0 < 1
            errors = [d for d in result.diagnostics if d.severity == "error"]
            assert len(errors) == 1 and message in errors[0].message, (path, errors)
            assert errors[0].file == str(path)
            batch.count += 1
        (tmp_path / "d").mkdir()
        os.mkfifo(tmp_path / "d" / "x.yaml")
        (tmp_path / "d" / "ok.yaml").write_text(_dump(BASE[1:2]))
        result = load([tmp_path / "d"])  # the FIFO in a directory is skipped, never opened
        assert result.ok and len(result.config.destination_rules) == 1
        batch.count += 1

