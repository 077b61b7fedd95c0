"""Translate a compiled ``RouteTable`` into an Envoy v3 static bootstrap.

Pure: the result is a plain ``dict`` (YAML/JSON-ready) built from the table alone.

How mirrorsim's shape maps onto one Envoy listener
--------------------------------------------------
mirrorsim serves every port on ONE listener: the port in the Host header selects
the route configuration (a Host without a port: port 80's if it knows the host,
else the lowest port that does), then the host selects the virtual host
(Istio's ``ignore_port_in_host_matching``).  Envoy has no "route config per
Host port" on one listener, so the export folds every port into one
``route_config`` whose virtual-host domains carry the port: ``httpbin:8000``,
``httpbin.default:8000``, ...; each domain is also listed without a port on the
virtual host a port-less Host reaches.  A wildcard ``*.example.com`` becomes
``*.example.com:<port>`` (an Envoy suffix wildcard) and ``*`` becomes
``*:<port>``.  When two virtual hosts claim one domain the first keeps it, as in
mirrorsim's lookup (Envoy rejects duplicate domains).  A final catch-all
virtual host ``*`` answers ``direct_response: 502`` for unknown hosts, as
mirrorsim and Istio's REGISTRY_ONLY ``block_all`` do.

Everything else follows what Istio's pilot emits for a sidecar:
``include_request_attempt_count`` on every virtual host (``x-envoy-attempt-count``),
``validate_clusters: false`` (a route to an undefined subset answers 503 NC),
STATIC clusters named ``outbound|8000|v1|httpbin.default.svc.cluster.local`` with
circuit-breaker thresholds always set (unset = 2^32-1), routes with
``timeout: 0s`` when the VirtualService sets none (Envoy's own default is 15 s),
Istio's retry policy (``previous_hosts`` predicate, 5 host selection attempts),
mirror policies with ``runtime_fraction`` and ``trace_sampled: false``, per-route
fault and CORS filter configuration, route decorators and ``max_grpc_timeout``,
and a 1 MiB direct-response body limit.  The HCM is the one Istio builds for a
sidecar's outbound HTTP listener (``normalize_path``, websocket upgrades,
``proxy_100_continue``, the UUID request-id extension, ``stream_idle_timeout: 0s``,
``use_remote_address: false``, the fault, CORS and router filters), plus a file
access log to stdout in Envoy's default format.  docs/envoy-export.md has the
setting-by-setting table with where Istio sets each one.
"""

from __future__ import annotations

import base64
from typing import Any, Final

import yaml

from simulator.core.cors import CorsPolicy
from simulator.core.envoy_config import (
    Cluster,
    DirectResponseAction,
    FaultConfig,
    HeaderMutations,
    MirrorPolicy,
    RedirectAction,
    RetryPolicy,
    Route,
    RouteAction,
    RouteMatch,
    VirtualHost,
)
from simulator.core.hosts import is_ip
from simulator.core.matchers import HeaderMatcher, PathMatcher, QueryParameterMatcher, StringMatcher
from simulator.core.paths import BASE, DECODE_AND_MERGE_SLASHES, MERGE_SLASHES, NONE
from simulator.core.table import RouteTable

# mirrorsim's HCM stat prefix (simulator/proxy/stats.py), so both expose the same names.
STAT_PREFIX = "outbound_0.0.0.0_15001"
ROUTE_CONFIG_NAME = "mirrorsim"
MAX_DIRECT_RESPONSE_BODY = 1024 * 1024  # Istio's DefaultMaxDirectResponseBodySizeBytes

