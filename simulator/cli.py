"""mirrorsim's command line: run, demo, backend (+ validate, explain, check, envoy).

The only place that prints diagnostics and chooses exit codes:
0 ok, 1 config errors (or check failures), 2 usage errors.
"""

from __future__ import annotations

import argparse
import asyncio
import signal
import sys
from collections.abc import Sequence

from simulator import __version__
from simulator.cli_args import (
    add_config_args,
    add_routing_args,
    has_resources,
    hostport,
    load_or_report,
    seconds,
    translate_options,
)
from simulator.envoy import command as envoy_command
from simulator.model.names import DEFAULT_NAMESPACE
from simulator.routecheck import commands as routecheck_commands

__all__ = ["add_config_args", "add_routing_args", "build_gateways", "build_parser", "hostport",
           "load_or_report", "main", "seconds", "translate_options", "version_line"]

def version_line() -> str:
    """``mirrorsim 0.1.0, compiled (mypyc)``: the version and which build of the data
    plane this process runs (simulator/build.py)."""
    from simulator.build import build_info

    return f"mirrorsim {__version__}, {build_info()}"


class _VersionAction(argparse.Action):
    """``--version``, computed only when asked (it imports the data plane)."""

    def __init__(self, option_strings: Sequence[str], dest: str = argparse.SUPPRESS,
                 default: str = argparse.SUPPRESS, help: str | None = None) -> None:
        super().__init__(option_strings, dest=dest, default=default, nargs=0, help=help)

    def __call__(self, parser: argparse.ArgumentParser, namespace: argparse.Namespace,
                 values: object, option_string: str | None = None) -> None:
        print(version_line())
        parser.exit()


def build_gateways(config, specs: list[str], namespace: str, shadow_suffix: bool,  # type: ignore[no-untyped-def]
                   mesh_table, options=None) -> list:  # type: ignore[type-arg]
    """``--gateway [NS/]NAME[:SERVER_PORT]=HOST:PORT`` -> GatewayListener list."""
    from simulator.core.registry import user_gateway_ref
    from simulator.core.translate import TranslateOptions, gateway_servers, translate_gateway

    options = options or TranslateOptions(namespace=namespace, shadow_suffix=shadow_suffix)
    from simulator.proxy.launch import GatewayListener

    out = []
    for spec in specs:
        ref, sep, addr = spec.partition("=")
        if not sep:
            raise ValueError(f"--gateway {spec!r}: expected [NS/]NAME[:SERVER_PORT]=HOST:PORT")
        host, port = hostport(addr)
        name, _, sport = ref.partition(":")
        name = user_gateway_ref(name, options.namespace)
        try:
            gw, servers = gateway_servers(config, name)
        except KeyError:
            known = ", ".join(f"{g.meta.namespace}/{g.meta.name}" for g in config.gateways) or "none"
            raise ValueError(f"--gateway {spec!r}: no Gateway {name} (defined: {known})") from None
        http = [s for s in servers if s.port.protocol.upper() in ("HTTP", "HTTP2", "GRPC", "GRPC-WEB")
                or (s.tls is not None and s.tls.https_redirect)]
        if sport:
            http = [s for s in http if str(s.port.number) == sport]
        if len(http) != 1:
            ports = ", ".join(f"{s.port.number} ({s.port.protocol})" for s in servers)
            raise ValueError(f"--gateway {spec!r}: name one HTTP server of {name} as NAME:PORT "
                             f"(servers: {ports})")
        server = http[0]
        table = translate_gateway(config, gw, server, options, clusters=mesh_table.clusters)
        out.append(GatewayListener(f"{name}:{server.port.number}", table, host, port))
    return out


