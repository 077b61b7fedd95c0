"""Shared helpers of the route-testing tests."""

from __future__ import annotations

from pathlib import Path

from simulator.cli import main

DATA = Path(__file__).resolve().parent / "data"
BOOKINFO = str(DATA / "bookinfo.yaml")
ROOT = Path(__file__).resolve().parents[2]


def run_cli(capsys, *argv: str) -> tuple[int, str, str]:  # type: ignore[no-untyped-def]
    code = main(list(argv))
    out, err = capsys.readouterr()
    return code, out, err


def write(tmp_path: Path, name: str, text: str) -> str:
    p = tmp_path / name
    p.write_text(text)
    return str(p)
