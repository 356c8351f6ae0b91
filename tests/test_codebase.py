"""Rules of the codebase that a reader relies on (issue 17), checked on the source itself.

- A function of ``recsys/`` over about 80 lines says why, in a comment between its signature and its body
  (``# (over 80 lines ...``): most such functions are long by their documented parameters, not their body.
"""

from __future__ import annotations

import ast

from conftest import ROOT

#: the longest a function may be without a comment saying why
MAX_LINES = 80


def long_functions_without_a_reason(source: str) -> list[tuple[str, int]]:
    """(name, lines) of the functions over :data:`MAX_LINES` lines whose signature and the line after it hold no
    ``over 80`` comment."""
    lines = source.splitlines()
    out = []
    for node in ast.walk(ast.parse(source)):
        if not isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)):
            continue
        length = node.end_lineno - node.lineno + 1
        if length <= MAX_LINES:
            continue
        head = "\n".join(lines[node.lineno - 1:node.body[0].lineno])  # (the signature, up to the body's first line)
        if f"over {MAX_LINES}" not in head:
            out.append((node.name, length))
    return out


def test_a_long_function_says_why():
    found = {}
    for path in sorted((ROOT / "recsys").rglob("*.py")):
        bad = long_functions_without_a_reason(path.read_text(encoding="utf-8"))
        if bad:
            found[str(path.relative_to(ROOT))] = bad
    assert not found, f"functions over {MAX_LINES} lines without a comment saying why: {found}"


def test_the_rule_sees_a_long_function_and_its_reason():
    body = "\n".join(f"    x{i} = {i}" for i in range(MAX_LINES))
    long = f"def f(a,\n      b):\n{body}\n"
    assert long_functions_without_a_reason(long) == [("f", MAX_LINES + 2)]
    said = f"def f(a,\n      b):\n    # (over {MAX_LINES} lines: a table of constants)\n{body}\n"
    assert long_functions_without_a_reason(said) == []
    short = "\n".join(f"    x{i} = {i}" for i in range(MAX_LINES - 1))
    assert long_functions_without_a_reason(f"def f():\n{short}\n") == []  # (80 lines: no reason needed)
