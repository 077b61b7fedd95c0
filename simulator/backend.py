"""A built-in httpbin-like backend.

Used by ``mirrorsim backend`` (one standalone backend, or with ``--for`` one per loopback
endpoint of a config: :func:`backends_for`, :func:`serve_many`) and ``mirrorsim demo`` (httpbin v1
and v2 in-process), and by tests.  Every response carries ``x-backend: <name>`` and every JSON body
has ``"backend": "<name>"`` so a client can tell which version answered.  Every request received
is recorded (:class:`ReceivedRequest`) and logged with one line, e.g.::

    [httpbin-v2] GET /headers host=httpbin-shadow:8000 x-envoy-internal=true

Endpoints, modelled on httpbin / go-httpbin: ``/``, ``/get``, ``/headers``, ``/ip``,
``/anything`` and ``/anything/*``, ``/post``, ``/put``, ``/patch``, ``/delete``, ``/status/N``
and ``/delay/N``.  Unknown paths give a 404 JSON body.
"""

from __future__ import annotations

import asyncio
import base64
import json
import math
import signal
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from http import HTTPStatus
from typing import TYPE_CHECKING, Any
from urllib.parse import parse_qsl

from aiohttp import web

if TYPE_CHECKING:
    from simulator.model import istio as m

__all__ = ["Backend", "BackendSpec", "ReceivedRequest", "backends_for", "create_app", "serve", "serve_many",
           "LOOPBACK_ADDRESSES", "MAX_DELAY"]

LogFn = Callable[[str], None]

#: Upper bound for ``/delay/N`` (as httpbin).
MAX_DELAY = 10.0


@dataclass
class ReceivedRequest:
    """One request as the backend received it."""

    method: str
    path: str  # path with query string, as sent on the request line
    headers: list[tuple[str, str]]  # in wire order, names in their original case
    body: bytes
    time: float = field(default_factory=time.time)

    def header(self, name: str) -> str | None:
        """The first value of header ``name`` (case-insensitive), or None."""
        lname = name.lower()
        for k, v in self.headers:
            if k.lower() == lname:
                return v
        return None

    def header_values(self, name: str) -> list[str]:
        """All values of header ``name`` (case-insensitive), in order."""
        lname = name.lower()
        return [v for k, v in self.headers if k.lower() == lname]


class _State:
    """Per-app history of received requests plus a condition to wait on."""

    def __init__(self, name: str, log: LogFn | None, history: int,
                 fields: dict[str, Any] | None = None) -> None:
        if history < 1:
            raise ValueError("history must be >= 1")
        self.name = name
        # added to every JSON body (the demo's v2 answering a field differently); read per response
        self.fields = fields if fields is not None else {}
        self.log = log
        self.history = history
        self.requests: list[ReceivedRequest] = []
        self.total = 0  # requests ever received (not bounded by history)
        self._cond: asyncio.Condition | None = None

    @property
    def cond(self) -> asyncio.Condition:
        # Created lazily so it binds to the loop that actually serves the app.
        if self._cond is None:
            self._cond = asyncio.Condition()
        return self._cond

    async def add(self, rr: ReceivedRequest) -> None:
        self.requests.append(rr)
        self.total += 1
        excess = len(self.requests) - self.history
        if excess > 0:
            del self.requests[:excess]
        async with self.cond:
            self.cond.notify_all()

    async def wait_for(self, n: int, timeout: float) -> list[ReceivedRequest]:
        async with self.cond:
            try:
                await asyncio.wait_for(self.cond.wait_for(lambda: self.total >= n), timeout)
            except TimeoutError:
                got = ", ".join(f"{r.method} {r.path}" for r in self.requests) or "nothing"
                raise TimeoutError(
                    f"{self.name}: expected {n} request(s) within {timeout}s, got {self.total}: {got}"
                ) from None
        return list(self.requests)


STATE: web.AppKey[_State] = web.AppKey("mirrorsim_backend_state", _State)


# --------------------------------------------------------------------------- helpers


def _canonical(name: str) -> str:
    """Go's CanonicalMIMEHeaderKey, as httpbin shows names: ``x-envoy-internal`` ->
    ``X-Envoy-Internal``."""
    return "-".join(part[:1].upper() + part[1:].lower() for part in name.split("-"))


