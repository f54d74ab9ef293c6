"""The packages are layers (ARCHITECTURE.md; issue 11): a package imports only from the layers
below it, never from one above or beside it, neither with `import` nor by naming a module to
`importlib`. A static scan of every module, so a new upward import fails here, not in the field.

    chargeport < hal < evse < satellite, system_aggregator < main_node < simulation
    < chargeport_cli
"""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]
LAYER = {
    "chargeport": 0,
    "hal": 1,
    "evse": 2,
    "satellite": 3,
    "system_aggregator": 3,
    "main_node": 4,
    "simulation": 5,
    "chargeport_cli": 6,
}


def imported(tree: ast.AST) -> list[tuple[int, str]]:
    """(line, module) for every absolute import and every importlib.import_module("...")."""
    out: list[tuple[int, str]] = []
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            out += [(node.lineno, alias.name) for alias in node.names]
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            out.append((node.lineno, node.module))
        elif (
            isinstance(node, ast.Call)
            and isinstance(node.func, ast.Attribute)
            and node.func.attr == "import_module"
            and node.args
            and isinstance(node.args[0], ast.Constant)
            and isinstance(node.args[0].value, str)
        ):
            out.append((node.lineno, node.args[0].value))
    return out


@pytest.mark.parametrize("package", list(LAYER))
def test_no_package_imports_one_above_or_beside_it(package: str) -> None:
    wrong = []
    for path in sorted((REPO / package).rglob("*.py")):
        if "v1" in path.relative_to(REPO).parts:
            continue  # generated stubs
        for line, module in imported(ast.parse(path.read_text(), str(path))):
            top = module.split(".")[0]
            if top in LAYER and top != package and LAYER[top] >= LAYER[package]:
                wrong.append(f"{path.relative_to(REPO)}:{line} imports {module}")
    assert wrong == []


def test_the_command_table_names_only_lower_packages() -> None:
    from chargeport_cli.cli import COMMANDS

    for name, (module, _) in COMMANDS.items():
        assert LAYER[module.split(".")[0]] < LAYER["chargeport_cli"], name
