"""Command-line options and steps shared by the commands (simulator/cli.py and the
commands that live with their feature, routecheck/commands.py and envoy/command.py):
argparse types, the config and routing flags, the translation options they give,
loading a config with its diagnostics printed."""

from __future__ import annotations

import argparse
import sys

from simulator.model.names import DEFAULT_NAMESPACE


def seconds(s: str) -> float:
    """A non-negative number of seconds (``1.5``), for argparse."""
    try:
        value = float(s)
    except ValueError:
        raise argparse.ArgumentTypeError(f"not a number of seconds: {s!r}") from None
    if not value >= 0 or value == float("inf"):
        raise argparse.ArgumentTypeError(f"must be a finite number of seconds >= 0: {s!r}")
    return value


def hostport(s: str, default_host: str = "127.0.0.1") -> tuple[str, int]:
    host, sep, port = s.rpartition(":")
    if not sep:
        host, port = default_host, s
    host = host.strip("[]") or default_host
    try:
        p = int(port)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected HOST:PORT, got {s!r}") from None
    if not 0 <= p <= 65535:
        raise argparse.ArgumentTypeError(f"port out of range in {s!r}")
    return host, p


def add_config_args(p: argparse.ArgumentParser) -> None:
    p.add_argument("-f", "--filename", dest="files", action="append", required=True,
                   metavar="PATH", help="Istio YAML file or directory (repeatable), like kubectl -f")
    p.add_argument("--namespace", default=DEFAULT_NAMESPACE,
                   help="namespace of resources without metadata.namespace, and of the client "
                        f"for short host names (default: {DEFAULT_NAMESPACE})")


def add_routing_args(p: argparse.ArgumentParser) -> None:
    """The inputs of translation besides the YAML: the mesh's path normalization and
    the calling workload (run, explain, check, validate)."""
    p.add_argument("--path-normalization", type=_path_normalization, default="BASE",
                   metavar="MODE", help="Istio meshConfig.pathNormalization: BASE (default), "
                   "MERGE_SLASHES, DECODE_AND_MERGE_SLASHES or NONE")
    p.add_argument("--source-labels", type=_source_labels, default={}, metavar="K=V[,K=V...]",
                   help="pod labels of the calling workload: rules whose sourceLabels do not select it "
                        "do not apply (default: an unlabelled workload)")
    p.add_argument("--source-namespace", type=_namespace_name, default=None, metavar="NS",
                   help="namespace of the calling workload: rules whose sourceNamespace differs do not "
                        "apply; short host names resolve relative to it (default: --namespace)")


def _path_normalization(s: str) -> str:
    from simulator.core.paths import MODES, parse_mode

    mode = parse_mode(s)
    if mode is None:
        raise argparse.ArgumentTypeError(f"unknown path normalization {s!r}; expected one of {', '.join(MODES)}")
    return mode


def _namespace_name(s: str) -> str:
    from simulator.model.syntax import is_dns1123_label

    if not is_dns1123_label(s):
        raise argparse.ArgumentTypeError(f"{s!r} is not a namespace name (a DNS-1123 label like default)")
    return s


def _source_labels(s: str) -> dict[str, str]:
    from simulator.model.syntax import LABELS_FORM, parse_label_list

    labels, problem = parse_label_list(s)
    if problem is not None:
        raise argparse.ArgumentTypeError(f"bad value {s!r}: {problem}; expected {LABELS_FORM}")
    return labels


def translate_options(args: argparse.Namespace, shadow_suffix: bool = True):  # type: ignore[no-untyped-def]
    """TranslateOptions from ``--namespace`` and the ``add_routing_args`` flags."""
    from simulator.core.translate import TranslateOptions

    return TranslateOptions(
        namespace=args.namespace, shadow_suffix=shadow_suffix,
        path_normalization=getattr(args, "path_normalization", "BASE"),
        source_labels=tuple(sorted(getattr(args, "source_labels", {}).items())),
        source_namespace=getattr(args, "source_namespace", None) or "",
    )


def has_resources(c) -> bool:  # type: ignore[no-untyped-def]
    """Whether a loaded config holds a resource ``run`` serves (also asked on a reload)."""
    return bool(c.virtual_services or c.destination_rules or c.service_entries or c.workload_entries
                or c.gateways)


def load_or_report(files: list[str], namespace: str, *, quiet_warnings: bool = False,  # type: ignore[no-untyped-def]
                   require_resources: bool = False):
    """Load and validate; print every diagnostic; return the config or None on error
    (or, with ``require_resources``, when the files hold no resource mirrorsim reads)."""
    from simulator.config import load

    result = load(files, default_namespace=namespace)
    for d in result.diagnostics:
        if d.severity == "error" or not quiet_warnings:
            print(d.format(), file=sys.stderr)
    if not result.ok:
        n = len([d for d in result.diagnostics if d.severity == "error"])
        print(f"mirrorsim: {n} error(s) in the configuration; nothing was started.",
              file=sys.stderr)
        return None
    c = result.config
    if require_resources and not has_resources(c):
        print("mirrorsim: no VirtualService, DestinationRule, ServiceEntry, WorkloadEntry or Gateway "
              f"in {', '.join(result.files) or ', '.join(files)}; nothing was started.", file=sys.stderr)
        return None
    return result.config
