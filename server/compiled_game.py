"""The game compiled to C with mypyc, used by the server when the build matches the sources; pure Python otherwise.

Rules: the compiled build is a copy of the whole `game/` package in which the modules of `COMPILED_MODULES` are
also compiled (mypyc, from the very same source files: same float operations in the same order, so a compiled
server and a pure-Python replay checker agree on every state hash; tests/server/test_compiled_game.py checks it).
It lives in the virtual environment (`<venv>/arena-compiled`) with a manifest naming the digest of the sources it
was built from. `use()` puts it first on `sys.path` only when that digest is the digest of today's `game/`: an
edited source is never shadowed by a stale build (the server runs pure Python and says so until the next
`scripts/setup.sh`). `ARENA_PURE_PYTHON=1` chooses pure Python. A failed build is never fatal: the game is the
same either way, only slower.

`python -m server.compiled_game` builds it if it is out of date (scripts/setup.sh runs it); `--check` only says.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
from importlib.machinery import EXTENSION_SUFFIXES
from pathlib import Path

GAME_SOURCES = Path(__file__).resolve().parent.parent / "game"
BUILD_DIR = Path(sys.prefix) / "arena-compiled"
MANIFEST = "arena-compiled.json"
COMPILED_MODULES = ("simulation.py", "snapshot.py", "hashing.py", "ai.py", "values.py", "arithmetic.py", "state.py")
"""The game's modules of functions, and its values (plain classes, built and read every tick). Its modules of
attrs classes (rules, events, value_fields) stay Python: mypyc does not compile attrs' class decorators."""
PURE_PYTHON_VARIABLE = "ARENA_PURE_PYTHON"

status = "pure Python: the compiled build was not looked for"
"""What `use()` found, for the server's log and /healthz."""


def source_digest(sources: Path = GAME_SOURCES) -> str:
    """A digest of every source file of the game, the list of compiled modules and this Python."""
    digest = hashlib.sha256()
    digest.update(sys.version.encode())
    digest.update(repr(COMPILED_MODULES).encode())
    for path in sorted(sources.rglob("*.py")):
        digest.update(str(path.relative_to(sources)).encode() + b"\0")
        digest.update(path.read_bytes() + b"\0")
    return digest.hexdigest()


def built_digest(build_dir: Path = BUILD_DIR) -> str | None:
    try:
        return str(json.loads((build_dir / MANIFEST).read_text())["digest"])
    except (OSError, ValueError, KeyError, TypeError):
        return None


def use(build_dir: Path = BUILD_DIR, sources: Path = GAME_SOURCES) -> str:
    """Make `import game` load the compiled build if it matches the sources; call before anything imports game.
    Returns (and keeps in `status`) what was chosen and why."""
    global status
    if os.environ.get(PURE_PYTHON_VARIABLE, "") not in ("", "0"):
        status = f"pure Python: {PURE_PYTHON_VARIABLE} is set"
    elif "game" in sys.modules:
        status = "pure Python: the game was imported before the compiled build could be chosen"
    elif (digest := built_digest(build_dir)) is None:
        status = "pure Python: no compiled build (run `bash scripts/setup.sh` to make one)"
    elif digest != source_digest(sources):
        status = "pure Python: the compiled build is older than game/'s sources (run `bash scripts/setup.sh`)"
    elif not any((build_dir / "game" / f"simulation{suffix}").exists() for suffix in EXTENSION_SUFFIXES):
        status = "pure Python: the compiled build holds no compiled simulation for this Python"
    else:
        sys.path.insert(0, str(build_dir))
        status = "compiled with mypyc"
    return status


def build(build_dir: Path = BUILD_DIR) -> None:
    """Compile a copy of game/ into `build_dir` (replacing what is there), printing progress.

    Raises:
        RuntimeError: if mypyc fails; its last lines say why.
    """
    digest = source_digest()
    build_dir.parent.mkdir(parents=True, exist_ok=True)
    work = Path(tempfile.mkdtemp(prefix="arena-compiled-", dir=build_dir.parent))
    try:
        shutil.copytree(GAME_SOURCES, work / "game", ignore=shutil.ignore_patterns("__pycache__", "*.so"))
        modules = [f"game/{name}" for name in COMPILED_MODULES]
        print(f"compiled game: compiling {', '.join(modules)} with mypyc (about 30 s)", flush=True)
        started = time.monotonic()
        compile_in(work, [sys.executable, "-m", "mypyc", *modules], "mypyc")
        install_build(work, build_dir, {"digest": digest, "modules": modules})
        print(f"compiled game: built in {time.monotonic() - started:.0f} s into {build_dir}", flush=True)
    finally:
        shutil.rmtree(work, ignore_errors=True)


def compile_in(work: Path, command: list[str], compiler: str) -> None:
    """Run a compiler's `command` in the build folder `work`.

    Raises:
        RuntimeError: if it fails; its last lines say why.
    """
    result = subprocess.run(command, cwd=work, capture_output=True, text=True, check=False)
    if result.returncode != 0:
        last_lines = "\n".join((result.stdout + result.stderr).strip().splitlines()[-15:])
        raise RuntimeError(f"{compiler} failed (exit {result.returncode}):\n{last_lines}")


def install_build(work: Path, build_dir: Path, manifest: dict[str, object]) -> None:
    """Make the finished build in `work` the one in `build_dir` (replacing what is there), with its manifest."""
    shutil.rmtree(work / "build", ignore_errors=True)  # the generated C and objects: the .so files are made
    (work / MANIFEST).write_text(json.dumps(manifest))
    if build_dir.exists():
        shutil.rmtree(build_dir)
    work.rename(build_dir)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m server.compiled_game", description="Build the game compiled with mypyc if it is out of date."
    )
    parser.add_argument("--check", action="store_true", help="only say whether the build is up to date (exit 1 if not)")
    parser.add_argument("--force", action="store_true", help="build even if the build is up to date")
    args = parser.parse_args(argv)
    current = built_digest() == source_digest()
    if args.check or (current and not args.force):
        print(f"compiled game: {'up to date' if current else 'missing or out of date'} ({BUILD_DIR})")
        return 0 if current else 1
    try:
        build()
    except (RuntimeError, OSError) as error:
        print(
            f"compiled game: not built, the server will run the game as pure Python (slower): {error}", file=sys.stderr
        )
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
