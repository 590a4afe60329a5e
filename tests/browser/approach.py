"""A protocol client (bots/client.py) that walks up to a named player: the kill-cam's hunter, the hit test's target.

It walks straight, one axis at a time, so a wall between the two can stop it: servers for these tests run with
`CLEAR_LINE_SEED`, whose two first spawn points face each other along the top edge, with nothing between."""

from __future__ import annotations

import math
import threading

import trio

from bots.client import connect
from game import Death

CLEAR_LINE_SEED = "18"
"""`--seed` for a match whose first two players spawn at (1500, 100) and (100, 100), whichever joins first."""


async def approach(
    url: str, *, name: str, target_name: str, done: threading.Event, stop_within: float, fire: bool
) -> None:
    """Join, then walk towards the player called `target_name` until within `stop_within` units, aiming at it
    (and firing, if `fire`), until `done` is set or 40 s pass. Sets `done` once it eliminates the target."""
    async with connect(url, name=name) as client:
        await client.join()
        with trio.move_on_after(40):
            while not done.is_set():
                message = await client.receive()
                events = getattr(message, "events", ())
                if any(isinstance(e, Death) and e.killer == client.player for e in events):
                    done.set()
                    return
                view = client.view
                if view is None:
                    continue
                players = view.entities.get("players", {})
                me = players.get(client.player)
                target = next((p for p in players.values() if p.get("name") == target_name and p["hp"] > 0), None)
                if me is None or target is None:
                    continue
                dx, dy = target["x"] - me["x"], target["y"] - me["y"]
                near = math.hypot(dx, dy) < stop_within
                await client.send_input(
                    mx=0 if near or abs(dx) < 10 else (1 if dx > 0 else -1),
                    my=0 if near or abs(dy) < 10 else (1 if dy > 0 else -1),
                    aim=math.atan2(dy, dx),
                    fire=fire,
                )


def approach_in_thread(port: int, *, name: str, target_name: str, stop_within: float, fire: bool) -> threading.Event:
    """Start `approach` against the server on `port` in a thread; set the returned event to stop it."""
    done = threading.Event()
    url = f"ws://127.0.0.1:{port}/ws"

    def run() -> None:
        trio.run(
            lambda: approach(url, name=name, target_name=target_name, done=done, stop_within=stop_within, fire=fire)
        )

    threading.Thread(target=run, daemon=True).start()
    return done
