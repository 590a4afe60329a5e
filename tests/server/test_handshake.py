"""The upgrade request is checked to the letter (RFC 6455 section 4.2.1) and against the Origin allowlist,
before any 101: every refusal is a 4xx with a reason, and none leaves a traceback in the log."""

from __future__ import annotations

import base64
import logging
import os

import pytest

from server.handshake import Authority, OriginPolicy, canonical_origin, parse_host
from tests.server.rawws import http_exchange, open_raw_websocket, upgrade_request

KEY = base64.b64encode(os.urandom(16))


def test_host_syntax():
    assert parse_host("Game.Example.com:8443") == Authority("game.example.com", 8443)
    assert parse_host("[::1]:80") == Authority("[::1]", 80)
    assert parse_host("127.0.0.1") == Authority("127.0.0.1", None)
    assert parse_host("xn--bcher-kva.example") == Authority("xn--bcher-kva.example", None)
    for bad in ["xn--zz", "a b", "", "host:", "host:99999", "host:8x", "[::1", "[nope]:1", "ex_ample.com", "é.com"]:
        with pytest.raises(ValueError):
            parse_host(bad)


def test_origins_are_compared_by_scheme_host_and_port():
    policy = OriginPolicy()
    own = Authority("game.example.com", None)
    assert policy.refusal("https://game.example.com", own) is None
    assert policy.refusal("http://game.example.com", own) is None
    assert policy.refusal("https://game.example.com:8443", own) is not None
    assert policy.refusal("http://localhost:5173", own) is None  # nothing configured: local pages may
    assert policy.refusal("https://evil.example", own) is not None
    assert policy.refusal("null", own) is not None
    configured = OriginPolicy.from_options(["https://www.example.com"])
    assert configured.refusal("https://www.example.com:443", own) is None
    assert configured.refusal("http://localhost:5173", own) is not None
    assert configured.refusal("https://game.example.com", own) is None  # its own origin, always
    assert OriginPolicy.from_options(["*"]).refusal("https://evil.example", own) is None
    assert OriginPolicy.from_options(["null"]).refusal("null", own) is None
    with pytest.raises(ValueError, match="not an origin"):
        canonical_origin("www.example.com")


async def _upgrade(port: int, *, key: bytes | None = KEY, host: bytes | None = None, extra: str = "") -> int:
    request = upgrade_request(port, key=key, extra=extra)
    if host is not None:
        request = request.replace(f"Host: 127.0.0.1:{port}".encode(), b"Host: " + host)
    response = await http_exchange(port, request)
    return response.status


BAD_REQUESTS = {
    "an 8,000-byte key": {"key": base64.b64encode(os.urandom(6000))},
    "a key of 15 bytes": {"key": base64.b64encode(os.urandom(15))},
    "a key that is not base64": {"key": b"!" * 24},
    "no key": {"key": None},
    "two keys": {"extra": f"Sec-WebSocket-Key: {KEY.decode()}\r\n"},
    "an invalid IDN host": {"host": b"xn--zz"},
    "a host with a \\xff byte": {"host": b"\xff"},
    "a host with a space": {"host": b"a b"},
    "a host with a bad port": {"host": b"127.0.0.1:0"},
    "two hosts": {"extra": "Host: other.example\r\n"},
}


@pytest.mark.parametrize("request_parts", BAD_REQUESTS.values(), ids=BAD_REQUESTS.keys())
async def test_a_malformed_upgrade_gets_400_and_no_traceback(server, caplog, request_parts):
    caplog.set_level(logging.DEBUG)
    assert await _upgrade(server.port, **request_parts) == 400
    assert server.health()["connections"] == 0
    loud = [r for r in caplog.records if r.levelno >= logging.WARNING or r.exc_info]
    assert not loud, [r.getMessage() for r in loud]


async def test_another_websocket_version_gets_426_naming_13(server):
    request = upgrade_request(server.port, key=KEY).replace(b"Version: 13", b"Version: 8")
    response = await http_exchange(server.port, request)
    assert response.status == 426
    assert response.headers["sec-websocket-version"] == "13"


ORIGINS = {
    "no Origin (a bot)": ("", 101),
    "the page's own origin": ("Origin: http://127.0.0.1:{port}\r\n", 101),
    "a page on localhost": ("Origin: http://localhost:5173\r\n", 101),
    "another site": ("Origin: https://evil.example\r\n", 403),
    "null": ("Origin: null\r\n", 403),
    "the own host on another port": ("Origin: http://127.0.0.1:1\r\n", 101),  # 127.0.0.1 is local
}


@pytest.mark.parametrize(("header", "status"), ORIGINS.values(), ids=ORIGINS.keys())
async def test_origins_by_default(server, header, status):
    request = upgrade_request(server.port, key=KEY, extra=header.format(port=server.port))
    response = await http_exchange(server.port, request) if status != 101 else None
    if response is not None:
        assert response.status == status
        assert b"not allowed" in response.body
        return
    ws, _ = await open_raw_websocket(server.port, extra=header.format(port=server.port))
    await ws.aclose()


async def test_configured_origins_replace_localhost(server_factory):
    server = await server_factory(allowed_origins=("https://play.example.com",))
    ws, _ = await open_raw_websocket(server.port, extra="Origin: https://play.example.com\r\n")
    await ws.aclose()
    request = upgrade_request(server.port, key=KEY, extra="Origin: http://localhost:5173\r\n")
    assert (await http_exchange(server.port, request)).status == 403