def cmd_run(args: argparse.Namespace) -> int:
    config = load_or_report(args.files, args.namespace, require_resources=True)
    if config is None:
        return 1
    from simulator.diffargs import diff_options, report

    args.diff_options, problems = diff_options(args)
    if problems:
        report(problems)
        return 1
    if args.admin:
        from simulator.proxy.admin import exposure_warning

        warning = exposure_warning(*args.admin)
        if warning:
            print(warning, file=sys.stderr)
    from simulator.core.translate import translate

    options = translate_options(args, not args.no_shadow_suffix)
    table = translate(config, options)
    try:
        gateways = build_gateways(config, args.gateway, args.namespace, not args.no_shadow_suffix, table, options)
    except ValueError as exc:
        print(f"mirrorsim: {exc}", file=sys.stderr)
        return 1
    nhosts = sum(len(rc.virtual_hosts) for rc in table.route_configs.values())
    args.banner = f"{version_line()}: {nhosts} virtual host(s), {len(table.clusters)} cluster(s)"
    if options.source_labels or options.source_namespace:
        labels = ",".join(f"{k}={v}" for k, v in options.source_labels) or "no labels"
        args.banner += f"; routes of a workload with {labels} in namespace {options.client_namespace}"
    if options.path_normalization != "BASE":
        args.banner += f"; path normalization {options.path_normalization}"
    args.config_source = _config_source(args, options)
    if args.workers > 1:
        print(args.banner, file=sys.stderr)
        return _run_workers(args, table, gateways)
    _use_uvloop()
    try:
        return asyncio.run(_serve(args, table, gateways))
    except KeyboardInterrupt:
        return 130
    except OSError as exc:
        print(f"mirrorsim: cannot listen: {exc}", file=sys.stderr)
        return 1


def _config_source(args: argparse.Namespace, options):  # type: ignore[no-untyped-def]
    """What SIGHUP and ``--watch`` re-read (simulator/proxy/reload.py)."""
    from simulator.proxy.reload import ConfigSource

    def gateways(config, table):  # type: ignore[no-untyped-def]
        return build_gateways(config, args.gateway, args.namespace, not args.no_shadow_suffix, table, options)

    return ConfigSource(args.files, args.namespace, options, gateways, has_resources)


def _run_options(args: argparse.Namespace, loop: asyncio.AbstractEventLoop | None):  # type: ignore[no-untyped-def]
    """RunOptions from ``mirrorsim run`` flags; the access log is opened on ``loop`` if given."""
    from simulator.proxy.accesslog import access_log_for
    from simulator.proxy.launch import RunOptions

    lhost, lport = args.listen
    ahost, aport = args.admin if args.admin else (None, None)
    return RunOptions(
        listen_host=lhost, listen_port=lport,
        admin_host=ahost or "127.0.0.1", admin_port=aport,
        seed=args.seed, access_log=access_log_for(args.access_log, loop, args.access_log_format) if loop else None,
        access_log_format=args.access_log_format, watch=args.watch,
        config_source=getattr(args, "config_source", None),
        local_address=args.local_address,
        max_shadow_inflight=args.max_shadow_inflight, max_shadow_bytes=args.max_shadow_bytes,
        max_request_bytes=args.max_request_bytes, shadow_timeout=args.shadow_timeout,
        max_buffered_bytes=args.max_buffered_bytes, diff=getattr(args, "diff_options", None),
    )


def _run_workers(args: argparse.Namespace, table, gateways) -> int:  # type: ignore[no-untyped-def]
    import dataclasses

    from simulator.proxy.workers import run_workers

    def loop_factory() -> asyncio.AbstractEventLoop:
        try:
            import uvloop

            return uvloop.new_event_loop()
        except ImportError:  # pragma: no cover
            return asyncio.new_event_loop()

    # each worker opens the access log itself, after the fork, on its own loop
    opts = dataclasses.replace(_run_options(args, None), access_log_spec=args.access_log)
    try:
        return run_workers(args.workers, table, opts, gateways, loop_factory,
                           drain_time=args.drain_time, restart_delay=args.worker_restart_delay)
    except OSError as exc:
        print(f"mirrorsim: cannot listen: {exc}", file=sys.stderr)
        return 1


async def _serve(args: argparse.Namespace, table, gateways) -> int:  # type: ignore[no-untyped-def]
    from simulator.proxy.launch import freeze_startup_objects, start_proxy
    from simulator.proxy.lifecycle import Shutdown, serve_until_signalled

    loop = asyncio.get_running_loop()
    shutdown = Shutdown(loop)
    shutdown.install(signal.SIGINT, signal.SIGTERM)
    lhost = args.listen[0]
    opts = _run_options(args, loop)
    rp = await start_proxy(table, opts, gateways)
    if opts.config_source is not None:
        from simulator.proxy.reload import serve_reloads

        serve_reloads(rp, opts.config_source, loop, opts.watch)
    freeze_startup_objects()
    print(args.banner, file=sys.stderr)
    for gw in gateways:
        print(f"mirrorsim gateway {gw.name} listening on http://{gw.host}:{rp.gateway_ports[gw.name]}",
              file=sys.stderr)
    print(f"mirrorsim listening on http://{lhost}:{rp.port}"
          + (f" (admin http://{opts.admin_host}:{rp.admin_port})" if rp.admin_port else ""),
          file=sys.stderr, flush=True)
    return await serve_until_signalled(rp, args.drain_time, shutdown)