_T = "type.googleapis.com/"
HCM_TYPE = _T + "envoy.extensions.filters.network.http_connection_manager.v3.HttpConnectionManager"
ROUTER_TYPE = _T + "envoy.extensions.filters.http.router.v3.Router"
FAULT_TYPE = _T + "envoy.extensions.filters.http.fault.v3.HTTPFault"
FILE_LOG_TYPE = _T + "envoy.extensions.access_loggers.file.v3.FileAccessLog"
HTTP_OPTIONS_TYPE = _T + "envoy.extensions.upstreams.http.v3.HttpProtocolOptions"
PREVIOUS_HOSTS_TYPE = _T + "envoy.extensions.retry.host.previous_hosts.v3.PreviousHostsPredicate"
FAULT_FILTER = "envoy.filters.http.fault"
CORS_FILTER = "envoy.filters.http.cors"
CORS_TYPE = _T + "envoy.extensions.filters.http.cors.v3.Cors"
CORS_POLICY_TYPE = _T + "envoy.extensions.filters.http.cors.v3.CorsPolicy"
UUID_REQUEST_ID_TYPE = _T + "envoy.extensions.request_id.uuid.v3.UuidRequestIdConfig"

ISTIO_RUNTIME_FLAGS: dict[str, Any] = {
    "re2.max_program_size.error_level": "32768",
    "envoy.deprecated_features:envoy.config.listener.v3.Listener.hidden_envoy_deprecated_use_original_dst": True,
    "envoy.reloadable_features.http_reject_path_with_fragment": False,  # fragments stripped, not rejected
    "envoy.reloadable_features.fixed_heap_use_allocated": True,
    "envoy.reloadable_features.coalesce_lb_rebuilds_on_batch_update": False,
}

_DENOMINATORS = {100: "HUNDRED", 10_000: "TEN_THOUSAND", 1_000_000: "MILLION"}
_REDIRECT_CODES = {301: "MOVED_PERMANENTLY", 302: "FOUND", 303: "SEE_OTHER",
                   307: "TEMPORARY_REDIRECT", 308: "PERMANENT_REDIRECT"}
_LB_POLICIES = {"LEAST_REQUEST", "ROUND_ROBIN", "RANDOM", "RING_HASH", "MAGLEV"}


# istio-agent's bootstrap stats_config.stats_tags (tools/packaging/common/envoy_bootstrap.json,
# without the per-deployment extraStatTags), with use_all_default_tags: false; the admin's
# /stats/prometheus extracts the same tags (simulator/proxy/prometheus.py)
ISTIO_STATS_TAGS: Final[tuple[tuple[str, str], ...]] = (
    ("cluster_name", r"^cluster\.((.+?(\..+?\.svc\.cluster\.local)?)\.)"),
    ("tcp_prefix", r"^tcp\.((.*?)\.)\w+?$"),
    ("response_code", r"_rq(_(\d{3}))$"),
    ("response_code_class", r"_rq(_(\dxx))$"),
    ("http_conn_manager_listener_prefix",
     r"^listener(?=\.).*?\.http\.(((?:[_.[:digit:]]*|[_\[\]aAbBcCdDeEfF[:digit:]]*))\.)"),
    ("http_conn_manager_prefix", r"^http\.(((?:[_.[:digit:]]*|[_\[\]aAbBcCdDeEfF[:digit:]]*))\.)"),
    ("listener_address", r"^listener\.(((?:[_.[:digit:]]*|[_\[\]aAbBcCdDeEfF[:digit:]]*))\.)"),
    ("mongo_prefix", r"^mongo\.(.+?)\.(collection|cmd|cx_|op_|delays_|decoding_)(.*?)$"),
    ("cache", r"(cache\.(.+?)\.)"),
    ("component", r"(component\.(.+?)\.)"),
    ("tag", r"(tag\.(.+?);\.)"),
    ("wasm_filter", r"(wasm_filter\.(.+?)\.)"),
    ("authz_enforce_result", r"rbac(\.(allowed|denied))"),
    ("authz_dry_run_action", r"(\.istio_dry_run_(allow|deny)_)"),
    ("authz_dry_run_result", r"(\.shadow_(allowed|denied))"),
)


