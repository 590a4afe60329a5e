"""What makes the page feel like a finished game, in real Chromium against the real server: names and notices
that stay off the arena and on screen, hit markers, generated sounds with a mute that is remembered, watching a
running match from the menu, and touch controls on a phone-sized screen."""

from __future__ import annotations

from typing import Any

from playwright.sync_api import Page

from tests.browser.approach import CLEAR_LINE_SEED, approach_in_thread
from tests.browser.test_client import FAST_QUEUE, hold_key, play, players_by_id, wait_for

LONG_NAME = "Wolfeschlegelsteinhausen"[:24]
PHONE_LANDSCAPE = {"viewport": {"width": 844, "height": 390}, "has_touch": True, "is_mobile": True}
PHONE_PORTRAIT = {"viewport": {"width": 390, "height": 844}, "has_touch": True, "is_mobile": True}


def box_of(page: Page, selector: str) -> dict[str, float] | None:
    return page.locator(selector).bounding_box()


def overlaps(a: dict[str, float] | None, b: dict[str, float] | None) -> bool:
    if a is None or b is None or a["width"] == 0 or a["height"] == 0:
        return False
    return not (
        a["x"] + a["width"] <= b["x"]
        or b["x"] + b["width"] <= a["x"]
        or a["y"] + a["height"] <= b["y"]
        or b["y"] + b["height"] <= a["y"]
    )


def assert_clear_of_the_arena(page: Page, *selectors: str) -> None:
    arena = box_of(page, "#arena-canvas")
    viewport = page.viewport_size
    assert arena is not None and viewport is not None
    for selector in selectors:
        box = box_of(page, selector)
        assert not overlaps(box, arena), f"{selector} {box} covers the arena {arena}"
        if box is not None:
            assert box["x"] >= 0 and box["x"] + box["width"] <= viewport["width"] + 0.5, (selector, box, viewport)
            assert box["y"] >= 0 and box["y"] + box["height"] <= viewport["height"] + 0.5, (selector, box, viewport)


def assert_labels_inside_the_arena(page: Page) -> list[dict[str, Any]]:
    drawn = page.evaluate("window.arena.labels")
    assert drawn["labels"], "no name was drawn"
    for label in drawn["labels"]:
        assert label["left"] >= 0 and label["right"] <= drawn["width"], (label, drawn["width"])
        assert label["top"] >= 0 and label["bottom"] <= drawn["height"], (label, drawn["height"])
    return drawn["labels"]


def test_names_and_notices_stay_off_the_arena_and_inside_the_screen(server_process, open_page, artifacts):
    server = server_process(*FAST_QUEUE)
    corner = open_page(server.base_url)
    page = corner.page
    play(page, LONG_NAME)
    wait_for(page, "document.querySelector('#notice').textContent.includes('Looking for a match')")
    assert_clear_of_the_arena(page, "#notice")

    other = open_page(server.base_url)
    play(other.page, "bob")
    wait_for(page, "window.arena.players().length === 2")
    wait_for(page, "document.querySelectorAll('#kill-feed li').length >= 1")  # "bob joined"
    # up to the top edge (sidestepping a wall in the way), then along it into a corner (no wall touches the
    # border): there the long name must move sideways, and below the player, to stay inside the arena
    my_id = page.evaluate("window.arena.playerId")
    for sidestep in ("ArrowLeft", "ArrowRight", "ArrowLeft"):
        hold_key(page, "ArrowUp", 4.5)
        if players_by_id(page, rendered=False)[my_id]["y"] < 60:
            break
        hold_key(page, sidestep, 1.5)
    toward_corner = "ArrowLeft" if players_by_id(page, rendered=False)[my_id]["x"] < 800 else "ArrowRight"
    hold_key(page, toward_corner, 8)
    page.wait_for_timeout(300)
    me = players_by_id(page)[my_id]
    assert (me["x"] < 60 or me["x"] > 1540) and me["y"] < 60, me
    labels = assert_labels_inside_the_arena(page)
    mine = next(label for label in labels if label["id"] == my_id)
    assert mine["top"] > me["y"], (mine, me)  # below the player
    assert mine["left"] > me["x"] - 20 or mine["right"] < me["x"] + 20, (mine, me)  # pushed off the corner
    assert_clear_of_the_arena(page, "#notice", "#kill-feed", "#live-scores", "#hud")
    page.screenshot(path=str(artifacts / "names-at-the-edge.png"))
    assert not corner.errors and not other.errors, (corner.errors, other.errors)


