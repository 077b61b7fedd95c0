"""``mirrorsim validate`` (and, as they come, ``explain`` and ``check``)."""

from __future__ import annotations

import argparse
import json
import sys
from typing import Any


def cmd_validate(args: argparse.Namespace) -> int:
    from simulator.config import load

    result = load(args.files, default_namespace=args.namespace)
    if args.output == "json":
        print(json.dumps([d.as_dict() for d in result.diagnostics], indent=2))
    else:
        for d in result.diagnostics:
            print(d.format())
        errors = sum(1 for d in result.diagnostics if d.severity == "error")
        warnings = len(result.diagnostics) - errors
        print(f"{errors} error(s), {warnings} warning(s)", file=sys.stderr)
    return 0 if result.ok else 1


def register(sub: Any) -> None:
    from simulator.cli import add_config_args

    val = sub.add_parser("validate", help="check Istio YAML and print every diagnostic")
    add_config_args(val)
    val.add_argument("--output", choices=("text", "json"), default="text")
    val.set_defaults(func=cmd_validate)