def bootstrap(
    table: RouteTable,
    *,
    listen: tuple[str, int] = ("127.0.0.1", 15001),
    admin: tuple[str, int] = ("127.0.0.1", 15000),
) -> dict[str, Any]:
    """The Envoy v3 static bootstrap equivalent to what mirrorsim serves for ``table``."""
    hcm = http_connection_manager(route_configuration(table), table.path_normalization)
    listener = {
        "name": "mirrorsim",
        "address": _address(*listen),
        "filter_chains": [{"filters": [{
            "name": "envoy.filters.network.http_connection_manager",
            "typed_config": hcm,
        }]}],
    }
    return {
        "node": {"id": "mirrorsim", "cluster": "mirrorsim"},
        "admin": {"address": _address(*admin)},
        "stats_config": {"use_all_default_tags": False,
                         "stats_tags": [{"tag_name": n, "regex": r} for n, r in ISTIO_STATS_TAGS]},
        # istio-agent's bootstrap (tools/packaging/common/envoy_bootstrap.json), runtime flags from
        # pkg/bootstrap/config.go extractRuntimeFlags
        "layered_runtime": {"layers": [
            {"name": "global config", "static_layer": dict(ISTIO_RUNTIME_FLAGS)},
            {"name": "admin", "admin_layer": {}},
        ]},
        "static_resources": {
            "listeners": [listener],
            "clusters": [cluster(c) for c in table.clusters.values()],
        },
    }


def http_connection_manager(route_config: dict[str, Any], path_normalization: str = BASE) -> dict[str, Any]:
    """The HTTP connection manager of an Istio sidecar's outbound HTTP listener
    (listener.go buildSidecarOutboundHTTPListenerOpts + listener_builder.go
    buildHTTPConnectionManager, mesh defaults); docs/envoy-export.md has the table."""
    hcm = {
        "@type": HCM_TYPE,
        "stat_prefix": STAT_PREFIX,
        "codec_type": "AUTO",
        "use_remote_address": False,  # PILOT_SIDECAR_USE_REMOTE_ADDRESS=false
        "upgrade_configs": [{"upgrade_type": "websocket"}],
        "stream_idle_timeout": "0s",
        # buildHTTPConnectionManager's switch on meshConfig.pathNormalization (unset = DEFAULT = BASE)
        "normalize_path": path_normalization != NONE,
        "path_with_escaped_slashes_action": ("UNESCAPE_AND_FORWARD" if path_normalization == DECODE_AND_MERGE_SLASHES
                                             else "KEEP_UNCHANGED"),
        "proxy_100_continue": True,  # ENABLE_100_CONTINUE_HEADERS=true
        "request_id_extension": {"typed_config": {
            "@type": UUID_REQUEST_ID_TYPE, "use_request_id_for_trace_sampling": True}},
        "access_log": [{
            "name": "envoy.access_loggers.file",
            "typed_config": {"@type": FILE_LOG_TYPE, "path": "/dev/stdout"},  # default format
        }],
        # Istio's outbound chain, less the filters mirrorsim does not model (istio.metadata_exchange,
        # grpc_stats, istio.alpn, istio.stats): the per-route configuration does the work
        "http_filters": [
            {"name": FAULT_FILTER, "typed_config": {"@type": FAULT_TYPE}},
            {"name": CORS_FILTER, "typed_config": {"@type": CORS_TYPE}},
            {"name": "envoy.filters.http.router", "typed_config": {"@type": ROUTER_TYPE}},
        ],
        "route_config": route_config,
    }
    if path_normalization in (MERGE_SLASHES, DECODE_AND_MERGE_SLASHES):
        hcm["merge_slashes"] = True
    return hcm


# yaml-cpp (Envoy's YAML reader) also takes these plain scalars as booleans; PyYAML would not quote them
_YAML_CPP_BOOLS = frozenset({"y", "n", "yes", "no", "on", "off", "true", "false"})


class _Dumper(yaml.SafeDumper):
    pass


def _represent_str(dumper: yaml.SafeDumper, value: str) -> yaml.ScalarNode:
    if value.lower() in _YAML_CPP_BOOLS:
        return dumper.represent_scalar("tag:yaml.org,2002:str", value, style="'")
    return dumper.represent_str(value)


_Dumper.add_representer(str, _represent_str)


