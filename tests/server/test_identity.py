"""Nobody plays as someone else: every refused token is refused with a reason, at the handshake or in hello."""

from __future__ import annotations

import json
import time

import pytest
import trio
import trio_websocket

from bots.client import RefusedError, connect, guest_token, http_request
from server.auth import AuthConfig
from server.messages import PROTOCOL_VERSION, Hello, Joined, Refresh
from tests.conftest import TEST_SECRET, make_token, ws_url

BAD_TOKENS = {
    "forged signature": lambda: make_token("mallory", key="not-the-server-secret-0123456789abcdef"),
    "expired": lambda: make_token("late", exp=1_000_000, iat=999_000),
    "wrong audience": lambda: make_token("stranger", aud="another-game"),
    "wrong issuer": lambda: make_token("stranger", iss="someone-else"),
    "no subject": lambda: make_token(None),
    "garbage": lambda: "this.is.not-a-jwt",
}
REASONS = {
    "forged signature": "signature",
    "expired": "expired",
    "wrong audience": "audience",
    "wrong issuer": "issuer",
    "no subject": "sub",
    "garbage": "invalid token",
}


@pytest.mark.parametrize("case", sorted(BAD_TOKENS))
async def test_a_bad_token_in_the_upgrade_header_gets_401_with_the_reason(url, case):
    with pytest.raises(trio_websocket.ConnectionRejected) as rejected:
        async with connect(url, name="x", token=BAD_TOKENS[case](), authorization_header=True):
            pass
    assert rejected.value.status_code == 401
    assert REASONS[case] in rejected.value.body.decode()


@pytest.mark.parametrize("case", sorted(BAD_TOKENS))
async def test_a_bad_token_in_hello_closes_with_1008_and_the_reason(server, url, case):
    async with connect(url, name=None) as client:
        await client.send(Hello(protocol=PROTOCOL_VERSION, token=BAD_TOKENS[case](), name="x"))
        closed = await client.receive_until_closed()
    assert closed.code == 1008
    assert REASONS[case] in closed.reason
    assert server.health()["counters"]["auth_refused"] == 1


async def test_no_token_at_all_closes_with_1008(url):
    async with connect(url, name=None) as client:
        await client.send(Hello(protocol=PROTOCOL_VERSION, name="anonymous"))
        closed = await client.receive_until_closed()
    assert closed.code == 1008
    assert "token" in closed.reason


async def test_a_token_in_the_upgrade_header_is_enough(url):
    async with connect(url, name="header", token=make_token("header-user"), authorization_header=True) as client:
        assert client.authenticated is not None and client.authenticated.player == "header-user"
        joined = await client.join()
        assert joined.player >= 1


async def test_guest_tokens_are_handed_out_and_can_be_switched_off(server_factory):
    server = await server_factory()
    token = await guest_token(ws_url(server), "guest")
    async with connect(ws_url(server), name="guest", token=token) as client:
        assert client.authenticated.player.startswith("guest:")
    status, body = await http_request(ws_url(server), "POST", "/auth/guest", json.dumps({"name": " "}).encode())
    assert status == 400 and "name" in json.loads(body)["error"]

    closed_server = await server_factory(auth=AuthConfig(verification_key=TEST_SECRET, guest_tokens=False))
    with pytest.raises(RefusedError, match="403"):
        await guest_token(ws_url(closed_server), "guest")


async def test_a_token_that_expires_during_a_match_ends_the_session_unless_refreshed(server_factory):
    server = await server_factory(auth=AuthConfig(verification_key=TEST_SECRET, leeway_seconds=0))
    url = ws_url(server)
    async with connect(url, name="brief", token=make_token("brief", exp=int(time.time()) + 2)) as brief:
        await brief.join()
        closed = await brief.receive_until_closed(timeout=5)
    assert closed.code == 1008 and "expired" in closed.reason

    async with connect(url, name="renewed", token=make_token("renewed", exp=int(time.time()) + 2)) as renewed:
        await renewed.join()
        await renewed.send(Refresh(token=make_token("renewed")))
        with trio.move_on_after(3.5):
            while True:
                await renewed.receive()
        assert renewed.ws.closed is None, renewed.ws.closed


async def test_refresh_with_another_players_token_closes_with_1008(url):
    async with connect(url, name="me", token=make_token("me")) as client:
        await client.send(Refresh(token=make_token("someone-else")))
        closed = await client.receive_until_closed()
    assert closed.code == 1008 and "another player" in closed.reason


async def test_the_same_player_connecting_again_takes_over_the_seat_and_the_old_connection_is_closed(server, url):
    token = make_token("twice", name="twice")
    async with connect(url, name="twice", token=token) as first, connect(url, name="other") as other:
        joined = await first.join()
        await other.join()
        async with connect(url, name="twice", token=token) as second:
            taken = await second.receive_until(lambda m: m if isinstance(m, Joined) else None)
            assert (taken.match, taken.player, taken.resumed) == (joined.match, joined.player, True)
            closed = await first.receive_until_closed()
            assert closed.code == 4002 and "replaced" in closed.reason
            await second.send_input(mx=1)
            x = None
            with trio.fail_after(3):
                while x is None or int(other.view.entities["players"][joined.player]["x"]) <= x:
                    await other.receive()
                    x = x if x is not None else int(other.view.entities["players"][joined.player]["x"])
    assert server.health()["counters"]["replaced_connections"] == 1
