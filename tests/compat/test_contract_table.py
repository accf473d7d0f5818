"""Every row of the sosw contract table (docs/reference.md) has its test, and every test its row."""

from __future__ import annotations

import ast
import re
from pathlib import Path

from tests.docs import section

ROOT = Path(__file__).resolve().parents[2]
ROW = re.compile(r"^\| (C\d\d) \|", re.M)
TEST = re.compile(r"^test_(c\d\d)_")


def table_rows() -> list[str]:
    return ROW.findall(section("reference", "The contract"))


def contract_tests() -> dict[str, str | None]:
    """Row id -> the docstring of its test, from tests/compat/test_contract_*.py."""
    found: dict[str, str | None] = {}
    for path in sorted(Path(__file__).parent.glob("test_contract_*.py")):
        for node in ast.parse(path.read_text()).body:
            match = TEST.match(node.name) if isinstance(node, ast.FunctionDef) else None
            if match:
                found[match.group(1).upper()] = ast.get_docstring(node)
    return found


def test_the_table_is_complete_and_in_order() -> None:
    rows = table_rows()
    assert rows == [f"C{i:02d}" for i in range(1, len(rows) + 1)]
    assert len(rows) == 40


def test_one_test_per_row_citing_it() -> None:
    tests = contract_tests()
    assert sorted(tests) == table_rows()
    for row, docstring in tests.items():
        assert docstring and docstring.startswith(f"{row}: "), row