def to_yaml(doc: dict[str, Any]) -> str:
    """YAML that Envoy reads back exactly (strings like ``n`` or ``on`` are quoted)."""
    return yaml.dump(doc, Dumper=_Dumper, sort_keys=False, default_flow_style=False, width=120)


def _address(host: str, port: int) -> dict[str, Any]:
    return {"socket_address": {"address": host, "port_value": port}}


def duration(seconds: float) -> str:
    """Protobuf JSON duration: 0.2 -> "0.2s", 10 -> "10s"."""
    ns = round(seconds * 1_000_000_000)
    s, frac = divmod(ns, 1_000_000_000)
    if not frac:
        return f"{s}s"
    return f"{s}.{frac:09d}".rstrip("0") + "s"



# --------------------------------------------------------------------------- route configuration


def route_configuration(table: RouteTable) -> dict[str, Any]:
    """One route configuration for every port.  Every domain carries its port
    (``httpbin:8000``); a domain without a port goes to the virtual host mirrorsim picks
    for a Host without one (``RouteTable.select_virtual_host``): port 80's route
    configuration first, then the lowest port.  A domain two virtual hosts claim stays
    with the first, as in mirrorsim's lookup (Envoy rejects duplicates)."""
    taken: set[str] = set()
    entries: list[tuple[int, VirtualHost, list[str]]] = []
    for port, rc in sorted(table.route_configs.items()):
        for vh in rc.virtual_hosts:
            domains = []
            for d in vh.domains:
                form = f"{d.lower()}:{port}"
                if form not in taken:
                    taken.add(form)
                    domains.append(form)
            entries.append((port, vh, domains))
    for _, vh, domains in sorted(entries, key=lambda e: (e[0] != 80, e[0])):  # stable: vhost order kept
        for d in vh.domains:
            if d.lower() not in taken:
                taken.add(d.lower())
                domains.append(d.lower())
    vhosts: list[dict[str, Any]] = [{
        "name": vh.name,
        "domains": domains,
        "routes": [route(r, port, table) for r in vh.routes],
        "include_request_attempt_count": True,  # x-envoy-attempt-count, as Istio's sidecar
    } for port, vh, domains in entries if domains]  # no domain left: unreachable
    if "*" not in taken:
        vhosts.append({
            "name": "block_all",
            "domains": ["*"],
            "routes": [{"name": "block_all", "match": {"prefix": "/"},
                        "direct_response": {"status": 502}}],
            "include_request_attempt_count": True,
        })
    return {
        "name": ROUTE_CONFIG_NAME,
        "validate_clusters": False,
        "max_direct_response_body_size_bytes": MAX_DIRECT_RESPONSE_BODY,
        "virtual_hosts": vhosts,
    }


def route(r: Route, port: int, table: RouteTable) -> dict[str, Any]:
    out: dict[str, Any] = {}
    if r.name:
        out["name"] = r.name
    out["match"] = route_match(r.match)
    if ".match[" in r.origin_path:  # TranslateRouteMatch sets it for every match block (none: no match)
        out["match"]["case_sensitive"] = r.match.path.case_sensitive
    a = r.action
    if isinstance(a, RouteAction):
        out["route"] = route_action(a, table)
    elif isinstance(a, RedirectAction):
        out["redirect"] = redirect_action(a, port)
    else:
        out["direct_response"] = direct_response(a)
    _mutations(out, "request", r.request_headers)
    _mutations(out, "response", r.response_headers)
    out["decorator"] = {"operation": decorator_operation(r, port)}
    per_filter: dict[str, Any] = {}
    if r.fault is not None:
        per_filter[FAULT_FILTER] = fault(r.fault)
    if r.cors is not None:
        per_filter[CORS_FILTER] = cors_policy(r.cors)
    if per_filter:
        out["typed_per_filter_config"] = per_filter
    return out


