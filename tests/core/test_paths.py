"""Path normalization (simulator/core/paths.py), table-driven from the cases of
Envoy's test/common/http/path_utility_test.cc (the facts, not the code) and from
Istio's pathNormalization settings."""

from __future__ import annotations

import pytest

from simulator.core.paths import (
    BASE,
    DECODE_AND_MERGE_SLASHES,
    MERGE_SLASHES,
    NONE,
    merge_slashes,
    normalize_path,
    parse_mode,
    strip_dot_segment_parameters,
    unescape_slashes,
)
from tests.conftest import registry_yaml, table_from_yaml, virtual_service

# PathUtilityTest.AlreadyNormalPaths / NormalizeValidPaths / NormalizeCasePath
ENVOY_CANONICAL = [
    ("/xyz", "/xyz"),
    ("/x/y/z", "/x/y/z"),
    ("/a/b/../c", "/a/c"),
    ("/a/b/./c", "/a/b/c"),
    ("a/b/../c", "/a/c"),
    ("/a/b/../../../../c", "/c"),
    ("/a/..\\c", "/c"),
    ("/%c0%af", "/%c0%af"),
    ("/%5c%25", "/%5c%25"),
    ("/a/b/%2E%2E/c", "/a/c"),
    ("/a/b/%2E./c", "/a/c"),
    ("/a/b/%2E/c", "/a/b/c"),
    ("..", "/"),
    ("/../a/b", "/a/b"),
    ("/./a/b", "/a/b"),
    ("/xyz/..;foo=bar/abc", "/abc"),
    ("/..;foo=bar/abc", "/abc"),
    ("/xyz/..;foo=bar", "/"),
    ("/xyz/.;foo=bar/abc", "/xyz/abc"),
    ("/.;foo=bar/abc", "/abc"),
    ("/xyz/.;foo=bar", "/xyz/"),
    ("/xyz/..;foo=bar/.;v1=2,v2=3/abc", "/abc"),
    ("/..;foo=bar/abc/.;mmm", "/abc/"),
    ("/.;aaa/..;foo=bar/abc/.;mmm", "/abc/"),
    ("/xyz/..;foo=bar/.;fff=zzz", "/"),
    ("/xyz/..;foo=bar/.;fff=zzz?blah=woops", "/?blah=woops"),
    ("/xyz/..;foo=bar/.;fff=zzz/remain;blah-bluh?query", "/remain;blah-bluh?query"),
    ("/A/B/C", "/A/B/C"),
    ("/a/b/%2e%2e/c", "/a/c"),
    ("/a/%2F%2f/c", "/a/%2F%2f/c"),
]

# PathUtilityTest.InvalidPaths: Envoy answers 400
ENVOY_INVALID = ["/xyz/.%00../abc", "/xyz/%00.%00./abc", "/xyz/AAAAA%%0000/abc"]

# what the brief's attacker paths become under BASE, and what BASE does not do
BASE_CASES = [
    ("/public/../admin/x", "/admin/x"),
    ("/x/%2e%2e/admin", "/admin"),
    ("/%61dmin", "/admin"),
    ("/a/./b", "/a/b"),
    ("/..", "/"),
    ("/admin/.", "/admin/"),
    ("/admin/%2E", "/admin/"),
    ("//admin", "//admin"),  # BASE does not merge slashes
    ("/a%2Fb", "/a%2Fb"),  # nor decode %2F
    ("/a%5Cb", "/a%5Cb"),  # nor %5C
    ("/a\\b", "/a/b"),  # a raw backslash is a slash
    ("/%7euser/%41", "/~user/A"),  # unreserved characters are decoded
    ("/a%20b%3f", "/a%20b%3f"),  # other escapes are kept as written
    ("/a b", "/a%20b"),  # characters a path may not hold are escaped
    ('/a"<>^`{|}', "/a%22%3C%3E%5E%60%7B%7C%7D"),
    ("/caf\xe9", "/caf%E9"),
    ("/a/../b?x=/../y&z=%61", "/b?x=/../y&z=%61"),  # the query is kept byte for byte
    ("/a/../b?", "/b?"),
    ("?x=1", "/?x=1"),
    ("/a/b#frag", "/a/b"),  # Istio's bootstrap strips the fragment
    ("/a/../b#x?y", "/b"),
    ("/.well-known/x", "/.well-known/x"),
    ("/v1.2/app.js", "/v1.2/app.js"),
    ("/a/...", "/a/..."),
    ("/a/..b/c", "/a/..b/c"),
    ("/%%300", "/%2500"),  # nested escapes: the lone % is escaped
    ("/%2", "/%2"),
    ("/%zz", "/%zz"),
]


@pytest.mark.parametrize("path, want", ENVOY_CANONICAL + BASE_CASES)
def test_base(path, want):
    assert normalize_path(path, BASE) == want


@pytest.mark.parametrize("path", ENVOY_INVALID + ["/a/%00", "/a%00b"])
def test_invalid_paths_are_rejected(path):
    assert normalize_path(path, BASE) is None
    assert normalize_path(path, NONE) == path  # NONE leaves the path alone


