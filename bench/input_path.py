"""A client's input, in one process and without sockets: the server's own work from a frame's bytes to the input
queued for the player's next tick.

The frames are real WebSocket frames (masked, as a client sends them) of real `input` messages; each one goes
through what the shared reader hands them to (`_ServerProtocol`'s small-frame path): counted against the
connection's frame budget, unmasked, decoded, validated, and queued on a joined session. No socket, no event loop
wake-up: what is left of `bench/inputs.py`'s figure is the kernel's and trio's share. Prints microseconds per
input (best of --repeat runs: this machine is shared).

Usage: .venv/bin/python bench/input_path.py [--inputs 20000] [--repeat 5]
"""

from __future__ import annotations

import argparse
import json
import os
import random
import time

import msgpack
import trio
from wsproto.events import AcceptConnection, Request
from wsproto.frame_protocol import FrameProtocol

from server.config import ServerConfig
from server.limits import FrameBudget, FrameLimits
from server.messages import Input
from server.outbox import Outbox
from server.session import Session
from server.timers import Timers
from server.websocket import _ServerProtocol

UPGRADE = (
    b"GET /ws HTTP/1.1\r\nHost: bench\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
    b"Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n\r\n"
)


def handle(session: Session, message: object) -> None:
    """What ArenaServer._handle_message does with an input that takes the careful path."""
    if isinstance(message, Input) and session.player_id is not None:
        session.receive_input(message.player_input())


def client_frames(count: int) -> list[bytes]:
    rng = random.Random(7)
    framing = FrameProtocol(client=True, extensions=[])
    frames = []
    for seq in range(1, count + 1):
        message = {"t": "input", "seq": seq, "mx": rng.choice((-1, 0, 1)), "my": rng.choice((-1, 0, 1)),
                   "aim": rng.uniform(-3, 3), "fire": rng.random() < 0.5, "view": seq}  # fmt: skip
        frames.append(bytes(framing.send_data(msgpack.packb(message), fin=True)))
    return frames


async def measure(count: int, repeat: int) -> float:
    best = float("inf")
    with open(os.devnull, "wb") as devnull:
        async with trio.open_nursery() as nursery:
            outbox = Outbox(fd=devnull.fileno(), nursery=nursery, capacity=64)
            protocol = _ServerProtocol(outbox, max_message_size=4096)
            protocol.receive_data(UPGRADE)
            assert any(isinstance(event, Request) for event in protocol.events())
            protocol.send(AcceptConnection())
            unlimited = 1e12
            limits = FrameLimits(frames_per_second=unlimited, frames_before_hello=unlimited)
            budget = FrameBudget(limits)
            session = Session(ws=None, outbox=outbox, nursery=nursery, config=ServerConfig(), timers=Timers(),  # type: ignore[arg-type]
                              handle_message=handle, remote="127.0.0.1", budget=budget)  # fmt: skip
            session.name, session.player_id = "bench", 1  # joined: its inputs are for its next tick
            budget.authenticated(trio.current_time())
            protocol.attach(session)
            frames = client_frames(count)
            # the shared reader's entry point; an older server (a base worktree) only has the checking one
            receive = getattr(protocol, "receive_small_binary_frames_at_boundary", protocol.receive_small_binary_frames)
            for run in range(repeat):
                session.pending_inputs.clear()
                session.latest_input = None
                started = time.process_time()
                for frame in frames:
                    receive(frame)
                spent = time.process_time() - started
                assert session.messages_received == (run + 1) * count and session.pending_inputs
                print(f"  run {run + 1}/{repeat}: {1e6 * spent / count:.2f} us per input", flush=True)
                best = min(best, spent)
            nursery.cancel_scope.cancel()
    return 1e6 * best / count


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--inputs", type=int, default=20000)
    parser.add_argument("--repeat", type=int, default=5)
    args = parser.parse_args()
    if not 100 <= args.inputs <= 1_000_000 or not 1 <= args.repeat <= 20:
        parser.error("--inputs 100..1000000, --repeat 1..20")
    per_input = trio.run(measure, args.inputs, args.repeat)
    print(f"an input from frame bytes to the player's queue: {per_input:.2f} us (best of {args.repeat})")
    print(json.dumps({"bench": "input_path", "inputs": args.inputs, "us_per_input": round(per_input, 2)}))


if __name__ == "__main__":
    main()
