"""Envoy header-value command operators: parsing (once, at load) and rendering."""

from __future__ import annotations

import pytest

from simulator.core.header_format import (
    FormatContext,
    FormatError,
    Template,
    address_from_xff,
    parse,
    unmodelled,
)

REQUEST = [(b"x-client", b"hello"), (b"x-client", b"second"), (b"x-other", b"o")]


def ctx(**kw: object) -> FormatContext:
    base: dict[str, object] = dict(
        request_headers=REQUEST, authority="svc:8000", path="/p?q", method="GET",
        downstream_remote="10.0.0.1:0", downstream_direct_remote="127.0.0.1:4000",
        downstream_local="127.0.0.1:15001", upstream_host="127.0.0.1:9000",
        cluster="outbound|8000|v1|svc", hostname="box")
    base.update(kw)
    return FormatContext(**base)  # type: ignore[arg-type]


RESPONSE = dict(response_headers=[(b"x-backend", b"b1")], response_code=201)


@pytest.mark.parametrize(("value", "plain"), [
    ("plain", "plain"),
    ("100%% sure", "100% sure"),
    ("%%", "%"),
    ("%%%%", "%%"),
    ("", ""),
])
def test_values_without_operators_stay_strings(value, plain):
    assert parse(value) == plain


@pytest.mark.parametrize(("value", "context", "out"), [
    ("%REQ(x-client)%", {}, "hello"),  # the first line's value
    ("<%REQ(x-missing)%>", {}, "<>"),
    ("%REQ(x-missing?x-other)%", {}, "o"),
    ("%REQ(?x-other)%", {}, "o"),
    ("%REQ(x-client):2%", {}, "he"),
    ("%REQ(X-Client)%", {}, "hello"),
    ("%REQ(:authority)% %REQ(host)% %REQ(:path)% %REQ(:method)% %REQ(:scheme)%", {},
     "svc:8000 svc:8000 /p?q GET http"),
    ("%RESP(x-backend)%", {}, ""),  # no response yet
    ("%RESP(x-backend)%", RESPONSE, "b1"),
    ("%PROTOCOL%%PROTOCOL%%%", {}, "HTTP/1.1HTTP/1.1%"),
    ("%DOWNSTREAM_REMOTE_ADDRESS%", {}, "10.0.0.1:0"),
    ("%DOWNSTREAM_REMOTE_ADDRESS_WITHOUT_PORT%", {}, "10.0.0.1"),
    ("%DOWNSTREAM_REMOTE_PORT%", {}, "0"),
    ("%DOWNSTREAM_DIRECT_REMOTE_ADDRESS%", {}, "127.0.0.1:4000"),
    ("%DOWNSTREAM_DIRECT_REMOTE_PORT%", {}, "4000"),
    ("%DOWNSTREAM_LOCAL_ADDRESS_WITHOUT_PORT%", {}, "127.0.0.1"),
    ("%DOWNSTREAM_LOCAL_PORT%", {}, "15001"),
    ("%DOWNSTREAM_REMOTE_ADDRESS_WITHOUT_PORT%", {"downstream_remote": "[2001:db8::1]:0"}, "2001:db8::1"),
    ("[%UPSTREAM_REMOTE_ADDRESS%]", {}, "[]"),  # request headers: no endpoint yet
    ("%UPSTREAM_REMOTE_ADDRESS%", RESPONSE, "127.0.0.1:9000"),
    ("%UPSTREAM_REMOTE_ADDRESS_WITHOUT_PORT%", RESPONSE, "127.0.0.1"),
    ("%UPSTREAM_HOST%", RESPONSE, "127.0.0.1:9000"),
    ("%UPSTREAM_CLUSTER%", {}, "outbound|8000|v1|svc"),
    ("%RESPONSE_CODE%", {}, "0"),
    ("%RESPONSE_CODE%", RESPONSE, "201"),
    ("%HOSTNAME%", {}, "box"),
    ("[%START_TIME%]", {}, "[]"),  # valid, not modelled
    ("%REQ(x-client)%", {"removed": ("x-client",)}, ""),  # removed before added
    ("%REQ(x-request-id)%", {"request_id": "gen"}, "gen"),  # generated before the router runs
    ("%REQ(x-forwarded-proto)%", {}, "http"),  # likewise
    ("%RESP(x-backend)%", {**RESPONSE, "removed": ("x-backend",)}, ""),
])
def test_render(value, context, out):
    t = parse(value)
    assert isinstance(t, Template)
    assert t.render(ctx(**context)) == out


@pytest.mark.parametrize(("value", "error"), [  # Envoy 1.40's own messages
    ("%FOO%", "Not supported field in StreamInfo: FOO"),
    ("%_%", "Not supported field in StreamInfo: _"),
    ("%REQ%", "REQ requires parameters"),
    ("%REQ()%", "REQ requires parameters"),
    ("%REQ(x):abc%", "Incorrect configuration: %REQ(x):abc%. Couldn't find valid command at position 0"),
    ("%REQ(x)", "Incorrect configuration: %REQ(x). Couldn't find valid command at position 0"),
    ("%protocol%", "Incorrect configuration: %protocol%. Couldn't find valid command at position 0"),
    ("abc%123", "Incorrect configuration: abc%123. Couldn't find valid command at position 3"),
    ("100%", "Incorrect configuration: 100%. Couldn't find valid command at position 3"),
    ("%START_TIME%%", "Incorrect configuration: %START_TIME%%. Couldn't find valid command at position 12"),
    ("%PROTOCOL(x)%", "PROTOCOL does not take any parameters or length"),
    ("%PROTOCOL:2%", "PROTOCOL does not take any parameters or length"),
    ("%REQ(x?y?z)%", "More than 1 alternative header specified in token: x?y?z"),
    ("%REQ(x@y)%", "Invalid header configuration. Format string contains invalid characters."),
    ("%START_TIME(%s):3%", "START_TIME does not allow length to be specified."),
])
def test_envoy_rejects(value, error):
    with pytest.raises(FormatError) as exc:
        parse(value)
    assert str(exc.value) == error


def test_unmodelled_operators_are_named():
    t = parse("%START_TIME% %REQ(x)% %DYNAMIC_METADATA(a:b)% %PROTOCOL%")
    assert isinstance(t, Template)
    assert unmodelled(t) == ["DYNAMIC_METADATA", "START_TIME"]


@pytest.mark.parametrize(("xff", "addr"), [
    (None, None), ("", None), ("10.0.0.1", "10.0.0.1:0"), ("10.0.0.1, 192.0.2.7", "192.0.2.7:0"),
    ("2001:db8::1", "[2001:db8::1]:0"), ("10.0.0.1,not-an-ip", None),
])
def test_downstream_address_from_xff(xff, addr):
    assert address_from_xff(xff) == addr