def _shoot_at_dummy(page: Page, seconds: float) -> None:
    """Aim the mouse at the dummy as drawn and hold Space for `seconds`."""
    page.keyboard.down("Space")
    for _ in range(int(seconds * 10)):
        dummy = next((p for p in page.evaluate("window.arena.players()") if p["name"] == "dummy"), None)
        if dummy is not None:
            point = page.evaluate("([x, y]) => window.arena.canvasPoint(x, y)", [dummy["x"], dummy["y"]])
            page.mouse.move(point["x"], point["y"])
        page.wait_for_timeout(100)
    page.keyboard.up("Space")


DUMMY_WITHIN_300 = """(() => {
    const players = window.arena.players();
    const me = players.find(p => p.id === window.arena.playerId);
    const dummy = players.find(p => p.name === 'dummy');
    return Boolean(me && dummy && Math.hypot(dummy.x - me.x, dummy.y - me.y) < 300);
})()"""


def test_hits_show_a_marker_and_sounds_play_until_muted_and_muted_stays(server_process, open_page, artifacts):
    server = server_process(*FAST_QUEUE, "--kill-limit", "50", "--seed", CLEAR_LINE_SEED)
    shooter = open_page(server.base_url)
    page = shooter.page
    page.fill("#name-input", "shooter")
    page.click("#play-button")  # a real click: the browser lets the page start audio
    done = approach_in_thread(server.port, name="dummy", target_name="shooter", stop_within=250, fire=False)
    try:
        wait_for(page, "window.arena.connection === 'in_match' && window.arena.players().length === 2", timeout=15)
        assert page.evaluate("window.arena.sounds.state") == "running"
        wait_for(page, DUMMY_WITHIN_300, timeout=20)
        for _ in range(6):
            _shoot_at_dummy(page, 1.0)
            if page.evaluate("window.arena.cues['hit-marker'] ?? 0") >= 2:
                break
        assert page.evaluate("window.arena.cues['hit-marker'] ?? 0") >= 2
        sounds = page.evaluate("window.arena.sounds")
        assert sounds["played"].get("shot", 0) >= 2 and sounds["played"].get("hit", 0) >= 2, sounds
        page.screenshot(path=str(artifacts / "hit-marker.png"))

        page.keyboard.press("m")
        assert page.evaluate("window.arena.sounds.muted") is True
        assert page.get_attribute("#mute-button", "aria-pressed") == "true"
        played = page.evaluate("window.arena.sounds.played")
        skipped = page.evaluate("window.arena.sounds.skipped")
        _shoot_at_dummy(page, 1.5)
        assert page.evaluate("window.arena.sounds.played") == played  # nothing more was heard
        assert page.evaluate("window.arena.sounds.skipped") > skipped  # but there was something to hear
    finally:
        done.set()
    page.reload()
    wait_for(page, "document.querySelector('#mute-button').getAttribute('aria-pressed') === 'true'")
    page.click("#mute-button")
    assert page.evaluate("window.arena.sounds.muted") is False
    assert not shooter.errors, shooter.errors


def test_a_running_match_can_be_watched_from_the_menu(server_process, open_page, artifacts):
    server = server_process(*FAST_QUEUE, "--spectator-delay", "1")
    players = [open_page(server.base_url), open_page(server.base_url)]
    for watched, name in zip(players, ("alice", "bob"), strict=True):
        play(watched.page, name)
    for watched in players:
        wait_for(watched.page, "window.arena.connection === 'in_match' && window.arena.players().length === 2")

    viewer = open_page(server.base_url)
    page = viewer.page
    wait_for(page, "document.querySelectorAll('#match-rows button').length === 1", timeout=8)
    assert "2 players" in page.inner_text("#match-rows")
    page.fill("#name-input", "carol")
    page.click("#match-rows button")
    wait_for(page, "window.arena.connection === 'spectating'", timeout=10)
    wait_for(page, "window.arena.players().length === 2")
    assert sorted(p["name"] for p in page.evaluate("window.arena.players()")) == ["alice", "bob"]
    assert page.evaluate("window.arena.spectating")["delay"] == 1
    assert page.evaluate("window.arena.playerId") is None
    assert page.inner_text("#hud-status") == "Spectating"
    assert "1 s behind the players" in page.inner_text("#notice")
    # what the players do reaches the spectator, a second later
    alice_page = players[0].page
    alice_id = alice_page.evaluate("window.arena.playerId")
    before = players_by_id(page)[alice_id]["x"]
    hold_key(alice_page, "ArrowRight" if before < 800 else "ArrowLeft", 1.0)
    page.wait_for_timeout(1600)
    assert abs(players_by_id(page)[alice_id]["x"] - before) > 50
    page.screenshot(path=str(artifacts / "spectating.png"))

    assert page.inner_text("#leave-button") == "Stop watching"
    page.click("#leave-button")
    wait_for(page, "!document.querySelector('#start-screen').hidden && window.arena.connection === 'idle'")
    assert not any(w.errors for w in (*players, viewer)), [w.errors for w in (*players, viewer)]


