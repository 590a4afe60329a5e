"""The operators' monitor in Chromium: signs in with the admin token, shows the match and its players live, and
its buttons kick a player, end the match and drain the server."""

from __future__ import annotations

from pathlib import Path

from tests.browser.test_client import FAST_QUEUE, play, wait_for

ADMIN_TOKEN = "monitor-token-for-the-browser-test"


def test_the_monitor_shows_a_match_and_its_actions_work(server_process, open_page, tmp_path: Path, artifacts):
    token_file = tmp_path / "admin-token"
    token_file.write_text(ADMIN_TOKEN + "\n")
    server = server_process("--admin-token-file", str(token_file), *FAST_QUEUE)
    alice, bob = open_page(server.base_url), open_page(server.base_url)
    play(alice.page, "alice")
    play(bob.page, "bob")
    for player in (alice, bob):
        wait_for(player.page, "window.arena.connection === 'in_match' && window.arena.players().length === 2")

    monitor = open_page(f"{server.base_url}/monitor").page
    monitor.fill("#token", ADMIN_TOKEN)
    monitor.click("#sign-in button")
    monitor.wait_for_selector("#matches tbody tr[data-match] li[data-player]")
    match_row = monitor.locator("#matches tbody tr[data-match]")
    assert match_row.count() == 1
    names = match_row.locator("li[data-player] span:first-child").all_inner_texts()
    assert sorted(name.split(" (")[0] for name in names) == ["alice", "bob"]
    wait_for(monitor, "document.querySelectorAll('#lateness-plot canvas').length > 0")
    wait_for(monitor, "document.querySelectorAll('#cpu-plot canvas').length > 0")
    wait_for(monitor, "[...document.querySelectorAll('#summary b')].some(b => b.textContent.includes('ms'))")
    monitor.screenshot(path=str(artifacts / "monitor.png"), full_page=True)

    # kick bob: his page is told, and his seat leaves the match
    bob_row = match_row.locator("li[data-player]", has_text="bob")
    bob_row.get_by_role("button", name="Kick").click()
    wait_for(bob.page, "window.arena.connection !== 'in_match'")
    wait_for(monitor, "document.querySelectorAll('#matches li[data-player]').length === 1")

    # end the match: alice is out of it, and the monitor lists no running match
    monitor.get_by_role("button", name="End match").click()
    wait_for(alice.page, "window.arena.connection !== 'in_match'")
    wait_for(monitor, "!document.querySelector('#matches tbody tr[data-match] button.danger')", timeout=15)

    # drain: after the confirmation the server stops
    monitor.on("dialog", lambda dialog: dialog.accept())
    monitor.click("#drain")
    server.process.wait(timeout=15)
    assert server.process.returncode == 0
