"""Servers sharing one real redis-server: one secret for guest tokens, each lists the whole fleet's matches, a
server killed with SIGKILL drops out within seconds, and Redis going away and back costs running matches nothing."""

from __future__ import annotations

import json
import signal
import subprocess
import sys
import time

import trio

from bots.client import RefusedError, connect, guest_token, http_request
from server.auth import AuthConfig
from server.fleet import HEARTBEAT_SECONDS, PRESENCE_TTL_SECONDS
from server.messages import PROTOCOL_VERSION, Hello, ListMatches, Matches, Queue, Reserved
from tests.browser.conftest import start_server_process
from tests.conftest import join_together, start_server, ws_url

FAST = ("--queue-wait", "0.3", "--no-replays", "--match-seconds", "300")


def kill_all(servers: list) -> None:
    for server in servers:
        server.process.kill()
        server.process.wait()
        if server.process.stdout:
            server.process.stdout.close()


async def _matches(port: int) -> dict:
    _, body = await http_request(f"http://127.0.0.1:{port}", "GET", "/matches")
    return json.loads(body)


async def test_every_server_lists_the_fleet_and_a_killed_one_drops_out(redis_server, tmp_path):
    servers = [
        start_server_process(*FAST, "--redis", redis_server.url, "--data-dir", str(tmp_path / name))
        for name in ("a", "b")
    ]
    try:
        async with connect(f"ws://127.0.0.1:{servers[1].port}/ws", name="on-second") as player:
            await player.join()  # on whichever server the fleet placed the match
            host_url = player.url
            host, other = sorted(servers, key=lambda server: f"ws://127.0.0.1:{server.port}/ws" != host_url)
            with trio.fail_after(5):
                while True:
                    listed = await _matches(other.port)
                    remote = [match for match in listed["matches"] if not match["local"]]
                    if remote and remote[0]["load"] > 0:  # listed, with what its ticks cost on its server
                        break
                    await trio.sleep(0.2)
            assert listed["fleet"] is True
            assert remote[0]["url"] == host_url and remote[0]["players"] == 1
            assert remote[0]["open_seats"] == 0 if remote[0]["mode"] == "duel" else remote[0]["open_seats"] > 0
            own = await _matches(host.port)
            assert [match["local"] for match in own["matches"]] == [True]
            async with connect(f"ws://127.0.0.1:{other.port}/ws", name="asker") as asker:  # the same over WebSocket
                await asker.send(ListMatches())
                listing = await asker.receive_until(lambda m: m if isinstance(m, Matches) else None)
            assert [match["url"] for match in listing.matches if not match["local"]] == [host_url]
            _, body = await http_request(f"http://127.0.0.1:{other.port}", "GET", "/healthz")
            assert json.loads(body)["fleet"]["servers"] == 2

            host.process.send_signal(signal.SIGKILL)
            host.process.wait()
            killed_at = time.monotonic()
            with trio.fail_after(PRESENCE_TTL_SECONDS + 3 * HEARTBEAT_SECONDS):
                while any(not match["local"] for match in (await _matches(other.port))["matches"]):
                    await trio.sleep(0.2)
            gone_after = time.monotonic() - killed_at
            assert gone_after <= PRESENCE_TTL_SECONDS + 2 * HEARTBEAT_SECONDS, gone_after
    finally:
        kill_all(servers)


async def test_redis_going_away_and_back_costs_the_running_match_nothing(nursery, redis_server, caplog):
    server = await start_server(nursery, redis_url=redis_server.url)
    with trio.fail_after(5):
        while server.fleet is None or not server.fleet.view.connected:
            await trio.sleep(0.05)
    async with connect(ws_url(server), name="steady") as player:
        await player.join()
        redis_server.stop()
        with trio.fail_after(3 * HEARTBEAT_SECONDS + 3):
            while server.fleet.view.connected:
                await player.receive()
        tick_when_cut = player.view.tick if player.view else 0
        listed = await _matches(server.port)
        assert listed["fleet"] is False and [match["local"] for match in listed["matches"]] == [True]
        assert server.health()["fleet"]["redis"] == "unreachable"
        assert any("cannot be reached" in record.getMessage() for record in caplog.records)
        assert server.health()["matchmaking"]["status"].startswith("paused: Redis cannot be reached")
        async with connect(ws_url(server), name="patient") as patient:
            await patient.send(Queue(mode="duel"))
            # the match ticks on meanwhile: the player keeps getting states; no match is formed for the queue
            with trio.fail_after(3):
                while (player.view.tick if player.view else 0) < tick_when_cut + 45:
                    await player.receive()
            assert not any(isinstance(message, Reserved) for message in await _drain(patient))
            redis_server.start()  # empty: the server writes its player's ticket there again, and matchmaking goes on
            reserved = await patient.receive_until(lambda m: m if isinstance(m, Reserved) else None, timeout=8)
            assert reserved.mode == "duel"
        with trio.fail_after(3 * HEARTBEAT_SECONDS + 5):
            while not server.fleet.view.connected:
                await player.receive()
        assert (await _matches(server.port))["fleet"] is True
        assert server.health()["matchmaking"]["status"] == "ok"


