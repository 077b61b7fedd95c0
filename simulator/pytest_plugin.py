"""pytest plugin (entry point ``pytest11``): unit-test Istio routing configs.

Fixtures (docs/route-testing.md):

* ``mesh``: the configuration named by the closest ``@pytest.mark.mirrorsim(
  "path/", namespace="default", shadow_suffix=True)`` marker, else by the ini
  option ``mirrorsim_config`` (paths relative to the rootdir);
* ``mirrorsim_mesh``: a session-scoped factory, ``mirrorsim_mesh("path/", ...)``.

Both take ``path_normalization=`` (Istio's meshConfig.pathNormalization, default
``BASE``) and ``source={"labels": {...}, "namespace": ...}`` (the calling workload;
default: an unlabelled one in ``namespace``); ``mesh.route(..., source=...)``
routes one request from another workload.

Configs are loaded and compiled once per session and per (paths, namespace,
shadow_suffix).  ``mesh.route("GET", "http://reviews:9080/", headers={...})``
returns a ``CheckedRoute`` (routecheck/assertions.py) with ``.destination``, ``.host``, ``.subset``,
``.cluster``, ``.split``, ``.mirrors``, ``.status``, ... and assertion helpers
(``.check(**expectations)``, ``.assert_destination(...)``,
``.assert_mirrors(...)``, ``.assert_no_mirror()``, ``.assert_status(...)``)
whose failures list every mismatch, as ``mirrorsim check`` does.

* ``mirrorsim_diff``: a factory, ``mirrorsim_diff("path/", ports={18081: v1_port, ...},
  ignore_json_paths=[...])``, running the proxy with ``--diff`` in front of backends the
  test started (simulator/difftest.py, docs/diff.md); ``assert_no_mismatch(proxy)`` fails
  the test with the readable diff of every mismatch recorded.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pytest

from simulator.model.names import DEFAULT_NAMESPACE

if TYPE_CHECKING:  # imported lazily: the plugin loads in every pytest run of this environment
    from collections.abc import Iterator

    from simulator.difftest import DiffProxy
    from simulator.routecheck.workspace import Mesh

__all__ = ["assert_no_mismatch", "mesh", "mirrorsim_diff", "mirrorsim_mesh"]


def pytest_addoption(parser: pytest.Parser) -> None:
    parser.addini("mirrorsim_config", type="linelist", default=[],
                  help="Istio YAML files or directories the mirrorsim `mesh` fixture loads (relative to rootdir)")
    parser.addini("mirrorsim_namespace", default=DEFAULT_NAMESPACE,
                  help="namespace of resources without one, and of the client (default: default)")


def pytest_configure(config: pytest.Config) -> None:
    config.addinivalue_line(
        "markers",
        "mirrorsim(*paths, namespace='default', shadow_suffix=True, path_normalization='BASE', source=None): "
        "Istio config loaded by the `mesh` fixture",
    )


@pytest.fixture(scope="session")
def mirrorsim_mesh(pytestconfig: pytest.Config) -> Callable[..., Mesh]:
    """Factory: ``mirrorsim_mesh(*paths, namespace="default", shadow_suffix=True,
    path_normalization="BASE", source=None) -> Mesh``,
    cached for the session.  A config with errors fails the test with every diagnostic."""
    cache: dict[tuple[Any, ...], Mesh] = {}
    root = Path(pytestconfig.rootpath)

    def factory(*paths: str | Path, namespace: str | None = None, shadow_suffix: bool = True,
                path_normalization: str = "BASE", source: Any = None) -> Mesh:
        if not paths:
            raise ValueError("mirrorsim_mesh() needs at least one config file or directory")
        from simulator.core.paths import MODES, parse_mode
        from simulator.routecheck.workspace import ConfigError, Mesh, as_source

        ns = namespace or str(pytestconfig.getini("mirrorsim_namespace") or DEFAULT_NAMESPACE)
        resolved = tuple(str(p if Path(p).is_absolute() or Path(p).exists() else root / p) for p in paths)
        mode = parse_mode(path_normalization)
        if mode is None:
            raise ValueError(f"path_normalization={path_normalization!r}: expected one of {', '.join(MODES)}")
        src = as_source(source)
        key = (resolved, ns, shadow_suffix, mode, src)
        if key not in cache:
            try:
                cache[key] = Mesh(resolved, ns, shadow_suffix, path_normalization=mode, source=src)
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


@pytest.fixture
def mirrorsim_diff(pytestconfig: pytest.Config) -> Iterator[Callable[..., DiffProxy]]:
    """Factory: ``mirrorsim_diff(*paths, ports={declared: bound}, namespace="default",
    ignore_headers=(), json_paths=(), regexes=(), body_cap=...) -> DiffProxy`` (its ``url``,
    ``mismatches()``, ``counts()``); every proxy started is stopped after the test."""
    from simulator.difftest import DiffProxy, DiffProxyError

    started: list[DiffProxy] = []
    root = Path(pytestconfig.rootpath)

    def factory(*paths: str | Path, **kw: Any) -> DiffProxy:
        resolved = [p if Path(p).is_absolute() or Path(p).exists() else root / p for p in paths]
        proxy = DiffProxy(resolved, **kw)
        try:
            proxy.start()
        except DiffProxyError as exc:
            proxy.stop()
            pytest.fail(str(exc), pytrace=False)
        started.append(proxy)
        return proxy

    yield factory
    for proxy in started:
        proxy.stop()


def assert_no_mismatch(proxy: DiffProxy) -> None:
    """Fail the test with the readable diff when any mirror's response differed."""
    __tracebackhide__ = True
    report = proxy.report()
    if report:
        pytest.fail(report, pytrace=False)