def cmd_backend(args: argparse.Namespace) -> int:
    from simulator.backend import BackendSpec, backends_for, serve_many

    if args.for_paths:
        if args.name is not None or args.listen is not None:
            print("mirrorsim backend: --for starts the backends a config declares; "
                  "it cannot be combined with --name or --listen", file=sys.stderr)
            return 2
        config = load_or_report(args.for_paths, args.namespace, quiet_warnings=True)
        if config is None:
            return 1
        specs, notes = backends_for(config)
        for note in notes:
            print(f"mirrorsim backend: {note}", file=sys.stderr)
        if not specs:
            print("mirrorsim backend: no STATIC ServiceEntry endpoint on 127.0.0.1 or ::1 in "
                  + " ".join(args.for_paths) + "; nothing was started.", file=sys.stderr)
            return 1
    else:
        host, port = args.listen or ("127.0.0.1", 8000)
        specs = [BackendSpec(args.name or "httpbin", host, port)]
    _use_uvloop()
    try:
        asyncio.run(serve_many(specs))
    except KeyboardInterrupt:
        pass
    except OSError as exc:
        print(f"mirrorsim backend: {exc.strerror or exc}", file=sys.stderr)
        return 1
    return 0


def cmd_demo(args: argparse.Namespace) -> int:
    from simulator.demo import run_demo

    if args.web:  # the two-step lesson with the live page (simulator/demo_web.py)
        from simulator.demo_web import run_web_demo

        host, port = args.admin
        try:
            return asyncio.run(run_web_demo(host, port, args.interval, color=not args.no_color))
        except KeyboardInterrupt:
            return 130
    return asyncio.run(run_demo(requests=args.requests, color=not args.no_color))


