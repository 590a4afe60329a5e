"""A dropped connection does not cost a player the match: the seat waits, and the resume token takes it back."""

from __future__ import annotations

import pytest
import trio

from bots.client import ArenaClient, RefusedError, connect
from server.messages import Left
from tests.conftest import make_token, ws_url
from tests.server.test_play import aim_at, seed_where_player_1_can_kill_player_2_from_spawn


async def _status_seen_by(client: ArenaClient, player: int, status: str) -> None:
    def seen(message: object) -> bool | None:
        players = client.view.entities["players"] if client.view else {}
        return True if player in players and players[player]["status"] == status else None

    await client.receive_until(seen, timeout=3)


async def test_a_cut_connection_resumes_the_same_seat_with_its_score(server_factory):
    server = await server_factory(resume_window=5.0, seed=seed_where_player_1_can_kill_player_2_from_spawn())
    url = ws_url(server)
    token = make_token("dropper", name="dropper")
    async with connect(url, name="watcher") as watcher:
        async with connect(url, name="dropper", token=token) as dropper:
            joined = await dropper.join()
            watched = await watcher.join()
            # the dropper scores a kill first, so there is a score to keep
            await dropper.receive_until(lambda m: True if watched.player in dropper.view.entities["players"] else None)
            target = dropper.view.entities["players"][watched.player]
            await dropper.send_input(aim=aim_at(dropper.me(), target), fire=True)
            await dropper.receive_until(lambda m: True if dropper.me()["kills"] == 1 else None)
            before = dict(dropper.me())
            old_token = dropper.resume_token
            await dropper.drop_connection()
        await _status_seen_by(watcher, joined.player, "reconnecting")

        async with connect(url, name="dropper", token=token) as again:
            resumed = await again.resume(old_token)
            assert (resumed.match, resumed.player, resumed.resumed) == (joined.match, joined.player, True)
            assert resumed.resume != old_token
            me = again.me()
            assert (me["kills"], me["deaths"], me["name"]) == (1, before["deaths"], "dropper")
            assert me["status"] == "playing"
            await _status_seen_by(watcher, joined.player, "playing")
            assert again.snapshots_received == 1
            await again.receive_until(lambda m: True if again.deltas_received >= 3 else None)
            assert again.deltas_out_of_sync == 0
            newer_token = again.resume_token
            await again.drop_connection()

        # the `joined` with the newer token may have been lost in the drop: the older one still works...
        async with connect(url, name="dropper", token=token) as third:
            assert (await third.resume(old_token)).player == joined.player
            newest_token = third.resume_token
            await third.drop_connection()
        async with connect(url, name="dropper", token=token) as fourth:
            assert (await fourth.resume(newest_token)).player == joined.player
            await fourth.drop_connection()
        # ...until a newer one has been used: then the older ones are refused
        async with connect(url, name="dropper", token=token) as fifth:
            for stale in (old_token, newer_token):
                with pytest.raises(RefusedError, match="unknown resume token"):
                    await fifth.resume(stale)

    counters = server.health()["counters"]
    assert counters["resumes"] == 3 and counters["resumes_refused"] == 2


async def test_another_player_cannot_use_a_resume_token(server_factory):
    server = await server_factory(resume_window=5.0)
    url = ws_url(server)
    async with connect(url, name="owner", token=make_token("owner")) as owner:
        await owner.join()
        token = owner.resume_token
        await owner.drop_connection()
    async with connect(url, name="thief", token=make_token("thief")) as thief:
        with pytest.raises(RefusedError, match="another player"):
            await thief.resume(token)


async def test_after_the_window_the_seat_is_released_and_resume_is_refused(server_factory):
    server = await server_factory(resume_window=0.5)
    url = ws_url(server)
    token = make_token("slowpoke")
    async with connect(url, name="watcher") as watcher:
        async with connect(url, name="slowpoke", token=token) as slowpoke:
            joined = await slowpoke.join()
            await watcher.join()
            resume_token = slowpoke.resume_token
            await slowpoke.drop_connection()
        await _status_seen_by(watcher, joined.player, "reconnecting")

        def gone(message: object) -> bool | None:
            return True if joined.player not in watcher.view.entities["players"] else None

        await watcher.receive_until(gone, timeout=3)
        async with connect(url, name="slowpoke", token=token) as late:
            with pytest.raises(RefusedError, match="released"):
                await late.resume(resume_token)


async def test_a_bot_can_play_a_dropped_players_avatar_until_they_resume(server_factory):
    server = await server_factory(resume_window=5.0, bot_takes_over=True)
    url = ws_url(server)
    token = make_token("stand-in")
    async with connect(url, name="watcher") as watcher:
        async with connect(url, name="stand-in", token=token) as player:
            joined = await player.join()
            await watcher.join()
            resume_token = player.resume_token
            await player.drop_connection()
        await _status_seen_by(watcher, joined.player, "reconnecting")
        start = dict(watcher.view.entities["players"][joined.player])

        def moved(message: object) -> bool | None:
            now = watcher.view.entities["players"][joined.player]
            return True if (now["x"], now["y"], now["aim"]) != (start["x"], start["y"], start["aim"]) else None

        await watcher.receive_until(moved, timeout=3)  # the bot plays it: it turns to aim and moves
        async with connect(url, name="stand-in", token=token) as back:
            resumed = await back.resume(resume_token)
            assert resumed.player == joined.player


async def test_a_resume_into_a_match_that_ended_meanwhile_gets_its_end_and_left(server_factory):
    server = await server_factory(resume_window=10.0, match_seconds=1, match_linger_seconds=5.0)
    url = ws_url(server)
    token = make_token("late", name="late")
    async with connect(url, name="stayer") as stayer:
        async with connect(url, name="late", token=token) as late:
            await late.join()
            await stayer.join()
            old_token = late.resume_token
            await late.drop_connection()
        await stayer.receive_until(lambda m: True if stayer.view and stayer.view.entities["match"][0]["over"] else None)
        async with connect(url, name="late", token=token) as again:  # the match lingers, over
            left = await again.resume(old_token)
            assert isinstance(left, Left) and left.reason == "match_over"
            assert again.last_snapshot is not None
            assert any(event.kind == "match_end" for event in again.last_snapshot.events)
            late_token = old_token
        stayer_token = stayer.resume_token
        await stayer.drop_connection()
    with trio.fail_after(10):  # and once it has closed
        while server.directory.matches:
            await trio.sleep(0.1)
    async with connect(url, name="late", token=token) as again:
        left = await again.resume(late_token)
        assert isinstance(left, Left) and left.reason == "match_over"
    async with connect(url, name="stayer", token=make_token("someone-else")) as stranger:
        with pytest.raises(RefusedError, match="unknown resume token"):
            await stranger.resume(stayer_token)  # another player's token gets nothing
    counters = server.health()["counters"]
    assert counters["resumes"] == 2 and counters["resumes_refused"] == 1