@pytest.mark.parametrize("path, want", [
    ("", ""), ("a//b/c", "a/b/c"), ("/a//b/c/", "/a/b/c/"), ("a//b/c/", "a/b/c/"), ("/a", "/a"),
    ("//a/b/c", "/a/b/c"), ("/a//b/c", "/a/b/c"), ("/a/b/c//", "/a/b/c/"), ("/a///b/c", "/a/b/c"),
    ("/a////b/c", "/a/b/c"),
])
def test_merge_slashes_envoy_cases(path, want):  # PathUtilityTest.MergeSlashes (path part)
    assert merge_slashes(path) == want


@pytest.mark.parametrize("path, want", [
    ("/a//b?a=///c", "/a/b?a=///c"), ("/a//b?", "/a/b?"), ("//a/?b", "/a/?b"), ("//admin", "/admin"),
    ("/public/..//admin", "/admin"), ("/a%2Fb", "/a%2Fb"),
])
def test_merge_slashes_mode(path, want):
    assert normalize_path(path, MERGE_SLASHES) == want


@pytest.mark.parametrize("path, want", [
    ("%2f%2F", "//"), ("/a%2Fb%2fc/", "/a/b/c/"), ("%2b", "%2b"), ("%2", "%2"), ("%", "%"), ("/abc%2", "/abc%2"),
    ("/a%2F", "/a/"), ("%%2fa/", "%/a/"), ("%2%2fa/", "%2/a/"), ("%5c%5C", "\\\\"), ("/a%5Cb%5cc/", "/a\\b\\c/"),
    ("/x/%2E%2e/z%2f%2Fabc%5C../def", "/x/%2E%2e/z//abc\\../def"),
])
def test_unescape_slashes_envoy_cases(path, want):  # PathUtilityTest.UnescapeSlashes
    assert unescape_slashes(path) == want


@pytest.mark.parametrize("path, want", [
    ("/a%2Fb", "/a/b"), ("/a%5Cb", "/a/b"), ("/public%2F..%2Fadmin", "/admin"), ("//admin", "/admin"),
    ("%2fa%5Cb%2fc%5c?%2fabcd%5C%%2f%", "/a/b/c/?%2fabcd%5C%%2f%"),  # the query is untouched
])
def test_decode_and_merge_slashes(path, want):
    assert normalize_path(path, DECODE_AND_MERGE_SLASHES) == want


@pytest.mark.parametrize("path, want", [
    ("", ""), ("/xyz", "/xyz"), ("/xyz/..;foo=bar/abc", "/xyz/../abc"), ("/..;foo=bar/abc", "/../abc"),
    ("/xyz/..;foo=bar", "/xyz/.."), ("/xyz/..;", "/xyz/.."), ("/a/..;foo/b/..;bar/c", "/a/../b/../c"),
    ("/xyz/..foo", "/xyz/..foo"), ("/xyz/...;foo", "/xyz/...;foo"), ("/xyz/.;foo=bar", "/xyz/."),
    ("/xyz/.foo", "/xyz/.foo"),
])
def test_strip_dot_segment_parameters(path, want):  # PathUtilityTest.StripDotSegmentWithParameters
    assert strip_dot_segment_parameters(path) == want


@pytest.mark.parametrize("path", ["/public/../admin", "/%61dmin", "/a/./b", "/a b"])
def test_none_leaves_paths_alone(path):
    assert normalize_path(path, NONE) == path


def test_none_still_strips_the_fragment():
    assert normalize_path("/a/../b#f", NONE) == "/a/../b"


def test_parse_mode():
    assert parse_mode("base") == BASE and parse_mode("DEFAULT") == BASE
    assert parse_mode("merge-slashes") == MERGE_SLASHES
    assert parse_mode("decode_and_merge_slashes") == DECODE_AND_MERGE_SLASHES
    assert parse_mode("none") == NONE and parse_mode("all") is None


def test_clean_paths_come_back_unchanged_and_identical():
    p = "/api/v1/users/123?x=1&y=a.b"
    assert normalize_path(p) is p


ADMIN = registry_yaml({"v1": 9001, "v2": 9002}) + virtual_service("""
- match: [{uri: {prefix: /admin}}]
  route: [{destination: {host: httpbin, subset: v2}}]
- route: [{destination: {host: httpbin, subset: v1}}]
""")


@pytest.mark.parametrize("path", ["/public/../admin/x", "/x/%2e%2e/admin", "/%61dmin", "/a/../admin", "/.."
                                  "/admin"])
def test_the_route_table_routes_the_normalized_path(path):
    from simulator.core.explain import RouteQuery, explain

    table = table_from_yaml(ADMIN)
    e = explain(table, RouteQuery("GET", "httpbin:8000", path))
    assert e.cluster is not None and e.cluster.subset == "v2", e.decision
    assert e.path_changed and e.normalized_path is not None and e.normalized_path.startswith("/admin")


def test_plain_paths_take_the_segment_route_with_the_same_result():
    import random

    from simulator.core.paths import canonicalize, remove_dot_segments

    rng = random.Random(7)
    for _ in range(20000):
        s = "".join(rng.choice("/./a..b/") for _ in range(rng.randint(0, 12)))
        assert remove_dot_segments(s) == canonicalize(s), s


def test_a_long_hostile_path_is_linear():
    import time

    t0 = time.perf_counter()
    assert normalize_path("/" + "../" * 20000 + "a") == "/a"
    assert normalize_path("/a" * 15000 + "/.." * 15000) == "/"
    assert normalize_path("/%2e%2e" * 8000 + "/x") == "/x"
    assert time.perf_counter() - t0 < 5.0  # quadratic work would take minutes
