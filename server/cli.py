"""`arena serve`: run a server until Ctrl-C or SIGTERM, then drain."""

from __future__ import annotations

import argparse
import logging
import signal
import sys

import trio

from server.app import ArenaServer
from server.config import ServerConfig


def build_parser() -> argparse.ArgumentParser:
    defaults = ServerConfig()
    parser = argparse.ArgumentParser(prog="arena", description="Arena, an authoritative multiplayer game server.")
    commands = parser.add_subparsers(dest="command", required=True)
    serve = commands.add_parser("serve", help="run a game server with the browser client at /")
    serve.add_argument("--host", default=defaults.host, help="address to listen on (default %(default)s)")
    serve.add_argument("--port", type=int, default=defaults.port, help="port to listen on (default %(default)s)")
    serve.add_argument(
        "--tick-rate", type=int, default=defaults.tick_rate, help="simulation ticks per second (default %(default)s)"
    )
    serve.add_argument(
        "--kill-limit", type=int, default=defaults.kill_limit, help="kills that win a match (default %(default)s)"
    )
    serve.add_argument(
        "--match-seconds", type=int, default=defaults.match_seconds, help="length of a match (default %(default)s)"
    )
    serve.add_argument("--seed", type=int, default=None, help="seed every match with this, to reproduce one")
    serve.add_argument(
        "--simulate-latency-ms",
        type=int,
        default=0,
        help="development: hold back every frame the server sends by this long, to try the netcode at a real "
        "round trip (default %(default)s)",
    )
    serve.add_argument(
        "--log-level", default="info", choices=["debug", "info", "warning", "error"], help="default %(default)s"
    )
    return parser


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    if not argv or (argv[0].startswith("-") and argv[0] not in ("-h", "--help")):
        argv = ["serve", *argv]  # `python -m server --port 9000` means `arena serve --port 9000`
    args = build_parser().parse_args(argv)
    if not 1 <= args.tick_rate <= 240:
        print(f"arena: --tick-rate must be from 1 to 240, got {args.tick_rate}", file=sys.stderr)
        return 2
    if not 0 <= args.simulate_latency_ms <= 10_000:
        print(f"arena: --simulate-latency-ms must be from 0 to 10000, got {args.simulate_latency_ms}", file=sys.stderr)
        return 2
    logging.basicConfig(level=args.log_level.upper(), format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    config = ServerConfig(
        host=args.host,
        port=args.port,
        tick_rate=args.tick_rate,
        kill_limit=args.kill_limit,
        match_seconds=args.match_seconds,
        seed=args.seed,
        simulated_latency=args.simulate_latency_ms / 1000,
    )
    listen_error: OSError | None = None
    try:
        trio.run(_serve, config)
    except* OSError as group:
        listen_error = group.exceptions[0]  # type: ignore[assignment]
    if listen_error is not None:
        print(f"arena: cannot listen on {args.host}:{args.port}: {listen_error}", file=sys.stderr)
        print("arena: pick another port with --port, or stop what is using it", file=sys.stderr)
        return 1
    return 0


async def _serve(config: ServerConfig) -> None:
    server = ArenaServer(config)
    with trio.open_signal_receiver(signal.SIGINT, signal.SIGTERM) as signals:
        async with trio.open_nursery() as nursery:
            await nursery.start(server.run)
            print(f"Arena is running: open http://{config.host}:{server.port}/ (Ctrl-C stops it)", flush=True)

            async def stop_on_signal() -> None:
                async for signum in signals:
                    logging.getLogger("arena").info("%s: draining", signal.Signals(signum).name)
                    server.shutdown()
                    return

            nursery.start_soon(stop_on_signal)
    print("Arena stopped.", flush=True)
