"""Oracle, group "basic" (the Envoy + mirrorsim pair of test_basic.py, fixture ``g`` in
conftest.py): headers a client sends, header operations with command operators, local
replies (faults, no route, CORS) and upstream failures under Istio's default retry policy."""

from __future__ import annotations

import pytest

from tests.oracle.harness import Group, simple
from tests.oracle.test_basic import UPSTREAM_RESET, differs, get

pytestmark = [pytest.mark.slow, pytest.mark.asyncio(loop_scope="package")]

# --------------------------------------------------------------------------- headers from the client


async def test_client_attempt_count_overwritten(g: Group) -> None:
    e, m = await g.both(get("/h", headers=[("x-envoy-attempt-count", "5")]))
    assert e.at("v1")[0].header_values("x-envoy-attempt-count") == ["1"]
    assert e.at("mirror")[0].header_values("x-envoy-attempt-count") == ["1"]
    g.compare(e, m)


async def test_client_x_envoy_headers_kept(g: Group) -> None:
    # use_remote_address false and no XFF: the request counts as internal, x-envoy-* are not stripped
    e, m = await g.both(get("/h", headers=[("x-envoy-foo", "bar"), ("x-envoy-max-retries", "7")]))
    [p] = e.at("v1")
    assert p.header("x-envoy-foo") == "bar" and p.header("x-envoy-internal") is None
    g.compare(e, m)


async def test_client_xff_external_address(g: Group) -> None:
    e, m = await g.both(get("/h", headers=[("x-forwarded-for", "8.8.8.8"), ("x-envoy-internal", "true"),
                                           ("x-envoy-foo", "bar")]))
    [p] = e.at("v1")
    assert p.header("x-forwarded-for") == "8.8.8.8"  # not appended (use_remote_address false)
    assert p.header("x-envoy-internal") is None  # stripped: XFF says external
    assert e.at("mirror")[0].header("x-forwarded-for").startswith("8.8.8.8,")
    g.compare(e, m)


async def test_client_xfcc_sanitized(g: Group) -> None:
    e, m = await g.both(get("/h", headers=[("x-forwarded-client-cert", "By=spiffe://x;Hash=1")]))
    assert e.at("v1")[0].header("x-forwarded-client-cert") is None  # SANITIZE (not mTLS)
    g.compare(e, m)


async def test_client_timeout_header_consumed(g: Group) -> None:
    e, m = await g.both(get("/h", headers=[("x-envoy-upstream-rq-timeout-ms", "5000")]))
    [p] = e.at("v1")
    assert p.header("x-envoy-upstream-rq-timeout-ms") is None
    assert p.header("x-envoy-expected-rq-timeout-ms") is None  # not set by the router with timeout 0s routes
    g.compare(e, m)


async def test_te_trailers_kept(g: Group) -> None:
    e, m = await g.both(get("/h", headers=[("TE", "gzip, trailers")]))
    assert e.at("v1")[0].header("te") == "trailers" and e.at("mirror")[0].header("te") == "trailers"
    g.compare(e, m)


async def test_te_without_trailers_dropped(g: Group) -> None:
    e, m = await g.both(get("/h", headers=[("TE", "gzip")]))
    assert e.at("v1")[0].header("te") is None
    g.compare(e, m)


async def test_request_trailers(g: Group) -> None:
    raw = (b"POST /h HTTP/1.1\r\nHost: httpbin:8000\r\nTransfer-Encoding: chunked\r\n\r\n"
           b"5\r\nhello\r\n0\r\nx-trailer: t1\r\n\r\n")
    e, m = await g.both(simple(raw))
    [p] = e.at("v1")
    assert p.body == b"hello" and p.trailers == [] and p.header("x-trailer") is None
    g.compare(e, m)


async def test_request_trailers_with_te_trailers(g: Group) -> None:
    raw = (b"POST /admin/t HTTP/1.1\r\nHost: httpbin:8000\r\nTransfer-Encoding: chunked\r\nTE: trailers\r\n\r\n"
           b"3\r\nabc\r\n0\r\nx-checksum: 42\r\n\r\n")
    e, m = await g.both(simple(raw))
    [p] = e.at("v2")
    assert p.body == b"abc" and p.trailers == [] and p.header("x-checksum") is None
    g.compare(e, m)


async def test_chunked_body_without_trailers(g: Group) -> None:
    raw = (b"POST /c HTTP/1.1\r\nHost: httpbin:8000\r\nTransfer-Encoding: chunked\r\n\r\n"
           b"3\r\nabc\r\n2\r\nde\r\n0\r\n\r\n")
    e, m = await g.both(simple(raw))
    assert e.at("v1")[0].body == e.at("mirror")[0].body == b"abcde"
    assert e.at("v1")[0].header("transfer-encoding") == "chunked"
    g.compare(e, m)


