"""The matchmaker's rules with time passed in, and a directory that only records what it was asked."""

from __future__ import annotations

import attrs
import pytest

from server.matchmaker import SKILL_WINDOW_OPEN_AFTER, Matchmaker, MatchmakingError, Mode, skill_window

DUEL = Mode(name="duel", min_players=2, max_players=2, fill_after_seconds=10, fill_with_bots=True)
FFA = Mode(name="ffa", min_players=2, max_players=8, fill_after_seconds=5, backfill=True)


@attrs.define
class RecordingDirectory:
    created: list[tuple[str, int, int]] = attrs.field(factory=list)
    open_seats: dict[str, int] = attrs.field(factory=dict)
    room: bool = True

    def has_room_for_a_match(self) -> bool:
        return self.room

    def create_match(self, mode: Mode, *, players: int, bots: int, bot_level: int = 3) -> str:
        self.created.append((mode.name, players, bots))
        return f"m{len(self.created)}"

    def open_seat(self, mode: Mode) -> str | None:
        for match_id, free in self.open_seats.items():
            if free > 0:
                self.open_seats[match_id] = free - 1
                return match_id
        return None


def _matchmaker() -> tuple[Matchmaker, RecordingDirectory]:
    directory = RecordingDirectory()
    return Matchmaker(directory=directory, modes=(DUEL, FFA), reservation_seconds=15), directory


def test_a_full_match_forms_at_once_oldest_tickets_first():
    matchmaker, directory = _matchmaker()
    for index in range(3):
        matchmaker.enqueue(f"p{index}", "duel", now=index)
    formed = matchmaker.form_matches(now=3)
    assert directory.created == [("duel", 2, 0)]
    assert [r.subject for r in formed[0].reservations] == ["p0", "p1"]
    assert matchmaker.status("p2", now=3).position == 1


def test_after_the_wait_a_mode_starts_with_fewer_players_or_fills_with_bots():
    matchmaker, directory = _matchmaker()
    matchmaker.enqueue("a", "ffa", now=0)
    matchmaker.enqueue("b", "ffa", now=1)
    matchmaker.enqueue("solo", "duel", now=0)
    assert matchmaker.form_matches(now=4.9) == []
    matchmaker.form_matches(now=5)
    assert directory.created == [("ffa", 2, 0)]
    matchmaker.form_matches(now=10)
    assert directory.created[-1] == ("duel", 1, 1)


def test_backfill_seats_players_in_a_running_match_before_forming_a_new_one():
    matchmaker, directory = _matchmaker()
    directory.open_seats["running"] = 1
    matchmaker.enqueue("a", "ffa", now=0)
    matchmaker.enqueue("b", "ffa", now=0)
    formed = matchmaker.form_matches(now=0)
    assert [(f.match_id, [r.subject for r in f.reservations]) for f in formed] == [("running", ["a"])]
    assert matchmaker.status("b", now=0).position == 1


def test_a_reservation_works_once_for_its_own_player_before_it_expires():
    matchmaker, _ = _matchmaker()
    matchmaker.enqueue("a", "duel", now=0)
    matchmaker.enqueue("b", "duel", now=0)
    first, second = matchmaker.form_matches(now=0)[0].reservations
    with pytest.raises(MatchmakingError, match="another player"):
        matchmaker.redeem(first.id, "b", now=1)
    assert matchmaker.redeem(first.id, "a", now=1) == first
    with pytest.raises(MatchmakingError, match="no such reservation"):
        matchmaker.redeem(first.id, "a", now=1)
    assert matchmaker.expire_reservations(now=15.5) == [second]
    with pytest.raises(MatchmakingError, match="no such reservation"):
        matchmaker.redeem(second.id, "b", now=16)


def test_cancel_and_requeue_and_unknown_modes():
    matchmaker, _ = _matchmaker()
    matchmaker.enqueue("a", "duel", now=0)
    matchmaker.enqueue("a", "ffa", now=1)
    assert [t.mode for t in matchmaker.queued()] == ["ffa"]
    assert matchmaker.cancel("a") is not None
    assert matchmaker.cancel("a") is None
    assert matchmaker.status("a", now=2) is None
    with pytest.raises(MatchmakingError, match="unknown mode 'squads'"):
        matchmaker.enqueue("a", "squads", now=2)


def test_the_estimated_wait_counts_down_to_the_fill_deadline():
    matchmaker, _ = _matchmaker()
    matchmaker.enqueue("a", "ffa", now=0)
    assert matchmaker.status("a", now=1).estimated_wait_seconds == 4.0
    assert matchmaker.status("a", now=4).estimated_wait_seconds == 1.0


def test_far_apart_players_are_not_matched_while_nearer_ones_wait_and_are_after_the_widening():
    matchmaker, _ = _matchmaker()
    matchmaker.enqueue("strong", "duel", now=0, rating=40.0)
    matchmaker.enqueue("new", "duel", now=0, rating=0.0)
    assert matchmaker.form_matches(now=1) == []  # 40 points apart: far outside a 7.5-point window
    matchmaker.enqueue("near", "duel", now=1, rating=38.0)
    (formed,) = matchmaker.form_matches(now=1.5)
    assert {r.subject for r in formed.reservations} == {"strong", "near"}  # the nearer one, though younger
    matchmaker.enqueue("newer", "duel", now=2, rating=30.0)
    assert matchmaker.form_matches(now=2.5) == []  # 30 apart from "new"
    assert skill_window(5.0) < 30.0 <= skill_window(11.0)
    (formed,) = matchmaker.form_matches(now=11.0)  # "new" has waited 11 s: its window covers 30 points
    assert {r.subject for r in formed.reservations} == {"new", "newer"}
    assert skill_window(SKILL_WINDOW_OPEN_AFTER) == float("inf")


def test_bots_fill_only_around_the_waiting_players_window():
    matchmaker, directory = _matchmaker()
    matchmaker.enqueue("a", "duel", now=0, rating=0.0)
    matchmaker.enqueue("b", "duel", now=9, rating=45.0)
    (formed,) = matchmaker.form_matches(now=10)  # "a" waited its 10 s: it plays a bot, not "b"
    assert directory.created == [("duel", 1, 1)]
    assert [r.subject for r in formed.reservations] == ["a"]


def test_bots_come_at_the_level_of_the_players_they_fill_for():
    from server.matchmaker import bot_level_for

    assert [bot_level_for(rating) for rating in (0.0, 4.9, 5.0, 15.0, 40.0)] == [0, 0, 1, 2, 3]
    matchmaker, directory = _matchmaker()
    matchmaker.enqueue("new", "duel", now=0, rating=0.0)
    (formed,) = matchmaker.form_matches(now=10)
    assert directory.created == [("duel", 1, 1)]
    assert formed.bot_level == 0 and formed.bots == 1


def test_a_server_without_room_for_a_match_keeps_players_queued_and_still_backfills():
    matchmaker, directory = _matchmaker()
    directory.room = False
    directory.open_seats["running"] = 1
    for subject in ("a", "b", "c"):
        matchmaker.enqueue(subject, "duel", now=0.0)
    matchmaker.enqueue("d", "ffa", now=0.0)
    formed = matchmaker.form_matches(now=30.0)
    assert [(f.match_id, len(f.reservations)) for f in formed] == [("running", 1)]  # the ffa backfill only
    assert directory.created == []
    assert {t.subject for t in matchmaker.queued()} == {"a", "b", "c"}
    directory.room = True
    formed = matchmaker.form_matches(now=30.0)
    assert directory.created and {t.subject for t in matchmaker.queued()} <= {"c"}