async def _drain(client) -> list:
    """The messages that have arrived for `client` (without waiting for more)."""
    received = []
    while True:
        with trio.move_on_after(0.05) as waited:
            received.append(await client.receive())
        if waited.cancelled_caught:
            return received


async def test_a_guest_token_from_one_server_of_the_fleet_is_good_on_another(nursery, redis_server):
    first = await start_server(nursery, redis_url=redis_server.url, auth=AuthConfig())
    second = await start_server(nursery, redis_url=redis_server.url, auth=AuthConfig())
    alone = await start_server(nursery, auth=AuthConfig())  # not in the fleet: a secret of its own
    token = await guest_token(ws_url(first), "traveller")
    async with connect(ws_url(second), name="traveller", token=token) as player:
        await player.join()
        assert player.player is not None
    async with connect(ws_url(alone), name=None) as stranger:
        await stranger.send(Hello(protocol=PROTOCOL_VERSION, token=token, name="traveller"))
        closed = await stranger.receive_until_closed()
    assert closed.code == 1008 and "signature" in closed.reason
    # Redis restarts empty: the running servers put the secret back, so a server started after that agrees
    redis_server.stop()
    redis_server.start()
    await trio.sleep(2 * HEARTBEAT_SECONDS)
    late = await start_server(nursery, redis_url=redis_server.url, auth=AuthConfig())
    async with connect(ws_url(late), name="traveller", token=token) as player:
        assert player.authenticated is not None


def test_without_redis_a_server_that_needs_the_fleets_secret_says_so(tmp_path):
    result = subprocess.run(
        [sys.executable, "-m", "server", "--port", "0", "--no-replays", "--data-dir", str(tmp_path),
         "--redis", f"unix://{tmp_path}/nothing-here.sock"],
        capture_output=True, text=True, timeout=60,
    )  # fmt: skip
    assert result.returncode == 2
    assert "cannot reach Redis" in result.stderr and "--auth-secret-file" in result.stderr, result.stderr
    assert "Traceback" not in result.stderr


async def test_after_kill_9_of_a_host_its_players_resumes_are_refused_as_gone_and_they_play_again(
    redis_server, tmp_path
):
    servers = [
        start_server_process(*FAST, "--redis", redis_server.url, "--data-dir", str(tmp_path / name))
        for name in ("a", "b")
    ]
    try:
        urls = [f"ws://127.0.0.1:{server.port}/ws" for server in servers]
        tokens = [await guest_token(urls[0], name) for name in ("left-behind", "other")]
        async with (
            connect(urls[0], name="left-behind", token=tokens[0]) as player,
            connect(urls[1], name="other", token=tokens[1]) as other,
        ):
            await join_together(player, other)
            resume_token, host_url = player.resume_token, player.url
            await trio.sleep(0.3)  # the host records the seat in Redis at its next round
            host = servers[urls.index(host_url)]
            survivor = urls[1 - urls.index(host_url)]
            host.process.send_signal(signal.SIGKILL)
            host.process.wait()
        killed_at = time.monotonic()
        async with connect(survivor, name="left-behind", token=tokens[0]) as back:
            with trio.fail_after(PRESENCE_TTL_SECONDS + 3 * HEARTBEAT_SECONDS):
                while True:
                    try:
                        await back.resume(resume_token)
                    except RefusedError as refused:
                        if "is gone" in str(refused):
                            break
                        raise
                    except OSError:  # sent to the dead host before its presence expired: try again
                        await trio.sleep(0.2)
            refused_after = time.monotonic() - killed_at
            await back.join("ffa")  # and it plays again, on the server that is left
            assert back.url == survivor and back.match is not None
        assert refused_after <= PRESENCE_TTL_SECONDS + 2 * HEARTBEAT_SECONDS, refused_after
    finally:
        kill_all(servers)
