"""The pytest plugin: fixtures, caching, and failure messages as readable as `check`'s."""

from __future__ import annotations

import pytest

from simulator.routecheck.workspace import Mesh
from tests.routecheck.helpers import BOOKINFO, write


def test_factory_caches_per_session(mirrorsim_mesh):
    a = mirrorsim_mesh(BOOKINFO)
    assert a is mirrorsim_mesh(BOOKINFO)
    assert a is not mirrorsim_mesh(BOOKINFO, shadow_suffix=False)
    assert isinstance(a, Mesh)


@pytest.mark.mirrorsim(BOOKINFO)
def test_marker_configures_mesh(mesh):
    d = mesh.route("GET", "http://reviews:9080/", headers={"End-User": "jason"})
    assert (d.host, d.subset, d.port) == ("reviews.default.svc.cluster.local", "v2", 9080)
    assert d.virtual_service == "default/reviews" and d.rule_name == "jason"
    assert d.timeout == 3 and d.retries == {"attempts": 3, "retryOn": ["5xx", "connect-failure"],
                                            "perTryTimeout": 1.0}
    assert d.request_headers == {"set": {"x-user-group": "testers"}, "remove": ["x-debug"]}
    split = mesh.route("GET", "http://reviews:9080/", random_value=85).split
    assert [(w.destination.subset, w.weight, w.picked) for w in split] == [("v1", 80, False), ("v3", 20, True)]
    gw = mesh.route("GET", "http://bookinfo.example.com/reviews", gateway="bookinfo-gateway")
    assert gw.subset == "v1"
    assert mesh.route("GET", "http://reviews:9080/old").redirect == {"status": 302,
                                                                      "location": "http://reviews:9080/new"}


@pytest.mark.mirrorsim(BOOKINFO)
def test_failures_list_every_mismatch(mesh):
    d = mesh.route("GET", "http://reviews:9080/", headers={"end-user": "jason"})
    with pytest.raises(AssertionError) as exc:
        d.check(destination={"subset": "v1"}, mirrors=[], timeout="1s")
    msg = str(exc.value)
    assert msg.splitlines()[0].startswith("route check failed: forwarded to outbound|9080|v2|reviews")
    assert '  destination.subset: expected "v1", actual "v2"' in msg
    assert "  mirrors: expected no mirror, actual [outbound|9080|v3|reviews.default.svc.cluster.local 25%" in msg
    assert "  timeout: expected 1s, actual 3s" in msg
    with pytest.raises(AssertionError, match=r'destination.host: expected "ratings" '):
        d.assert_destination(host="ratings")
    with pytest.raises(AssertionError, match="status: expected 404, actual no local reply"):
        d.assert_status(404)
    with pytest.raises(AssertionError, match="mirrors: expected no mirror"):
        d.assert_no_mirror()
    with pytest.raises(ValueError, match='unknown field "destinaton"'):
        d.check(destinaton={"subset": "v1"})
    assert "MATCHED" in d.explain()
    assert repr(d).startswith("<Decision forwarded to outbound|9080|v2|")


def test_config_errors_fail_with_every_diagnostic(tmp_path, mirrorsim_mesh):
    bad = write(tmp_path, "bad.yaml", "apiVersion: networking.istio.io/v1\nkind: VirtualService\nmetadata: "
                "{name: x}\nspec: {hosts: [a], http: [{route: [{destination: {host: a}}], timeout: 5}]}\n")
    with pytest.raises(pytest.fail.Exception, match=rf"1 error\(s\) in the configuration:\n{bad}:4: error IST0106"):
        mirrorsim_mesh(bad)


def test_bad_url(mirrorsim_mesh):
    with pytest.raises(ValueError, match="expected an absolute http"):
        mirrorsim_mesh(BOOKINFO).route("GET", "reviews:9080/")


SOURCE = str(BOOKINFO).replace("bookinfo.yaml", "source.yaml")


@pytest.mark.mirrorsim(SOURCE)
def test_route_from_another_workload(mesh):
    assert mesh.route("GET", "http://reviews:9080/").subset == "v1"
    d = mesh.route("GET", "http://reviews:9080/", source={"labels": {"app": "productpage", "version": "v1"}})
    assert d.subset == "v2" and d.rule_name == "from-productpage-v1"
    assert mesh.route("GET", "http://reviews.default:9080/", source={"namespace": "canary"}).subset == "v3"
    with pytest.raises(ValueError,
                       match=r"source.labels.app: invalid label value 'a b'; expected labels like \{app: productpage"):
        mesh.route("GET", "http://reviews:9080/", source={"labels": {"app": "a b"}})
    with pytest.raises(ValueError, match=r"source.namespace: 'Bad_ns' is not a namespace name"):
        mesh.route("GET", "http://reviews:9080/", source={"namespace": "Bad_ns"})


@pytest.mark.mirrorsim(SOURCE, source={"labels": {"app": "productpage", "version": "v1"}})
def test_marker_sets_the_calling_workload(mesh):
    assert mesh.route("GET", "http://reviews:9080/").subset == "v2"


@pytest.mark.mirrorsim(SOURCE, path_normalization="NONE")
def test_marker_sets_path_normalization(mesh):
    assert mesh.route("GET", "http://reviews:9080/a/../b").path == "/a/../b"


@pytest.mark.mirrorsim(SOURCE)
def test_paths_are_normalized_by_default(mesh):
    d = mesh.route("GET", "http://reviews:9080/a/../%62")
    assert d.path == "/b"
    assert mesh.route("GET", "http://reviews:9080/%00").status == 400
