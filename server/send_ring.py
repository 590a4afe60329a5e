"""The tick scheduler's state frames sent with one system call per batch (io_uring), when this machine allows it.

Rules: `server/send_ring_native.pyx` (Cython over liburing, Debian's `liburing-dev`) is compiled into the virtual
environment (`<venv>/arena-send-ring`) with a manifest naming the digest of its source; `load()` uses it only
when that digest is today's source's, and only if the kernel gives this process an io_uring (a container's
sandbox or `kernel.io_uring_disabled` may refuse it). Anything else — no build, a stale one, a refusal,
`ARENA_SEND_RING=0` — means frames are written one `write(2)` each, as before: the same bytes in the same order,
at more CPU (a frame to each of 1,000 clients costs a fifth less CPU through the ring: docs/benchmarks.md). A failed
build is never fatal.

`python -m server.send_ring` builds it if it is out of date (scripts/setup.sh runs it); `--check` only says.
"""

from __future__ import annotations

import argparse
import hashlib
import importlib.util
import os
import shutil
import sys
import tempfile
import time
from importlib.machinery import EXTENSION_SUFFIXES
from pathlib import Path
from typing import Protocol

from server.compiled_game import built_digest, compile_in, install_build

SOURCE = Path(__file__).resolve().parent / "send_ring_native.pyx"
BUILD_DIR = Path(sys.prefix) / "arena-send-ring"
MODULE = "send_ring_native"
SWITCH_VARIABLE = "ARENA_SEND_RING"
LIBURING_HEADER = Path("/usr/include/liburing.h")

status = "one write per frame: the send ring was not looked for"
"""What `load()` found, for the server's log and /healthz."""


class SendRing(Protocol):
    """What server/send_ring_native.pyx's SendRing does (see that module's rules)."""

    def send_each(self, fds: list[int], frames: list[bytes], results: list[int]) -> None: ...


def source_digest() -> str:
    """A digest of the ring's source and this Python."""
    digest = hashlib.sha256()
    digest.update(sys.version.encode() + b"\0")
    digest.update(SOURCE.read_bytes())
    return digest.hexdigest()


def load(build_dir: Path = BUILD_DIR) -> SendRing | None:
    """This process's send ring if the build matches the source and the kernel allows one, else None (frames are
    then written one by one). Keeps what it found in `status`."""
    global status
    if os.environ.get(SWITCH_VARIABLE, "") == "0":
        status = f"one write per frame: {SWITCH_VARIABLE}=0"
        return None
    if built_digest(build_dir) != source_digest():
        status = "one write per frame: no send ring built for today's source (install liburing-dev, run setup.sh)"
        return None
    library = next((build_dir / f"{MODULE}{suffix}" for suffix in EXTENSION_SUFFIXES
                    if (build_dir / f"{MODULE}{suffix}").exists()), None)  # fmt: skip
    spec = importlib.util.spec_from_file_location(MODULE, library) if library is not None else None
    if spec is None or spec.loader is None:
        status = "one write per frame: the send ring's build holds no module for this Python"
        return None
    module = importlib.util.module_from_spec(spec)
    try:
        spec.loader.exec_module(module)
        ring: SendRing = module.SendRing()
    except (ImportError, OSError) as error:
        status = f"one write per frame: the kernel gives no io_uring here ({error})"
        return None
    status = "frames sent together through io_uring"
    return ring


def build(build_dir: Path = BUILD_DIR) -> None:
    """Compile the ring into `build_dir` (replacing what is there), printing progress.

    Raises:
        RuntimeError: if liburing's header is missing or compiling fails; says why.
    """
    if not LIBURING_HEADER.exists():
        raise RuntimeError(
            f"{LIBURING_HEADER} is missing: install Debian's liburing-dev (apt-get install liburing-dev)"
        )
    digest = source_digest()
    build_dir.parent.mkdir(parents=True, exist_ok=True)
    work = Path(tempfile.mkdtemp(prefix="arena-send-ring-", dir=build_dir.parent))
    try:
        shutil.copy(SOURCE, work / SOURCE.name)
        print("send ring: compiling server/send_ring_native.pyx with Cython against liburing (about 10 s)", flush=True)
        started = time.monotonic()
        compile_in(work, [sys.executable, "-m", "Cython.Build.Cythonize", "-i", "-q", SOURCE.name], "Cython")
        for generated in (work / SOURCE.name, work / f"{MODULE}.c"):
            generated.unlink()
        install_build(work, build_dir, {"digest": digest})
        print(f"send ring: built in {time.monotonic() - started:.0f} s into {build_dir}", flush=True)
    finally:
        shutil.rmtree(work, ignore_errors=True)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m server.send_ring", description="Build the io_uring send ring if it is out of date."
    )
    parser.add_argument("--check", action="store_true", help="only say whether the build is up to date (exit 1 if not)")
    args = parser.parse_args(argv)
    current = built_digest(BUILD_DIR) == source_digest()
    if args.check or current:
        print(f"send ring: {'up to date' if current else 'missing or out of date'} ({BUILD_DIR})")
        return 0 if current else 1
    try:
        build()
    except (RuntimeError, OSError) as error:
        print(f"send ring: not built, the server will write frames one by one (more CPU): {error}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
