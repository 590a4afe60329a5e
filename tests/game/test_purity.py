"""`game/` is a sans-IO core: no module under it may import I/O, clocks, threads or the global `random`."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

import game

FORBIDDEN = frozenset(
    {"trio", "trio_websocket", "msgpack", "socket", "time", "datetime", "asyncio", "random", "os", "threading"}
)

GAME_DIR = Path(game.__file__).parent


def forbidden_imports(source: str, filename: str = "<source>") -> list[str]:
    """The forbidden modules that `source` imports, as "line: module", in order.

    Catches `import x`, `import x.y`, `from x import y`, `from x.y import z`, and `__import__("x")` or
    `importlib.import_module("x")` with a literal name, at any depth (inside functions too).
    """
    found: list[tuple[int, str]] = []
    for node in ast.walk(ast.parse(source, filename=filename)):
        if isinstance(node, ast.Import):
            found.extend((node.lineno, alias.name) for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
            found.append((node.lineno, node.module))
        elif isinstance(node, ast.Call) and node.args and isinstance(node.args[0], ast.Constant):
            func, name = node.func, node.args[0].value
            dynamic = (isinstance(func, ast.Name) and func.id == "__import__") or (
                isinstance(func, ast.Attribute) and func.attr == "import_module"
            )
            if dynamic and isinstance(name, str):
                found.append((node.lineno, name))
    return [f"{line}: {name}" for line, name in sorted(found) if name.split(".")[0] in FORBIDDEN]


def _game_modules() -> list[Path]:
    return sorted(GAME_DIR.rglob("*.py"))


def test_every_game_module_is_checked() -> None:
    names = {path.name for path in _game_modules()}
    assert {"__init__.py", "rules.py", "state.py", "events.py", "simulation.py", "snapshot.py", "hashing.py"} <= names


@pytest.mark.parametrize("path", _game_modules(), ids=lambda path: str(path.relative_to(GAME_DIR)))
def test_game_module_imports_nothing_forbidden(path: Path) -> None:
    assert forbidden_imports(path.read_text(encoding="utf-8"), str(path)) == []


@pytest.mark.parametrize(
    ("source", "module"),
    [
        ("import time", "time"),
        ("import math, os.path", "os.path"),
        ("from time import monotonic", "time"),
        ("from random import Random", "random"),
        ("import trio_websocket as ws", "trio_websocket"),
        ("from trio.lowlevel import checkpoint", "trio.lowlevel"),
        ("import msgpack", "msgpack"),
        ("from socket import socket", "socket"),
        ("from datetime import datetime", "datetime"),
        ("import asyncio", "asyncio"),
        ("import threading", "threading"),
        ("def later():\n    import time\n    return time.monotonic()", "time"),
        ("clock = __import__('time')", "time"),
        ("import importlib\nrandom = importlib.import_module('random')", "random"),
    ],
)
def test_checker_flags_forbidden_import(source: str, module: str) -> None:
    flagged = forbidden_imports(source)
    assert len(flagged) == 1
    assert flagged[0].endswith(f": {module}")


@pytest.mark.parametrize(
    "source",
    [
        "import math",
        "import hashlib",
        "import attrs",
        "from collections.abc import Mapping",
        "from game.state import MatchState",
        "from . import rules",
        "import timeit",
        "import osmium",
        "from randomness import seed",
        "time = 3\nrandom = 4",
    ],
)
def test_checker_accepts_allowed_import(source: str) -> None:
    assert forbidden_imports(source) == []


def test_checker_reports_line_numbers() -> None:
    assert forbidden_imports("import math\n\nimport time\nfrom os import path\n") == ["3: time", "4: os"]
