"""Oracle, group "basic": an unlabelled client's sidecar (tests/oracle/envoy/basic.yaml) vs
mirrorsim on tests/oracle/istio/basic.yaml.  Each test asserts the key facts about Envoy (so a
wrong hand-written config is noticed), then that mirrorsim agrees (a ``Mismatch``)."""

from __future__ import annotations

from collections.abc import AsyncIterator

import pytest
import pytest_asyncio

from tests.oracle.harness import Group, Mismatch, req, simple

pytestmark = [pytest.mark.slow, pytest.mark.asyncio(loop_scope="module")]

BACKENDS = {"v1": "ws", "v2": "ok", "mirror": "ws", "closer": "close", "junk": "garbage", "u503": "ok", "nr": "ok"}


def differs(reason: str) -> pytest.MarkDecorator:
    """A known difference from Envoy today: the comparison must fail (strict), nothing else may."""
    return pytest.mark.xfail(strict=True, raises=Mismatch, reason=f"issue 11: {reason}")


@pytest_asyncio.fixture(scope="module", loop_scope="module")
async def g() -> AsyncIterator[Group]:
    async with Group("basic.yaml", "basic.yaml", BACKENDS) as group:
        group.backends["u503"].response = (503, [("x-backend", "u503")], b"unavailable")
        yield group


# --------------------------------------------------------------------------- controls


async def test_mirror_100_control(g: Group) -> None:
    e, m = await g.both(simple(req("GET", "/get")))
    assert e.got.status == 200 and e.got.body == b"v1"
    [p] = e.at("v1")
    [s] = e.at("mirror")
    assert p.target == s.target == "/get"
    assert s.header("host") == "httpbin:8000"  # disable_shadow_host_suffix_append
    assert s.header("x-request-id") == p.header("x-request-id")
    g.compare(e, m)


async def test_header_match_control(g: Group) -> None:
    e, m = await g.both(simple(req("GET", "/get", headers=[("x-route", "v2")])))
    assert e.got.status == 200 and e.got.body == b"v2"
    assert len(e.at("v2")) == 1 and not e.at("mirror")
    g.compare(e, m)


async def test_rewrite_control(g: Group) -> None:
    e, m = await g.both(simple(req("GET", "/old/x?q=1")))
    [p] = e.at("v1")
    assert p.target == "/new/x?q=1"
    assert p.header("x-envoy-original-path") == "/old/x?q=1"
    g.compare(e, m)
