"""User-supplied regexes run on RE2, in linear time, with Envoy's full-match semantics
(simulator/core/matchers.py: Regex, the one compiled-pattern helper)."""

from __future__ import annotations

import random
import time

import pytest
import re2

from simulator.core import matchers
from simulator.core.matchers import PathMatcher, StringMatcher, compile_regex

# A backtracking engine needs 2^n steps for n a's followed by a mismatch.
EVIL = "/api/(a+)+"
EVIL_INPUT = "/api/" + "a" * 28 + "!"


def test_pathological_pattern_answers_in_linear_time():
    m = PathMatcher.make("regex", EVIL)
    h = StringMatcher.make("regex", "(x+x+)+y")
    t0 = time.perf_counter()
    assert not m.matches(EVIL_INPUT)
    assert not m.matches("/api/" + "a" * 5000 + "!")
    assert not h.matches("x" * 5000)
    assert m.matches("/api/" + "a" * 5000)
    assert time.perf_counter() - t0 < 0.1


@pytest.mark.parametrize(("pattern", "text", "expected"), [
    ("/api/.*", "/api/x/y", True),  # a full match of the whole path
    ("/api/.*", "/api", False),
    ("/api/.*", "/apix/y", False),
    ("/api", "/api/x", False),  # not a search: the end is anchored too
    ("api", "/api", False),  # ... and so is the start
    ("a|b", "a", True),
    ("a|b", "b", True),
    ("a|b", "ab", False),  # the alternation as a whole must cover the string
    ("/v[0-9]+", "/v12", True),
    ("/v[0-9]+", "/v12x", False),
    ("^/a$", "/a", True),
    ("(?i)/ABC", "/abc", True),
    ("/a\\.b", "/a.b", True),
    ("/a\\.b", "/axb", False),
    ("/a\\\\.*", "/a\\xyz", True),  # an escaped backslash, then .*
    ("/a\\.*", "/a...", True),  # any number of dots, not "/a" then anything
    ("/a\\.*", "/ab", False),
    ("", "", True),
    ("", "x", False),
    (".*", "", True),
    (".*", "/a\nb", False),  # . does not match a newline
    ("(?s).*", "/a\nb", True),
    ("/static/.*", "/static/\xc3\xa9", True),  # UTF-8 bytes on the wire (latin-1 str): one character
    ("/static/.", "/static/\xc3\xa9", True),
    ("/static/.*", "/static/\xff", False),  # RE2's . never matches invalid UTF-8
    ("/é", "/\xc3\xa9", True),
    ("/x/.*", "/x/é€", True),  # a str that is not wire bytes (explain): UTF-8
])
def test_full_match_semantics(pattern, text, expected):
    assert compile_regex(pattern).fullmatch(text) is expected
    assert compile_regex(pattern).fullmatch(text) is expected  # the remembered answer too
    assert PathMatcher.make("regex", pattern).matches(text) is expected
    assert StringMatcher.make("regex", pattern).matches(text) is expected


def test_fast_paths_agree_with_re2():
    """Literal, LITERAL.* and literal-prefix shortcuts give RE2's own answer."""
    rnd = random.Random(12)
    patterns = ["/api", "/api/.*", "/api/v[0-9]+/.*", "/a\\.b.*", "(/a|/b)/c", "/x?y", "/(?i:ab)c",
                "/p[a-c]*", "/a.c", ".*", "\\d+", "/a\\*", "(?s)/a.*", "/a\\\\.*", "/a{2,3}"]
    alphabet = ["/", "a", "b", "c", "p", "x", "y", ".", "*", "\\", "\n", "1", "\xff", "\xc3\xa9", "A", "api"]
    opts = re2.Options()
    opts.log_errors = False
    for p in patterns:
        rx = compile_regex(p)
        oracle = re2.compile(p, opts)
        for _ in range(300):
            s = "".join(rnd.choice(alphabet) for _ in range(rnd.randrange(0, 8)))
            want = oracle.fullmatch(s.encode("latin-1")) is not None
            assert rx.fullmatch(s) is want, (p, s)


def test_remembered_answers_are_bounded():
    rx = compile_regex("/u/[0-9]+")
    for i in range(3 * matchers._MEMO_SIZE):
        assert rx.fullmatch(f"/u/{i}")
        assert not rx.fullmatch(f"/u/{i}x")
    assert not rx.fullmatch("/u/" + "1" * 1000 + "x")
    assert len(rx._memo) <= matchers._MEMO_SIZE
    assert all(len(k) <= matchers._MEMO_MAX_LEN for k in rx._memo)


@pytest.mark.parametrize(("pattern", "substitution", "text", "expected"), [
    ("^/api/(.*)$", "/\\1", "/api/v1/x", "/v1/x"),
    ("/service/([^/]+)(/.*)$", "\\2/instance/\\1", "/service/foo/v1/api", "/v1/api/instance/foo"),
    ("one", "two", "/xxx/one/yyy/one/zzz", "/xxx/two/yyy/two/zzz"),  # every match (GlobalReplace)
    ("x*", "-", "abxd", "-a-b-d-"),  # no empty match right after a match (Python's re.sub differs)
    ("", "-", "abc", "-a-b-c-"),
    ("", "-", "\xc3\xa9", "-\xc3\xa9-"),  # an empty match steps over a whole UTF-8 character
    ("a(b)?", "[\\1]", "aab", "[][b]"),  # an unmatched group is empty
    ("a", "\\2", "aaa", "aaa"),  # a group the pattern lacks: RE2 replaces nothing
    ("a", "x\\qy", "aaa", "xxx"),  # an invalid escape ends the substitution
    ("/(.*)", "/\\\\\\1", "/p", "/\\p"),  # \\ is a backslash
    ("/(a+)+$", "/b", "/" + "a" * 3000 + "!", "/" + "a" * 3000 + "!"),  # linear here too
])
def test_rewrite_is_re2_global_replace(pattern, substitution, text, expected):
    t0 = time.perf_counter()
    assert compile_regex(pattern, captures=True).sub(substitution, text) == expected
    assert time.perf_counter() - t0 < 0.1


def test_rejected_patterns_name_the_reason():
    with pytest.raises(ValueError, match="invalid RE2 regex"):
        compile_regex("(?=x)")
    with pytest.raises(ValueError, match="max length"):
        compile_regex("a" * 2000)

