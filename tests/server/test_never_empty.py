"""An arena that is never empty: ffa keeps a match at `fill_to` participants with bots, bots give their seats to
arriving players, and a bot takes over the seat of a player who leaves; the kill feed hears of each."""

from __future__ import annotations

import trio

from bots.client import ArenaClient, connect
from game import Delta, Notice, Snapshot
from server.matchmaker import Matchmaker, Mode
from server.messages import Leave, Left
from tests.conftest import ws_url

FILLED_FFA = Mode(
    name="ffa", min_players=2, max_players=8, fill_after_seconds=0.2, fill_with_bots=True, backfill=True, fill_to=4
)


class _Directory:
    def __init__(self) -> None:
        self.created: list[tuple[int, int]] = []

    def create_match(self, mode: Mode, *, players: int, bots: int, bot_level: int = 3) -> str:
        self.created.append((players, bots))
        return f"m{len(self.created)}"

    def open_seat(self, mode: Mode) -> str | None:
        return None

    def has_room_for_a_match(self) -> bool:
        return True


def test_a_lone_player_gets_bots_up_to_the_modes_target():
    directory = _Directory()
    matchmaker = Matchmaker(directory=directory, modes=(FILLED_FFA,))
    matchmaker.enqueue("alone", "ffa", now=0.0)
    assert matchmaker.form_matches(now=0.1) == []
    (formed,) = matchmaker.form_matches(now=0.3)
    assert directory.created == [(1, 3)] and formed.bots == 3
    matchmaker.enqueue("a", "ffa", now=1.0)
    matchmaker.enqueue("b", "ffa", now=1.0)
    matchmaker.form_matches(now=1.3)
    assert directory.created[-1] == (2, 2)


def _statuses(client: ArenaClient) -> list[str]:
    assert client.view is not None
    return sorted(p["status"] for p in client.view.entities["players"].values())


async def _notices(client: ArenaClient, count: int) -> list[Notice]:
    seen: list[Notice] = []
    with trio.fail_after(5):
        while len(seen) < count:
            message = await client.receive()
            if isinstance(message, Delta | Snapshot):
                seen += [event for event in message.events if isinstance(event, Notice)]
    return seen


async def test_bots_fill_give_way_and_take_over(server_factory):
    server = await server_factory(modes=(FILLED_FFA,))
    url = ws_url(server)
    async with connect(url, name="first") as first:
        await first.join()
        assert _statuses(first) == ["bot", "bot", "bot", "playing"]
        async with connect(url, name="second") as second:
            joined = await second.join()
            assert joined.match == first.match
            notices = await _notices(first, 2)
            assert {(n.what, n.name) for n in notices} >= {("join", "second")}
            assert any(n.what == "leave" and n.name.startswith("bot") for n in notices)
            await first.receive_until(lambda m: True if _statuses(first).count("playing") == 2 else None)
            assert _statuses(first) == ["bot", "bot", "playing", "playing"]

            await second.send(Leave())
            await second.receive_until(lambda m: m if isinstance(m, Left) else None)
            (takeover,) = await _notices(first, 1)
            assert (takeover.what, takeover.name, takeover.player) == ("takeover", "second", joined.player)
            await first.receive_until(lambda m: True if _statuses(first).count("bot") == 3 else None)
            assert first.view.entities["players"][joined.player]["name"] == "second"  # the avatar stays
