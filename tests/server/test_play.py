"""Two clients in one match on a real server: what one does, the other sees through deltas."""

from __future__ import annotations

import math

import trio

import game
from bots.client import ArenaClient, connect
from game import Death, Hit, MatchEnd, Snapshot
from server.messages import Left
from tests.conftest import ws_url


def aim_at(shooter: dict[str, int | str], target: dict[str, int | str]) -> float:
    return math.atan2(int(target["y"]) - int(shooter["y"]), int(target["x"]) - int(shooter["x"]))


def seed_where_player_1_can_kill_player_2_from_spawn() -> int:
    """A seed whose first two spawn points have a clear line of fire, found with the pure simulation."""
    for seed in range(1000):
        state = game.MatchState.initial(seed=seed)
        state = game.add_player(game.add_player(state, 1, "a"), 2, "b")
        shooter, target = state.players[1], state.players[2]
        aim = math.atan2(target.y - shooter.y, target.x - shooter.x)
        for _ in range(120):
            state, events = game.step(state, {1: game.PlayerInput(aim=aim, fire=True)})
            if any(isinstance(e, Death) for e in events):
                return seed
    raise AssertionError("no seed in 0..999 gives a clear line of fire")


async def _receive_for(client: ArenaClient, seconds: float) -> list[object]:
    messages: list[object] = []
    with trio.move_on_after(seconds):
        while True:
            messages.append(await client.receive())
    return messages


async def test_two_players_see_each_other_move_shoot_score_and_the_match_end(server_factory):
    server = await server_factory(seed=seed_where_player_1_can_kill_player_2_from_spawn(), match_seconds=4)
    url = ws_url(server)
    async with connect(url, name="alice") as alice, connect(url, name="bob") as bob:
        joined_alice = await alice.join()
        joined_bob = await bob.join()
        assert joined_alice.match == joined_bob.match
        a, b = joined_alice.player, joined_bob.player
        assert bob.view is not None and a in bob.view.entities["players"]
        assert bob.view.entities["players"][a]["name"] == "alice"

        # alice shoots bob from where she stands until bob dies; bob sees the projectiles, hits and death
        await alice.receive_until(lambda m: True if b in alice.view.entities["players"] else None)
        bob_seen_by_alice = alice.view.entities["players"][b]
        seq = await alice.send_input(aim=aim_at(alice.me(), bob_seen_by_alice), fire=True)
        events: list[game.Event] = []
        projectile_ids: set[int] = set()

        def until_bob_dies(message: object) -> bool | None:
            if isinstance(message, game.Delta):
                events.extend(message.events)
                projectile_ids.update(message.added.get("projectiles", {}))
            return True if any(isinstance(e, Death) for e in events) else None

        await bob.receive_until(until_bob_dies, timeout=5)
        hits = [e for e in events if isinstance(e, Hit)]
        assert [h.hp for h in hits] == [75, 50, 25, 0]
        assert all(h.shooter == a and h.target == b for h in hits)
        assert Death(victim=b, killer=a) in events
        assert len(projectile_ids) >= 4
        assert bob.view.entities["players"][a]["kills"] == 1
        assert bob.view.entities["players"][b]["deaths"] == 1
        assert bob.view.entities["players"][a]["ack"] == seq

        # alice stops firing and walks; bob sees her move
        x_before = int(bob.view.entities["players"][a]["x"])
        y_before = int(bob.view.entities["players"][a]["y"])
        seq = await alice.send_input(mx=-1 if x_before > 800 else 1, my=-1 if y_before > 450 else 1)
        await _receive_for(bob, 0.5)
        moved = bob.view.entities["players"][a]
        assert (int(moved["x"]), int(moved["y"])) != (x_before, y_before)
        assert moved["ack"] == seq
        assert bob.deltas_out_of_sync == 0

        # the time limit ends the match; both get the scoreboard, then are told the match closed
        def match_end(message: object) -> MatchEnd | None:
            if isinstance(message, game.Delta | Snapshot):
                return next((e for e in message.events if isinstance(e, MatchEnd)), None)
            return None

        end_for_bob = await bob.receive_until(match_end, timeout=6)
        end_for_alice = await alice.receive_until(match_end, timeout=2)
        assert end_for_bob == end_for_alice
        assert end_for_bob.reason == "time_limit"
        assert end_for_bob.winner == a
        assert [(line.player, line.kills, line.deaths) for line in end_for_bob.scoreboard] == [(a, 1, 0), (b, 0, 1)]
        left = await bob.receive_until(lambda m: m if isinstance(m, Left) else None, timeout=3)
        assert left.reason == "match_over"

        # and they can play again, in a new match
        rejoined = await bob.join()
        assert rejoined.match != joined_bob.match


async def test_a_player_who_joins_late_gets_a_full_snapshot_then_deltas(server, url):
    async with connect(url, name="first") as first:
        await first.join()
        await first.send_input(mx=1)
        await _receive_for(first, 0.3)
        async with connect(url, name="late") as late:
            await late.join()
            assert late.snapshots_received == 1
            assert late.view is not None
            assert set(late.view.entities["players"]) == {first.player, late.player}
            await _receive_for(late, 0.3)
            assert late.deltas_received >= 5
            assert late.deltas_out_of_sync == 0
            # both views, one built from a late snapshot, the other from deltas since the start, agree
            target_tick = late.view.tick + 3
            for client in (first, late):
                await client.receive_until(lambda m, c=client: True if c.view.tick == target_tick else None)
            assert late.view == first.view


async def test_the_ninth_player_starts_a_new_match(server, url):
    async with trio.open_nursery() as nursery:
        clients: list[ArenaClient] = []
        done = trio.Event()

        async def player(name: str, ready: trio.Event) -> None:
            async with connect(url, name=name) as client:
                await client.join()
                clients.append(client)
                ready.set()
                await done.wait()

        for index in range(9):
            ready = trio.Event()
            nursery.start_soon(player, f"p{index}", ready)
            await ready.wait()
        matches = [c.match for c in clients]
        assert len(set(matches[:8])) == 1
        assert matches[8] != matches[0]
        health = server.health()
        assert health["matches"] == 2 and health["players"] == 9
        done.set()


async def test_inputs_that_arrive_together_are_applied_one_per_tick_in_order(server, url):
    async with connect(url, name="jittery") as client:
        await client.join()
        first = await client.send_input(mx=1)
        second = await client.send_input(mx=1, my=1)
        third = await client.send_input()
        acks: list[int] = []

        def record_ack_until_the_third(message: object) -> bool | None:
            if isinstance(message, game.Delta):
                acks.append(int(client.me()["ack"]))
            return True if acks and acks[-1] == third else None

        await client.receive_until(record_ack_until_the_third)
        applied = [ack for ack in acks if ack]
        assert applied == [first, second, third]  # one per tick: none lost, none repeated
