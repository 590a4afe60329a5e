"""`arena serve --workers N`: N server processes on one machine, one fleet (docs/deploy.md).

Rules: worker k is `arena serve` with the same options, listening on `--port` + k, its public URL from
`--public-url` with `{worker}` and `{port}` filled in (default: ws://HOST:PORT/ws). They share one Redis: the one
`--redis` names, or, with none, a `redis-server` this process starts on a private unix socket (in a directory only
this user can enter; what it holds kept in `--data-dir`/redis, so that ratings outlive a restart) and stops when it
stops. A worker that dies is started again after
`RESTART_DELAY_SECONDS` (its players resume elsewhere or queue again, as after any server's death); one that keeps
dying within `FAST_DEATH_SECONDS` of its start `MAX_FAST_DEATHS` times stops the whole group with exit status 1.
SIGINT or SIGTERM is passed on to every worker, which drain as one server would; then Redis is stopped. SIGHUP
restarts the workers one at a time (a deploy: each new process runs the code installed now): each drains, which
hands its running matches to the other workers (server.fleet_matchmaking), is started again, and is given
`REJOIN_SECONDS` to join the fleet before the next one goes, so that no match is lost.
"""

from __future__ import annotations

import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Sequence
from pathlib import Path

import attrs

REDIS_START_SECONDS = 10.0
RESTART_DELAY_SECONDS = 1.0
FAST_DEATH_SECONDS = 5.0
MAX_FAST_DEATHS = 3
REJOIN_SECONDS = 3.0
"""After a restarted worker listens: time for it to appear in the fleet (heartbeats) before the next one drains."""
STOP_GRACE_SECONDS = 60.0
"""After SIGTERM, how long workers get to drain before they are killed (above the default --drain-timeout)."""


class WorkersError(Exception):
    """The group of workers cannot start; the message says what to do."""


def worker_count(value: str) -> int:
    """`--workers`: a number from 1 to 256, or `auto` (one per CPU core this process may use)."""
    if value == "auto":
        return max(1, len(os.sched_getaffinity(0)))
    try:
        count = int(value)
    except ValueError:
        raise ValueError(f"--workers takes a number or 'auto', got {value!r}") from None
    if not 1 <= count <= 256:
        raise ValueError(f"--workers must be from 1 to 256, got {count}")
    return count


@attrs.define(eq=False)
class PrivateRedis:
    """A redis-server of its own on a unix socket in `directory` (nothing saved to disk); it can be stopped and
    started again on the same socket."""

    directory: Path
    persist_in: Path | None = None
    """Where Redis keeps an append-only file of what it holds (the fleet's ratings) across restarts; None: nothing
    is kept."""
    process: subprocess.Popen[bytes] | None = None

    @property
    def socket(self) -> Path:
        return self.directory / "redis.sock"

    @property
    def url(self) -> str:
        return f"unix://{self.socket}?db=0"

    def start(self) -> None:
        """Start it and wait until it answers PING.

        Raises:
            WorkersError: if redis-server is missing or does not come up; the message says what to do.
        """
        binary = shutil.which("redis-server")
        if binary is None:
            raise WorkersError(
                "Redis is needed: install redis-server (bash scripts/setup.sh does; Debian: apt-get install "
                "redis-server) or give --redis URL"
            )
        command = [binary, "--port", "0", "--unixsocket", str(self.socket), "--unixsocketperm", "700"]
        if self.persist_in is None:
            command += ["--save", "", "--appendonly", "no", "--dir", str(self.directory)]
        else:
            self.persist_in.mkdir(parents=True, exist_ok=True)
            command += ["--save", "", "--appendonly", "yes", "--dir", str(self.persist_in)]
        command += ["--loglevel", "warning"]
        log = self.directory / "redis.log"
        with log.open("ab") as output:
            self.process = subprocess.Popen(command, stdout=output, stderr=subprocess.STDOUT)
        deadline = time.monotonic() + REDIS_START_SECONDS
        while not self._answers():
            if self.process.poll() is not None:
                detail = log.read_text(errors="replace")[-2000:]
                self.process = None
                raise WorkersError(f"redis-server exited at start: {detail.strip() or 'no message'}")
            if time.monotonic() > deadline:
                self.stop()
                raise WorkersError(f"redis-server did not answer on {self.socket} within {REDIS_START_SECONDS:g} s")
            time.sleep(0.02)

    def stop(self, *, graceful: bool = True) -> None:
        """Stop it (`graceful`: SIGTERM, else SIGKILL, as a crash would)."""
        process, self.process = self.process, None
        if process is None or process.poll() is not None:
            return
        if graceful:
            process.terminate()
            try:
                process.wait(5)
                return
            except subprocess.TimeoutExpired:
                pass
        process.kill()
        process.wait()

    def _answers(self) -> bool:
        try:
            with socket.socket(socket.AF_UNIX) as probe:
                probe.settimeout(1)
                probe.connect(str(self.socket))
                probe.sendall(b"PING\r\n")
                return probe.recv(16).startswith(b"+PONG")
        except OSError:
            return False


@attrs.define(eq=False)
class Worker:
    index: int
    host: str
    port: int
    command: list[str]
    process: subprocess.Popen[bytes] | None = None
    started_at: float = 0.0
    fast_deaths: int = 0

    def start(self) -> None:
        self.process = subprocess.Popen(self.command)
        self.started_at = time.monotonic()

    def listening(self) -> bool:
        try:
            address = "127.0.0.1" if self.host in ("", "0.0.0.0", "::") else self.host
            socket.create_connection((address, self.port), timeout=0.2).close()
        except OSError:
            return False
        return True


