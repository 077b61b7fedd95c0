"""Oracle, group "basic": an unlabelled client's sidecar (tests/oracle/envoy/basic.yaml) vs
mirrorsim on tests/oracle/istio/basic.yaml.

Each test first asserts the key facts about what Envoy did (status, which backend, the path or
header the upstream saw), so a wrong hand-written config is noticed, and then that mirrorsim
agrees (``g.compare`` raises ``Mismatch``).  A difference mirrorsim has today is a strict xfail
that accepts ONLY a ``Mismatch``: an Envoy-side assertion failing is still a failure."""

from __future__ import annotations

from collections.abc import AsyncIterator

import pytest
import pytest_asyncio

from tests.oracle.harness import Group, Mismatch, expect_continue, req, simple, websocket

pytestmark = [pytest.mark.slow, pytest.mark.asyncio(loop_scope="module")]

BACKENDS = {"v1": "ws", "v2": "ok", "mirror": "ws", "closer": "close", "junk": "garbage", "u503": "ok", "nr": "ok"}
UPSTREAM_RESET = "upstream connect error or disconnect/reset before headers. reset reason: "


def differs(reason: str) -> pytest.MarkDecorator:
    """A known difference from Envoy today: the comparison must fail (strict), nothing else may."""
    return pytest.mark.xfail(strict=True, raises=Mismatch, reason=f"issue 11: {reason}")


HOST_PORT = differs("docs/deviations.md R1: mirrorsim has one listener and takes the Host's port as the "
                    "connection's; a sidecar's listener is the original destination port and ignores the Host "
                    "port (ignore_port_in_host_matching)")


@pytest_asyncio.fixture(scope="module", loop_scope="module")
async def g() -> AsyncIterator[Group]:
    async with Group("basic.yaml", "basic.yaml", BACKENDS) as group:
        group.backends["u503"].response = (503, [("x-backend", "u503")], b"unavailable")
        yield group


def get(path: str = "/get", host: str | None = "httpbin:8000", headers: list[tuple[str, str]] | None = None,
        method: str = "GET", body: bytes | None = None):  # noqa: ANN201 - an Exchange
    return simple(req(method, path, host, headers or [], body))


# --------------------------------------------------------------------------- controls


async def test_mirror_100_control(g: Group) -> None:
    e, m = await g.both(get("/get"))
    assert e.got.status == 200 and e.got.body == b"v1"
    [p] = e.at("v1")
    [s] = e.at("mirror")
    assert p.target == s.target == "/get"
    assert s.header("host") == "httpbin:8000"  # disable_shadow_host_suffix_append
    assert s.header("x-request-id") == p.header("x-request-id")
    assert s.header("x-envoy-internal") == "true" and p.header("x-envoy-internal") is None
    g.compare(e, m)


async def test_mirror_post_body_control(g: Group) -> None:
    e, m = await g.both(get("/post", method="POST", body=b"payload"))
    assert e.got.status == 200
    assert e.at("v1")[0].body == e.at("mirror")[0].body == b"payload"
    g.compare(e, m)


async def test_header_match_control(g: Group) -> None:
    e, m = await g.both(get("/get", headers=[("x-route", "v2")]))
    assert e.got.status == 200 and e.got.body == b"v2"
    assert len(e.at("v2")) == 1 and not e.at("mirror")
    g.compare(e, m)


async def test_rewrite_control(g: Group) -> None:
    e, m = await g.both(get("/old/x?q=1"))
    [p] = e.at("v1")
    assert p.target == "/new/x?q=1"
    assert p.header("x-envoy-original-path") == "/old/x?q=1"
    g.compare(e, m)


async def test_authority_rewrite_sets_original_host(g: Group) -> None:
    e, m = await g.both(get("/authority"))
    [p] = e.at("v1")
    assert p.header("host") == "other.example"
    assert p.header("x-envoy-original-host") == "httpbin:8000"
    g.compare(e, m)


# --------------------------------------------------------------------------- path normalization (BASE)


async def test_path_dotdot_segment(g: Group) -> None:
    e, m = await g.both(get("/public/../admin/x"))
    assert e.got.body == b"v2"  # matched the /admin route after normalization
    assert e.at("v2")[0].target == "/admin/x"
    g.compare(e, m)


