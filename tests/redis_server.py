"""A real `redis-server` (Debian's package) for the fleet tests, on a unix socket of its own: started, stopped
and started again on the same socket, so a test can take Redis away from running servers and give it back."""

from __future__ import annotations

import shutil
import socket
import subprocess
import time
from pathlib import Path

import attrs

REDIS_SERVER = "redis-server"


@attrs.define(eq=False)
class RedisServer:
    directory: Path
    process: subprocess.Popen[bytes] | None = None

    @property
    def socket_path(self) -> Path:
        return self.directory / "redis.sock"

    @property
    def url(self) -> str:
        return f"unix://{self.socket_path}?db=0"

    def start(self) -> None:
        binary = shutil.which(REDIS_SERVER) or "/usr/bin/redis-server"
        if not Path(binary).exists():
            raise RuntimeError("redis-server is missing: `bash scripts/setup.sh --test-packages` installs Debian's")
        command = [binary, "--port", "0", "--unixsocket", str(self.socket_path), "--unixsocketperm", "700"]
        command += ["--save", "", "--appendonly", "no", "--dir", str(self.directory)]
        self.process = subprocess.Popen(command, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        deadline = time.monotonic() + 10
        while not self._answers():
            if self.process.poll() is not None or time.monotonic() > deadline:
                self.stop()
                raise RuntimeError(f"redis-server did not start on {self.socket_path}: run `{' '.join(command)}`")
            time.sleep(0.02)

    def stop(self) -> None:
        if self.process is not None:
            self.process.kill()
            self.process.wait()
            self.process = None

    def _answers(self) -> bool:
        try:
            with socket.socket(socket.AF_UNIX) as probe:
                probe.settimeout(1)
                probe.connect(str(self.socket_path))
                probe.sendall(b"PING\r\n")
                return probe.recv(16).startswith(b"+PONG")
        except OSError:
            return False
