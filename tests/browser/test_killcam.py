"""The kill-cam in Chromium: a bot hunts the page's player down; once eliminated, the page replays the last
seconds around the killer, and a key press skips it."""

from __future__ import annotations

from tests.browser.approach import approach_in_thread
from tests.browser.test_client import FAST_QUEUE, play, wait_for


def test_after_a_death_the_killcam_shows_the_killer_and_a_key_skips_it(server_process, open_page, artifacts):
    server = server_process(*FAST_QUEUE, "--kill-limit", "50")
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