def _raw_headers(request: web.Request) -> list[tuple[str, str]]:
    return [(k.decode("latin-1"), v.decode("latin-1")) for k, v in request.raw_headers]


def _echo_headers(request: web.Request) -> dict[str, str]:
    out: dict[str, str] = {}
    for k, v in _raw_headers(request):
        key = _canonical(k)
        out[key] = f"{out[key]},{v}" if key in out else v
    return out


def _args(query: str) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for k, v in parse_qsl(query, keep_blank_values=True):
        if k not in out:
            out[k] = v
        elif isinstance(out[k], list):
            out[k].append(v)
        else:
            out[k] = [out[k], v]
    return out


def _origin(request: web.Request) -> str:
    return request.remote or ""


def _url(request: web.Request) -> str:
    return f"{request.scheme}://{request.host}{request.raw_path}"


def _query(request: web.Request) -> str:
    raw = request.raw_path
    return raw.split("?", 1)[1] if "?" in raw else ""


def _json_response(request: web.Request, obj: dict[str, Any], status: int = 200) -> web.Response:
    obj = dict(obj)
    state = request.app[STATE]
    obj["backend"] = state.name
    obj.update(state.fields)
    text = json.dumps(obj, sort_keys=True, indent=2) + "\n"
    return web.Response(text=text, status=status, content_type="application/json")


def _get_like(request: web.Request) -> dict[str, Any]:
    return {
        "args": _args(_query(request)),
        "headers": _echo_headers(request),
        "origin": _origin(request),
        "url": _url(request),
    }


async def _body_like(request: web.Request) -> dict[str, Any]:
    body = await request.read()
    out = _get_like(request)
    try:
        data = body.decode("utf-8")
    except UnicodeDecodeError:
        data = "data:application/octet-stream;base64," + base64.b64encode(body).decode()
    parsed: Any = None
    if body:
        try:
            parsed = json.loads(body)
        except ValueError:
            parsed = None
    form: dict[str, Any] = {}
    if request.content_type == "application/x-www-form-urlencoded":
        form = _args(data)
    out.update(data=data, json=parsed, form=form, files={})
    return out


def _log_line(name: str, method: str, path: str, request: web.Request, body: bytes) -> str:
    parts = [f"[{name}] {method} {path}", f"host={request.headers.get('Host', '-')}"]
    for h in ("x-envoy-internal", "x-request-id"):
        value = request.headers.get(h)
        if value is not None:
            parts.append(f"{h}={value}")
    if body:
        parts.append(f"body={len(body)}B")
    return " ".join(parts)


# --------------------------------------------------------------------------- handlers


async def _index(request: web.Request) -> web.Response:
    name = request.app[STATE].name
    text = (
        f"{name}: mirrorsim built-in httpbin-like backend\n"
        "endpoints: /get /headers /ip /anything[/...] /post /put /patch /delete "
        "/status/N /delay/N\n"
    )
    return web.Response(text=text)


async def _get(request: web.Request) -> web.Response:
    return _json_response(request, _get_like(request))


async def _headers(request: web.Request) -> web.Response:
    return _json_response(request, {"headers": _echo_headers(request)})


async def _ip(request: web.Request) -> web.Response:
    return _json_response(request, {"origin": _origin(request)})


async def _anything(request: web.Request) -> web.Response:
    out = await _body_like(request)
    out["method"] = request.method
    return _json_response(request, out)


async def _method(request: web.Request) -> web.Response:
    return _json_response(request, await _body_like(request))


async def _status(request: web.Request) -> web.Response:
    raw = request.match_info["code"]
    try:
        code = int(raw)
    except ValueError:
        code = -1
    if not 200 <= code <= 599:
        return _json_response(request, {"error": f"invalid status code {raw!r} (want 200-599)"}, status=400)
    try:
        reason = HTTPStatus(code).phrase
    except ValueError:
        reason = "Unknown"
    return web.Response(status=code, reason=reason, body=b"")


async def _delay(request: web.Request) -> web.Response:
    raw = request.match_info["seconds"]
    try:
        seconds = float(raw)
    except ValueError:
        seconds = math.nan
    if not math.isfinite(seconds) or seconds < 0:
        return _json_response(request, {"error": f"invalid delay {raw!r}"}, status=400)
    await asyncio.sleep(min(seconds, MAX_DELAY))
    return _json_response(request, _get_like(request))