def _use_uvloop() -> None:
    try:
        import uvloop
    except ImportError:  # pragma: no cover - uvloop is a dependency on Linux/macOS
        return
    asyncio.set_event_loop_policy(uvloop.EventLoopPolicy())


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="mirrorsim",
        description="Local traffic-mirroring simulator with Envoy 1.40 / Istio semantics.",
    )
    parser.add_argument("--version", action=_VersionAction,
                        help="show the version and whether the data plane is compiled (mypyc) or "
                             "pure Python, and exit")
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    run = sub.add_parser("run", help="run the proxy on Istio YAML")
    add_config_args(run)
    run.add_argument("--listen", type=hostport, default=("127.0.0.1", 15001),
                     metavar="HOST:PORT", help="data-plane address (default 127.0.0.1:15001)")
    run.add_argument("--admin", type=hostport, default=("127.0.0.1", 15000),
                     metavar="HOST:PORT", help="admin address: /stats, /stats/prometheus, /ready, /clusters, "
                     "/config_dump, /server_info, POST /reset_counters (default 127.0.0.1:15000)")
    run.add_argument("--gateway", action="append", default=[], metavar="[NS/]NAME[:PORT]=HOST:PORT",
                     help="serve a Gateway's HTTP server on a local address, e.g. "
                          "bookinfo-gateway=127.0.0.1:8080 (repeatable)")
    run.add_argument("--workers", type=int, default=1, metavar="N",
                     help="serve with N processes sharing the ports (SO_REUSEPORT); the admin "
                          "address then reports the sum of every worker's counters (default 1)")
    run.add_argument("--seed", type=int, default=None,
                     help="seed of the per-request random value (weighted splits, mirror "
                          "sampling, load balancing) for reproducible runs")
    run.add_argument("--access-log", default="-", metavar="PATH",
                     help="access log destination: - (stdout, default), off, or a file")
    run.add_argument("--access-log-format", choices=("envoy", "istio", "json"), default="envoy",
                     help="envoy: Envoy's default format; istio: Istio's mesh default (with the upstream "
                     "cluster and response code details); json: Istio's JSON, one object per line")
    run.add_argument("--watch", action="store_true",
                     help="re-read the -f files when they change (SIGHUP always re-reads them); a config "
                     "with errors is rejected and the last good one keeps serving")
    run.add_argument("--no-shadow-suffix", action="store_true",
                     help="send shadow copies with the original Host (Envoy's "
                          "disable_shadow_host_suffix_append; Istio >= 1.28's default)")
    run.add_argument("--max-shadow-inflight", type=int, default=1024, metavar="N",
                     help="shadow copies in flight at once before new ones are dropped "
                          "(default 1024; drops count in mirrorsim.shadow_dropped)")
    run.add_argument("--max-shadow-bytes", type=int, default=256 * 1024 * 1024, metavar="N",
                     help="request-body bytes held by in-flight shadow copies before new ones "
                          "are dropped (default 268435456)")
    run.add_argument("--max-request-bytes", type=int, default=64 * 1024 * 1024, metavar="N",
                     help="largest request body accepted (default 67108864; larger: 413)")
    run.add_argument("--max-buffered-bytes", type=int, default=256 * 1024 * 1024, metavar="N",
                     help="request-body bytes held at once across all connections; a body "
                          "that would pass it gets 503 'envoy overloaded' (flag OM, stat "
                          "downstream_rq_overload_close) (default 268435456)")
    add_routing_args(run)
    run.add_argument("--local-address", default=None, metavar="IP",
                     help="the proxy's own address appended to x-forwarded-for on shadow "
                          "copies (default: first non-loopback IPv4, as Envoy's local_info)")
    run.add_argument("--shadow-timeout", type=seconds, default=15.0, metavar="SECONDS",
                     help="how long a shadow copy on a route without a timeout may wait for its "
                          "answer before it is reset (504 UT); Envoy waits for ever; 0: no bound "
                          "(default 15)")
    from simulator.diffargs import add_diff_args

    add_diff_args(run, seconds)
    run.add_argument("--drain-time", type=seconds, default=5.0, metavar="SECONDS",
                     help="after SIGTERM or SIGINT, how long in-flight requests may take to finish "
                          "before they are cut (Istio's terminationDrainDuration, default 5); a "
                          "second signal cuts them at once")
    run.add_argument("--worker-restart-delay", type=seconds, default=0.2, metavar="SECONDS",
                     help="with --workers: wait before restarting a worker that died, doubled for "
                          "each earlier death of that worker within 30 s; the 5th death within "
                          "30 s stops mirrorsim (default 0.2)")
    run.set_defaults(func=cmd_run)

    be = sub.add_parser(
        "backend", help="run the built-in httpbin-like backend (or, with --for, one per endpoint of a config)",
        description="Run the built-in httpbin-like backend: one, named --name on --listen, or with "
                    "--for one per 127.0.0.1 / ::1 endpoint of the config's STATIC ServiceEntries, "
                    "named <service>-<version label> (e.g. reviews-v2). Every response carries "
                    "x-backend: <name>. Runs until Ctrl-C.")
    be.add_argument("--name", default=None, help="name shown in responses and logs (default httpbin)")
    be.add_argument("--listen", type=hostport, default=None, metavar="HOST:PORT",
                    help="address to listen on (default 127.0.0.1:8000)")
    be.add_argument("--for", dest="for_paths", nargs="+", action="extend", default=[], metavar="PATH",
                    help="Istio YAML files or directories (as run -f): start one backend per loopback "
                         "endpoint of their STATIC ServiceEntries")
    be.add_argument("--namespace", default=DEFAULT_NAMESPACE, help=argparse.SUPPRESS)
    be.set_defaults(func=cmd_backend)

    demo = sub.add_parser("demo", help="Istio's mirroring task end to end on loopback")
    demo.add_argument("--requests", type=int, default=3, help="requests to send (default 3)")
    demo.add_argument("--no-color", action="store_true")
    demo.add_argument("--web", action="store_true",
                      help="keep running with the live page open and walk the task in two steps "
                           "(all to v1, then the mirror to v2), waiting for Enter (docs/teaching.md)")
    demo.add_argument("--admin", type=hostport, default=("127.0.0.1", 15000), metavar="HOST:PORT",
                      help="with --web: the live page's address (default 127.0.0.1:15000, a free port if taken)")
    demo.add_argument("--interval", type=float, default=1.0, metavar="S",
                      help="with --web: seconds between requests (default 1)")
    demo.set_defaults(func=cmd_demo)

    # Commands that live with their feature: each module has register(subparsers).
    routecheck_commands.register(sub)  # validate, explain, check
    envoy_command.register(sub)  # envoy (export a static bootstrap)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    try:
        return int(args.func(args))
    except KeyboardInterrupt:  # Ctrl-C outside a server's own handling (e.g. -f - on a stalled pipe)
        print("mirrorsim: interrupted", file=sys.stderr)
        return 130


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
