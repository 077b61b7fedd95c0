"""CORS: Envoy's ``envoy.filters.http.cors`` as Istio configures it.  Pure.

Istio translates a route's ``corsPolicy`` to the route's ``typed_per_filter_config``
for the CORS filter (route.go ``TranslateCORSPolicy``): the origins as string
matchers, the method and header lists joined with ``,``, ``max_age`` in whole
seconds, ``allow_credentials`` when set, ``filter_enabled`` 100 % and
``forward_not_matching_preflights`` true unless ``unmatchedPreflights: IGNORE``.
The filter sits after the fault filter and before the router.

What the filter does (Envoy source/extensions/filters/http/cors/cors_filter.cc),
only on routes that forward (a redirect or direct-response route has no route
entry, so the filter leaves it alone):

* No ``Origin`` header, or an empty one: nothing.
* The origin is allowed when an ``allowOrigins`` matcher matches it, or matches
  the literal ``*`` (so ``exact: "*"`` or ``regex: ".*"`` allow every origin).
* A *preflight* is ``OPTIONS`` with a non-empty ``Access-Control-Request-Method``.
  If its origin is not allowed and unmatched preflights are forwarded (Istio's
  default), it goes upstream like any request, and gets no CORS headers.  Else the
  filter answers it: status 200, no body, with ``access-control-allow-origin``
  (the request's origin, only when allowed), ``access-control-allow-credentials:
  true`` (when allowCredentials), ``access-control-allow-methods`` (the list, or the
  requested method when the list is ``*``), ``access-control-allow-headers`` (the
  list, or the request's ``access-control-request-headers`` when the list is
  ``*``), ``access-control-max-age``; in that order, then (the answer passes the
  filter's own response path) ``access-control-expose-headers`` when the origin is
  allowed.  No ``vary``.
* Any other response to a request whose origin is allowed (the upstream's, and the
  router's own local replies) gets ``access-control-allow-origin: <origin>``,
  ``access-control-allow-credentials: true`` (when allowCredentials) and
  ``access-control-expose-headers`` (when set), each replacing the response's own.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

from simulator.core.matchers import StringMatcher

ALLOW_ORIGIN = "access-control-allow-origin"
ALLOW_CREDENTIALS = "access-control-allow-credentials"
ALLOW_METHODS = "access-control-allow-methods"
ALLOW_HEADERS = "access-control-allow-headers"
MAX_AGE = "access-control-max-age"
EXPOSE_HEADERS = "access-control-expose-headers"
REQUEST_METHOD = "access-control-request-method"
REQUEST_HEADERS = "access-control-request-headers"


@dataclass(frozen=True, slots=True)
class CorsPolicy:
    """One route's CORS filter configuration, as Istio emits it (compiled once)."""

    allow_origins: tuple[StringMatcher, ...] = ()
    allow_methods: str = ""  # joined with ","; "" = not set
    allow_headers: str = ""
    expose_headers: str = ""
    max_age: str = ""  # whole seconds; "" = not set
    allow_credentials: bool | None = None
    forward_not_matching_preflights: bool = True  # False: unmatchedPreflights IGNORE

    def origin_allowed(self, origin: str) -> bool:
        for m in self.allow_origins:
            if m.matches("*") or m.matches(origin):
                return True
        return False

    def evaluate(self, method: str, headers: Mapping[str, str]) -> CorsResult | None:
        """What the filter does with a request (``headers``: lower-case names, repeated
        lines joined with ``,``); None when it does nothing (no Origin)."""
        origin = headers.get("origin", "")
        if not origin:
            return None
        allowed = self.origin_allowed(origin)
        request_method = headers.get(REQUEST_METHOD, "") if method == "OPTIONS" else ""
        if request_method and (allowed or not self.forward_not_matching_preflights):
            return CorsResult(origin, allowed, self._preflight(origin, allowed, request_method, headers))
        return CorsResult(origin, allowed, None, self.response_headers(origin) if allowed else ())

    def _preflight(self, origin: str, allowed: bool, request_method: str,
                   headers: Mapping[str, str]) -> tuple[tuple[str, str], ...]:
        out: list[tuple[str, str]] = []
        if allowed:
            out.append((ALLOW_ORIGIN, origin))
        if self.allow_credentials:
            out.append((ALLOW_CREDENTIALS, "true"))
        if self.allow_methods:
            out.append((ALLOW_METHODS, request_method if self.allow_methods == "*" else self.allow_methods))
        if self.allow_headers:
            value = headers.get(REQUEST_HEADERS, "") if self.allow_headers == "*" else self.allow_headers
            out.append((ALLOW_HEADERS, value))
        if self.max_age:
            out.append((MAX_AGE, self.max_age))
        if allowed:  # the answer passes the filter's own encodeHeaders, as any response does
            for name, value in self.response_headers(origin):
                if name not in (n for n, _ in out):
                    out.append((name, value))
        return tuple(out)

    def response_headers(self, origin: str) -> tuple[tuple[str, str], ...]:
        """The headers set on the response to an allowed origin's actual request."""
        out = [(ALLOW_ORIGIN, origin)]
        if self.allow_credentials:
            out.append((ALLOW_CREDENTIALS, "true"))
        if self.expose_headers:
            out.append((EXPOSE_HEADERS, self.expose_headers))
        return tuple(out)


@dataclass(frozen=True, slots=True)
class CorsResult:
    origin: str
    allowed: bool
    preflight: tuple[tuple[str, str], ...] | None  # set: the filter answers 200 with these headers
    response: tuple[tuple[str, str], ...] = ()  # else: set on the response (allowed origins only)


def set_lines(head: bytes, headers: tuple[tuple[str, str], ...], before: bytes = b"") -> bytes:
    """Set ``headers`` in an HTTP/1 response head (``name: value\r\n`` lines, lower-case
    names) as Envoy's ``setInline`` does: the first line of a name takes the new value in
    place, later lines of it go; a name not present is added at the end, or before the
    first line starting with ``before`` (the ``date`` line the connection manager adds
    after the filters ran)."""
    lines = head.split(b"\r\n")
    for name, value in headers:
        key = name.encode() + b":"
        new = key + b" " + value.encode("latin-1")
        found = False
        kept: list[bytes] = []
        for ln in lines:
            if ln.startswith(key):
                if not found:
                    found = True
                    kept.append(new)
            else:
                kept.append(ln)
        if not found:
            at = len(kept) - 1 if kept and kept[-1] == b"" else len(kept)
            if before:
                for k, ln in enumerate(kept):
                    if k and ln.startswith(before):
                        at = k
                        break
            kept.insert(at, new)
        lines = kept
    return b"\r\n".join(lines)
