"""`python -m server.replay_view FILE`: a recorded match as the browser's replay viewer downloads it (GET
/replays/{id}/view): msgpack on stdout, exit 0; or exit 1 with the reason on stderr if the file is not a replay this
build can play (server.replay's rules: a file from anywhere gets a clear error, never a traceback).

Rules: the server runs this in a process of its own, and the process lowers its own CPU priority to the lowest
(nice 19) before anything else. Re-simulating a match for the viewer is about a minute of CPU per hour of match,
all of it Python: in one of the server's threads it held the interpreter lock that the ticks need, and while a
viewer downloaded a 5-minute replay every match of a 600-player server fell from 30 to 17 ticks a second
(docs/benchmarks.md, issue 15's tenth sitting). In a process of its own at nice 19 it gets the core only when the
ticks leave it idle.
"""

from __future__ import annotations

import os
import sys
from pathlib import Path

from server import compiled_game

LOWEST_PRIORITY = 19


def main(argv: list[str] | None = None) -> int:
    os.setpriority(os.PRIO_PROCESS, 0, LOWEST_PRIORITY)
    compiled_game.use()  # before anything imports game
    from server.app import render_replay_view
    from server.replay import ReplayError

    args = sys.argv[1:] if argv is None else argv
    if len(args) != 1:
        print("usage: python -m server.replay_view FILE", file=sys.stderr)
        return 2
    try:
        view = render_replay_view(Path(args[0]).read_bytes())
    except OSError as error:
        print(f"cannot read {args[0]}: {error.strerror}", file=sys.stderr)
        return 2
    except ReplayError as error:
        print(error, file=sys.stderr)
        return 1
    sys.stdout.buffer.write(view)
    sys.stdout.buffer.flush()
    return 0


if __name__ == "__main__":
    sys.exit(main())
