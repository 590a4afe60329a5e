"""The replay viewer in Chromium: a match two pages played is listed, opens, plays, pauses, changes speed, scrubs
and follows a player, drawn by the live game's renderer."""

from __future__ import annotations

from pathlib import Path

from tests.browser.test_client import play, wait_for


def test_a_recorded_match_plays_in_the_viewer(server_process, open_page, tmp_path: Path, artifacts):
    server = server_process(
        "--replay-dir", str(tmp_path / "replays"), "--match-seconds", "3", "--queue-wait", "0.3", "--no-bots"
    )
    alice, bob = open_page(server.base_url), open_page(server.base_url)
    play(alice.page, "alice")
    play(bob.page, "bob")
    for player in (alice, bob):
        wait_for(player.page, "window.arena.connection === 'in_match' && window.arena.players().length === 2")
    alice.page.keyboard.down("d")
    wait_for(alice.page, "window.arena.tick > 85", timeout=15)  # the 3-second match is over (and recorded)
    alice.page.keyboard.up("d")
    alice.page.wait_for_timeout(1200)  # its last second is written

    viewer = open_page(f"{server.base_url}/replays.html")
    page = viewer.page
    page.wait_for_selector("#replay-list tbody tr[data-replay]", timeout=10_000)
    page.click("#replay-list tbody tr[data-replay] button")
    wait_for(page, "window.replayViewer.loaded !== null && window.replayViewer.ticks >= 80")
    first = page.evaluate("window.replayViewer.tick")
    wait_for(page, f"window.replayViewer.tick > {first}")  # it plays

    page.click("#play")  # pause
    paused_at = page.evaluate("window.replayViewer.tick")
    page.wait_for_timeout(300)
    assert page.evaluate("window.replayViewer.tick") == paused_at and not page.evaluate("window.replayViewer.playing")

    page.evaluate(
        "(() => { const s = document.querySelector('#scrub'); s.value = '30'; s.dispatchEvent(new Event('input')); })()"
    )
    assert page.evaluate("window.replayViewer.tick") == page.evaluate("window.replayViewer.tick") >= 1
    scrubbed = page.evaluate("window.replayViewer.tick")
    page.select_option("#speed", "4")
    page.click("#play")
    page.wait_for_timeout(500)
    assert page.evaluate("window.replayViewer.speed") == 4
    assert page.evaluate("window.replayViewer.tick") - scrubbed >= 30  # ~60 ticks in 0.5 s at 4x

    names = page.locator("#follow option").all_inner_texts()
    assert {"alice", "bob"} <= set(names)
    page.select_option("#follow", label="bob")
    assert page.evaluate("window.replayViewer.followed") is not None
    assert "alice" in page.inner_text("#score") and "bob" in page.inner_text("#score")
    page.screenshot(path=str(artifacts / "replay-viewer.png"))
    assert not viewer.errors, viewer.errors