def worker_command(
    options: Sequence[str], *, index: int, port: int, redis_url: str, public_url: str | None
) -> list[str]:
    """The command line of worker `index`: `arena serve` with the group's options and its own port."""
    command = [sys.executable, "-m", "server", "serve", *options, "--port", str(port), "--redis", redis_url]
    if public_url is not None:
        command += ["--public-url", public_url.format(worker=index, port=port)]
    return command


def run_workers(
    options: Sequence[str],
    *,
    count: int,
    host: str,
    port: int,
    redis_url: str | None,
    public_url: str | None,
    data_dir: Path | None = None,
) -> int:
    """Run `count` workers until a signal (see the module's rules); returns the exit status.

    `options`: the `arena serve` options common to all workers (without --workers, --port, --redis, --public-url).
    """
    if port == 0 and count > 1:
        print("arena: --workers needs a fixed --port (worker k listens on --port + k)", file=sys.stderr)
        return 2
    redis: PrivateRedis | None = None
    with tempfile.TemporaryDirectory(prefix="arena-redis-") as directory:
        if redis_url is None:
            os.chmod(directory, 0o700)
            redis = PrivateRedis(Path(directory), persist_in=data_dir / "redis" if data_dir is not None else None)
            try:
                redis.start()
            except WorkersError as error:
                print(f"arena: {error}", file=sys.stderr)
                return 2
            redis_url = redis.url
        workers = [
            Worker(
                index,
                host,
                port + index,
                worker_command(options, index=index, port=port + index, redis_url=redis_url, public_url=public_url),
            )
            for index in range(count)
        ]
        signals = Signals()
        previous = {sig: signal.signal(sig, signals.stop) for sig in (signal.SIGINT, signal.SIGTERM)}
        previous[signal.SIGHUP] = signal.signal(signal.SIGHUP, signals.restart)
        status = 0
        try:
            for worker in workers:
                worker.start()
            print(
                f"Arena is running {count} workers: open http://{host}:{port}/ (ports {port} to {port + count - 1}; "
                f"Redis {'of its own' if redis else redis_url}; Ctrl-C stops them)",
                flush=True,
            )
            status = _supervise(workers, signals)
        finally:
            for worker in workers:
                if worker.process is not None and worker.process.poll() is None:
                    worker.process.send_signal(signal.SIGTERM)
            deadline = time.monotonic() + STOP_GRACE_SECONDS
            for worker in workers:
                if worker.process is None:
                    continue
                try:
                    worker.process.wait(max(0.1, deadline - time.monotonic()))
                except subprocess.TimeoutExpired:
                    print(f"arena: worker {worker.index} did not drain in time; killing it", file=sys.stderr)
                    worker.process.kill()
                    worker.process.wait()
            if redis is not None:
                redis.stop()
            for sig, handler in previous.items():
                signal.signal(sig, handler)
        print("Arena stopped.", flush=True)
        return status


@attrs.define(eq=False)
class Signals:
    """What the group was asked by signals (set from the signal handlers)."""

    stopping: bool = False
    restart_requested: bool = False

    def stop(self, signum: int, frame: object) -> None:
        self.stopping = True

    def restart(self, signum: int, frame: object) -> None:
        self.restart_requested = True


def _supervise(workers: list[Worker], signals: Signals) -> int:
    """Restart workers that die, and all of them one by one on SIGHUP, until stopped; 1 if one keeps dying at
    start."""
    while not signals.stopping:
        time.sleep(0.2)
        if signals.restart_requested:
            signals.restart_requested = False
            _restart_one_by_one(workers, signals)
        for worker in workers:
            assert worker.process is not None
            code = worker.process.poll()
            if code is None or signals.stopping:
                continue
            lived = time.monotonic() - worker.started_at
            worker.fast_deaths = worker.fast_deaths + 1 if lived < FAST_DEATH_SECONDS else 0
            if worker.fast_deaths >= MAX_FAST_DEATHS:
                print(
                    f"arena: worker {worker.index} exited with status {code} {MAX_FAST_DEATHS} times right after "
                    "starting; stopping all workers (its log above says why)",
                    file=sys.stderr,
                )
                return 1
            print(
                f"arena: worker {worker.index} exited with status {code} after {lived:.0f} s; starting it again",
                file=sys.stderr,
                flush=True,
            )
            time.sleep(RESTART_DELAY_SECONDS)
            worker.start()
    return 0


def _restart_one_by_one(workers: list[Worker], signals: Signals) -> None:
    """Drain and start again each worker in turn (its matches move to the others meanwhile)."""
    print(f"arena: SIGHUP: restarting {len(workers)} workers one at a time", file=sys.stderr, flush=True)
    for worker in workers:
        assert worker.process is not None
        if signals.stopping:
            return
        worker.process.send_signal(signal.SIGTERM)
        try:
            worker.process.wait(STOP_GRACE_SECONDS)
        except subprocess.TimeoutExpired:
            print(f"arena: worker {worker.index} did not drain in time; killing it", file=sys.stderr)
            worker.process.kill()
            worker.process.wait()
        worker.start()
        deadline = time.monotonic() + REDIS_START_SECONDS
        while not worker.listening() and time.monotonic() < deadline and worker.process.poll() is None:
            time.sleep(0.05)
        time.sleep(REJOIN_SECONDS)
        print(f"arena: worker {worker.index} restarted (port {worker.port})", file=sys.stderr, flush=True)