@web.middleware
async def _record_and_errors(request: web.Request, handler: Any) -> web.StreamResponse:
    state = request.app[STATE]
    body = await request.read()
    path = request.raw_path
    await state.add(ReceivedRequest(request.method, path, _raw_headers(request), body))
    if state.log is not None:
        state.log(_log_line(state.name, request.method, path, request, body))
    try:
        return await handler(request)
    except web.HTTPException as exc:
        if exc.status < 400:
            raise
        resp = _json_response(
            request,
            {"error": exc.reason, "status": exc.status, "path": request.path},
            status=exc.status,
        )
        allow = exc.headers.get("Allow")
        if allow is not None:
            resp.headers["Allow"] = allow
        return resp


def create_app(name: str, *, log: LogFn | None = print, history: int = 1000,
               fields: dict[str, Any] | None = None) -> web.Application:
    """An aiohttp application serving the httpbin-like endpoints as backend ``name``.

    ``log`` receives one line per request (None: silent).  The last ``history`` requests are
    kept in ``app[STATE].requests``."""
    app = web.Application(middlewares=[_record_and_errors])
    app[STATE] = _State(name, log, history, fields)

    async def add_backend_header(request: web.Request, response: web.StreamResponse) -> None:
        response.headers["x-backend"] = name

    app.on_response_prepare.append(add_backend_header)

    r = app.router
    r.add_get("/", _index)
    r.add_get("/get", _get)
    r.add_get("/headers", _headers)
    r.add_get("/ip", _ip)
    r.add_route("*", "/anything", _anything)
    r.add_route("*", "/anything/{rest:.*}", _anything)
    r.add_post("/post", _method)
    r.add_put("/put", _method)
    r.add_patch("/patch", _method)
    r.add_delete("/delete", _method)
    r.add_route("*", "/status/{code}", _status)
    r.add_route("*", "/delay/{seconds}", _delay)
    return app


def _fmt_host(host: str) -> str:
    return f"[{host}]" if ":" in host else host


class Backend:
    """An in-process backend: ``async with Backend("httpbin-v2") as b: ... b.port ...``."""

    def __init__(
        self,
        name: str,
        host: str = "127.0.0.1",
        port: int = 0,
        *,
        log: LogFn | None = print,
        history: int = 1000,
        fields: dict[str, Any] | None = None,
    ) -> None:
        self.name = name
        self.host = host
        self.port = port
        self.app = create_app(name, log=log, history=history, fields=fields)
        self._state = self.app[STATE]
        self._runner: web.AppRunner | None = None

    @property
    def requests(self) -> list[ReceivedRequest]:
        """Every request received, in order (the last ``history`` of them)."""
        return self._state.requests

    @property
    def total_requests(self) -> int:
        """Requests received since start, including those dropped from ``requests``."""
        return self._state.total

    @property
    def url(self) -> str:
        return f"http://{_fmt_host(self.host)}:{self.port}"

    async def start(self) -> None:
        if self._runner is not None:
            raise RuntimeError(f"{self.name} already started")
        runner = web.AppRunner(self.app, access_log=None, shutdown_timeout=1.0)
        await runner.setup()
        try:
            site = web.TCPSite(runner, self.host, self.port)
            await site.start()
        except BaseException:
            await runner.cleanup()
            raise
        self._runner = runner
        self.port = runner.addresses[0][1]

    async def stop(self) -> None:
        runner, self._runner = self._runner, None
        if runner is not None:
            await runner.cleanup()

    async def wait_for_requests(self, n: int, timeout: float = 5.0) -> list[ReceivedRequest]:
        """Wait until at least ``n`` requests were received; returns ``requests``.

        Raises TimeoutError naming what did arrive."""
        return await self._state.wait_for(n, timeout)

    async def __aenter__(self) -> Backend:
        await self.start()
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.stop()


#: The only endpoint addresses ``backends_for`` starts a backend on.
LOOPBACK_ADDRESSES = ("127.0.0.1", "::1")


@dataclass(frozen=True, slots=True)
class BackendSpec:
    """A backend to start: its name and the address it listens on."""

    name: str
    host: str
    port: int