async def test_path_encoded_dots(g: Group) -> None:
    e, m = await g.both(get("/x/%2e%2e/admin"))
    assert e.got.body == b"v2"
    assert e.at("v2")[0].target == "/admin"
    g.compare(e, m)


async def test_path_encoded_unreserved(g: Group) -> None:
    e, m = await g.both(get("/%61dmin"))
    assert e.got.body == b"v2"
    assert e.at("v2")[0].target == "/admin"
    g.compare(e, m)


async def test_path_dot_segment(g: Group) -> None:
    e, m = await g.both(get("/a/./b"))
    assert e.at("v1")[0].target == e.at("mirror")[0].target == "/a/b"  # the mirror sees it normalized too
    g.compare(e, m)


async def test_path_dotdot_above_root(g: Group) -> None:
    e, m = await g.both(get("/.."))
    assert e.got.status == 200 and e.at("v1")[0].target == "/"
    g.compare(e, m)


async def test_path_query_untouched(g: Group) -> None:
    e, m = await g.both(get("/public/../admin?x=/../y"))
    assert e.at("v2")[0].target == "/admin?x=/../y"
    g.compare(e, m)


async def test_path_double_slash_not_merged(g: Group) -> None:
    e, m = await g.both(get("//admin"))  # merge_slashes is not part of BASE
    assert e.got.body == b"v1" and e.at("v1")[0].target == "//admin"
    g.compare(e, m)


async def test_path_encoded_slash_kept(g: Group) -> None:
    e, m = await g.both(get("/admin%2Fx"))  # path_with_escaped_slashes_action KEEP_UNCHANGED
    assert e.got.body == b"v2" and e.at("v2")[0].target == "/admin%2Fx"
    g.compare(e, m)


async def test_path_absolute_form(g: Group) -> None:
    e, m = await g.both(simple(b"GET http://httpbin:8000/abs HTTP/1.1\r\nHost: httpbin:8000\r\n\r\n"))
    assert e.got.status == 200 and e.at("v1")[0].target == "/abs"
    g.compare(e, m)


# --------------------------------------------------------------------------- Host / virtual host domains


async def test_host_without_port(g: Group) -> None:
    e, m = await g.both(get("/h", host="httpbin"))
    assert e.got.status == 200 and e.got.body == b"v1"
    assert e.at("v1")[0].header("host") == "httpbin"
    g.compare(e, m)


@HOST_PORT
async def test_host_other_port(g: Group) -> None:
    e, m = await g.both(get("/h", host="httpbin:9999"))
    assert e.got.status == 200 and e.at("v1")[0].header("host") == "httpbin:9999"
    g.compare(e, m)


async def test_host_namespace_short_name(g: Group) -> None:
    e, m = await g.both(get("/h", host="httpbin.default:8000"))
    assert e.got.status == 200 and e.got.body == b"v1"
    g.compare(e, m)


async def test_host_svc_short_name(g: Group) -> None:
    e, m = await g.both(get("/h", host="httpbin.default.svc:8000"))
    assert e.got.status == 200 and e.got.body == b"v1"
    g.compare(e, m)


async def test_host_absolute_fqdn(g: Group) -> None:
    e, m = await g.both(get("/h", host="httpbin.default.svc.cluster.local.:8000"))
    assert e.got.status == 200 and e.got.body == b"v1"
    g.compare(e, m)


async def test_host_upper_case(g: Group) -> None:
    e, m = await g.both(get("/h", host="HTTPBIN:8000"))
    assert e.got.status == 200 and e.at("v1")[0].header("host") == "HTTPBIN:8000"
    g.compare(e, m)


async def test_host_unknown_registry_only(g: Group) -> None:
    e, m = await g.both(get("/h", host="unknown.example:8000"))
    assert e.got.status == 502 and e.got.body == b""  # block_all direct_response
    g.compare(e, m)


@differs("mirrorsim answers a request without Host with a body ('missing host header'); Envoy's 400 is empty")
async def test_request_without_host(g: Group) -> None:
    e, m = await g.both(simple(b"GET /h HTTP/1.1\r\n\r\n"))
    assert e.got.status == 400 and e.got.header("connection") == "close" and e.got.body == b""
    g.compare(e, m)


