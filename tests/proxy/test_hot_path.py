"""The per-request shortcuts of the data plane (docs/performance.md): request ids, the
routing random values, and header names remembered per connection."""

from __future__ import annotations

import random
import uuid

import pytest

from simulator.proxy import headers
from simulator.proxy.headers import (
    CANONICAL_MAX_LENGTH,
    CANONICAL_MAX_NAMES,
    NAME_MEMO_SIZE,
    canonical_name,
    memo_name,
)
from simulator.proxy.ids import RandomValues, RequestIds


def test_request_ids_are_version_4_uuids_unique_and_seeded():
    ids = RequestIds(random.Random(7))
    got = [ids.next() for _ in range(1000)]  # several refills of 256
    assert len(set(got)) == 1000
    for s in got:
        u = uuid.UUID(s)
        assert str(u) == s and u.version == 4 and u.variant == uuid.RFC_4122
    again = RequestIds(random.Random(7))
    assert [again.next() for _ in range(1000)] == got
    other = RequestIds(random.Random(8))
    assert other.next() != got[0]


def test_random_values_are_64_bit_and_seeded():
    values = RandomValues(random.Random(3))
    got = [values.next() for _ in range(600)]  # crosses two refills
    assert all(0 <= v < 2**64 for v in got)
    assert len(set(got)) == 600
    assert max(got) > 2**63  # the whole range is used, not 32 or 53 bits
    again = RandomValues(random.Random(3))
    assert [again.next() for _ in range(600)] == got


@pytest.mark.parametrize("messages", [
    # the same names every time (the common case), then changes in case, order and count
    [[b"Host", b"User-Agent"], [b"Host", b"User-Agent"], [b"HOST", b"user-agent"]],
    [[b"A", b"B", b"C"], [b"C", b"A"], [b"A", b"B", b"C", b"D"]],
    [[b"X-One"], [], [b"X-Two", b"X-One"]],
])
def test_memo_name_gives_each_message_its_own_names(messages):
    memo: list[tuple[bytes, bytes]] = []
    for names in messages:
        got = [memo_name(memo, i, n) for i, n in enumerate(names)]
        assert got == [n.lower() for n in names]


def test_memo_name_is_bounded():
    memo: list[tuple[bytes, bytes]] = []
    names = [b"X-H%d" % i for i in range(NAME_MEMO_SIZE + 10)] + [b"X-" + b"L" * 100]
    got = [memo_name(memo, i, n) for i, n in enumerate(names)]
    assert got == [n.lower() for n in names]
    assert len(memo) == NAME_MEMO_SIZE
    # long names never stay in it, whether they come first at a position or replace a name
    # there (a client shortening its requests one header at a time, with a long last name)
    for k in reversed(range(NAME_MEMO_SIZE)):
        msg = [b"X-H%d" % i for i in range(k)] + [b"X" * 59000]
        assert [memo_name(memo, i, n) for i, n in enumerate(msg)] == [n.lower() for n in msg]
    assert max(len(raw) + len(c) for raw, c in memo) <= 2 * CANONICAL_MAX_LENGTH


def test_canonical_names_are_shared_and_bounded():
    long = b"X-" + b"Y" * 100
    assert canonical_name(long) == long.lower() and long not in headers._CANONICAL
    a, b = canonical_name(b"X-Shared-Name"), canonical_name(b"x-shared-name")
    assert a == b"x-shared-name" and a is b
    assert headers.NAME_STR[a] == "x-shared-name"
    for i in range(3 * CANONICAL_MAX_NAMES):  # a client sending ever new names
        assert canonical_name(b"X-Odd-%d" % i) == b"x-odd-%d" % i
        assert len(headers._CANONICAL) <= CANONICAL_MAX_NAMES + 1
    # emptied when full, not frozen: names seen after that are shared again
    c = canonical_name(b"X-Late-Name")
    assert canonical_name(b"x-late-name") is c and headers.NAME_STR[c] == "x-late-name"


@pytest.mark.parametrize("names, repeats", [
    ([], False),
    ([b"a"], False),
    ([b"content-length", b"content-type"], False),
    ([b"a", b"b", b"a"], True),
    ([b"a", b"b", b"c", b"d", b"e", b"f", b"g", b"h"], False),
    ([b"a", b"b", b"c", b"d", b"e", b"f", b"g", b"h", b"i"], False),  # past the pairwise size
    ([b"a", b"b", b"c", b"d", b"e", b"f", b"g", b"h", b"i", b"c"], True),
    ([b"x" * 100, b"y", b"x" * 100], True),  # long names are not shared objects
])
def test_repeats_a_name(names, repeats):
    hdrs = [(bytearray(n).decode("latin-1").encode("latin-1"), b"v") for n in names]  # fresh objects
    assert headers.repeats_a_name(hdrs) is repeats


def test_normalized_paths_are_cached_bounded_and_per_table():
    import dataclasses

    from simulator.core.paths import MERGE_SLASHES, normalize_path
    from simulator.core.table import PATH_CACHE_MAX_LENGTH, PATH_CACHE_SIZE, RouteTable

    table = RouteTable(route_configs={}, clusters={})
    for path in ("/a/../b", "//x//y", "/%41%2e/c", "/ok", "/%00"):
        assert table.normalize_path(path) == normalize_path(path)
        assert table.normalize_path(path) == normalize_path(path)  # from the cache
    assert "/%00" not in table.path_cache  # a rejected path is not cached
    merging = dataclasses.replace(table, path_normalization=MERGE_SLASHES)
    assert merging.normalize_path("//x//y") == "/x/y"  # its own cache, not the BASE one's
    assert table.normalize_path("//x//y") == "//x//y"
    for i in range(2 * PATH_CACHE_SIZE + 10):
        table.normalize_path(f"/p{i}")
        assert len(table.path_cache) <= PATH_CACHE_SIZE
    long = "/" + "l" * PATH_CACHE_MAX_LENGTH
    assert table.normalize_path(long) == long
    assert long not in table.path_cache
