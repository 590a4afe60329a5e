"""Native TLS: https:// and wss:// on the server's one port, with certificates from trustme."""

from __future__ import annotations

import json
import logging
import ssl
import warnings
from pathlib import Path

import pytest
import trio
import trustme

from bots.client import connect, http_request
from tests.server.rawws import receive_until_closed


@pytest.fixture
def tls(tmp_path: Path) -> tuple[trustme.CA, dict[str, Path]]:
    ca = trustme.CA()
    certificate = ca.issue_cert("127.0.0.1", "localhost")
    cert, key = tmp_path / "cert.pem", tmp_path / "key.pem"
    certificate.private_key_and_cert_chain_pem.write_to_path(str(key))
    certificate.cert_chain_pems[0].write_to_path(str(cert))
    for extra in certificate.cert_chain_pems[1:]:
        extra.write_to_path(str(cert), append=True)
    return ca, {"tls_cert": cert, "tls_key": key}


def client_context(ca: trustme.CA) -> ssl.SSLContext:
    context = ssl.create_default_context()
    ca.configure_trust(context)
    return context


async def test_a_player_plays_over_wss_and_healthz_answers_over_https(server_factory, tls):
    ca, files = tls
    server = await server_factory(**files)
    context = client_context(ca)
    status, body = await http_request(f"https://127.0.0.1:{server.port}", "GET", "/healthz", ssl_context=context)
    assert status == 200 and json.loads(body)["status"] == "ok"
    async with connect(f"wss://127.0.0.1:{server.port}/ws", name="secure", ssl_context=context) as client:
        # the guest token came over https too
        joined = await client.join()
        assert joined.match
        with trio.fail_after(5):
            while client.view is None:
                await client.receive()
        await client.send_input(mx=1)
        with trio.fail_after(5):
            while client.view.entities["players"][client.player]["ack"] < 1:
                await client.receive()


async def test_plain_http_on_the_tls_port_is_dropped_without_a_traceback(server_factory, tls, caplog):
    caplog.set_level(logging.DEBUG)
    _, files = tls
    server = await server_factory(**files)
    stream = await trio.open_tcp_stream("127.0.0.1", server.port)
    async with stream:
        await stream.send_all(f"GET /healthz HTTP/1.1\r\nHost: 127.0.0.1:{server.port}\r\n\r\n".encode())
        answer = await receive_until_closed(stream)
    assert b"HTTP/1.1 200" not in answer
    loud = [r for r in caplog.records if r.levelno >= logging.WARNING or r.exc_info]
    assert not loud, [r.getMessage() for r in loud]


async def test_tls_older_than_1_2_is_refused(server_factory, tls):
    ca, files = tls
    server = await server_factory(**files)
    context = client_context(ca)
    with warnings.catch_warnings():  # TLS 1.1 is deprecated: that is the point
        warnings.simplefilter("ignore", DeprecationWarning)
        context.minimum_version = ssl.TLSVersion.MINIMUM_SUPPORTED
        context.maximum_version = ssl.TLSVersion.TLSv1_1
    with pytest.raises((trio.BrokenResourceError, ssl.SSLError)):
        await http_request(f"https://127.0.0.1:{server.port}", "GET", "/healthz", ssl_context=context)


async def test_the_head_timeout_covers_a_tls_handshake_that_never_comes(server_factory, tls):
    _, files = tls
    server = await server_factory(**files, hello_timeout=1.0)
    stream = await trio.open_tcp_stream("127.0.0.1", server.port)
    async with stream:
        with trio.fail_after(3):
            assert await receive_until_closed(stream, timeout=3) == b""
    assert server.connections.total == 0
