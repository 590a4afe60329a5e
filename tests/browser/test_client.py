"""The browser client in real Chromium against the real server: play, see each other, survive a dropped
connection, and stay smooth at 100 ms round trip."""

from __future__ import annotations

import itertools
import math
import shutil
from pathlib import Path

import trustme
from playwright.sync_api import Page

from tests.browser.conftest import PageWithConsole
from tests.browser.tcp_proxy import TcpProxy

FAST_QUEUE = ("--queue-wait", "0.3", "--no-bots", "--match-seconds", "300")
EMPTY_FLOOR = (1100, 40)
"""An arena point far from walls and spawn points: only floor is drawn there while players walk sideways."""
DOCS_SCREENSHOT = Path(__file__).resolve().parents[2] / "docs" / "screenshot.png"


def wait_for(page: Page, expression: str, *, timeout: float = 10.0) -> None:
    page.wait_for_function(expression, timeout=timeout * 1000)


def play(page: Page, name: str) -> None:
    page.evaluate("name => window.arena.start(name)", name)


def players_by_id(page: Page, *, rendered: bool = True) -> dict[int, dict]:
    players = page.evaluate("window.arena.players()" if rendered else "window.arena.serverPlayers()")
    return {int(p["id"]): p for p in players}


def start_two_players(open_page, base_url: str) -> tuple[PageWithConsole, PageWithConsole]:
    alice, bob = open_page(base_url), open_page(base_url)
    play(alice.page, "alice")
    play(bob.page, "bob")
    for page in (alice.page, bob.page):
        wait_for(page, "window.arena.connection === 'in_match' && window.arena.players().length === 2")
    assert alice.page.evaluate("window.arena.matchId") == bob.page.evaluate("window.arena.matchId")
    return alice, bob


def canvas_region(page: Page, x: float, y: float, half_size: int = 18) -> bytes:
    """A screenshot of the canvas around an arena point, as PNG bytes."""
    point = page.evaluate("([x, y]) => window.arena.canvasPoint(x, y)", [x, y])
    clip = {"x": point["x"] - half_size, "y": point["y"] - half_size, "width": 2 * half_size, "height": 2 * half_size}
    return page.screenshot(clip=clip)


def hold_key(page: Page, key: str, seconds: float) -> None:
    page.keyboard.down(key)
    page.wait_for_timeout(seconds * 1000)
    page.keyboard.up(key)


def test_two_pages_play_and_each_sees_the_other_move(server_process, open_page, artifacts):
    server = server_process(*FAST_QUEUE)
    alice, bob = start_two_players(open_page, server.base_url)
    alice_id = alice.page.evaluate("window.arena.playerId")
    before = players_by_id(bob.page)[alice_id]
    pixels_before = canvas_region(bob.page, before["x"], before["y"])

    key = "KeyD" if before["x"] < 800 else "KeyA"
    alice.page.keyboard.down("Space")  # fire while walking, so the screenshot shows shots in flight
    hold_key(alice.page, key, 0.8)
    wait_for(
        bob.page,
        f"Math.abs(window.arena.players().find(p => p.id === {alice_id}).x - {before['x']}) > 80",
        timeout=5,
    )
    after = players_by_id(bob.page)[alice_id]
    assert abs(after["y"] - before["y"]) < 5
    # what bob's canvas shows changed where alice was and where she is now
    assert canvas_region(bob.page, before["x"], before["y"]) != pixels_before
    assert canvas_region(bob.page, after["x"], after["y"]) != canvas_region(bob.page, *EMPTY_FLOOR)

    alice.page.screenshot(path=artifacts / "match.png")
    alice.page.keyboard.up("Space")
    if not DOCS_SCREENSHOT.exists():
        shutil.copy(artifacts / "match.png", DOCS_SCREENSHOT)
    assert alice.errors == [] and bob.errors == [], (alice.errors, bob.errors)


