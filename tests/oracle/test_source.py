"""Oracle, groups "source": rules that select the client workload (sourceLabels, sourceNamespace).
istiod writes such a rule only into the config of the proxies it selects, so each client has its
own hand-written Envoy config (envoy/source-productpage.yaml, envoy/source-unlabelled.yaml) and
mirrorsim is run for the same client (``--source-labels app=productpage --source-namespace
default``, or no flags for the unlabelled client in namespace default)."""

from __future__ import annotations

from collections.abc import AsyncIterator

import pytest
import pytest_asyncio

from tests.oracle.harness import Group, req, simple

pytestmark = [pytest.mark.slow, pytest.mark.asyncio(loop_scope="package")]

BACKENDS = {"r1": "ok", "r2": "ok", "r3": "ok"}


@pytest_asyncio.fixture(scope="module", loop_scope="package")
async def pp() -> AsyncIterator[Group]:
    args = ["--source-labels", "app=productpage", "--source-namespace", "default"]
    async with Group("source-productpage.yaml", "source.yaml", BACKENDS, args) as group:
        yield group


@pytest_asyncio.fixture(scope="module", loop_scope="package")
async def plain() -> AsyncIterator[Group]:
    async with Group("source-unlabelled.yaml", "source.yaml", BACKENDS) as group:
        yield group


def get(path: str, host: str = "reviews:8000"):  # noqa: ANN201 - an Exchange
    return simple(req("GET", path, host))


# --------------------------------------------------------------------------- client app=productpage


async def test_productpage_source_labels_rule(pp: Group) -> None:
    e, m = await pp.both(get("/pp/x"))
    assert e.got.body == b"r2"
    pp.compare(e, m)


async def test_productpage_source_namespace_rule(pp: Group) -> None:
    e, m = await pp.both(get("/here"))
    assert e.got.body == b"r3"
    pp.compare(e, m)


async def test_productpage_partial_label_match_left_out(pp: Group) -> None:
    e, m = await pp.both(get("/"))  # the v9 rule (app=productpage, version=v9) does not select it
    assert e.got.body == b"r1"
    pp.compare(e, m)


async def test_productpage_catch_all_source_rule_ends_routes(pp: Group) -> None:
    e, m = await pp.both(get("/special", host="ratings:8000"))
    assert e.got.body == b"r2"  # the later /special rule was never generated for this proxy
    pp.compare(e, m)


# --------------------------------------------------------------------------- unlabelled client, namespace default


async def test_unlabelled_source_labels_rule_left_out(plain: Group) -> None:
    e, m = await plain.both(get("/pp/x"))
    assert e.got.body == b"r1"
    plain.compare(e, m)


async def test_unlabelled_source_namespace_rule(plain: Group) -> None:
    e, m = await plain.both(get("/here"))
    assert e.got.body == b"r3"
    plain.compare(e, m)


async def test_unlabelled_other_namespace_rule_left_out(plain: Group) -> None:
    e, m = await plain.both(get("/anything"))  # 'prod' (sourceNamespace prod) would be a catch-all
    assert e.got.body == b"r1"
    plain.compare(e, m)


async def test_unlabelled_catch_all_source_rule_left_out(plain: Group) -> None:
    e, m = await plain.both(get("/special", host="ratings:8000"))
    assert e.got.body == b"r3"
    plain.compare(e, m)