def backends_for(config: m.Config) -> tuple[list[BackendSpec], list[str]]:
    """The backends standing in for the workloads of ``config``: one per loopback endpoint
    (127.0.0.1 or ::1) of a ``resolution: STATIC`` service of the registry (a ServiceEntry's
    inline ``endpoints`` and the WorkloadEntries its ``workloadSelector`` picks, or the
    WorkloadEntries a Kubernetes Service selects) and per service port, on the port the proxy
    would send to (``registry.endpoint_port``), named ``<service short name>-<version label>``
    (``reviews-v2``; just ``reviews`` without a ``version`` label). An address:port declared
    twice gets one backend, named after its first declaration (a WorkloadEntry several
    Services select is one workload: named after the first, without a note).

    Returns the backends, in registry order, and notes on the endpoints that get none."""
    from simulator.core.registry import build_registry, endpoint_port

    specs: list[BackendSpec] = []
    notes: list[str] = []
    seen: dict[tuple[str, int], tuple[str, str]] = {}  # (address, port) -> (backend, endpoint origin)
    done: set[str] = set()
    for svc in build_registry(config).services.values():
        what = svc.origin
        if what in done:  # a ServiceEntry with several hosts: its first host names it
            continue
        done.add(what)
        if svc.resolution != "STATIC":
            if svc.endpoints:
                notes.append(f"{what}: resolution {svc.resolution}, not STATIC: no backend started")
            continue
        short = svc.host.removeprefix("*.").split(".")[0]
        for ep, ep_origin in svc.endpoints:
            address = ep.address.strip("[]")
            version = ep.labels.get("version")
            name = f"{short}-{version}" if version else short
            if address not in LOOPBACK_ADDRESSES:
                notes.append(f"{what}: endpoint {ep.address} is not a loopback address: "
                             f"no backend started for {name}")
                continue
            for sp in svc.ports:
                port = endpoint_port(ep, sp)
                key = (address, port)
                if key in seen:
                    first, first_origin = seen[key]
                    # one WorkloadEntry selected by several Services is one workload: no note
                    same_workload = first_origin == ep_origin and ep_origin.startswith("WorkloadEntry ")
                    if first != name and not same_workload:
                        notes.append(f"{what}: {name} on {_fmt_host(address)}:{port} is served by "
                                     f"{first} (same address)")
                    continue
                seen[key] = (name, ep_origin)
                specs.append(BackendSpec(name, address, port))
    return specs, notes


def _print_flush(line: str) -> None:
    print(line, flush=True)


async def serve(name: str, host: str, port: int, *, log: LogFn | None = _print_flush) -> None:
    """Run backend ``name`` on host:port until cancelled, or until SIGINT / SIGTERM (then it
    stops the server and returns normally; signal handlers are only installed when running
    in the main thread)."""
    await serve_many([BackendSpec(name, host, port)], log=log)


async def serve_many(specs: list[BackendSpec], *, log: LogFn | None = _print_flush) -> None:
    """Run one backend per spec, announcing each (``reviews-v2 listening on
    http://127.0.0.1:19084``), until cancelled or SIGINT / SIGTERM, as :func:`serve`.

    If one cannot listen, the ones already started are stopped and OSError names it."""
    backends: list[Backend] = []
    try:
        for spec in specs:
            backend = Backend(spec.name, spec.host, spec.port, log=log)
            try:
                await backend.start()
            except OSError as exc:
                where = f"{_fmt_host(spec.host)}:{spec.port}"
                raise OSError(exc.errno, f"{spec.name}: cannot listen on {where}: {exc.strerror or exc}") from exc
            backends.append(backend)
            if log is not None:
                log(f"{spec.name} listening on {backend.url}")
        loop = asyncio.get_running_loop()
        stop = asyncio.Event()
        installed: list[signal.Signals] = []
        for sig in (signal.SIGINT, signal.SIGTERM):
            try:
                loop.add_signal_handler(sig, stop.set)
            except (NotImplementedError, RuntimeError, ValueError):
                continue
            installed.append(sig)
        try:
            await stop.wait()
        finally:
            for sig in installed:
                loop.remove_signal_handler(sig)
    finally:
        for backend in backends:
            await backend.stop()