def decorator_operation(r: Route, port: int) -> str:
    """Istio's GetRouteOperation (route.go): ``host:port`` of a single destination, else
    ``<VirtualService name>:port``, then the path match; the default route's is TraceOperation."""
    a = r.action
    if not r.origin.startswith("VirtualService "):
        host = a.cluster.rpartition("|")[2] if isinstance(a, RouteAction) else ""
        return f"{host}:{port}/*"
    p = r.match.path
    path = p.value + "*" if p.kind in ("prefix", "sep_prefix") else p.value
    if isinstance(a, RouteAction) and a.cluster.count("|") == 3:
        _, cport, _, host = a.cluster.split("|")
        return f"{host}:{cport}{path}"
    return f"{r.origin.rpartition('/')[2]}:{port}{path}"


def _string_match(m: StringMatcher) -> dict[str, Any]:
    if m.kind == "exact":
        return {"exact": m.value}
    if m.kind == "prefix":
        if not m.value:  # Envoy requires a non-empty prefix; "" matches every value
            return {"safe_regex": {"regex": ".*"}}
        return {"prefix": m.value}
    return {"safe_regex": {"regex": m.value}}


def _path(p: PathMatcher) -> dict[str, Any]:
    out: dict[str, Any]
    if p.kind == "prefix":
        out = {"prefix": p.value}
    elif p.kind == "sep_prefix":
        out = {"path_separated_prefix": p.value}
    elif p.kind == "exact":
        out = {"path": p.value}
    else:
        out = {"safe_regex": {"regex": p.value}}
    if not p.case_sensitive:
        out["case_sensitive"] = False
    return out


def _header_matcher(h: HeaderMatcher) -> dict[str, Any]:
    out: dict[str, Any] = {"name": h.name}
    if h.matcher.kind == "present":
        out["present_match"] = True
    else:
        out["string_match"] = _string_match(h.matcher)
    if h.invert:
        out["invert_match"] = True
    if h.treat_missing_as_empty:
        out["treat_missing_header_as_empty"] = True
    return out


def _query_matcher(q: QueryParameterMatcher) -> dict[str, Any]:
    if q.matcher.kind == "present":
        return {"name": q.name, "present_match": True}
    return {"name": q.name, "string_match": _string_match(q.matcher)}


def route_match(m: RouteMatch) -> dict[str, Any]:
    out = _path(m.path)
    if m.headers:
        out["headers"] = [_header_matcher(h) for h in m.headers]
    if m.query_parameters:
        out["query_parameters"] = [_query_matcher(q) for q in m.query_parameters]
    return out


def _mutations(out: dict[str, Any], kind: str, mut: HeaderMutations) -> None:
    if mut.add:
        out[f"{kind}_headers_to_add"] = [
            {"header": {"key": a.name, "value": a.configured},
             "append_action": "APPEND_IF_EXISTS_OR_ADD" if a.append else "OVERWRITE_IF_EXISTS_OR_ADD"}
            for a in mut.add
        ]
    if mut.remove:
        out[f"{kind}_headers_to_remove"] = list(mut.remove)


def route_action(a: RouteAction, table: RouteTable) -> dict[str, Any]:
    out: dict[str, Any] = {}
    if a.weighted_clusters:
        clusters = []
        for w in a.weighted_clusters:
            entry: dict[str, Any] = {"name": w.name, "weight": w.weight}
            _mutations(entry, "request", w.request_headers)
            _mutations(entry, "response", w.response_headers)
            if w.host_rewrite is not None:
                entry["host_rewrite_literal"] = w.host_rewrite
            clusters.append(entry)
        out["weighted_clusters"] = {"clusters": clusters}
    else:
        out["cluster"] = a.cluster
        c = table.clusters.get(a.cluster)
        if c is not None and c.hash_policy:
            out["hash_policy"] = [_hash_policy(kind, name) for kind, name in c.hash_policy]
    if a.cluster_not_found_status == 500:  # istiod on Gateway API routes
        out["cluster_not_found_response_code"] = "INTERNAL_SERVER_ERROR"
    out["timeout"] = duration(a.timeout)  # 0s = no timeout (Envoy's default would be 15s)
    out["max_grpc_timeout"] = out["timeout"]  # Istio's setTimeout: grpc-timeout honoured, capped by it
    if a.retry_policy is not None:
        out["retry_policy"] = retry_policy(a.retry_policy)
    if a.regex_rewrite is not None:
        out["regex_rewrite"] = {
            "pattern": {"regex": a.regex_rewrite_source},
            "substitution": a.regex_rewrite[1],
        }
    elif a.prefix_rewrite is not None:
        out["prefix_rewrite"] = a.prefix_rewrite
    if a.host_rewrite is not None:
        out["host_rewrite_literal"] = a.host_rewrite
    if a.mirror_policies:
        out["request_mirror_policies"] = [mirror_policy(m) for m in a.mirror_policies]
    return out


