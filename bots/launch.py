"""The `arena` command: chooses the game's build (server.compiled_game) before anything imports game, then runs
bots.cli."""

from __future__ import annotations


def main() -> int:
    from server import compiled_game

    compiled_game.use()
    from bots.cli import main as arena_main

    return arena_main()
