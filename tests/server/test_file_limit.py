"""Out of file descriptors (a server started under a small RLIMIT_NOFILE with --max-connections above it):
accepting backs off instead of spinning, the condition is logged once per interval, /healthz keeps answering,
and the server serves again once descriptors are free."""

from __future__ import annotations

import re
import resource
import subprocess
import sys

import trio

from tests.server.rawws import http_exchange

FILE_LIMIT = 64
IDLE_CONNECTIONS = 80


def _small_file_limit() -> None:
    resource.setrlimit(resource.RLIMIT_NOFILE, (FILE_LIMIT, FILE_LIMIT))


async def test_out_of_file_descriptors_healthz_answers_and_the_log_stays_quiet(tmp_path):
    log = tmp_path / "server.log"
    with log.open("wb") as log_file:
        process = subprocess.Popen(
            [sys.executable, "-m", "server", "--port", "0", "--max-connections", "1000",
             "--max-connections-per-ip", "0", "--log-level", "info"],
            stdout=subprocess.PIPE,
            stderr=log_file,
            preexec_fn=_small_file_limit,
        )  # fmt: skip
    try:
        assert process.stdout is not None
        found = re.search(rb"http://127\.0\.0\.1:(\d+)/", process.stdout.readline())
        assert found, "the server did not start"
        port = int(found.group(1))
        idle = [await trio.open_tcp_stream("127.0.0.1", port) for _ in range(IDLE_CONNECTIONS)]
        await trio.sleep(0.5)
        health_request = f"GET /healthz HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\n\r\n".encode()
        started = trio.current_time()
        health = await http_exchange(port, health_request, timeout=15)
        waited = trio.current_time() - started
        print(f"/healthz answered in {waited:.2f} s with {IDLE_CONNECTIONS} idle connections holding the descriptors")
        assert health.status == 200
        assert health.json()["counters"]["accept_errors"] >= 1
        await trio.sleep(1.0)
        for stream in idle:
            await stream.aclose()
        await trio.sleep(0.5)
        assert (await http_exchange(port, health_request)).status == 200
    finally:
        process.terminate()
        process.wait(timeout=10)
        if process.stdout is not None:
            process.stdout.close()
    text = log.read_text()
    reports = [line for line in text.splitlines() if "cannot accept connections" in line]
    assert 1 <= len(reports) <= 2, reports
    assert "Too many open files" in reports[0] and "ulimit" in reports[0]
    assert "Traceback" not in text and "ERROR" not in text, text[-2000:]
