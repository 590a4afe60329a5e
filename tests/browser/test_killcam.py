"""The kill-cam in Chromium: a bot hunts the page's player down; once eliminated, the page replays the last
seconds around the killer, and a key press skips it."""

from __future__ import annotations

import math
import threading

import trio

from bots.client import connect
from game import Death
from tests.browser.test_client import FAST_QUEUE, play, wait_for


async def _hunt(url: str, victim_name: str, done: threading.Event) -> None:
    """Join, then walk towards the player called `victim_name` firing at it, until it dies (or 30 s pass)."""
    async with connect(url, name="hunter") as hunter:
        await hunter.join()
        with trio.move_on_after(30):
            while not done.is_set():
                message = await hunter.receive()
                events = getattr(message, "events", ())
                if any(isinstance(e, Death) and e.killer == hunter.player for e in events):
                    done.set()
                    return
                view = hunter.view
                if view is None:
                    continue
                players = view.entities.get("players", {})
                me = players.get(hunter.player)
                target = next((p for p in players.values() if p.get("name") == victim_name and p["hp"] > 0), None)
                if me is None or target is None:
                    continue
                dx, dy = target["x"] - me["x"], target["y"] - me["y"]
                near = math.hypot(dx, dy) < 220
                await hunter.send_input(
                    mx=0 if near or abs(dx) < 10 else (1 if dx > 0 else -1),
                    my=0 if near or abs(dy) < 10 else (1 if dy > 0 else -1),
                    aim=math.atan2(dy, dx),
                    fire=True,
                )


def test_after_a_death_the_killcam_shows_the_killer_and_a_key_skips_it(server_process, open_page, artifacts):
    server = server_process(*FAST_QUEUE, "--kill-limit", "50")
    victim = open_page(server.base_url)
    play(victim.page, "victim")
    done = threading.Event()
    hunter = threading.Thread(
        target=trio.run, args=(_hunt, f"ws://127.0.0.1:{server.port}/ws", "victim", done), daemon=True
    )
    hunter.start()
    wait_for(victim.page, "window.arena.connection === 'in_match'")
    wait_for(victim.page, "window.arena.killcamsShown >= 1", timeout=35)
    assert victim.page.evaluate("window.arena.cues['damage-cue']") >= 4  # a red edge for every hit taken
    assert victim.page.evaluate("window.arena.killcam") is not None
    assert "Kill-cam: hunter" in victim.page.inner_text("body")
    victim.page.screenshot(path=str(artifacts / "killcam.png"))
    victim.page.keyboard.press("x")  # any key skips it
    wait_for(victim.page, "window.arena.killcam === null", timeout=2)
    done.set()
    hunter.join(timeout=10)
    assert not victim.errors, victim.errors
