"""The request of a route test (``request:``) and its calling workload (``source:``)."""

from __future__ import annotations

import re
from typing import Any

from simulator.config.schema import Ctx, check_fields, check_int, check_string, join, kind_of
from simulator.core.explain import RouteQuery
from simulator.core.options import Workload
from simulator.core.registry import user_gateway_ref
from simulator.model.names import MESH, RANDOM_VALUE_MAX
from simulator.model.syntax import check_label_key, check_label_value, is_dns1123_label

SOURCE_FIELDS = ("labels", "namespace")

REQUEST_FIELDS = ("url", "authority", "path", "method", "scheme", "headers", "port", "gateway", "randomValue")


def request_from_url(url: str) -> tuple[str, str, str] | None:
    """``http://host:8000/p?q`` -> (scheme, authority, path with query), the path kept as written."""
    m = re.fullmatch(r"(?i)(https?)://([^/?#]+)([^#]*)(#.*)?", url)
    if m is None:
        return None
    path = m.group(3) or "/"
    if path.startswith("?"):
        path = "/" + path
    return m.group(1).lower(), m.group(2), path


def header_values(ctx: Ctx, v: Any, path: str) -> dict[str, str] | None:
    if v is None:
        return {}
    if not isinstance(v, dict):
        ctx.error(path, f"{path}: expected a mapping of header name to value, got {kind_of(v)} {v!r}")
        return None
    out: dict[str, str] = {}
    for name, value in v.items():
        if isinstance(value, list):
            value = ",".join(str(x) for x in value)  # several values of one header, as Envoy joins them
        elif isinstance(value, bool):
            value = str(value).lower()
        elif value is None:
            value = ""
        elif not isinstance(value, str | int | float):
            ctx.error(join(path, str(name)), f"{path}.{name}: expected a string, got {kind_of(value)}")
            return None
        out[str(name).lower()] = str(value)
    return out


def parse_request(ctx: Ctx, v: Any, path: str) -> tuple[RouteQuery, str] | None:
    mp = check_fields(ctx, v, path, REQUEST_FIELDS, "request")
    if mp is None:
        return None
    scheme, authority, req_path = "http", "", "/"
    ok = True
    if "url" in mp:
        u = check_string(ctx, mp["url"], join(path, "url"))
        parsed = request_from_url(u) if u else None
        if u and parsed is None:
            ctx.error(join(path, "url"), f'{path}.url: expected an absolute http(s) URL like '
                      f'"http://reviews:9080/reviews/1?x=1", got {u!r}')
        if parsed is None:
            ok = False
        else:
            scheme, authority, req_path = parsed
    if "authority" in mp:
        a = check_string(ctx, mp["authority"], join(path, "authority"))
        ok &= a is not None
        authority = a or authority
    if "path" in mp:
        p = check_string(ctx, mp["path"], join(path, "path"))
        if p is not None and not p.startswith("/"):
            ctx.error(join(path, "path"), f'{path}.path: must start with "/", got {p!r}')
            p = None
        ok &= p is not None
        req_path = p or req_path
    if "scheme" in mp:
        s = mp["scheme"]
        if s not in ("http", "https"):
            ctx.error(join(path, "scheme"), f"{path}.scheme: expected http or https, got {s!r}")
            ok = False
        else:
            scheme = s
    method = "GET"
    if "method" in mp:
        mth = check_string(ctx, mp["method"], join(path, "method"))
        ok &= mth is not None
        method = mth or method
    headers = header_values(ctx, mp.get("headers"), join(path, "headers"))
    ok &= headers is not None
    headers = headers or {}
    if "host" in headers:  # Host is :authority
        authority = headers.pop("host")
    if ":authority" in headers:
        authority = headers.pop(":authority")
    port = None
    if "port" in mp:
        port = check_int(ctx, mp["port"], join(path, "port"), 1, 65535)
        ok &= port is not None
    gateway = MESH
    if "gateway" in mp:
        g = check_string(ctx, mp["gateway"], join(path, "gateway"))
        ok &= g is not None
        if g:
            gateway = user_gateway_ref(g, ctx.namespace)
    rv = 0
    if "randomValue" in mp:
        r = check_int(ctx, mp["randomValue"], join(path, "randomValue"), 0, RANDOM_VALUE_MAX)
        ok &= r is not None
        rv = r or 0
    if not authority and ok:
        ctx.error(path, f"{path}: set url, or authority (or a Host header)")
        return None
    if not ok:
        return None
    return RouteQuery(method, authority, req_path, headers, scheme, port, rv), gateway


def parse_source(ctx: Ctx, v: Any, path: str) -> Workload | None:
    """``source: {labels: {app: productpage}, namespace: default}``: the calling workload."""
    mp = check_fields(ctx, v, path, SOURCE_FIELDS, "source workload")
    if mp is None:
        return None
    labels: dict[str, str] = {}
    raw = mp.get("labels")
    if raw is not None and not isinstance(raw, dict):
        ctx.error(join(path, "labels"), f"{path}.labels: expected a mapping of label to value like "
                  f"{{app: productpage, version: v1}}, got {kind_of(raw)} {raw!r}")
        return None
    for k, val in (raw or {}).items():
        lp = join(join(path, "labels"), str(k))
        if not isinstance(val, str | int | float) or isinstance(val, bool):
            ctx.error(lp, f"{lp}: expected a string label value, got {kind_of(val)} {val!r}")
            return None
        problem = check_label_key(str(k)) or check_label_value(str(val))
        if problem:
            ctx.error(lp, f"{lp}: {problem}; expected labels like {{app: productpage, version: v1}}")
            return None
        labels[str(k)] = str(val)
    ns = ""
    if "namespace" in mp:
        n = check_string(ctx, mp["namespace"], join(path, "namespace"))
        if n is None:
            return None
        if not is_dns1123_label(n):
            ctx.error(join(path, "namespace"), f"{path}.namespace: {n!r} is not a namespace name "
                      "(a DNS-1123 label like default)")
            return None
        ns = n
    return Workload(tuple(sorted(labels.items())), ns)
