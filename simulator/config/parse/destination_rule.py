"""The schema of a DestinationRule: traffic policy (load balancer, connection pool,
outlier detection, client TLS, port-level settings) and subsets."""

from __future__ import annotations

from simulator.config.parse.messages import DUR, PORT_SELECTOR
from simulator.config.rules.destination_rule import (
    check_client_tls,
    check_connection_pool,
    check_consistent_hash,
    check_maglev,
    check_outlier_detection,
    check_traffic_policy,
)
from simulator.config.schema import (
    F,
    Obj,
    boolean,
    duration,
    enum,
    int32,
    list_of,
    map_of,
    number,
    string,
    string_list,
    string_map,
    uint32,
)
from simulator.model import istio as m

# ------------------------------------------------------------------ DestinationRule

CLIENT_TLS = Obj(
    "ClientTLSSettings",
    [
        F("mode", enum("DISABLE", "SIMPLE", "MUTUAL", "ISTIO_MUTUAL")),
        F("clientCertificate", string),
        F("privateKey", string),
        F("caCertificates", string),
        F("credentialName", string),
        F("subjectAltNames", string_list),
        F("sni", string),
        F("insecureSkipVerify", boolean),
        F("caCrl", string),
    ],
    raw=True,
    check=check_client_tls,
)
HTTP_COOKIE = Obj(
    "HTTPCookie",
    [
        F("name", string),
        F("path", string),
        F("ttl", duration(min_1ms=False)),
        F(
            "attributes",
            list_of(Obj("Attribute", [F("name", string), F("value", string)], raw=True)),
        ),
    ],
    raw=True,
)
CONSISTENT_HASH = Obj(
    "ConsistentHashLB",
    [
        F("httpHeaderName", string),
        F("httpCookie", HTTP_COOKIE),
        F("useSourceIp", boolean),
        F("httpQueryParameterName", string),
        F("ringHash", Obj("RingHash", [F("minimumRingSize", uint32)], raw=True), attr=""),
        F(
            "maglev",
            Obj("MagLev", [F("tableSize", uint32)], raw=True, check=check_maglev),
            attr="",
        ),
        F("minimumRingSize", uint32),
    ],
    build=m.ConsistentHashLB,
    oneof=(
        ("httpHeaderName", "httpCookie", "useSourceIp", "httpQueryParameterName"),
        ("ringHash", "maglev"),
    ),
    check=check_consistent_hash,
)
_FAILOVER = Obj("Failover", [F("from", string), F("to", string)], raw=True)
LOCALITY_LB = Obj(
    "LocalityLoadBalancerSetting",
    [
        F(
            "distribute",
            list_of(Obj("Distribute", [F("from", string), F("to", map_of(uint32))], raw=True)),
        ),
        F("failover", list_of(_FAILOVER)),
        F("failoverPriority", string_list),
        F("enabled", boolean),
    ],
    raw=True,
)
ZONE_AWARE_LB = Obj(
    "ZoneAwareLoadBalancerSetting",
    [
        F("enabled", boolean),
        F("failover", list_of(_FAILOVER)),
        F("failoverPriority", string_list),
        F("minClusterSize", uint32),
    ],
    raw=True,
)
WARMUP = Obj(
    "WarmupConfiguration",
    [F("duration", DUR), F("minimumPercent", number), F("aggression", number)],
    required=("duration",),
    raw=True,
)
LOAD_BALANCER = Obj(
    "LoadBalancerSettings",
    [
        F(
            "simple",
            enum("UNSPECIFIED", "LEAST_CONN", "RANDOM", "PASSTHROUGH", "ROUND_ROBIN", "LEAST_REQUEST"),
        ),
        F("consistentHash", CONSISTENT_HASH),
        F("localityLbSetting", LOCALITY_LB),
        F("zoneAwareLbSetting", ZONE_AWARE_LB, attr=""),
        F("warmupDurationSecs", DUR, attr=""),
        F("warmup", WARMUP),
    ],
    build=m.LoadBalancerSettings,
    oneof=(("simple", "consistentHash"), ("localityLbSetting", "zoneAwareLbSetting")),
)
TCP_SETTINGS = Obj(
    "TCPSettings",
    [
        F("maxConnections", int32),
        F("connectTimeout", DUR),
        F(
            "tcpKeepalive",
            Obj("TcpKeepalive", [F("probes", uint32), F("time", DUR), F("interval", DUR)], raw=True),
            attr="",
        ),
        F("maxConnectionDuration", DUR),
        F("idleTimeout", duration(allow_zero=True)),
    ],
    build=m.TCPSettings,
)
HTTP_SETTINGS = Obj(
    "HTTPSettings",
    [
        F("http1MaxPendingRequests", int32, attr="http1_max_pending_requests"),
        F("http2MaxRequests", int32, attr="http2_max_requests"),
        F("maxRequestsPerConnection", int32),
        F("maxRetries", int32),
        F("idleTimeout", DUR),
        F(
            "h2UpgradePolicy",
            enum("DEFAULT", "DO_NOT_UPGRADE", "UPGRADE"),
            attr="h2_upgrade_policy",
        ),
        F("useClientProtocol", boolean),
        F("maxConcurrentStreams", int32),
        F(
            "http2KeepAlive",
            Obj(
                "HTTP2KeepAlive",
                [F("interval", DUR), F("timeout", DUR)],
                required=("interval", "timeout"),
                raw=True,
            ),
            attr="",
        ),
    ],
    build=m.HTTPSettings,
)
CONNECTION_POOL = Obj(
    "ConnectionPoolSettings",
    [F("tcp", TCP_SETTINGS), F("http", HTTP_SETTINGS)],
    build=m.ConnectionPoolSettings,
    check=check_connection_pool,
)
OUTLIER_DETECTION = Obj(
    "OutlierDetection",
    [
        F("consecutiveErrors", int32),
        F("splitExternalLocalOriginErrors", boolean),
        F("consecutiveLocalOriginFailures", uint32),
        F("consecutiveGatewayErrors", uint32),
        F("consecutive5xxErrors", uint32, attr="consecutive_5xx_errors"),
        F("interval", DUR),
        F("baseEjectionTime", DUR),
        F("maxEjectionPercent", int32),
        F("minHealthPercent", int32),
        F("outlierDetectionHttpErrorCodes", list_of(uint32), attr=""),
    ],
    build=m.OutlierDetection,
    check=check_outlier_detection,
)
PORT_TRAFFIC_POLICY = Obj(
    "PortTrafficPolicy",
    [
        F("port", PORT_SELECTOR),
        F("loadBalancer", LOAD_BALANCER),
        F("connectionPool", CONNECTION_POOL),
        F("outlierDetection", OUTLIER_DETECTION),
        F("tls", CLIENT_TLS),
    ],
    build=m.PortTrafficPolicy,
    defaults={"port": None},
)
TRAFFIC_POLICY = Obj(
    "TrafficPolicy",
    [
        F("loadBalancer", LOAD_BALANCER),
        F("connectionPool", CONNECTION_POOL),
        F("outlierDetection", OUTLIER_DETECTION),
        F("tls", CLIENT_TLS),
        F("portLevelSettings", list_of(PORT_TRAFFIC_POLICY)),
        F(
            "tunnel",
            Obj(
                "TunnelSettings",
                [F("protocol", string), F("targetHost", string), F("targetPort", uint32)],
                required=("targetHost", "targetPort"),
                raw=True,
            ),
            attr="",
        ),
        F(
            "proxyProtocol",
            Obj("ProxyProtocol", [F("version", enum("V1", "V2"))], raw=True),
            attr="",
        ),
        F(
            "retryBudget",
            Obj(
                "RetryBudget",
                [F("percent", number), F("minRetryConcurrency", uint32), F("budgetInterval", DUR)],
                raw=True,
            ),
            attr="",
        ),
    ],
    build=m.TrafficPolicy,
    check=check_traffic_policy,
)
SUBSET = Obj(
    "Subset",
    [F("name", string), F("labels", string_map), F("trafficPolicy", TRAFFIC_POLICY)],
    build=m.Subset,
    required=("name",),
    defaults={"name": ""},
)
DESTINATION_RULE_SPEC = Obj(
    "DestinationRule",
    [
        F("host", string),
        F("trafficPolicy", TRAFFIC_POLICY),
        F("subsets", list_of(SUBSET)),
        F("exportTo", string_list),
        F(
            "workloadSelector",
            Obj(
                "WorkloadSelector",
                [F("matchLabels", string_map)],
                build=lambda match_labels=None: match_labels or {},
            ),
        ),
    ],
    required=("host",),
)
