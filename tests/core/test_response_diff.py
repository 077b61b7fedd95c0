"""The pure comparison of a mirror's response with its primary's (core/response_diff.py)."""

from __future__ import annotations

import hashlib
import json

import pytest

from simulator.core.response_diff import (
    DEFAULT_BODY_CAP,
    Response,
    RuleError,
    compare,
    make_rules,
    parse_json_path,
)

RULES = make_rules()


def js(obj, status=200, **headers):
    body = json.dumps(obj).encode() if not isinstance(obj, bytes) else obj
    hs = [("content-type", "application/json")] + [(k.replace("_", "-"), v) for k, v in headers.items()]
    return Response(status, hs, body, len(body))


def fields(result):
    return [d.field for d in result.differences]


def test_equal_json_ignores_key_order_whitespace_and_number_form():
    a = js(b'{"a": 1, "b": [1, 2.0, {"c": "x"}], "d": null}')
    b = js(b'{"d":null,"b":[1.0,2,{"c":"x"}],"a":1.0}')
    r = compare(a, b, RULES)
    assert r.match and r.body_diff == ""


def test_true_is_not_one_and_types_matter():
    r = compare(js({"a": True}), js({"a": 1}), RULES)
    assert fields(r) == ["$.a"]
    r = compare(js({"a": "1"}), js({"a": 1}), RULES)
    assert fields(r) == ["$.a"]


def test_different_status():
    r = compare(js({}, 200), js({}, 500), RULES)
    assert [(d.field, d.primary, d.mirror) for d in r.differences] == [("status", "200", "500")]


def test_headers_compared_except_default_ignored_ones():
    a = js({}, date="Mon", server="a", x_version="1", x_envoy_upstream_service_time="3")
    b = js({}, date="Tue", server="b", x_version="2", x_envoy_upstream_service_time="9")
    r = compare(a, b, RULES)
    assert [(d.field, d.primary, d.mirror) for d in r.differences] == [("header x-version", "1", "2")]
    assert compare(a, b, make_rules(ignore_headers=["X-Version"])).match


def test_header_only_on_one_side_and_repeated_values():
    a = Response(200, [("set-cookie", "a"), ("set-cookie", "b")])
    b = Response(200, [("set-cookie", "a"), ("x-new", "1")])
    r = compare(a, b, RULES)
    assert [(d.field, d.primary, d.mirror) for d in r.differences] == [
        ("header set-cookie", "a,b", "a"), ("header x-new", "(absent)", "1")]


def test_json_field_difference_names_the_path_and_gives_a_unified_diff():
    a = js({"json": {"version": "v1", "n": 1}, "list": [1, 2]})
    b = js({"json": {"version": "v2", "n": 1}, "list": [1, 2, 3]})
    r = compare(a, b, RULES)
    assert [(d.field, d.primary, d.mirror) for d in r.differences] == [
        ("$.json.version", '"v1"', '"v2"'), ("$.list[2]", "(absent)", "3")]
    assert '-    "version": "v1"' in r.body_diff and '+    "version": "v2"' in r.body_diff
    assert r.body_diff.startswith("--- primary\n+++ mirror\n")


@pytest.mark.parametrize("path", ["$.headers.X-Amzn-Trace-Id", "$['headers']['X-Amzn-Trace-Id']",
                                  "$..X-Amzn-Trace-Id", "$.headers.*"])
def test_ignored_json_path(path):
    a = js({"headers": {"X-Amzn-Trace-Id": "Root=1"}, "url": "/get"})
    b = js({"headers": {"X-Amzn-Trace-Id": "Root=2"}, "url": "/get"})
    assert fields(compare(a, b, RULES)) == ["$.headers.X-Amzn-Trace-Id"]
    assert compare(a, b, make_rules(json_paths=[path])).match


def test_ignored_path_in_every_array_element_and_an_absent_one():
    a = js({"items": [{"id": 1, "v": "x"}, {"id": 2, "v": "y"}]})
    b = js({"items": [{"id": 7, "v": "x"}, {"v": "y"}]})
    assert not compare(a, b, RULES).match
    assert compare(a, b, make_rules(json_paths=["$.items[*].id"])).match
    assert fields(compare(a, b, make_rules(json_paths=["$.items[0].id"]))) == ["$.items[1].id"]


def test_regex_over_text_bodies_and_json_strings():
    a = Response(200, [("content-type", "text/plain")], b"ok at 12:00:01\n", 15)
    b = Response(200, [("content-type", "text/plain")], b"ok at 12:00:02\n", 15)
    r = compare(a, b, RULES)
    assert fields(r) == ["body"] and "-ok at 12:00:01" in r.body_diff
    assert compare(a, b, make_rules(regexes=[r"\d\d:\d\d:\d\d"])).match
    ja, jb = js({"msg": "done in 12ms"}), js({"msg": "done in 15ms"})
    assert compare(ja, jb, make_rules(regexes=[r"\d+ms"])).match


def test_binary_bodies_byte_for_byte():
    a = Response(200, [("content-type", "image/png")], b"\x89PNG\xff\x00\x01", 7)
    b = Response(200, [("content-type", "image/png")], b"\x89PNG\xff\x00\x02", 7)
    assert compare(a, Response(200, a.headers, a.body, 7), RULES).match
    r = compare(a, b, RULES)
    assert fields(r) == ["body (binary, first difference at byte 6)"]
    assert hashlib.sha256(b.body).hexdigest() in r.differences[0].mirror


def test_over_cap_compared_by_digest_and_length():
    rules = make_rules(body_cap=4)
    whole = b"0123456789"

    def big(data):
        return Response(200, [], data[:4], len(data), hashlib.sha256(data).hexdigest())

    r = compare(big(whole), big(whole), rules)
    assert r.match and "SHA-256" in r.notes[0]
    r = compare(big(whole), big(b"0123456780"), rules)  # the same first 4 bytes
    assert fields(r) == ["body"] and "10 bytes" in r.differences[0].primary
    # one side over the cap, the other not: lengths differ
    r = compare(big(whole), Response(200, [], b"0123", 4), rules)
    assert fields(r) == ["body"]


def test_json_that_does_not_parse_is_compared_as_text():
    r = compare(js(b"{not json"), js(b"{not json!"), RULES)
    assert fields(r) == ["body"]


def test_mirror_without_a_response():
    r = compare(js({}), Response(503, failure="UF"), RULES)
    assert [(d.field, d.primary, d.mirror) for d in r.differences] == [
        ("status", "200", "503 (no response: UF)")]


@pytest.mark.parametrize("bad", ["headers.x", "$", "$.a[", "$.a[x]", "$..", "$.a..", "$a"])
def test_bad_json_paths(bad):
    with pytest.raises(RuleError):
        parse_json_path(bad)


def test_bad_regex():
    with pytest.raises(RuleError, match="regex"):
        make_rules(regexes=["(unclosed"])


def test_defaults():
    assert RULES.body_cap == DEFAULT_BODY_CAP
    assert "date" in RULES.ignore_headers
    assert "date" not in make_rules(default_headers=False).ignore_headers
