"""``mirrorsim validate``, ``mirrorsim explain`` and ``mirrorsim check``.

Exit codes: 0 ok; 1 config errors, test failures or errors in test files,
coverage under ``--fail-under``; 2 usage errors (argparse).
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import Any

from simulator.cli_args import add_config_args, add_routing_args, translate_options
from simulator.diagnostics import Diagnostic
from simulator.model.names import MESH, RANDOM_VALUE_MAX


def _print_config_problems(diagnostics: list[Diagnostic], *, warnings: bool) -> None:
    errors = [d for d in diagnostics if d.severity == "error"]
    for d in diagnostics:
        if d.severity == "error" or warnings:
            print(d.format(), file=sys.stderr)
    if errors:
        print(f"mirrorsim: {len(errors)} error(s) in the configuration.", file=sys.stderr)
    elif diagnostics and not warnings:
        print(f"mirrorsim: {len(diagnostics)} warning(s) in the configuration "
              "(mirrorsim validate lists them).", file=sys.stderr)


def _mesh(args: argparse.Namespace, *, warnings: bool = False) -> Any:
    from simulator.routecheck.workspace import Mesh

    mesh = Mesh(args.files, args.namespace, not args.no_shadow_suffix, allow_errors=True,
                path_normalization=args.path_normalization,
                source={"labels": args.source_labels, "namespace": args.source_namespace or ""})
    _print_config_problems(list(mesh.diagnostics), warnings=warnings)
    if any(d.severity == "error" for d in mesh.diagnostics):
        return None
    return mesh


# --------------------------------------------------------------------------- validate


def cmd_validate(args: argparse.Namespace) -> int:
    from simulator.config import load
    result = load(args.files, default_namespace=args.namespace)
    diags = list(result.diagnostics)
    if result.ok and (args.source_labels or args.source_namespace):
        from simulator.routecheck.workspace import source_warnings

        diags += source_warnings(result.config, translate_options(args))
    errors = sum(1 for d in diags if d.severity == "error")
    warnings = len(diags) - errors
    if args.verbose:
        print_skipped(result.skipped)
    if args.output == "json":
        print(json.dumps({"ok": result.ok, "errors": errors, "warnings": warnings,
                          "diagnostics": [dict(d.as_dict(), code=d.display_code, message=d.display_message)
                                          for d in diags]}, indent=2))
    else:
        for d in diags:
            print(d.format())
        print(f"{errors} error(s), {warnings} warning(s)", file=sys.stderr)
    return 0 if result.ok else 1


def print_skipped(skipped: tuple[str, ...]) -> None:
    """The Kubernetes objects the loader skipped (Deployment, ConfigMap, ...), once, on stderr."""
    if skipped:
        print(f"skipped {len(skipped)} Kubernetes object(s) that do not route: {', '.join(skipped)}",
              file=sys.stderr)


# --------------------------------------------------------------------------- explain


def _header(s: str) -> tuple[str, str]:
    name, sep, value = s.partition(":")
    if not sep or not name.strip():
        raise argparse.ArgumentTypeError(f"expected 'Name: value', got {s!r}")
    return name.strip().lower(), value.strip()


def cmd_explain(args: argparse.Namespace) -> int:
    from simulator.core.explain import RouteQuery
    from simulator.core.registry import user_gateway_ref
    from simulator.routecheck.decision_json import explain_json
    from simulator.routecheck.render import explain_text
    from simulator.routecheck.request_spec import request_from_url

    parsed = request_from_url(args.url)
    if parsed is None:
        print(f"mirrorsim explain: expected an absolute http(s) URL like http://httpbin:8000/get?x=1, "
              f"got {args.url!r}", file=sys.stderr)
        return 2
    mesh = _mesh(args)
    if mesh is None:
        return 1
    scheme, authority, path = parsed
    headers: dict[str, str] = {}
    for name, value in args.headers:
        headers[name] = f"{headers[name]},{value}" if name in headers else value
    authority = headers.pop("host", authority)
    gateway = user_gateway_ref(args.gateway, args.namespace)
    if gateway != MESH and gateway not in mesh.gateways():
        known = ", ".join(mesh.gateways()) or "none"
        print(f'mirrorsim explain: no Gateway "{gateway}" in the configuration (known: {known}, or mesh)',
              file=sys.stderr)
        return 1
    req = RouteQuery(args.method, authority, path, headers, scheme, args.port, args.random_value)
    e = mesh.explain(req, gateway)
    if args.output == "json":
        out = explain_json(e)
        out["source"] = {"labels": dict(args.source_labels), "namespace": args.source_namespace or args.namespace}
        print(json.dumps(out, indent=2))
    else:
        text = explain_text(e)
        if args.source_labels or args.source_namespace:
            labels = ",".join(f"{k}={v}" for k, v in sorted(args.source_labels.items())) or "no labels"
            first, _, rest = text.partition("\n")
            text = f"{first}\ncalling workload: {labels} in namespace {args.source_namespace or args.namespace}\n{rest}"
        sys.stdout.write(text)
    return 0


# --------------------------------------------------------------------------- check


def cmd_check(args: argparse.Namespace) -> int:
    from simulator.routecheck.report import json_report, junit_xml, text_report
    from simulator.routecheck.suite import load_tests, run_tests
    from simulator.routecheck.workspace import test_paths

    mesh = _mesh(args)
    if mesh is None:
        return 1
    if args.verbose:
        print_skipped(mesh.skipped)
    paths = test_paths(args.tests)
    missing = [p for p in paths if not Path(p).exists()]
    for p in missing:
        print(f"mirrorsim check: test file {p} does not exist", file=sys.stderr)
    files = load_tests([p for p in paths if p not in missing], mesh)
    res = run_tests(mesh, files)
    if args.junit:
        Path(args.junit).write_text(junit_xml(res), encoding="utf-8")
    if args.output == "json":
        print(json.dumps(json_report(res), indent=2))
    else:
        sys.stdout.write(text_report(res, verbose=args.verbose))
    code = 0 if res.ok and not missing else 1
    if args.fail_under is not None and res.coverage + 1e-9 < args.fail_under:
        print(f"mirrorsim check: route coverage {res.coverage:.1f}% is under --fail-under {args.fail_under:g}%",
              file=sys.stderr)
        code = 1
    return code


# --------------------------------------------------------------------------- registration


def _percent(s: str) -> float:
    try:
        v = float(s)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a percentage 0..100, got {s!r}") from None
    if not 0 <= v <= 100:
        raise argparse.ArgumentTypeError(f"expected a percentage 0..100, got {s!r}")
    return v


def _random_value(s: str) -> int:
    try:
        n = int(s)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected an integer 0..{RANDOM_VALUE_MAX}, got {s!r}") from None
    if not 0 <= n <= RANDOM_VALUE_MAX:
        raise argparse.ArgumentTypeError(f"expected an integer 0..{RANDOM_VALUE_MAX} (a uint64), got {s!r}")
    return n


def _add_shared(p: argparse.ArgumentParser) -> None:
    p.add_argument("--no-shadow-suffix", action="store_true",
                   help="shadow copies keep the original Host (Envoy's disable_shadow_host_suffix_append)")


def _add_output(p: argparse.ArgumentParser) -> None:
    p.add_argument("--output", "-o", choices=("text", "json"), default="text", help="output format (default text)")
    p.add_argument("--json", dest="output", action="store_const", const="json", help="same as --output json")


def register(sub: Any) -> None:
    val = sub.add_parser(
        "validate", help="check Istio YAML and print every diagnostic",
        description="Apply Istio's validation rules and analyzer checks to the files and print every problem "
                    "as FILE:LINE: error|warning CODE message (at FIELD PATH). Exit 1 on any error, 0 with "
                    "warnings only.")
    add_config_args(val)
    add_routing_args(val)
    _add_output(val)
    val.add_argument("-v", "--verbose", action="store_true",
                     help="also list the Kubernetes objects skipped (kinds that do not route)")
    val.set_defaults(func=cmd_validate)

    ex = sub.add_parser(
        "explain", help="show how one request is routed, and why",
        description="Route one request through the configuration and show the virtual host, every rule tried "
                    "and the condition that failed it, the destination(s), mirrors, rewrites, header "
                    "operations, timeout, retries and faults.")
    add_config_args(ex)
    add_routing_args(ex)
    ex.add_argument("-X", "--request", dest="method", default="GET", metavar="METHOD",
                    help="request method (default GET)")
    ex.add_argument("-H", "--header", dest="headers", type=_header, action="append", default=[],
                    metavar="'NAME: VALUE'", help="request header (repeatable); 'Host: ...' overrides the URL's")
    ex.add_argument("--gateway", default=MESH, metavar="NS/NAME",
                    help="route as the named Gateway does (default: mesh, a sidecar)")
    ex.add_argument("--port", type=int, default=None,
                    help="listener port: the port the client connected to (default: the URL's port; "
                         "without one, 80 when the host is served there, else the lowest port of its service)")
    ex.add_argument("--random-value", type=_random_value, default=0, metavar="N",
                    help="the request's random value: picks the weighted destination (N %% total weight) and "
                         "the mirrors that sample it (default 0)")
    _add_shared(ex)
    _add_output(ex)
    ex.add_argument("url", metavar="URL", help="e.g. http://httpbin:8000/get?x=1")
    ex.set_defaults(func=cmd_explain)

    ck = sub.add_parser(
        "check", help="run route tests (mirrorsim or istio-config-validator format)",
        description="Run route tests against the configuration; print every failure with expected and actual "
                    "values, and the route coverage. Exit 1 on any failure.")
    add_config_args(ck)
    add_routing_args(ck)
    ck.add_argument("tests", nargs="+", metavar="TESTS", help="test files or directories")
    ck.add_argument("--fail-under", type=_percent, default=None, metavar="PCT",
                    help="exit 1 when route coverage is under PCT percent")
    ck.add_argument("--junit", metavar="FILE", default=None, help="also write results as JUnit XML")
    ck.add_argument("-v", "--verbose", action="store_true", help="list passing tests too")
    _add_shared(ck)
    _add_output(ck)
    ck.set_defaults(func=cmd_check)
