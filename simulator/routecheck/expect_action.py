"""Route-test expectations on what happens to a request: rewrite, redirect, direct
response, local-reply status, fault, timeout, retries and header operations."""

from __future__ import annotations

import math
from typing import TYPE_CHECKING, Any
from urllib.parse import urlsplit

from simulator.config.durations import format_duration
from simulator.config.schema import Ctx, check_fields, check_int, check_number, check_string, join, kind_of
from simulator.routecheck.checks import Diff, Made, duration_or_none, is_none, kv_text, q

if TYPE_CHECKING:
    from simulator.routecheck.outcome import RouteOutcome


def expect_rewrite(ctx: Ctx, v: Any, path: str) -> Made:
    def actual(d: RouteOutcome) -> str:
        if not d.forwarded:
            return f"none ({d.summary()})"
        req = d.explanation.request
        parts = []
        if d.original_path is not None or d.path != req.path:
            parts.append(f"path {req.path} -> {d.path}")
        if d.authority != req.authority:
            parts.append(f"authority {req.authority} -> {d.authority}")
        return ", ".join(parts) or "no rewrite"

    if is_none(v):
        def compare_none(d: RouteOutcome) -> list[Diff]:
            a = actual(d)
            return [] if a == "no rewrite" else [("rewrite", "no rewrite", a)]
        return compare_none, actual, "no rewrite"
    mp = check_fields(ctx, v, path, ("path", "uri", "authority"), "rewrite")
    if mp is None:
        return None
    if "uri" in mp:
        mp.setdefault("path", mp.pop("uri"))
    want: dict[str, str] = {}
    for k, val in mp.items():
        s = check_string(ctx, val, join(path, k))
        if s is None:
            return None
        want[k] = s

    def compare(d: RouteOutcome) -> list[Diff]:
        if not d.forwarded:
            return [("rewrite", kv_text(want), f"none ({d.summary()})")]
        out: list[Diff] = []
        if "path" in want and want["path"] != d.path:
            out.append(("rewrite.path", q(want["path"]), q(d.path)))
        if "authority" in want and want["authority"] != d.authority:
            out.append(("rewrite.authority", q(want["authority"]), q(d.authority)))
        return out

    return compare, actual, kv_text(want)


def expect_redirect(ctx: Ctx, v: Any, path: str) -> Made:
    def actual(d: RouteOutcome) -> str:
        rd = d.redirect
        return f"{rd['status']} to {q(rd['location'])}" if rd else f"no redirect ({d.summary()})"

    if is_none(v):
        return (lambda d: [("redirect", "no redirect", actual(d))] if d.redirect else [], actual, "no redirect")
    mp = check_fields(ctx, v, path, ("location", "status", "redirectCode", "uri", "authority", "scheme", "port"),
                  "redirect")
    if mp is None:
        return None
    if "redirectCode" in mp:
        mp.setdefault("status", mp.pop("redirectCode"))
    want: dict[str, Any] = {}
    for k, val in mp.items():
        p = join(path, k)
        got = check_int(ctx, val, p, 1, 65535) if k in ("status", "port") else check_string(ctx, val, p)
        if got is None:
            return None
        want[k] = got

    def compare(d: RouteOutcome) -> list[Diff]:
        rd = d.redirect
        if rd is None:
            return [("redirect", kv_text(want), actual(d))]
        loc = urlsplit(rd["location"])
        got = {"location": rd["location"], "status": rd["status"], "scheme": loc.scheme,
               "authority": loc.netloc, "port": loc.port or (443 if loc.scheme == "https" else 80),
               "uri": rd["location"][len(f"{loc.scheme}://{loc.netloc}"):]}
        return [(f"redirect.{k}", q(w), q(got[k])) for k, w in want.items() if got[k] != w]

    return compare, actual, kv_text(want)


def expect_direct(ctx: Ctx, v: Any, path: str) -> Made:
    def actual(d: RouteOutcome) -> str:
        dr = d.direct_response
        return f"{dr['status']} body {q(dr['body'])}" if dr else f"no direct response ({d.summary()})"

    mp = check_fields(ctx, v, path, ("status", "body"), "directResponse")
    if mp is None:
        return None
    want: dict[str, Any] = {}
    if "status" in mp:
        want["status"] = check_int(ctx, mp["status"], join(path, "status"), 100, 999)
    if "body" in mp:
        want["body"] = check_string(ctx, mp["body"], join(path, "body"), allow_empty=True)
    if any(w is None for w in want.values()):
        return None

    def compare(d: RouteOutcome) -> list[Diff]:
        dr = d.direct_response
        if dr is None:
            return [("directResponse", kv_text(want), actual(d))]
        return [(f"directResponse.{k}", q(w), q(dr[k])) for k, w in want.items() if dr[k] != w]

    return compare, actual, kv_text(want)


