"""A bug that breaks one match or one message handler closes what it broke, and nothing else."""

from __future__ import annotations

import trio

import game
from bots.client import connect
from server.app import ArenaServer
from server.messages import PROTOCOL_VERSION, Hello, Left
from tests.conftest import make_token


async def test_a_match_that_crashes_closes_its_players_and_the_server_goes_on(server, url, monkeypatch, caplog):
    real_step = game.step

    def step_that_breaks_at_tick_5(state, inputs):
        if state.tick == 5:
            raise RuntimeError("a bug in the simulation")
        return real_step(state, inputs)

    async with connect(url, name="unlucky") as unlucky:
        monkeypatch.setattr(game, "step", step_that_breaks_at_tick_5)
        await unlucky.join()
        left = await unlucky.receive_until(lambda m: m if isinstance(m, Left) else None, timeout=3)
        assert left.reason == "match_closed"
        assert "a bug in the simulation" in caplog.text
        monkeypatch.setattr(game, "step", real_step)
        # the same connection, and the server, go on
        await unlucky.join()
        await unlucky.send_input(mx=1)
        x = int(unlucky.me()["x"])
        await unlucky.receive_until(lambda m: True if int(unlucky.me()["x"]) > x else None, timeout=3)
    assert server.health()["status"] == "ok"


async def test_an_error_while_handling_a_message_closes_that_client_with_1011(server, url, monkeypatch):
    def broken_handler(self, session, message):
        raise RuntimeError("a bug in a handler")

    async with connect(url, name="bystander") as bystander:
        await bystander.join()
        monkeypatch.setattr(ArenaServer, "_handle_message", broken_handler)
        async with connect(url, name=None) as victim:
            await victim.send(Hello(protocol=PROTOCOL_VERSION, token=make_token("victim"), name="victim"))
            closed = await victim.receive_until_closed(timeout=3)
        assert closed.code == 1011
        deltas_before = bystander.deltas_received
        with trio.move_on_after(0.5):
            while True:
                await bystander.receive()
        assert bystander.deltas_received - deltas_before >= 10