async def test_http10_without_host(g: Group) -> None:
    e, m = await g.both(simple(b"GET /h HTTP/1.0\r\n\r\n"))
    assert e.got.status == 426 and e.got.body == b"Upgrade Required"
    g.compare(e, m)


# --------------------------------------------------------------------------- upgrades, 100-continue, CONNECT


@differs("mirrorsim does not tunnel websocket upgrades (Envoy: 101, tunnel, and the mirror gets the upgrade "
         "request and the tunnel bytes)")
async def test_websocket_upgrade(g: Group) -> None:
    e, m = await g.both(websocket("/ws"))
    assert e.got.status == 101 and e.got.tunnel == b"echo:ping"
    [p] = e.at("v1")
    [s] = e.at("mirror")
    assert p.header("upgrade") == s.header("upgrade") == "websocket"
    assert p.tunnel == s.tunnel == b"ping"
    g.compare(e, m)


@differs("mirrorsim closes the connection on a websocket upgrade the upstream declines (Envoy relays its 200)")
async def test_websocket_upstream_declines(g: Group) -> None:
    e, m = await g.both(websocket("/admin/ws"))  # v2 answers 200 to everything
    assert e.got.status == 200 and e.got.header("connection") == "close"
    assert e.at("v2")[0].header("upgrade") == "websocket"
    g.compare(e, m)


@differs("mirrorsim closes the connection on 'Upgrade: h2c'; Envoy drops the h2c upgrade headers and forwards")
async def test_upgrade_h2c_ignored(g: Group) -> None:
    e, m = await g.both(get("/h", headers=[("Connection", "Upgrade, HTTP2-Settings"), ("Upgrade", "h2c"),
                                           ("HTTP2-Settings", "AAMAAABkAARAAAAAAAIAAAAA")]))
    assert e.got.status == 200
    [p] = e.at("v1")
    assert p.header("upgrade") is None and p.header("http2-settings") is None
    g.compare(e, m)


@differs("mirrorsim closes the connection on an upgrade type that is not configured; Envoy answers 403")
async def test_upgrade_unknown_type(g: Group) -> None:
    e, m = await g.both(get("/h", headers=[("Connection", "Upgrade"), ("Upgrade", "foo")]))
    assert e.got.status == 403 and not e.at("v1") and not e.at("mirror")
    g.compare(e, m)


@differs("mirrorsim answers Expect: 100-continue itself only after the body and strips Expect; Envoy "
         "(proxy_100_continue) forwards Expect and relays the upstream's 100")
async def test_expect_100_continue(g: Group) -> None:
    e, m = await g.both(expect_continue("/post"))
    assert e.got.interim == [100] and e.got.status == 200
    assert e.at("v1")[0].header("expect") == "100-continue" and e.at("v1")[0].body == b"payload"
    g.compare(e, m)


async def test_expect_100_continue_upstream_closes(g: Group) -> None:
    e, m = await g.both(expect_continue("/post", host="flaky:8000"))
    assert e.got.status == 503 and e.got.interim == []
    assert e.got.body == (UPSTREAM_RESET + "connection termination").encode()
    g.compare(e, m)


@differs("mirrorsim's 404 to CONNECT lacks Envoy's 'connection: close'")
async def test_connect_known_host(g: Group) -> None:
    e, m = await g.both(simple(b"CONNECT httpbin:8000 HTTP/1.1\r\nHost: httpbin:8000\r\n\r\n"))
    assert e.got.status == 404 and e.got.header("connection") == "close"  # no CONNECT route matcher
    assert not e.at("v1")
    g.compare(e, m)


@differs("mirrorsim answers CONNECT to an unknown host 502 (catch-all); Envoy 404 (routes never match CONNECT)")
async def test_connect_unknown_host(g: Group) -> None:
    e, m = await g.both(simple(b"CONNECT example.com:443 HTTP/1.1\r\nHost: example.com:443\r\n\r\n"))
    assert e.got.status == 404
    g.compare(e, m)
