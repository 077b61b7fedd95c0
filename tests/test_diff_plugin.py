"""The pytest plugin's ``mirrorsim_diff`` fixture and ``assert_no_mismatch`` helper, used as a
CI suite would: backends in threads, a blocking client, the bundled mirroring config."""

from __future__ import annotations

import json
import threading
import urllib.request
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest

from simulator.pytest_plugin import assert_no_mismatch

CONFIG = "configs/examples/mirroring/httpbin.yaml"


class Backend:
    """A JSON backend on loopback answering ``{"version": ..., "served": n}``."""

    def __init__(self, version: str) -> None:
        backend = self

        class Handler(BaseHTTPRequestHandler):
            def do_GET(self) -> None:  # noqa: N802
                backend.served += 1
                body = json.dumps({"served": backend.served, "version": backend.version, "ok": True}).encode()
                self.send_response(200)
                self.send_header("content-type", "application/json")
                self.send_header("content-length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            def log_message(self, *args: object) -> None:
                pass

        self.version = version
        self.served = 0
        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.port = self.server.server_address[1]
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)

    def __enter__(self) -> Backend:
        self.thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.server.shutdown()
        self.server.server_close()


def send(proxy, path: str = "/get") -> dict:
    req = urllib.request.Request(proxy.url + path, headers={"Host": "httpbin:8000"})
    with urllib.request.urlopen(req, timeout=10) as resp:
        assert resp.status == 200
        return json.loads(resp.read())


def test_same_answers_pass(mirrorsim_diff):
    with Backend("1.0") as v1, Backend("1.0") as v2:
        proxy = mirrorsim_diff(CONFIG, ports={18081: v1.port, 18082: v2.port}, json_paths=["$.served"])
        for _ in range(2):
            assert send(proxy)["version"] == "1.0"
        assert_no_mismatch(proxy)
        assert proxy.counts() == {"outbound|8000|v2|httpbin.default.svc.cluster.local.match": 2}
        assert v2.served == 2


def test_a_different_field_fails_with_the_readable_diff(mirrorsim_diff):
    with Backend("1.0") as v1, Backend("2.0") as v2:
        proxy = mirrorsim_diff(CONFIG, ports={18081: v1.port, 18082: v2.port}, json_paths=["$.served"])
        assert send(proxy, "/get?x=1")["version"] == "1.0"  # the client only ever sees v1
        with pytest.raises(pytest.fail.Exception) as info:
            assert_no_mismatch(proxy)
    text = str(info.value)
    assert "1 mirror response(s) differ" in text
    assert "GET /get?x=1 HTTP/1.1 (host httpbin:8000" in text
    assert '$.version: primary "1.0" | mirror "2.0"' in text
    assert '-  "version": "1.0"' in text and '+  "version": "2.0"' in text


def test_a_config_with_errors_fails_the_test(mirrorsim_diff, tmp_path):
    bad = tmp_path / "bad.yaml"
    bad.write_text("apiVersion: networking.istio.io/v1\nkind: VirtualService\nmetadata: {name: x}\n"
                   "spec: {hosts: [a], http: [{route: [{destination: {host: a}, weight: -1}]}]}\n")
    with pytest.raises(pytest.fail.Exception, match="bad.yaml:"):
        mirrorsim_diff(str(bad))
