"""The example configs, tested with the mirrorsim pytest plugin (the `mesh` fixture)."""

from __future__ import annotations

import pytest

MIRRORING = "configs/examples/mirroring/"  # relative to the rootdir


@pytest.mark.mirrorsim(MIRRORING)
def test_httpbin_goes_to_v1_and_is_mirrored_to_v2(mesh):
    decision = mesh.route("GET", "http://httpbin:8000/headers")
    assert decision.host == "httpbin.default.svc.cluster.local"
    assert decision.subset == "v1"
    assert decision.cluster == "outbound|8000|v1|httpbin.default.svc.cluster.local"
    (mirror,) = decision.mirrors
    assert mirror.subset == "v2"
    assert mirror.percentage == 100
    assert mirror.shadow_host == "httpbin-shadow:8000"
    decision.assert_destination(host="httpbin", subset="v1", port=8000)
    decision.assert_mirrors({"host": "httpbin", "subset": "v2", "percentage": 100, "shadowHost": "httpbin-shadow:8000"})


@pytest.mark.mirrorsim(MIRRORING)
@pytest.mark.parametrize("method", ["GET", "POST", "DELETE"])
def test_every_method_is_mirrored(mesh, method):
    decision = mesh.route(method, "http://httpbin.default.svc.cluster.local:8000/anything")
    decision.check(destination={"subset": "v1"}, mirror={"subset": "v2", "sampled": True}, timeout="none")


@pytest.mark.mirrorsim(MIRRORING, shadow_suffix=False)
def test_istio_1_28_keeps_the_host_on_the_copy(mesh):
    decision = mesh.route("GET", "http://httpbin:8000/")
    assert decision.mirrors[0].shadow_host == "httpbin:8000"


@pytest.mark.mirrorsim(MIRRORING)
def test_unknown_port_is_a_local_reply(mesh):
    decision = mesh.route("GET", "http://httpbin:80/")  # httpbin has no port 80
    assert decision.status == 502
    assert decision.destination is None and decision.mirrors == []


@pytest.mark.mirrorsim(MIRRORING)
def test_a_host_without_port_reaches_its_service_port(mesh):
    decision = mesh.route("GET", "http://httpbin/")  # as the sidecar's route configuration "8000" does
    assert decision.cluster == "outbound|8000|v1|httpbin.default.svc.cluster.local"
