"""The schema of a Gateway: servers, ports and server TLS."""

from __future__ import annotations

from simulator.config.rules.gateway import check_server_tls
from simulator.config.schema import (
    F,
    Obj,
    boolean,
    enum,
    list_of,
    string,
    string_list,
    string_map,
    uint32,
)
from simulator.model import istio as m

# ------------------------------------------------------------------ Gateway

GATEWAY_PORT = Obj(
    "Port",
    [F("number", uint32), F("protocol", string), F("name", string), F("targetPort", uint32)],
    build=m.GatewayPort,
    required=("number", "protocol", "name"),
    defaults={"number": 0, "protocol": ""},
)
_TLS_VERSION = enum("TLS_AUTO", "TLSV1_0", "TLSV1_1", "TLSV1_2", "TLSV1_3")
SERVER_TLS = Obj(
    "ServerTLSSettings",
    [
        F("httpsRedirect", boolean),
        F(
            "mode",
            enum(
                "PASSTHROUGH",
                "SIMPLE",
                "MUTUAL",
                "AUTO_PASSTHROUGH",
                "ISTIO_MUTUAL",
                "OPTIONAL_MUTUAL",
            ),
        ),
        F("serverCertificate", string, attr=""),
        F("privateKey", string, attr=""),
        F("caCertificates", string, attr=""),
        F("caCrl", string, attr=""),
        F("credentialName", string),
        F("credentialNames", string_list, attr=""),
        F(
            "tlsCertificates",
            list_of(
                Obj(
                    "TLSCertificate",
                    [
                        F("serverCertificate", string),
                        F("privateKey", string),
                        F("caCertificates", string),
                    ],
                    raw=True,
                )
            ),
            attr="",
        ),
        F("caCertCredentialName", string, attr=""),
        F("subjectAltNames", string_list, attr=""),
        F("verifyCertificateSpki", string_list, attr=""),
        F("verifyCertificateHash", string_list, attr=""),
        F("minProtocolVersion", _TLS_VERSION, attr=""),
        F("maxProtocolVersion", _TLS_VERSION, attr=""),
        F("cipherSuites", string_list, attr=""),
        F("insecureSkipVerify", boolean, attr=""),
    ],
    build=m.ServerTLSSettings,
    check=check_server_tls,
)
SERVER = Obj(
    "Server",
    [
        F("port", GATEWAY_PORT),
        F("bind", string),
        F("hosts", string_list),
        F("tls", SERVER_TLS),
        F("defaultEndpoint", string, attr=""),
        F("name", string),
    ],
    build=m.Server,
    required=("port", "hosts"),
    defaults={"port": m.GatewayPort(number=0, protocol=""), "hosts": ()},
)
GATEWAY_SPEC = Obj(
    "Gateway",
    [F("servers", list_of(SERVER)), F("selector", string_map)],
)