WATCH_FOR_RECONNECTING = """() => {
    window.__sawReconnecting = false;
    function frame() {
        if (document.body.dataset.connection === 'reconnecting' && document.body.innerText.includes('Reconnecting')) {
            window.__sawReconnecting = true;
        } else {
            requestAnimationFrame(frame);
        }
    }
    requestAnimationFrame(frame);
}"""


def test_a_dropped_connection_shows_reconnecting_and_play_goes_on(server_process, open_page):
    server = server_process(*FAST_QUEUE)
    proxy = TcpProxy(target_port=server.port).start()
    try:
        alice, bob = start_two_players(open_page, f"http://127.0.0.1:{proxy.port}")
        alice_id = alice.page.evaluate("window.arena.playerId")
        match_id = alice.page.evaluate("window.arena.matchId")

        for page in (alice.page, bob.page):
            page.evaluate(WATCH_FOR_RECONNECTING)
        assert proxy.drop_all() >= 2
        for page in (alice.page, bob.page):
            # the page said so while it was reconnecting (it may come back within a fraction of a second)
            wait_for(page, "window.__sawReconnecting === true", timeout=5)
            wait_for(page, "window.arena.connection === 'in_match' && window.arena.reconnects >= 1", timeout=15)
        # the seat was resumed: same match, same player
        assert alice.page.evaluate("window.arena.matchId") == match_id
        assert alice.page.evaluate("window.arena.playerId") == alice_id

        before = players_by_id(bob.page)[alice_id]
        hold_key(alice.page, "KeyD" if before["x"] < 800 else "KeyA", 0.6)
        wait_for(
            bob.page,
            f"Math.abs(window.arena.players().find(p => p.id === {alice_id}).x - {before['x']}) > 50",
            timeout=5,
        )
        assert alice.errors == [] and bob.errors == [], (alice.errors, bob.errors)
    finally:
        proxy.stop()


def _sample_positions(page: Page, player_id: int, seconds: float) -> list[list[float]]:
    """[time ms, x, y] of a player as rendered, once per animation frame."""
    return page.evaluate(
        """([id, ms]) => new Promise(resolve => {
            const samples = [];
            const start = performance.now();
            function frame(now) {
                const p = window.arena.players().find(p => p.id === id);
                if (p) samples.push([now - start, p.x, p.y]);
                if (now - start < ms) requestAnimationFrame(frame); else resolve(samples);
            }
            requestAnimationFrame(frame);
        })""",
        [player_id, seconds * 1000],
    )


RECORD_FRAMES = """id => {
    window.__frames = [];
    const start = performance.now();
    function frame(now) {
        const rendered = window.arena.players().find(p => p.id === id);
        const server = window.arena.serverPlayers().find(p => p.id === id);
        if (rendered && server) window.__frames.push([now - start, rendered.x, server.x]);
        if (window.__frames.length < 600) requestAnimationFrame(frame);
    }
    requestAnimationFrame(frame);
}"""


def test_at_100_ms_round_trip_movement_is_predicted_and_smooth(server_process, open_page):
    server = server_process(*FAST_QUEUE, "--simulate-latency-ms", "100")
    alice, bob = start_two_players(open_page, server.base_url)
    alice_id = alice.page.evaluate("window.arena.playerId")
    start_x = players_by_id(alice.page, rendered=False)[alice_id]["x"]
    key, direction = ("KeyD", 1) if start_x < 800 else ("KeyA", -1)

    alice.page.evaluate(RECORD_FRAMES, alice_id)
    bob.page.evaluate(RECORD_FRAMES, alice_id)
    alice.page.wait_for_timeout(200)
    hold_key(alice.page, key, 1.0)
    alice.page.wait_for_timeout(500)
    own_frames = alice.page.evaluate("window.__frames")
    seen_by_bob = bob.page.evaluate("window.__frames")

    # alice's own player moved on screen while the server still had her where she started: prediction
    first_move = next(f for f in own_frames if abs(f[1] - start_x) > 1)
    assert abs(first_move[2] - start_x) < 1, f"her player moved only once the server did: {first_move}"
    # no rubber-banding while walking in a straight line: at most a one-tick hiccup (a client timer that fired
    # late on a busy machine), smoothed out, never a pull back
    prediction = alice.page.evaluate("window.arena.prediction")
    one_step = 220 / 30
    assert prediction["corrections"] <= 2 and prediction["maxCorrection"] <= one_step * 1.05, prediction

    # bob sees alice glide: no jumps between frames and no steps backwards while she walks
    moving = [f for f in seen_by_bob if abs(f[1] - start_x) > 1]
    assert len(moving) > 20, "bob hardly saw alice move"
    steps = [((b[1] - a[1]) * direction, b[0] - a[0]) for a, b in itertools.pairwise(moving)]
    speed_per_ms = 220 / 1000
    jumps = [(step, elapsed) for step, elapsed in steps if step > speed_per_ms * elapsed * 2 + 2]
    assert not jumps, f"the other player jumped (units, ms): {jumps}"
    assert min(step for step, _ in steps) >= -0.5, "the other player stepped backwards: not interpolated"
    final = players_by_id(bob.page)[alice_id]["x"]
    assert math.isclose(final, players_by_id(alice.page)[alice_id]["x"], abs_tol=3)
    assert alice.errors == [] and bob.errors == [], (alice.errors, bob.errors)