class Finger:
    """Real touch events through the browser's input pipeline (as a finger makes them), via the DevTools protocol."""

    def __init__(self, page: Page) -> None:
        self.session = page.context.new_cdp_session(page)

    def send(self, kind: str, *points: tuple[float, float]) -> None:
        touch_points = [{"x": x, "y": y, "id": i} for i, (x, y) in enumerate(points)]
        self.session.send("Input.dispatchTouchEvent", {"type": kind, "touchPoints": touch_points})


def _centre(page: Page, selector: str) -> tuple[float, float]:
    box = box_of(page, selector)
    assert box is not None, f"{selector} is not shown"
    return box["x"] + box["width"] / 2, box["y"] + box["height"] / 2


def test_on_a_phone_a_stick_moves_and_the_fire_pad_shoots_beside_the_arena(server_process, open_page, artifacts):
    # the clear line between the first two spawn points keeps the shot in flight long enough to be seen: aimed at
    # a player behind a wall, it could end in that wall within its lag-compensated first tick, never shown
    server = server_process(*FAST_QUEUE, "--seed", CLEAR_LINE_SEED)
    phone = open_page(server.base_url, **PHONE_LANDSCAPE)
    page = phone.page
    other = open_page(server.base_url)
    play(page, "thumbs")
    play(other.page, "bob")
    wait_for(page, "window.arena.connection === 'in_match' && window.arena.players().length === 2")
    assert page.evaluate("window.arena.touch") is True
    assert_clear_of_the_arena(page, "#touch-stick", "#touch-fire", "#notice", "#kill-feed", "#live-scores")
    me = page.evaluate("window.arena.playerId")

    # push the stick towards the side with more room, and hold it for a second
    start = players_by_id(page, rendered=False)[me]
    direction = 1 if start["x"] < 800 else -1
    x, y = _centre(page, "#touch-stick")
    finger = Finger(page)
    finger.send("touchStart", (x, y))
    finger.send("touchMove", (x + 25 * direction, y))
    finger.send("touchMove", (x + 50 * direction, y + 2))
    page.wait_for_timeout(1000)
    finger.send("touchEnd")
    wait_for(page, f"Math.abs(window.arena.serverPlayers().find(p => p.id === {me}).x - {start['x']}) > 120")
    moved = players_by_id(page, rendered=False)[me]
    assert (moved["x"] - start["x"]) * direction > 120 and abs(moved["y"] - start["y"]) < 40, (start, moved)

    # a tap on the fire pad fires (at the nearest enemy): the server launches the shot
    fx, fy = _centre(page, "#touch-fire")
    finger.send("touchStart", (fx, fy))
    finger.send("touchEnd")
    wait_for(page, f"window.arena.projectiles().some(p => p.owner === {me})", timeout=3)
    page.screenshot(path=str(artifacts / "touch-landscape.png"))
    assert not phone.errors and not other.errors, (phone.errors, other.errors)

    upright = open_page(server.base_url, **PHONE_PORTRAIT)
    play(upright.page, "upright")
    wait_for(upright.page, "window.arena.connection === 'in_match'")
    assert_clear_of_the_arena(
        upright.page, "#touch-stick", "#touch-fire", "#notice", "#kill-feed", "#live-scores", "#hud"
    )
    upright.page.screenshot(path=str(artifacts / "touch-portrait.png"))
    assert not upright.errors, upright.errors
