"""The plain-HTTP side of the server's one port, spoken byte by byte over a raw TCP socket: the page, /healthz,
/ws without an upgrade, errors, path traversal, malformed and slow requests.
"""

from __future__ import annotations

import logging

import pytest
import trio

from bots.client import connect
from server.app import ArenaServer
from server.messages import PROTOCOL_VERSION
from tests.conftest import ws_url
from tests.server.rawws import http_exchange, http_get, receive_until_closed

PROJECT_FILE_MARKERS = (b"[project]", b"[build-system]", b"root:x:0:0")


async def test_the_page_is_served_at_the_root(server: ArenaServer):
    response = await http_get(server.port, "/")
    assert response.status == 200
    assert response.headers["content-type"].startswith("text/html")
    assert response.headers["connection"] == "close"
    assert response.body == (server.config.client_dir / "index.html").read_bytes()
    assert b"<html" in response.body.lower()


async def test_the_page_is_also_served_by_its_name(server: ArenaServer):
    response = await http_get(server.port, "/index.html")
    assert response.status == 200
    assert response.headers["content-type"].startswith("text/html")
    assert response.body == (server.config.client_dir / "index.html").read_bytes()


async def test_healthz_on_an_idle_server_reports_ok_and_no_matches(server: ArenaServer):
    response = await http_get(server.port, "/healthz")
    assert response.status == 200
    assert response.headers["content-type"].startswith("application/json")
    report = response.json()
    assert report["status"] == "ok"
    assert report["protocol"] == PROTOCOL_VERSION
    assert report["tick_rate"] == server.config.tick_rate
    assert report["matches"] == 0
    assert report["players"] == 0
    assert report["connections"] == 0
    assert report["close_codes"] == {}


async def test_healthz_reports_matches_players_and_tick_timing(server: ArenaServer):
    async with connect(ws_url(server), name="ann") as ann, connect(ws_url(server), name="bob") as bob:
        await ann.join()
        await bob.join()
        assert ann.match == bob.match
        with trio.fail_after(2):
            while server.statistics.ticks < 10:
                await ann.receive()
        report = (await http_get(server.port, "/healthz")).json()
    assert report["status"] == "ok"
    assert report["matches"] == 1
    assert report["players"] == 2
    assert report["connections"] == 2
    tick = report["tick"]
    assert tick["ticks"] >= 10
    for key in ("lateness_ms_p50", "lateness_ms_p99", "lateness_ms_max", "duration_ms_p50", "duration_ms_p99"):
        assert isinstance(tick[key], int | float), key
        assert 0 <= tick[key] < 1000, (key, tick[key])
    assert tick["lateness_ms_p50"] <= tick["lateness_ms_p99"] <= tick["lateness_ms_max"]
    assert 0 < tick["duration_ms_p50"] <= tick["duration_ms_p99"]


async def test_a_plain_get_of_the_websocket_endpoint_is_426_upgrade_required(server: ArenaServer):
    response = await http_get(server.port, "/ws")
    assert response.status == 426
    assert response.headers["upgrade"].lower() == "websocket"
    assert response.headers["sec-websocket-version"] == "13"
    assert b"websocket" in response.body.lower()


async def test_an_upgrade_to_something_other_than_websocket_is_426(server: ArenaServer):
    response = await http_get(server.port, "/ws", extra="Upgrade: h2c\r\nConnection: Upgrade\r\n")
    assert response.status == 426
    assert response.headers["upgrade"].lower() == "websocket"


@pytest.mark.parametrize("target", ["/nothing-here", "/healthz/", "/ws/", "/index.htm", "/."])
async def test_an_unknown_path_is_404(server: ArenaServer, target: str):
    response = await http_get(server.port, target)
    assert response.status == 404
    assert response.headers["content-type"].startswith("text/plain")


@pytest.mark.parametrize("method", ["POST", "PUT", "DELETE", "PATCH", "OPTIONS"])
async def test_a_method_other_than_get_or_head_is_405(server: ArenaServer, method: str):
    request = f"{method} / HTTP/1.1\r\nHost: x\r\nContent-Length: 5\r\nConnection: close\r\n\r\nhello"
    response = await http_exchange(server.port, request.encode())
    assert response.status == 405
    assert response.headers["allow"] == "GET, HEAD"


@pytest.mark.parametrize(("target", "status"), [("/", 200), ("/ws", 426), ("/nothing-here", 404)])
async def test_head_answers_like_get_without_a_body(server: ArenaServer, target: str, status: int):
    get = await http_get(server.port, target)
    head = await http_get(server.port, target, method="HEAD")
    assert head.status == get.status == status
    assert head.body == b""
    assert head.headers["content-length"] == get.headers["content-length"]
    assert head.headers["content-type"] == get.headers["content-type"]


async def test_head_of_healthz_answers_200_without_a_body(server: ArenaServer, caplog: pytest.LogCaptureFixture):
    stream = await trio.open_tcp_stream("127.0.0.1", server.port)
    async with stream:
        await stream.send_all(b"HEAD /healthz HTTP/1.1\r\nHost: x\r\n\r\n")
        data = await receive_until_closed(stream)
    assert data.startswith(b"HTTP/1.1 200 "), data
    assert data.endswith(b"\r\n\r\n"), data
    assert "unexpected error" not in caplog.text