async def test_client_original_host_and_path_kept(g: Group) -> None:
    spoofed = [("x-envoy-original-host", "spoofed"), ("x-envoy-original-path", "/spoofed")]
    e, m = await g.both(get("/h", headers=spoofed))
    [p] = e.at("v1")
    assert p.header("x-envoy-original-host") == "spoofed" and p.header("x-envoy-original-path") == "/spoofed"
    g.compare(e, m)


@differs("with a host rewrite, Envoy overwrites a client-sent x-envoy-original-host; mirrorsim adds a second line")
async def test_client_original_host_overwritten_by_rewrite(g: Group) -> None:
    e, m = await g.both(get("/authority", headers=[("x-envoy-original-host", "spoofed")]))
    assert e.at("v1")[0].header_values("x-envoy-original-host") == ["httpbin:8000"]
    g.compare(e, m)


async def test_hop_by_hop_headers_removed(g: Group) -> None:
    e, m = await g.both(get("/h", headers=[("Connection", "x-custom"), ("x-custom", "1"), ("keep-alive", "timeout=5"),
                                           ("proxy-connection", "x")]))
    [p] = e.at("v1")
    assert {"x-custom", "keep-alive", "proxy-connection", "connection"}.isdisjoint(p.header_names())
    g.compare(e, m)


# --------------------------------------------------------------------------- header operations


async def test_command_operators(g: Group) -> None:
    e, m = await g.both(get("/ops", headers=[("x-client", "abc")]))
    [p] = e.at("v1")
    assert p.header("x-client-copy") == "abc"
    assert p.header("x-proto") == "HTTP/1.1" and p.header("x-percent") == "100%"
    assert (p.header("x-remote") or "").startswith("127.0.0.1:")
    assert e.got.header("x-resp-proto") == "HTTP/1.1"
    g.compare(e, m)


async def test_command_operator_missing_header_omitted(g: Group) -> None:
    e, m = await g.both(get("/ops"))
    [p] = e.at("v1")
    assert p.header("x-client-copy") is None  # an empty value is not added
    g.compare(e, m)


async def test_fault_abort_gets_route_response_headers(g: Group) -> None:
    e, m = await g.both(get("/fault"))
    assert e.got.status == 418 and e.got.body == b"fault filter abort"
    assert e.got.header("x-route-op") == "fault"
    assert not e.at("v1") and not e.at("mirror")
    g.compare(e, m)


async def test_grpc_abort_on_plain_http(g: Group) -> None:
    e, m = await g.both(get("/grpcfault"))
    assert e.got.status == 200 and e.got.body == b"fault filter abort" and e.got.header("grpc-status") is None
    g.compare(e, m)


async def test_grpc_abort_on_grpc_request(g: Group) -> None:
    e, m = await g.both(get("/grpcfault", method="POST", headers=[("content-type", "application/grpc")], body=b""))
    assert e.got.status == 200 and e.got.header("grpc-status") == "14"
    assert e.got.header("grpc-message") == "fault filter abort"
    g.compare(e, m)


async def test_fault_abort_on_post_closes(g: Group) -> None:
    e, m = await g.both(get("/fault", method="POST", body=b"x"))
    assert e.got.status == 418 and e.got.header("connection") == "close"  # body not read: connection closed
    assert e.got.header("x-route-op") == "fault"
    g.compare(e, m)


async def test_direct_response_gets_route_response_headers(g: Group) -> None:
    e, m = await g.both(get("/direct"))
    assert e.got.status == 403 and e.got.body == b"denied" and e.got.header("x-route-op") == "direct"
    g.compare(e, m)


async def test_redirect_gets_route_response_headers(g: Group) -> None:
    e, m = await g.both(get("/redirect/x?y=1"))
    assert e.got.status == 301 and e.got.header("location") == "http://elsewhere.example/moved?y=1"
    assert e.got.header("x-route-op") == "redirect"
    g.compare(e, m)


async def test_client_forwarded_proto_kept(g: Group) -> None:
    e, m = await g.both(get("/h", headers=[("x-forwarded-proto", "https")]))
    assert e.at("v1")[0].header("x-forwarded-proto") == "https"
    g.compare(e, m)


async def test_no_route_404(g: Group) -> None:
    e, m = await g.both(get("/other", host="noroute:8000"))
    assert e.got.status == 404 and e.got.body == b"" and not e.at("nr")
    g.compare(e, m)


async def test_no_route_exact_match_routes(g: Group) -> None:
    e, m = await g.both(get("/only", host="noroute:8000"))
    assert e.got.status == 200 and e.got.body == b"nr"
    g.compare(e, m)


# --------------------------------------------------------------------------- upstream failures, default retries