def test_over_https_the_page_plays_on_wss_with_names_in_any_script(server_process, open_page, tmp_path, artifacts):
    ca = trustme.CA()
    certificate = ca.issue_cert("127.0.0.1")
    cert, key = tmp_path / "cert.pem", tmp_path / "key.pem"
    certificate.cert_chain_pems[0].write_to_path(str(cert))
    certificate.private_key_pem.write_to_path(str(key))
    server = server_process("--tls-cert", str(cert), "--tls-key", str(key), *FAST_QUEUE)
    assert server.base_url.startswith("https://")
    names = ["José María Núñez", "ドラゴンスレイヤー"]
    pages = [open_page(server.base_url, ignore_https_errors=True) for _ in names]
    for watched, name in zip(pages, names, strict=True):
        play(watched.page, name)
    for watched in pages:
        # an https page may not open a ws:// socket (mixed content): playing at all means it used wss://
        wait_for(watched.page, "window.arena.connection === 'in_match' && window.arena.players().length === 2")
        assert sorted(p["name"] for p in players_by_id(watched.page).values()) == sorted(names)
        sockets = watched.page.evaluate("performance.getEntriesByType('resource').map(e => e.name)")
        assert any(url.startswith("https://127.0.0.1") and url.endswith("/auth/guest") for url in sockets)
        assert not watched.errors, watched.errors
    pages[0].page.screenshot(path=str(artifacts / "tls-names.png"))


def test_a_live_scoreboard_shows_in_a_corner_and_everyone_while_tab_is_held(server_process, open_page, artifacts):
    server = server_process(*FAST_QUEUE)
    alice, bob = start_two_players(open_page, server.base_url)
    page = alice.page
    wait_for(page, "document.querySelectorAll('#live-scores li').length === 2")
    assert not page.locator("#live-scores").evaluate("element => element.classList.contains('expanded')")
    names = page.locator("#live-scores li .name").all_inner_texts()
    assert sorted(names) == ["alice", "bob"]
    page.keyboard.down("Tab")
    wait_for(page, "document.querySelector('#live-scores').classList.contains('expanded')")
    assert " ms" in page.inner_text("#live-scores")  # pings, in the full view
    page.screenshot(path=str(artifacts / "live-scores.png"))
    page.keyboard.up("Tab")
    wait_for(page, "!document.querySelector('#live-scores').classList.contains('expanded')")
    # the compact board sits beside the arena, above the kill feed
    board = page.locator("#live-scores").bounding_box()
    feed = page.locator("#kill-feed").bounding_box()
    arena = page.locator("#arena-canvas").bounding_box()
    assert board is not None and arena is not None and board["width"] < 400
    assert board["x"] >= arena["x"] + arena["width"]
    assert feed is None or feed["y"] >= board["y"] + board["height"]
    assert not alice.errors and not bob.errors