def expect_status(ctx: Ctx, v: Any, path: str) -> Made:
    s = check_int(ctx, v, path, 100, 999)
    if s is None:
        return None

    def actual(d: RouteOutcome) -> str:
        return f"{d.status} ({d.summary()})" if d.status is not None else f"no local reply ({d.summary()})"

    return (lambda d: [] if d.status == s else [("status", str(s), actual(d))]), actual, str(s)


def expect_fault(ctx: Ctx, v: Any, path: str) -> Made:
    def actual(d: RouteOutcome) -> str:
        return _fault_text(d.fault) if d.fault else "no fault"

    if is_none(v):
        return (lambda d: [("fault", "no fault", actual(d))] if d.fault else [], actual, "no fault")
    mp = check_fields(ctx, v, path, ("abort", "delay"), "fault")
    if mp is None:
        return None
    want: dict[str, dict[str, Any]] = {}
    if "abort" in mp:
        ab = check_fields(ctx, mp["abort"], join(path, "abort"), ("httpStatus", "grpcStatus", "percentage"), "abort")
        if ab is None:
            return None
        w: dict[str, Any] = {}
        if "httpStatus" in ab:
            w["httpStatus"] = check_int(ctx, ab["httpStatus"], join(path, "abort.httpStatus"), 0, 999)
        if "grpcStatus" in ab:
            w["grpcStatus"] = ab["grpcStatus"]
        if "percentage" in ab:
            w["percentage"] = check_number(ctx, ab["percentage"], join(path, "abort.percentage"))
        want["abort"] = w
    if "delay" in mp:
        dl = check_fields(ctx, mp["delay"], join(path, "delay"), ("fixedDelay", "percentage"), "delay")
        if dl is None:
            return None
        w = {}
        if "fixedDelay" in dl:
            w["fixedDelay"] = duration_or_none(ctx, dl["fixedDelay"], join(path, "delay.fixedDelay"))
        if "percentage" in dl:
            w["percentage"] = check_number(ctx, dl["percentage"], join(path, "delay.percentage"))
        want["delay"] = w
    if any(x is None or x == "bad" for w in want.values() for x in w.values()):
        return None

    def compare(d: RouteOutcome) -> list[Diff]:
        got = d.fault or {}
        out: list[Diff] = []
        for part, w in want.items():
            g = got.get(part)
            if g is None:
                out.append((f"fault.{part}", _fault_text({part: w}), actual(d)))
                continue
            for k, val in w.items():
                gv = g.get(k)
                same = math.isclose(val, gv, abs_tol=5e-5) if isinstance(val, float) and gv is not None else val == gv
                if not same:
                    shown = format_duration(val) if k == "fixedDelay" else q(val)
                    gshown = format_duration(gv) if k == "fixedDelay" and gv is not None else q(gv)
                    out.append((f"fault.{part}.{k}", shown, gshown))
        return out

    return compare, actual, _fault_text(want)


def _fault_text(f: dict[str, Any]) -> str:
    parts = []
    if "abort" in f:
        a = f["abort"]
        parts.append("abort " + " ".join(f"{k} {format_duration(v) if k == 'fixedDelay' else q(v)}"
                                         for k, v in a.items()))
    if "delay" in f:
        dl = f["delay"]
        parts.append("delay " + " ".join(f"{k} {format_duration(v) if k == 'fixedDelay' else q(v)}"
                                         for k, v in dl.items()))
    return "; ".join(parts)


def expect_timeout(ctx: Ctx, v: Any, path: str) -> Made:
    secs = duration_or_none(ctx, v, path)
    if secs == "bad":
        return None
    assert not isinstance(secs, str)

    def text(s: float | None) -> str:
        return "none" if s is None else format_duration(s)

    def compare(d: RouteOutcome) -> list[Diff]:
        if not d.forwarded:
            return [("timeout", text(secs), f"none ({d.summary()})")]
        t = d.timeout
        same = (t is None and secs is None) or (t is not None and secs is not None and math.isclose(t, secs))
        return [] if same else [("timeout", text(secs), text(t))]

    return compare, lambda d: text(d.timeout), text(secs)


def _retry_tokens(s: Any) -> list[str]:
    items = s.split(",") if isinstance(s, str) else [str(x) for x in s]
    return [t.strip() for t in items if t.strip()]


def _retries_text(r: dict[str, Any] | None) -> str:
    if r is None:
        return "no retries"
    parts = [f"{k} {','.join(v) if isinstance(v, list) else (format_duration(v) if k == 'perTryTimeout' else v)}"
             for k, v in r.items() if v is not None]
    return ", ".join(parts)


