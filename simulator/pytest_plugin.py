"""pytest plugin (entry point ``pytest11``): unit-test Istio routing configs.

Fixtures (docs/route-testing.md):

* ``mesh``: the configuration named by the closest ``@pytest.mark.mirrorsim(
  "path/", namespace="default", shadow_suffix=True)`` marker, else by the ini
  option ``mirrorsim_config`` (paths relative to the rootdir);
* ``mirrorsim_mesh``: a session-scoped factory, ``mirrorsim_mesh("path/", ...)``.

Configs are loaded and compiled once per session and per (paths, namespace,
shadow_suffix).  ``mesh.route("GET", "http://reviews:9080/", headers={...})``
returns a ``Decision`` with ``.destination``, ``.host``, ``.subset``,
``.cluster``, ``.split``, ``.mirrors``, ``.status``, ... and assertion helpers
(``.check(**expectations)``, ``.assert_destination(...)``,
``.assert_mirrors(...)``, ``.assert_no_mirror()``, ``.assert_status(...)``)
whose failures list every mismatch, as ``mirrorsim check`` does.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pytest

if TYPE_CHECKING:  # imported lazily: the plugin loads in every pytest run of this environment
    from simulator.routecheck.workspace import Mesh

__all__ = ["mesh", "mirrorsim_mesh"]


def pytest_addoption(parser: pytest.Parser) -> None:
    parser.addini("mirrorsim_config", type="linelist", default=[],
                  help="Istio YAML files or directories the mirrorsim `mesh` fixture loads (relative to rootdir)")
    parser.addini("mirrorsim_namespace", default="default",
                  help="namespace of resources without one, and of the client (default: default)")


def pytest_configure(config: pytest.Config) -> None:
    config.addinivalue_line(
        "markers",
        "mirrorsim(*paths, namespace='default', shadow_suffix=True): Istio config loaded by the `mesh` fixture",
    )


@pytest.fixture(scope="session")
def mirrorsim_mesh(pytestconfig: pytest.Config) -> Callable[..., Mesh]:
    """Factory: ``mirrorsim_mesh(*paths, namespace="default", shadow_suffix=True) -> Mesh``,
    cached for the session.  A config with errors fails the test with every diagnostic."""
    cache: dict[tuple[Any, ...], Mesh] = {}
    root = Path(pytestconfig.rootpath)

    def factory(*paths: str | Path, namespace: str | None = None, shadow_suffix: bool = True) -> Mesh:
        if not paths:
            raise ValueError("mirrorsim_mesh() needs at least one config file or directory")
        ns = namespace or str(pytestconfig.getini("mirrorsim_namespace") or "default")
        resolved = tuple(str(p if Path(p).is_absolute() or Path(p).exists() else root / p) for p in paths)
        key = (resolved, ns, shadow_suffix)
        if key not in cache:
            from simulator.routecheck.workspace import ConfigError, Mesh

            try:
                cache[key] = Mesh(resolved, ns, shadow_suffix)
            except ConfigError as exc:
                pytest.fail(str(exc), pytrace=False)
        return cache[key]

    return factory


@pytest.fixture
def mesh(request: pytest.FixtureRequest, mirrorsim_mesh: Callable[..., Mesh]) -> Mesh:
    """The configuration of the closest ``mirrorsim`` marker, else of the
    ``mirrorsim_config`` ini option."""
    marker = request.node.get_closest_marker("mirrorsim")
    if marker is not None:
        return mirrorsim_mesh(*marker.args, **marker.kwargs)
    paths = request.config.getini("mirrorsim_config")
    if not paths:
        pytest.fail("the mesh fixture needs a config: mark the test with @pytest.mark.mirrorsim('path/') "
                    "or set mirrorsim_config in the pytest ini options", pytrace=False)
    return mirrorsim_mesh(*paths)
