"""Skill ratings: openskill's Plackett-Luce from each finished match's scoreboard, kept in SQLite, served as a
leaderboard, and told to the players when their match ends."""

from __future__ import annotations

import subprocess
import sys

import pytest
from openskill.models import PlackettLuce

from bots.client import connect
from game import ScoreLine
from server.messages import Rated
from server.ratings import Rating, RatingStoreError, SqliteRatingStore, rate_match
from tests.conftest import ws_url
from tests.server.rawws import http_get
from tests.server.test_play import aim_at, seed_where_player_1_can_kill_player_2_from_spawn


def _line(player: int, kills: int, deaths: int) -> ScoreLine:
    return ScoreLine(player=player, name=f"p{player}", kills=kills, deaths=deaths)


def test_the_winner_gains_the_loser_loses_and_ties_share_a_rank():
    model = PlackettLuce()
    board = [_line(1, 5, 1), _line(2, 3, 2), _line(3, 3, 2)]
    results = rate_match(model, board, {1: "a", 2: "b", 3: "c"}, {})
    after = {new.subject: new for _, new in results}
    assert after["a"].ordinal > Rating("x", "x").ordinal > after["b"].ordinal
    assert after["b"].mu == pytest.approx(after["c"].mu)  # a tie
    assert all(new.matches == 1 for new in after.values())
    assert rate_match(model, board, {1: "a"}, {}) == []  # one player among bots: unrated


def test_the_store_keeps_what_was_written_and_refuses_a_damaged_file(tmp_path):
    store = SqliteRatingStore(tmp_path / "ratings.sqlite3")
    store.save([Rating("a", "alice", mu=30.0, sigma=5.0, matches=3), Rating("b", "bob", mu=20.0, sigma=5.0)])
    store.close()
    reopened = SqliteRatingStore(tmp_path / "ratings.sqlite3")
    assert reopened.get_many(["a", "b", "nobody"]) == {
        "a": Rating("a", "alice", 30.0, 5.0, 3),
        "b": Rating("b", "bob", 20.0, 5.0, 0),
    }
    assert [rating.subject for rating in reopened.leaderboard(10)] == ["a", "b"]
    reopened.close()
    damaged = tmp_path / "damaged.sqlite3"
    damaged.write_bytes(b"this is not a database" * 100)
    with pytest.raises(RatingStoreError, match="move it away"):
        SqliteRatingStore(damaged)


def test_a_store_locked_by_another_process_is_a_clear_error_and_keeps_its_ratings(tmp_path):
    path = tmp_path / "ratings.sqlite3"
    store = SqliteRatingStore(path)
    store.save([Rating("a", "alice", mu=31.0, sigma=4.0, matches=9)])
    store.close()
    with subprocess.Popen([sys.executable, "-c", HOLD_EXCLUSIVE_LOCK, str(path)], stdout=subprocess.PIPE) as holder:
        try:
            assert holder.stdout is not None and holder.stdout.readline() == b"locked\n"
            with pytest.raises(RatingStoreError, match=r"locked.*stop the other process"):
                SqliteRatingStore(path, busy_timeout=0.2)
        finally:
            holder.kill()
    reopened = SqliteRatingStore(path)
    assert reopened.get_many(["a"]) == {"a": Rating("a", "alice", 31.0, 4.0, 9)}
    reopened.close()


HOLD_EXCLUSIVE_LOCK = """
import sqlite3, sys, time
db = sqlite3.connect(sys.argv[1], isolation_level=None)
db.execute("BEGIN EXCLUSIVE")
print("locked", flush=True)
time.sleep(30)
"""


def test_arena_serve_with_a_damaged_store_says_so_and_exits(tmp_path):
    (tmp_path / "ratings.sqlite3").write_bytes(b"not a database at all" * 200)
    result = subprocess.run(
        [sys.executable, "-m", "server", "--port", "0", "--no-replays", "--data-dir", str(tmp_path)],
        capture_output=True,
        text=True,
        timeout=30,
    )
    assert result.returncode == 2
    assert "ratings.sqlite3" in result.stderr and "move it away" in result.stderr, result.stderr
    assert "Traceback" not in result.stderr
    assert (tmp_path / "ratings.sqlite3").read_bytes().startswith(b"not a database")  # left for the operator


async def play_a_match_to_its_end(url: str) -> tuple[Rated, Rated]:
    """ "winner" and "loser" join; the winner shoots the loser from spawn (the server's seed lets it, and its kill
    limit is 1); returns the `rated` each of them is told."""
    async with connect(url, name="winner") as winner, connect(url, name="loser") as loser:
        await winner.join()
        joined = await loser.join()
        await winner.receive_until(lambda m: True if joined.player in winner.view.entities["players"] else None)
        target = winner.view.entities["players"][joined.player]
        await winner.send_input(aim=aim_at(winner.me(), target), fire=True)
        won = await winner.receive_until(lambda m: m if isinstance(m, Rated) else None, timeout=10)
        lost = await loser.receive_until(lambda m: m if isinstance(m, Rated) else None, timeout=10)
    return won, lost


async def test_players_of_a_finished_match_are_rated_and_told(server_factory, tmp_path):
    seed = seed_where_player_1_can_kill_player_2_from_spawn()
    server = await server_factory(data_dir=tmp_path, seed=seed, kill_limit=1)
    url = ws_url(server)
    won, lost = await play_a_match_to_its_end(url)
    assert won.change > 0 > lost.change and won.matches == lost.matches == 1
    board = (await http_get(server.port, "/leaderboard")).json()["leaderboard"]
    assert [entry["name"] for entry in board] == ["winner", "loser"] and board[0]["rank"] == 1
    assert board[0]["rating"] == won.rating
    player = (await http_get(server.port, f"/players/{board[1]['player']}")).json()
    assert player["rating"] == lost.rating and player["matches"] == 1
    assert (await http_get(server.port, "/players/nobody")).status == 404


async def test_without_a_data_dir_there_are_no_ratings(server):
    assert (await http_get(server.port, "/leaderboard")).status == 404


async def test_in_a_fleet_ratings_live_in_redis_and_every_server_shows_the_same(server_factory, tmp_path, redis_server):
    seed = seed_where_player_1_can_kill_player_2_from_spawn()
    servers = [
        await server_factory(data_dir=tmp_path / name, seed=seed, kill_limit=1, redis_url=redis_server.url)
        for name in ("a", "b")
    ]
    url = ws_url(servers[0])
    won, _ = await play_a_match_to_its_end(url)
    boards = [(await http_get(server.port, "/leaderboard")).json()["leaderboard"] for server in servers]
    assert boards[0] == boards[1] and [entry["name"] for entry in boards[0]] == ["winner", "loser"]
    assert boards[0][0]["rating"] == won.rating
    for server in servers:  # the same player, the same rating, on either server
        player = (await http_get(server.port, f"/players/{boards[0][0]['player']}")).json()
        assert player["rating"] == won.rating and player["matches"] == 1
    assert not any(path.exists() for path in (tmp_path / "a" / "ratings.sqlite3", tmp_path / "b" / "ratings.sqlite3"))