async def test_upstream_closes_before_answering_post(g: Group) -> None:
    e, m = await g.both(get("/p", host="flaky:8000", method="POST", body=b"data"))
    assert e.got.status == 503
    assert e.got.body == (UPSTREAM_RESET + "connection termination").encode()
    assert len(e.at("closer")) == 1  # a reset after the request was sent is not retried by the default policy
    g.compare(e, m)


async def test_upstream_closes_before_answering_get(g: Group) -> None:
    e, m = await g.both(get("/p", host="flaky:8000"))
    assert e.got.status == 503 and len(e.at("closer")) == 1
    g.compare(e, m)


async def test_upstream_protocol_error_post(g: Group) -> None:
    e, m = await g.both(get("/p", host="junk:8000", method="POST", body=b"data"))
    assert e.got.status == 502 and e.at("junk")[0].body == b"data"  # not retried
    g.compare(e, m)


async def test_upstream_protocol_error(g: Group) -> None:
    e, m = await g.both(get("/p", host="junk:8000"))
    assert e.got.status == 502
    assert e.got.body == (UPSTREAM_RESET + "protocol error").encode()
    assert len(e.at("junk")) == 1
    g.compare(e, m)


async def test_upstream_connection_refused_retried(g: Group) -> None:
    e, m = await g.both(get("/p", host="dead:8000"))
    assert e.got.status == 503
    assert e.got.body == (b"upstream connect error or disconnect/reset before headers. "
                          b"retried and the latest reset reason: remote connection failure")
    g.compare(e, m)


async def test_upstream_503_not_retried_by_default(g: Group) -> None:
    # retry_on has retriable-status-codes but the default policy lists no codes (route/retry/retry.go)
    e, m = await g.both(get("/p", host="unavail:8000"))
    assert e.got.status == 503 and e.got.body == b"unavailable"
    assert len(e.at("u503")) == 1
    g.compare(e, m)


# --------------------------------------------------------------------------- CORS


async def test_cors_preflight_allowed_origin(g: Group) -> None:
    e, m = await g.both(get("/cors", method="OPTIONS", headers=[("Origin", "https://good.example"),
                                                                ("Access-Control-Request-Method", "POST")]))
    assert e.got.status == 200 and not e.at("v1")  # answered by the cors filter
    assert e.got.header("access-control-allow-origin") == "https://good.example"
    assert e.got.header("access-control-allow-methods") == "GET,POST"
    assert e.got.header("access-control-max-age") == "600"
    g.compare(e, m)


async def test_cors_preflight_other_origin_forwarded(g: Group) -> None:
    e, m = await g.both(get("/cors", method="OPTIONS", headers=[("Origin", "https://evil.example"),
                                                                ("Access-Control-Request-Method", "POST")]))
    assert e.got.status == 200 and e.got.body == b"v1"  # forward_not_matching_preflights
    assert e.got.header("access-control-allow-origin") is None
    g.compare(e, m)


async def test_cors_actual_request_allowed_origin(g: Group) -> None:
    e, m = await g.both(get("/cors", headers=[("Origin", "https://good.example")]))
    assert e.got.body == b"v1"
    assert e.got.header("access-control-allow-origin") == "https://good.example"
    assert e.got.header("access-control-expose-headers") == "x-exposed"
    g.compare(e, m)


async def test_cors_actual_request_other_origin(g: Group) -> None:
    e, m = await g.both(get("/cors", headers=[("Origin", "https://evil.example")]))
    assert e.got.body == b"v1" and e.got.header("access-control-allow-origin") is None
    g.compare(e, m)


async def test_cors_preflight_method_not_checked(g: Group) -> None:
    e, m = await g.both(get("/cors", method="OPTIONS", headers=[("Origin", "https://good.example"),
                                                                ("Access-Control-Request-Method", "DELETE")]))
    assert e.got.status == 200 and not e.at("v1")  # answered even for a method not in allowMethods
    assert e.got.header("access-control-allow-methods") == "GET,POST"
    g.compare(e, m)


async def test_cors_options_without_request_method_forwarded(g: Group) -> None:
    e, m = await g.both(get("/cors", method="OPTIONS", headers=[("Origin", "https://good.example")]))
    assert e.got.body == b"v1"  # not a preflight: forwarded, with the actual-request CORS headers
    assert e.got.header("access-control-allow-origin") == "https://good.example"
    g.compare(e, m)


async def test_cors_preflight_without_cors_policy(g: Group) -> None:
    e, m = await g.both(get("/get", method="OPTIONS", headers=[("Origin", "https://good.example"),
                                                               ("Access-Control-Request-Method", "POST")]))
    assert e.got.body == b"v1" and len(e.at("mirror")) == 1  # a normal request on a route without CORS
    g.compare(e, m)


