"""`python -m server serve ...`, the same as the `arena` command."""

import sys

from server import compiled_game

compiled_game.use()  # before anything imports game

from server.cli import main  # noqa: E402 - after the choice of the game's build

sys.exit(main())
