"""A client that never gives up: the server is stopped for 60 s and started again on the same port; the page,
untouched, says what is happening and is back in a match within about 20 s."""

from __future__ import annotations

import socket
import time

from tests.browser.test_client import play, wait_for

OUTAGE_SECONDS = 60


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def test_after_a_minute_without_a_server_the_page_is_back_in_a_match(server_process, open_page, artifacts):
    port = _free_port()
    options = ("--port", str(port), "--queue-wait", "0.3", "--no-replays")
    server = server_process(*options)
    page = open_page(server.base_url).page
    play(page, "patient")
    wait_for(page, "window.arena.connection === 'in_match'")

    server.process.terminate()
    server.process.wait(timeout=15)
    wait_for(page, "window.arena.connection === 'reconnecting'", timeout=15)
    assert "reconnecting" in page.inner_text("body")
    time.sleep(OUTAGE_SECONDS)
    assert page.evaluate("window.arena.connection") == "reconnecting"  # still trying, a minute on

    server_process(*options)  # a new server, same address: it knows neither the token's key nor the seat
    started = time.monotonic()
    wait_for(page, "window.arena.connection === 'in_match'", timeout=25)
    print(f"back in a match {time.monotonic() - started:.1f} s after the server came back")
    page.screenshot(path=str(artifacts / "reconnected.png"))