def _hash_policy(kind: str, name: str) -> dict[str, Any]:
    if kind == "header":
        return {"header": {"header_name": name}}
    if kind == "cookie":
        return {"cookie": {"name": name}}
    if kind == "query_parameter":
        return {"query_parameter": {"name": name}}
    return {"connection_properties": {"source_ip": True}}


def retry_policy(p: RetryPolicy) -> dict[str, Any]:
    """As Istio's retry.ConvertPolicy emits it."""
    out: dict[str, Any] = {"retry_on": ",".join(p.retry_on), "num_retries": p.num_retries}
    if p.per_try_timeout:
        out["per_try_timeout"] = duration(p.per_try_timeout)
    if p.previous_hosts:
        out["retry_host_predicate"] = [{
            "name": "envoy.retry_host_predicates.previous_hosts",
            "typed_config": {"@type": PREVIOUS_HOSTS_TYPE},
        }]
    out["host_selection_retry_max_attempts"] = 5
    if p.retriable_status_codes:
        out["retriable_status_codes"] = list(p.retriable_status_codes)
    if p.base_interval and abs(p.base_interval - 0.025) > 1e-9:
        out["retry_back_off"] = {"base_interval": duration(p.base_interval)}
    return out


def mirror_policy(m: MirrorPolicy) -> dict[str, Any]:
    out: dict[str, Any] = {
        "cluster": m.cluster,
        "runtime_fraction": {"default_value": {
            "numerator": m.numerator,
            "denominator": _DENOMINATORS.get(m.denominator, "MILLION"),
        }},
        "trace_sampled": False,
    }
    if m.disable_shadow_host_suffix_append:
        out["disable_shadow_host_suffix_append"] = True
    return out


def redirect_action(a: RedirectAction, port: int) -> dict[str, Any]:
    """As Istio's ApplyRedirect emits it (``port`` is the route configuration's port)."""
    out: dict[str, Any] = {}
    if a.path is not None:
        out["path_redirect"] = a.path
    elif a.prefix_rewrite is not None:
        out["prefix_rewrite"] = a.prefix_rewrite
    if a.host is not None:
        out["host_redirect"] = a.host
    if a.port is not None:
        out["port_redirect"] = a.port
    elif a.derive_port == "FROM_REQUEST_PORT":
        out["port_redirect"] = port
    if a.scheme is not None:
        out["scheme_redirect"] = a.scheme
    # Istio drops the action of a code Envoy lacks; validation keeps such codes rare
    code = _REDIRECT_CODES.get(a.response_code, "MOVED_PERMANENTLY")
    if code != "MOVED_PERMANENTLY":
        out["response_code"] = code
    return out


def direct_response(a: DirectResponseAction) -> dict[str, Any]:
    out: dict[str, Any] = {"status": a.status}
    if a.body:
        try:
            out["body"] = {"inline_string": a.body.decode("utf-8")}
        except UnicodeDecodeError:
            out["body"] = {"inline_bytes": base64.b64encode(a.body).decode("ascii")}
    return out


