"""Ctrl-C or SIGTERM drains the server: it stops accepting, tells players with 1001, and exits."""

from __future__ import annotations

import re
import signal
import socket
import subprocess
import sys

import pytest
import trio

from bots.client import connect
from tests.conftest import ws_url


async def test_shutdown_closes_every_client_with_1001_and_stops_accepting(server_factory):
    server = await server_factory()
    url = ws_url(server)
    async with connect(url, name="a") as a, connect(url, name="b") as b:
        await a.join()
        await b.join()
        server.shutdown()
        for client in (a, b):
            closed = await client.receive_until_closed(timeout=3)
            assert closed.code == 1001
            assert "shutting down" in closed.reason
    with trio.fail_after(3):
        while True:
            try:
                stream = await trio.open_tcp_stream("127.0.0.1", server.port)
            except OSError:
                break
            await stream.aclose()
            await trio.sleep(0.05)


@pytest.mark.parametrize("signal_number", [signal.SIGTERM, signal.SIGINT])
async def test_the_command_drains_on_a_signal_and_exits_cleanly(signal_number):
    process = await trio.lowlevel.open_process(
        [sys.executable, "-m", "server", "--port", "0"], stdout=subprocess.PIPE, stderr=subprocess.PIPE
    )
    try:
        assert process.stdout is not None
        output = b""
        with trio.fail_after(10):
            while b"open http://" not in output:
                chunk = await process.stdout.receive_some()
                assert chunk, f"the server exited early: {output!r}"
                output += chunk
        port = int(re.search(rb"http://127\.0\.0\.1:(\d+)/", output).group(1))
        async with connect(f"ws://127.0.0.1:{port}/ws", name="player") as player:
            await player.join()
            process.send_signal(signal_number)
            closed = await player.receive_until_closed()
        assert closed.code == 1001
        with trio.fail_after(10):
            assert await process.wait() == 0
    finally:
        if process.returncode is None:
            process.kill()
            await process.wait()


def test_a_port_in_use_is_a_clear_error_and_no_traceback(tmp_path):
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        result = subprocess.run(
            [sys.executable, "-m", "server", "--port", str(port), "--no-replays", "--data-dir", str(tmp_path)],
            capture_output=True,
            text=True,
            timeout=30,
        )
    assert result.returncode == 1, result
    assert f"cannot listen on 127.0.0.1:{port}" in result.stderr and "--port" in result.stderr, result.stderr
    assert "Traceback" not in result.stderr
