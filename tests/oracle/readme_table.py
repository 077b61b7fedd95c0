"""Regenerate the scenario table of tests/oracle/README.md from the test modules' xfail marks:
``python tests/oracle/readme_table.py`` (after removing or adding a ``differs`` or ``pending``
mark: ``differs`` = a strict xfail, ``pending`` = a non-strict one for input mirrorsim lacks)."""

from __future__ import annotations

import ast
from pathlib import Path

HERE = Path(__file__).resolve().parent
MODULES = ["test_basic.py", "test_headers_faults.py", "test_upstream_responses.py", "test_source.py",
           "test_gamma.py"]
MARKS = {"differs": "xfail", "pending": "pending"}
HEADER = "| module | scenario | status |"


def rows() -> list[tuple[str, str, str]]:
    out = []
    for name in MODULES:
        tree = ast.parse((HERE / name).read_text())
        marks: dict[str, str] = {}
        for node in tree.body:  # NAME = differs("reason") / pending("reason")
            if (isinstance(node, ast.Assign) and isinstance(node.value, ast.Call)
                    and getattr(node.value.func, "id", "") in MARKS):
                kind = MARKS[getattr(node.value.func, "id", "")]
                marks[getattr(node.targets[0], "id", "")] = f"{kind}: " + ast.literal_eval(node.value.args[0])
        for node in tree.body:
            if isinstance(node, ast.AsyncFunctionDef) and node.name.startswith("test_"):
                status = "agrees"
                for d in node.decorator_list:
                    if isinstance(d, ast.Name) and d.id in marks:
                        status = marks[d.id]
                    elif isinstance(d, ast.Call) and getattr(d.func, "id", "") in MARKS:
                        status = f"{MARKS[getattr(d.func, 'id', '')]}: " + ast.literal_eval(d.args[0])
                out.append((name[5:-3], node.name[5:], status))
    return out


def main() -> None:
    table = rows()
    agree = sum(1 for r in table if r[2] == "agrees")
    pend = sum(1 for r in table if r[2].startswith("pending"))
    lines = [f"| {m} | `{n}` | {s.replace('|', chr(92) + '|')} |" for m, n, s in table]
    readme = HERE / "README.md"
    text = readme.read_text()
    head = text[: text.index(HEADER)]
    readme.write_text(head + HEADER + "\n|---|---|---|\n" + "\n".join(lines)
                      + f"\n\n{len(table)} scenarios: {agree} agree, {len(table) - agree - pend} strict xfail, "
                      f"{pend} pending (mirrorsim lacks the input).\n")
    print(f"{len(table)} scenarios, {agree} agree")


if __name__ == "__main__":
    main()
