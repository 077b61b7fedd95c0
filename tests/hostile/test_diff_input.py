"""Hostile responses for ``run --diff`` (core/response_diff.py runs on the proxy's loop):
a JSON nesting bomb at the depth where parsing just fits, and a 1 MiB body of short repeated
lines (difflib is quadratic on those). Each comparison returns promptly, then a normal one
still works."""

from __future__ import annotations

import json
import random
import time
from collections.abc import Callable
from typing import Any

import pytest

from simulator.core.response_diff import Response, compare, make_rules

JSON = [("content-type", "application/json")]
TEXT = [("content-type", "text/plain")]


def _normal_still_compares() -> None:
    res = compare(Response(200, JSON, b'{"v": 1}'), Response(200, JSON, b'{"v": 2}'), make_rules())
    assert not res.match and res.differences[0].field == "$.v"


def _at_stack_depth(n: int, fn: Callable[[], Any]) -> Any:
    return fn() if n == 0 else _at_stack_depth(n - 1, fn)


def _deepest_parsed(offset: int) -> int:
    """The deepest list json.loads parses ``offset`` frames down (compare parses 2 deeper)."""
    for depth in range(1000, 0, -1):
        try:
            _at_stack_depth(offset + 2, lambda d=depth: json.loads("[" * d + "]" * d))
        except RecursionError:
            continue
        return depth
    raise AssertionError("nothing parsed")


@pytest.mark.parametrize("paths", [(), ("$..b",)])
@pytest.mark.parametrize("offset", [5, 40])
def test_json_nesting_at_the_depths_where_parsing_just_fits(paths, offset):
    # json.loads stops at the recursion limit; at the one or two depths where it just fits,
    # walking the parsed value raised RecursionError out of compare (and out of the loop's
    # callback: the remaining pairs were never settled)
    rules = make_rules(json_paths=paths)
    top = _deepest_parsed(offset)
    for depth in range(top - 4, top + 2):
        a = ("[" * depth + "1" + "]" * depth).encode()
        b = ("[" * depth + "2" + "]" * depth).encode()
        res = _at_stack_depth(offset, lambda a=a, b=b: compare(Response(200, JSON, a), Response(200, JSON, b), rules))
        assert not res.match
    _normal_still_compares()


def test_a_megabyte_of_short_repeated_lines_is_diffed_promptly():
    rnd = random.Random(7)
    cap = make_rules().body_cap
    a = "\n".join(str(rnd.randrange(150)) for _ in range(cap // 4)).encode()[:cap]
    b = "\n".join(str(rnd.randrange(150)) for _ in range(cap // 4)).encode()[:cap]
    t0 = time.perf_counter()
    res = compare(Response(200, TEXT, a), Response(200, TEXT, b), make_rules())
    assert time.perf_counter() - t0 < 2.0
    assert not res.match and res.body_diff
    _normal_still_compares()