TRAVERSALS = [
    "/../pyproject.toml",
    "/../../../../../../etc/passwd",
    "/%2e%2e/pyproject.toml",
    "/%2E%2E/pyproject.toml",
    "/..%2fpyproject.toml",
    "/%2e%2e%2fpyproject.toml",
    "/..%5cpyproject.toml",
    "/..\\pyproject.toml",
    "/./../pyproject.toml",
    "/index.html/../../pyproject.toml",
    "/ws/../pyproject.toml",
    "/healthz/../../pyproject.toml",
    "//etc/passwd",
    "/%2fetc/passwd",
    "http://127.0.0.1/../pyproject.toml",
    "/..;/pyproject.toml",
    "/.%00./pyproject.toml",
]


@pytest.mark.parametrize("target", TRAVERSALS)
async def test_a_path_outside_the_client_directory_is_never_served(server: ArenaServer, target: str):
    response = await http_get(server.port, target)
    assert response.status == 404
    for marker in PROJECT_FILE_MARKERS:
        assert marker not in response.body


async def test_a_path_that_goes_out_and_back_in_serves_only_the_client_directory(server: ArenaServer):
    client_dir = server.config.client_dir
    response = await http_get(server.port, f"/../{client_dir.name}/index.html")
    assert response.status == 200
    assert response.body == (client_dir / "index.html").read_bytes()


MALFORMED_REQUESTS = {
    "not http": b"GARBAGE\r\n\r\n",
    "no version": b"GET /\r\n\r\n",
    "tls client hello": b"\x16\x03\x01\x02\x00\x01\x00\x01\xfc\x03\x03" + bytes(40),
    "nul in the target": b"GET /\x00 HTTP/1.1\r\nHost: x\r\n\r\n",
    "header without colon": b"GET / HTTP/1.1\r\nHost: x\r\nBad Header\r\n\r\n",
    "two hosts": b"GET / HTTP/1.1\r\nHost: a\r\nHost: b\r\n\r\n",
    "no host": b"GET / HTTP/1.1\r\n\r\n",
    "conflicting lengths": b"GET / HTTP/1.1\r\nHost: x\r\nContent-Length: 5\r\nContent-Length: 6\r\n\r\n",
    "blank lines first": b"\r\n\r\nGET / HTTP/1.1\r\nHost: x\r\n\r\n",
}


@pytest.mark.parametrize("request_bytes", MALFORMED_REQUESTS.values(), ids=MALFORMED_REQUESTS.keys())
async def test_a_malformed_request_gets_400_and_the_connection_closes(server: ArenaServer, request_bytes: bytes):
    started = trio.current_time()
    response = await http_exchange(server.port, request_bytes, timeout=2)
    assert response.status == 400
    assert response.headers["connection"] == "close"
    assert response.body.startswith(b"malformed HTTP request")
    assert trio.current_time() - started < 1
    assert (await http_get(server.port, "/")).status == 200


async def test_a_request_head_over_16_kib_gets_431(server: ArenaServer):
    request = b"GET / HTTP/1.1\r\nHost: x\r\nX-Padding: " + b"a" * 40_000 + b"\r\n\r\n"
    response = await http_exchange(server.port, request)
    assert response.status == 431
    assert (await http_get(server.port, "/")).status == 200


async def test_a_connection_that_sends_nothing_is_dropped_after_hello_timeout(server_factory):
    server = await server_factory(hello_timeout=0.5)
    started = trio.current_time()
    stream = await trio.open_tcp_stream("127.0.0.1", server.port)
    async with stream:
        data = await receive_until_closed(stream, timeout=2)
    assert data == b""
    assert 0.45 <= trio.current_time() - started < 1.5


async def test_a_request_head_trickled_slowly_is_dropped_after_hello_timeout(server_factory):
    server = await server_factory(hello_timeout=0.5)
    started = trio.current_time()
    stream = await trio.open_tcp_stream("127.0.0.1", server.port)
    async with stream:
        await stream.send_all(b"GET / HTTP/1.1\r\n")
        with trio.fail_after(2):
            while True:
                try:
                    await stream.send_all(b"X-Slow: 1\r\n")
                except trio.BrokenResourceError:
                    break
                with trio.move_on_after(0.1):
                    if not await stream.receive_some(65536):
                        break
    assert 0.45 <= trio.current_time() - started < 1.5


async def test_a_silent_connection_is_dropped_without_an_error(server_factory, caplog: pytest.LogCaptureFixture):
    server = await server_factory(hello_timeout=0.3)
    stream = await trio.open_tcp_stream("127.0.0.1", server.port)
    async with stream:
        assert await receive_until_closed(stream, timeout=2) == b""
    await trio.sleep(0.05)
    errors = [record for record in caplog.records if record.levelno >= logging.ERROR]
    assert not errors, [record.getMessage() for record in errors]


async def test_a_request_cut_short_by_the_client_does_not_disturb_the_server(server: ArenaServer):
    stream = await trio.open_tcp_stream("127.0.0.1", server.port)
    async with stream:
        await stream.send_all(b"GET / HTTP/1.1\r\nHost: x\r\nX-Half")
        await stream.send_eof()
        data = await receive_until_closed(stream)
    assert data == b"" or data.startswith(b"HTTP/1.1 400 "), data
    assert (await http_get(server.port, "/healthz")).json()["status"] == "ok"
