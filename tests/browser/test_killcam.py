"""The kill-cam in Chromium: a bot hunts the page's player down; once eliminated, the page replays the last
seconds around the killer, and a key press skips it."""

from __future__ import annotations

from game import MatchState, add_player
from tests.browser.approach import CLEAR_LINE_SEED, approach_in_thread
from tests.browser.test_client import FAST_QUEUE, play, wait_for


def test_after_a_death_the_killcam_shows_the_killer_and_a_key_skips_it(server_process, open_page, artifacts):
    server = server_process(*FAST_QUEUE, "--kill-limit", "50", "--seed", CLEAR_LINE_SEED)
    victim = open_page(server.base_url)
    play(victim.page, "victim")
    done = approach_in_thread(server.port, name="hunter", target_name="victim", stop_within=220, fire=True)
    wait_for(victim.page, "window.arena.connection === 'in_match'")
    wait_for(victim.page, "window.arena.killcamsShown >= 1", timeout=35)
    assert victim.page.evaluate("window.arena.cues['damage-cue']") >= 4  # a red edge for every hit taken
    assert victim.page.evaluate("window.arena.killcam") is not None
    assert "Kill-cam: hunter" in victim.page.inner_text("body")
    victim.page.screenshot(path=str(artifacts / "killcam.png"))
    victim.page.keyboard.press("x")  # any key skips it
    wait_for(victim.page, "window.arena.killcam === null", timeout=2)
    done.set()
    assert not victim.errors, victim.errors


def test_the_clear_line_seed_still_spawns_the_first_two_players_facing_along_the_top_edge():
    """approach.py's bot walks straight at its target: with this seed no wall stands between them."""
    state = MatchState.initial(seed=int(CLEAR_LINE_SEED))
    state = add_player(add_player(state, 1, "a"), 2, "b")
    assert {(p.x, p.y) for p in state.players.values()} == {(1500.0, 100.0), (100.0, 100.0)}