def expect_retries(ctx: Ctx, v: Any, path: str) -> Made:
    def actual(d: RouteOutcome) -> str:
        return _retries_text(d.retries) if d.forwarded else f"none ({d.summary()})"

    if is_none(v) or v == {"attempts": 0}:
        return (lambda d: [] if d.forwarded and d.retries is None else [("retries", "no retries", actual(d))],
                actual, "no retries")
    mp = check_fields(ctx, v, path, ("attempts", "retryOn", "perTryTimeout"), "retries")
    if mp is None:
        return None
    want: dict[str, Any] = {}
    if "attempts" in mp:
        want["attempts"] = check_int(ctx, mp["attempts"], join(path, "attempts"))
    if "retryOn" in mp:
        ro = mp["retryOn"]
        if not isinstance(ro, str | list):
            ctx.error(join(path, "retryOn"), f"{path}.retryOn: expected a comma-separated string or a list, "
                      f"got {kind_of(ro)} {ro!r}")
            return None
        want["retryOn"] = _retry_tokens(ro)
    if "perTryTimeout" in mp:
        want["perTryTimeout"] = duration_or_none(ctx, mp["perTryTimeout"], join(path, "perTryTimeout"))
        if want["perTryTimeout"] == "bad":
            return None
    if want.get("attempts", 1) is None:
        return None

    def compare(d: RouteOutcome) -> list[Diff]:
        got = d.retries
        if not d.forwarded or got is None:
            return [("retries", _retries_text(want), actual(d))]
        out: list[Diff] = []
        if "attempts" in want and want["attempts"] != got["attempts"]:
            out.append(("retries.attempts", str(want["attempts"]), str(got["attempts"])))
        if "retryOn" in want and sorted(want["retryOn"]) != sorted(got["retryOn"]):
            out.append(("retries.retryOn", q(",".join(want["retryOn"])), q(",".join(got["retryOn"]))))
        if "perTryTimeout" in want:
            w, g = want["perTryTimeout"], got["perTryTimeout"]
            if not ((w is None and g is None) or (w is not None and g is not None and math.isclose(w, g))):
                out.append(("retries.perTryTimeout", "none" if w is None else format_duration(w),
                            "none" if g is None else format_duration(g)))
        return out

    return compare, actual, _retries_text(want)


def _ops_text(ops: dict[str, Any]) -> str:
    parts = []
    for k in ("set", "add"):
        for n, val in ops.get(k, {}).items():
            parts.append(f"{k} {n}: {val}")
    for n in ops.get("remove", []):
        parts.append(f"remove {n}")
    return "; ".join(parts) or "none"


def expect_headers(ctx: Ctx, v: Any, path: str) -> Made:
    mp = check_fields(ctx, v, path, ("request", "response"), "headers")
    if mp is None:
        return None
    want: dict[str, dict[str, Any] | None] = {}
    for side, ops in mp.items():
        p = join(path, side)
        if is_none(ops):
            want[side] = None
            continue
        om = check_fields(ctx, ops, p, ("set", "add", "remove"), "header operations")
        if om is None:
            return None
        w: dict[str, Any] = {}
        for k in ("set", "add"):
            if k in om:
                if not isinstance(om[k], dict):
                    ctx.error(join(p, k), f"{p}.{k}: expected a mapping of header name to value, "
                              f"got {kind_of(om[k])} {om[k]!r}")
                    return None
                w[k] = {str(n).lower(): str(val) for n, val in om[k].items()}
        if "remove" in om:
            if not isinstance(om["remove"], list):
                ctx.error(join(p, "remove"), f"{p}.remove: expected a list of header names, "
                          f"got {kind_of(om['remove'])} {om['remove']!r}")
                return None
            w["remove"] = [str(n).lower() for n in om["remove"]]
        want[side] = w

    def got_for(d: RouteOutcome, side: str) -> dict[str, Any]:
        return d.request_headers if side == "request" else d.response_headers

    def actual(d: RouteOutcome) -> str:
        return "; ".join(f"{side} {_ops_text(got_for(d, side))}" for side in want)

    def compare(d: RouteOutcome) -> list[Diff]:
        out: list[Diff] = []
        for side, w in want.items():
            got = got_for(d, side)
            if w is None:
                if got:
                    out.append((f"headers.{side}", "no header operations", _ops_text(got)))
                continue
            for k in ("set", "add"):
                for n, val in w.get(k, {}).items():
                    gv = got.get(k, {}).get(n)
                    if gv != val:
                        out.append((f"headers.{side}.{k}.{n}", q(val), q(gv) if gv is not None else
                                    f"not {'set' if k == 'set' else 'added'} ({_ops_text(got)})"))
            for n in w.get("remove", []):
                if n not in got.get("remove", []):
                    out.append((f"headers.{side}.remove", f"{n} removed", f"not removed ({_ops_text(got)})"))
        return out

    return compare, actual, "; ".join(f"{side} {_ops_text(w) if w else 'none'}" for side, w in want.items())
