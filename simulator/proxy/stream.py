"""One downstream request from its parse to its decision (``Stream``, on top of
``forwarding.Forwarding``): the request's target, Host and header dict, the route decision
(``RouteTable.route`` with the request's random value), Envoy's fault filter, the CORS
filter, and the upstream head of a forward (heads.py); then ``Forwarding.send_attempt``.
server.py's docstring has the map of the data plane."""

from __future__ import annotations

import time
from collections.abc import Mapping
from typing import Final

from simulator.core.envoy_config import FaultConfig, RouteAction
from simulator.core.faults import abort_fires, delay_fires
from simulator.core.grpc_timeout import grpc_route_timeout, is_grpc, to_grpc_timeout
from simulator.core.table import Forward, LocalReply
from simulator.proxy import header_ops, tunnel
from simulator.proxy.forwarding import Forwarding
from simulator.proxy.headers import BODILESS_METHODS, INLINE_REQUEST, NAME_STR, coalesce_inline
from simulator.proxy.heads import request_head
from simulator.proxy.limits import OVERLOAD_FLAG, OVERLOAD_STAT, OVERLOADED_BODY

# a C static in the compiled build (a from-import is a module-dict lookup at every call)
wall_time: Final = time.time


class Stream(Forwarding):
    """One downstream request: route it, apply the fault and CORS filters, build the
    upstream head and start forwarding (its attributes are Forwarding's)."""

    __slots__ = ()

    # ------------------------------------------------------------------ routing
    def run(self) -> None:
        req = self.req
        proxy = self.proxy
        proxy.stats.downstream_rq_total += 1
        if req.version != "1.1":
            # Envoy's codec rejects HTTP/1.0 unless accept_http_10 is set (Istio does not set
            # it), and any other version (llhttp also takes "HTTP/2.0") on an HTTP/1 connection
            self.keep_alive = False
            self.log_path = "-"
            self.local_reply(426, b"Upgrade Required", "DPE")
            return
        target = req.target.decode("latin-1")  # a #fragment is cut off by normalize_path below
        authority = ""
        scheme = ""
        if target.startswith(("http://", "https://")):
            # absolute-form (mirrorsim used as an HTTP proxy): the URI's authority wins
            scheme, _, rest = target.partition("://")
            slash = rest.find("/")
            authority, target = (rest, "/") if slash == -1 else (rest[:slash], rest[slash:])
        elif req.method == "CONNECT":
            authority = target
        hdrs: dict[str, str] = {}
        repeated: dict[str, tuple[str, ...]] | None = None
        for n, v in req.headers:
            name = NAME_STR.get(n) or n.decode("latin-1")
            if name in hdrs:
                value = v.decode("latin-1")
                hdrs[name] = hdrs[name] + "," + value
                if n in INLINE_REQUEST:
                    continue  # Envoy's codec joined these lines: routing sees one value
                if repeated is None:
                    repeated = {}
                repeated[name] = repeated.get(name, (hdrs[name][: -len(value) - 1],)) + (value,)
            else:
                hdrs[name] = v.decode("latin-1")
        if not scheme:
            # Envoy takes :scheme from x-forwarded-proto when the client sends one
            xfp = hdrs.get("x-forwarded-proto")
            scheme = xfp if xfp in ("http", "https") else "http"
        self.scheme = scheme
        if not authority:
            host = hdrs.get("host")
            if host is None:
                # Envoy's HCM: an HTTP/1.1 request without Host gets 400, no body, connection closed
                self.log_path = target
                self.keep_alive = False
                self.local_reply(400, b"", "-")
                return
            authority = host  # an empty Host is routed as is (to the catch-all: 502)
        if target[:1] != "/":
            if tunnel.reject_target(self, req, target, authority):
                return
        normalized = proxy.table.normalize_path(target)  # Envoy's HCM, before routing (core/paths.py)
        if normalized is None:
            self.path = self.log_path = target
            self.authority = authority
            self.local_reply(400, b"", "-", early=True)
            return
        target = normalized
        self.path = target
        self.log_path = target
        self.authority = authority
        self.request_id = hdrs.get("x-request-id") or proxy.request_ids.next()
        self.xff = hdrs.get("x-forwarded-for")
        self.user_agent = hdrs.get("user-agent")
        if req.too_big:
            if req.overloaded:
                proxy.stats.inc(OVERLOAD_STAT)
                self.local_reply(503, OVERLOADED_BODY, OVERLOAD_FLAG)
                return
            self.local_reply(413, b"Payload Too Large", "-")
            return
        if req.upgrade is not None and not tunnel.start_upgrade(self, req, hdrs):
            return
        rv = proxy.random_values.next()
        route_headers: Mapping[str, str | tuple[str, ...]] = hdrs if repeated is None else {**hdrs, **repeated}
        decision = proxy.table.route(req.method, authority, target, route_headers, rv, scheme)
        self.decision = decision
        if isinstance(decision, LocalReply):
            self.local_reply(decision.status, decision.body, decision.flags, decision.headers,
                             decision.content_type, early=True)
            return
        fault = decision.fault
        if fault is not None:
            self.inject_fault(decision, fault, hdrs, rv)
            return
        self.forward(decision, hdrs)

    # ------------------------------------------------------------------ faults
    def inject_fault(self, d: Forward, fault: FaultConfig, hdrs: dict[str, str], random_value: int) -> None:
        """Envoy's fault filter, which runs before the router: an optional delay
        (flag DI), then an optional abort (flag FI, body "fault filter abort"); whether
        each fires is decided from the request's random value (core/faults.py)."""
        proxy = self.proxy
        abort = abort_fires(fault, random_value)
        if fault.delay is not None and delay_fires(fault, random_value):
            self.fault_flags = "DI"
            proxy.stats.inc("fault.delays_injected")
            self.timer = proxy.loop.call_later(fault.delay, self._after_fault_delay, d, fault, hdrs, abort)
            return
        self._after_fault_delay(d, fault, hdrs, abort)

    def _after_fault_delay(self, d: Forward, fault: FaultConfig, hdrs: dict[str, str], abort: bool) -> None:
        self.timer = None
        if self.done:
            return
        proxy = self.proxy
        if abort:
            proxy.stats.inc("fault.aborts_injected")
            # without a delay the abort comes from decodeHeaders, before any body was read
            early = not self.fault_flags
            self.fault_flags = (self.fault_flags + ",FI") if self.fault_flags else "FI"
            if fault.abort_grpc_status is not None:
                # Envoy's fault filter aborts with 200 and the gRPC status; sendLocalReply
                # uses the gRPC status only for a gRPC request (content-type application/grpc*)
                if hdrs.get("content-type", "").startswith("application/grpc"):
                    self.local_reply(200, b"", "-", (("content-type", "application/grpc"),
                                                     ("grpc-status", str(fault.abort_grpc_status)),
                                                     ("grpc-message", "fault filter abort")), early=early)
                else:
                    self.local_reply(200, b"fault filter abort", "-", early=early)
                return
            assert fault.abort_status is not None
            self.local_reply(fault.abort_status, b"fault filter abort", "-", early=early)
            return
        self.forward(d, hdrs)

    def forward(self, d: Forward, hdrs: dict[str, str]) -> None:
        proxy = self.proxy
        if d.route.cors is not None:  # Envoy's CORS filter: after the fault filter, before the router
            cors = d.route.cors.evaluate(self.method, hdrs)
            if cors is not None:
                proxy.stats.inc("cors.origin_valid" if cors.allowed else "cors.origin_invalid")
                if cors.preflight is not None:
                    # answered before the router: no route header operations, no rewrite logged
                    self.decision = None
                    self.local_reply(200, b"", "-", cors.preflight, early=True)
                    return
                self.cors_lines = cors.response
        self.hdrs = hdrs
        pool = proxy.pool(d.cluster)
        req = self.req
        if len(hdrs) != len(req.headers):  # a name on several lines: Envoy joins inline ones
            req.headers = coalesce_inline(req.headers)
        mut = d.request_headers
        if mut.dynamic:
            mut = header_ops.request_mutations(self, mut)
        base, muts, self.has_length, self.attempt_line = request_head(
            req, hdrs, d, mut, self.authority, self.scheme, self.request_id or "", self.tunnel is not None)
        body = req.body
        # framing: chunked stays chunked (even empty); a client content-length stays where
        # it was sent (kept in ``base``); a body-less POST/PUT/OPTIONS gets content-length: 0
        if req.chunked:
            tail = b"transfer-encoding: chunked\r\n\r\n"
            payload: tuple[bytes, ...] = ((b"%x\r\n" % len(body), body, b"\r\n0\r\n\r\n") if body
                                          else (b"0\r\n\r\n",))
        elif body or self.method not in BODILESS_METHODS:
            tail = b"\r\n" if self.has_length else b"content-length: %d\r\n\r\n" % len(body)
            payload = (body,) if body else ()
        else:
            tail = b"\r\n"
            payload = ()
        self.head_base = b"".join(base)
        if self.attempt_line >= 0:
            self.attempt_at = sum(map(len, base[: self.attempt_line]))
        self.head_muts = muts
        self.head_tail = tail
        self.payload = payload
        self.first_start = wall_time()
        self.timeout = d.timeout
        ct = hdrs.get("content-type")
        if ct is not None and is_grpc(ct):
            self._grpc_timeout(d, hdrs.get("grpc-timeout"), base)
        if pool is None:
            action = d.route.action  # 500 on Gateway API routes (cluster_not_found_response_code)
            status = action.cluster_not_found_status if isinstance(action, RouteAction) else 503
            self.local_reply(status, b"", "NC", early=True)  # Envoy: no copy either
        else:
            self.pool = pool
            if self.timeout > 0 and not req.streaming:  # Expect: from the body's end (expect.py)
                self.timer = proxy.loop.call_later(self.timeout, self.on_timeout)
            if d.mirrors and proxy.shadows is not None:
                self.shadow_base = base
                if proxy.diff is not None and self.tunnel is None:
                    self.diff = proxy.diff.begin(self, d)
            elif self.tunnel is not None:
                self.tunnel.copies_dispatched()  # none to wait for
            self.send_attempt()

    def _grpc_timeout(self, d: Forward, header: str | None, base: list[bytes]) -> None:
        """A gRPC request: its grpc-timeout header sets the timeout (Istio's max_grpc_timeout
        is the route timeout: core/grpc_timeout.py); the header is rewritten per attempt,
        in place (the shadow copies get the first attempt's)."""
        self.timeout = grpc_route_timeout(d.timeout, header)
        if not self.timeout:
            return  # no timeout: grpc-timeout (if any) goes as sent
        line = b"grpc-timeout: %s\r\n" % to_grpc_timeout(round(self.timeout * 1000)).encode()
        self.grpc_at = -1
        if header is not None:
            i = next(i for i, ln in enumerate(base) if ln.startswith(b"grpc-timeout:"))
            base[i] = line
            self.head_base = b"".join(base)
            self.grpc_at = sum(map(len, base[:i]))
            self.grpc_len = len(line)
            if self.attempt_at > self.grpc_at:
                self.attempt_at = sum(map(len, base[: self.attempt_line]))