def cors_policy(c: CorsPolicy) -> dict[str, Any]:
    """Istio's TranslateCORSPolicy: lists joined with ",", max_age in whole seconds,
    filter enabled 100 %, forward_not_matching_preflights unless IGNORE."""
    out: dict[str, Any] = {"@type": CORS_POLICY_TYPE}
    if c.allow_origins:
        out["allow_origin_string_match"] = [_string_match(m) for m in c.allow_origins]
    if c.allow_methods:
        out["allow_methods"] = c.allow_methods
    if c.allow_headers:
        out["allow_headers"] = c.allow_headers
    if c.expose_headers:
        out["expose_headers"] = c.expose_headers
    if c.max_age:
        out["max_age"] = c.max_age
    if c.allow_credentials is not None:
        out["allow_credentials"] = c.allow_credentials
    out["filter_enabled"] = {"default_value": {"numerator": 100, "denominator": "HUNDRED"}}
    out["forward_not_matching_preflights"] = c.forward_not_matching_preflights
    return out


def fault(f: FaultConfig) -> dict[str, Any]:
    """Istio's TranslateFault: percentages as FractionalPercent over MILLION."""
    out: dict[str, Any] = {"@type": FAULT_TYPE}
    if f.delay is not None:
        out["delay"] = {"fixed_delay": duration(f.delay),
                        "percentage": {"numerator": f.delay_numerator, "denominator": "MILLION"}}
    if f.abort_status is not None or f.abort_grpc_status is not None:
        abort: dict[str, Any] = {}
        if f.abort_status is not None:
            abort["http_status"] = f.abort_status
        else:
            abort["grpc_status"] = f.abort_grpc_status
        abort["percentage"] = {"numerator": f.abort_numerator, "denominator": "MILLION"}
        out["abort"] = abort
    return out


# --------------------------------------------------------------------------- clusters


def cluster(c: Cluster) -> dict[str, Any]:
    static = all(is_ip(e.address) for e in c.endpoints)
    lb_endpoints = []
    for e in c.endpoints:
        ep: dict[str, Any] = {"endpoint": {"address": _address(e.address, e.port)}}
        if e.weight != 1:
            ep["load_balancing_weight"] = e.weight
        lb_endpoints.append(ep)
    cb = c.circuit_breakers
    common: dict[str, Any] = {"idle_timeout": duration(c.idle_timeout)}
    if c.max_requests_per_connection:
        common["max_requests_per_connection"] = c.max_requests_per_connection
    out: dict[str, Any] = {
        "name": c.name,
        "type": "STATIC" if static else "STRICT_DNS",
        "connect_timeout": duration(c.connect_timeout),
        "lb_policy": c.lb_policy if c.lb_policy in _LB_POLICIES else "LEAST_REQUEST",
        "load_assignment": {
            "cluster_name": c.name,
            "endpoints": [{"lb_endpoints": lb_endpoints}] if lb_endpoints else [],
        },
        "circuit_breakers": {"thresholds": [{
            "max_connections": cb.max_connections,
            "max_pending_requests": cb.max_pending_requests,
            "max_requests": cb.max_requests,
            "max_retries": cb.max_retries,
            "track_remaining": True,  # Istio's getDefaultCircuitBreakerThresholds
        }]},
        "typed_extension_protocol_options": {
            "envoy.extensions.upstreams.http.v3.HttpProtocolOptions": {
                "@type": HTTP_OPTIONS_TYPE,
                "common_http_protocol_options": common,
                "explicit_http_config": {"http_protocol_options": {}},
            },
        },
    }
    od = c.outlier_detection
    if od is not None:
        o: dict[str, Any] = {
            "consecutive_5xx": od.consecutive_5xx,
            "enforcing_consecutive_5xx": 100 if od.consecutive_5xx > 0 else 0,
            "interval": duration(od.interval),
            "base_ejection_time": duration(od.base_ejection_time),
            "max_ejection_percent": od.max_ejection_percent,
            "enforcing_success_rate": 0,
        }
        if od.consecutive_gateway_failure is not None:
            o["consecutive_gateway_failure"] = od.consecutive_gateway_failure
            o["enforcing_consecutive_gateway_failure"] = 100 if od.consecutive_gateway_failure > 0 else 0
        out["outlier_detection"] = o
        out["common_lb_config"] = {"healthy_panic_threshold": {"value": float(od.min_health_percent)}}
    return out
