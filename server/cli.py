"""`arena serve`: run a server until Ctrl-C or SIGTERM, then drain."""

from __future__ import annotations

import argparse
import gc
import logging
import signal
import sys
from pathlib import Path

import attrs
import trio
from pythonjsonlogger.json import JsonFormatter

from server import compiled_game
from server.app import FILE_HEADROOM, ArenaServer, ListenError
from server.auth import AuthConfig
from server.config import ServerConfig
from server.fleet import FleetUnavailableError
from server.matchmaker import DEFAULT_MODES, Mode
from server.ratings import RatingStoreError
from server.workers import run_workers, worker_count


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
    serve.add_argument(
        "--lag-compensation-ms",
        type=int,
        default=round(defaults.lag_compensation_seconds * 1000),
        help="how far back a shot may be judged against where the others were (0: off) (default %(default)s)",
    )
    serve.add_argument(
        "--seed",
        type=int,
        default=None,
        help="seed every match with this, to reproduce one (default: a new seed per match)",
    )
    serve.add_argument(
        "--simulate-latency-ms",
        type=int,
        default=0,
        help="development: hold back every frame the server sends by this long, to try the netcode at a real "
        "round trip (default %(default)s)",
    )
    serve.add_argument(
        "--data-dir",
        default=str(DEFAULT_DATA_DIR),
        metavar="DIR",
        help="where the skill ratings are kept (ratings.sqlite3) (default %(default)s)",
    )
    serve.add_argument(
        "--max-tick-load",
        type=float,
        default=defaults.max_tick_load,
        metavar="FRACTION",
        help="start new matches only while the running matches' ticks take less than this share of a core; "
        "queued players wait meanwhile (default %(default)s)",
    )
    fleet = serve.add_argument_group("fleet (docs/deploy.md)")
    fleet.add_argument(
        "--redis",
        metavar="URL",
        help="join the fleet of servers sharing this Redis: redis://HOST:PORT/DB or unix:///PATH?db=0 "
        "(default: a server on its own, no Redis)",
    )
    fleet.add_argument(
        "--public-url",
        metavar="URL",
        help="the WebSocket URL clients reach this server at, as the fleet lists it and sends players to; with "
        "--workers, {worker} and {port} in it are each worker's (default: ws://HOST:PORT/ws on the address it "
        "listens on)",
    )
    fleet.add_argument(
        "--workers",
        metavar="N",
        help="run N server processes as one fleet, worker k on --port + k ('auto': one per CPU core); with no "
        "--redis they share a redis-server of their own on a private unix socket (default: one process)",
    )
    replays = serve.add_argument_group("replays (docs/protocol.md)")
    replays.add_argument(
        "--replay-dir",
        default=str(DEFAULT_REPLAY_DIR),
        metavar="DIR",
        help="record every match here, served at /replays (default %(default)s)",
    )
    replays.add_argument(
        "--spectator-delay",
        type=float,
        default=defaults.spectator_delay,
        help="seconds spectators watch behind the players, against ghosting; 0: live (default %(default)s)",
    )
    replays.add_argument("--no-replays", action="store_true", help="record nothing (default: every match recorded)")
    replays.add_argument(
        "--replay-keep", type=int, default=defaults.replay_keep, help="recordings kept at most (default %(default)s)"
    )
    replays.add_argument(
        "--replay-max-age-days",
        type=float,
        default=defaults.replay_max_age_days,
        help="recordings older than this are deleted (default %(default)s)",
    )
    auth = serve.add_argument_group("authentication")
    auth.add_argument(
        "--auth-algorithm",
        default="HS256",
        choices=["HS256", "RS256", "ES256"],
        help="token signature (default %(default)s)",
    )
    auth.add_argument(
        "--auth-secret-file", help="file holding the HS256 secret (default: a random secret, fine for guest tokens)"
    )
    auth.add_argument("--auth-public-key-file", help="PEM public key of your login service (RS256/ES256)")
    auth.add_argument("--auth-issuer", default="arena", help="the 'iss' a token must carry (default %(default)s)")
    auth.add_argument("--auth-audience", default="arena", help="the 'aud' a token must carry (default %(default)s)")
    auth.add_argument(
        "--no-guest-tokens", action="store_true", help="switch off POST /auth/guest (on by default, for development)"
    )
    serve.add_argument(
        "--queue-wait",
        type=float,
        help="seconds a queue waits for more players before a match starts with fewer (or bots); "
        "default: per mode (duel 10, ffa 5)",
    )
    serve.add_argument(
        "--no-bots",
        action="store_true",
        help="never fill missing seats with server-side bots (default: bots fill them)",
    )
    serve.add_argument(
        "--resume-seconds",
        type=float,
        default=defaults.resume_window,
        help="how long a dropped player's seat is held for them to resume (default %(default)s)",
    )
    serve.add_argument(
        "--bot-takes-over",
        action="store_true",
        help="a server-side bot plays a dropped player's avatar until they resume (default: it stands idle)",
    )
    limits = serve.add_argument_group("the open internet (docs/security.md)")
    limits.add_argument(
        "--max-connections",
        type=int,
        default=None,
        help="open connections in all, over it 503 (default: the file limit, raised to its hard limit, less "
        f"{FILE_HEADROOM}; 0: no cap)",
    )
    limits.add_argument(
        "--max-connections-per-ip",
        type=int,
        default=defaults.max_connections_per_ip,
        help="open connections from one address (an IPv6 /64 is one), over it 429 (default %(default)s; 0: no cap)",
    )
    limits.add_argument(
        "--max-frames-per-second",
        type=int,
        default=defaults.max_frames_per_second,
        help="frames a client may send per second after hello, every kind counted; over it: close 1008 "
        "(default %(default)s)",
    )
    limits.add_argument(
        "--max-frames-before-hello",
        type=int,
        default=defaults.max_frames_before_hello,
        help="frames a connection may send before its hello is accepted; over it: close 1008 (default %(default)s)",
    )
    limits.add_argument(
        "--max-pings-per-second",
        type=float,
        default=defaults.max_pings_per_second,
        help="Ping frames a client may send per second (bursts of 5); over it: close 1008 (default %(default)s)",
    )
    limits.add_argument(
        "--guest-tokens-per-minute",
        type=int,
        default=defaults.guest_tokens_per_minute,
        help="guest tokens one address may get per minute; over it: 429 (default %(default)s)",
    )
    limits.add_argument(
        "--trusted-proxy",
        action="append",
        default=[],
        metavar="CIDR",
        help="a reverse proxy whose X-Forwarded-For / Forwarded headers are believed (repeatable; default: none)",
    )
    limits.add_argument(
        "--allowed-origin",
        action="append",
        default=[],
        metavar="ORIGIN",
        help="a page origin (https://host[:port], 'null' or '*') allowed to open a WebSocket besides the server's "
        "own (repeatable; default: the server's own origin and pages on localhost)",
    )
    limits.add_argument(
        "--tls-cert", metavar="FILE", help="PEM certificate chain: serve https:// and wss:// (default: plain http)"
    )
    limits.add_argument("--tls-key", metavar="FILE", help="PEM private key of --tls-cert (default: none)")
    operations = serve.add_argument_group("operations (docs/operations.md)")
    operations.add_argument(
        "--admin-token-file",
        metavar="FILE",
        help="file holding the operators' token (at least 16 characters): turns on /monitor and /admin/... "
        "(default: off)",
    )
    operations.add_argument(
        "--metrics-from",
        action="append",
        metavar="CIDR",
        help="a network whose clients may read /metrics (repeatable; default: 127.0.0.0/8 and ::1; the admin token "
        "is accepted from anywhere)",
    )
    operations.add_argument(
        "--log-format",
        default="text",
        choices=["text", "json"],
        help="text lines, or one JSON object per line with match, player and connection ids (default %(default)s)",
    )
    operations.add_argument(
        "--log-level", default="info", choices=["debug", "info", "warning", "error"], help="(default %(default)s)"
    )
    return parser


DEFAULT_REPLAY_DIR = Path(".arena") / "replays"
DEFAULT_DATA_DIR = Path(".arena") / "data"

GC_THRESHOLDS = (20_000, 20, 100)
"""Young collections every 20,000 container allocations instead of 700, and full ones a fifth as often: a tick
allocates thousands of short-lived dicts that reference counting frees, and every collection pauses all matches
(a full one took 40-55 ms with 300 players; see docs/benchmarks.md)."""


def configure_logging(level: str, log_format: str) -> None:
    """Log to standard error: text lines, or one JSON object per line (python-json-logger) whose extra fields
    (`connection`, `player`, `match`, `remote`) come from the call sites."""
    handler = logging.StreamHandler()
    if log_format == "json":
        handler.setFormatter(
            JsonFormatter(
                "%(levelname)s %(name)s %(message)s",
                rename_fields={"levelname": "level", "name": "logger"},
                timestamp=True,
            )
        )
    else:
        handler.setFormatter(logging.Formatter("%(asctime)s %(levelname)s %(name)s: %(message)s"))
    logging.basicConfig(level=level.upper(), handlers=[handler], force=True)
    # coredis logs every retry of an unreachable Redis at INFO; server.fleet says it once, with what to do
    logging.getLogger("coredis").setLevel(max(logging.WARNING, logging.getLogger().level))


def tune_garbage_collector() -> None:
    """Keep the cyclic garbage collector from pausing matches: what exists at start-up (modules, classes) is
    frozen out of its scans, and it runs less often."""
    gc.collect()
    gc.freeze()
    gc.set_threshold(*GC_THRESHOLDS)


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    if not argv or (argv[0].startswith("-") and argv[0] not in ("-h", "--help")):
        argv = ["serve", *argv]  # `python -m server --port 9000` means `arena serve --port 9000`
    args = build_parser().parse_args(argv)
    if not 1 <= args.tick_rate <= 240:
        print(f"arena: --tick-rate must be from 1 to 240, got {args.tick_rate}", file=sys.stderr)
        return 2
    if args.queue_wait is not None and not 0 <= args.queue_wait <= 600:
        print(f"arena: --queue-wait must be from 0 to 600 seconds, got {args.queue_wait}", file=sys.stderr)
        return 2
    if not 0 < args.max_tick_load <= 1:
        print(
            f"arena: --max-tick-load is a share of a core, over 0 and at most 1, got {args.max_tick_load}",
            file=sys.stderr,
        )
        return 2
    if not 0 <= args.spectator_delay <= 600:
        print(f"arena: --spectator-delay must be from 0 to 600 seconds, got {args.spectator_delay}", file=sys.stderr)
        return 2
    if not 0 <= args.lag_compensation_ms <= 1000:
        print(f"arena: --lag-compensation-ms must be from 0 to 1000, got {args.lag_compensation_ms}", file=sys.stderr)
        return 2
    if not 0 <= args.simulate_latency_ms <= 10_000:
        print(f"arena: --simulate-latency-ms must be from 0 to 10000, got {args.simulate_latency_ms}", file=sys.stderr)
        return 2
    try:
        auth = _auth_config(args)
    except (OSError, ValueError) as error:
        print(f"arena: {error}", file=sys.stderr)
        return 2
    for name in ("max_connections", "max_connections_per_ip", "max_frames_per_second", "max_frames_before_hello"):
        value = getattr(args, name)
        if value is not None and not 0 <= value <= 10_000_000:
            print(f"arena: --{name.replace('_', '-')} must be from 0 to 10000000, got {value}", file=sys.stderr)
            return 2
    if not 0 < args.max_pings_per_second <= 1000 or not 0 < args.guest_tokens_per_minute <= 100_000:
        print("arena: --max-pings-per-second and --guest-tokens-per-minute must be positive", file=sys.stderr)
        return 2
    admin_token = None
    if args.admin_token_file:
        try:
            admin_token = Path(args.admin_token_file).read_text().strip()
        except OSError as error:
            print(f"arena: cannot read --admin-token-file {args.admin_token_file}: {error.strerror}", file=sys.stderr)
            return 2
        if len(admin_token) < 16:
            print(f"arena: the token in {args.admin_token_file} is shorter than 16 characters", file=sys.stderr)
            return 2
    workers = None
    if args.workers is not None:
        try:
            workers = worker_count(args.workers)
        except ValueError as error:
            print(f"arena: {error}", file=sys.stderr)
            return 2
    configure_logging(args.log_level, args.log_format)
    stale = "setup.sh" in compiled_game.status  # a build is missing or out of date: say how to fix it
    logging.getLogger("arena").log(logging.WARNING if stale else logging.INFO, "the game runs %s", compiled_game.status)
    config = ServerConfig(
        host=args.host,
        port=args.port,
        tick_rate=args.tick_rate,
        kill_limit=args.kill_limit,
        match_seconds=args.match_seconds,
        seed=args.seed,
        lag_compensation_seconds=args.lag_compensation_ms / 1000,
        replay_dir=None if args.no_replays else Path(args.replay_dir),
        spectator_delay=args.spectator_delay,
        data_dir=Path(args.data_dir),
        replay_keep=args.replay_keep,
        replay_max_age_days=args.replay_max_age_days,
        simulated_latency=args.simulate_latency_ms / 1000,
        auth=auth,
        resume_window=args.resume_seconds,
        bot_takes_over=args.bot_takes_over,
        modes=_modes(args),
        max_connections=args.max_connections,
        max_connections_per_ip=args.max_connections_per_ip,
        max_frames_per_second=args.max_frames_per_second,
        max_frames_before_hello=args.max_frames_before_hello,
        max_pings_per_second=args.max_pings_per_second,
        guest_tokens_per_minute=args.guest_tokens_per_minute,
        trusted_proxies=tuple(args.trusted_proxy),
        allowed_origins=tuple(args.allowed_origin),
        tls_cert=Path(args.tls_cert) if args.tls_cert else None,
        tls_key=Path(args.tls_key) if args.tls_key else None,
        admin_token=admin_token,
        metrics_from=tuple(args.metrics_from) if args.metrics_from else ServerConfig().metrics_from,
        redis_url=args.redis,
        max_tick_load=args.max_tick_load,
        public_url=args.public_url,
    )
    try:
        server = ArenaServer(config)
    except (OSError, ValueError, RatingStoreError) as error:
        print(f"arena: {error}", file=sys.stderr)
        return 2
    if workers is not None:
        if server.ratings is not None:
            server.ratings.close()  # each worker opens the store itself
        return run_workers(
            _without_options(argv[1:], ("--workers", "--port", "--redis", "--public-url")),
            count=workers,
            host=args.host,
            port=args.port,
            redis_url=args.redis,
            public_url=args.public_url,
            data_dir=Path(args.data_dir),
        )
    listen_error: ListenError | None = None
    fleet_error: FleetUnavailableError | None = None
    try:
        tune_garbage_collector()
        trio.run(_serve, server)
    except* ListenError as group:
        listen_error = group.exceptions[0]  # type: ignore[assignment]
    except* FleetUnavailableError as group:
        fleet_error = group.exceptions[0]  # type: ignore[assignment]
    if fleet_error is not None:
        print(f"arena: {fleet_error}", file=sys.stderr)
        return 2
    if listen_error is not None:
        print(f"arena: cannot listen on {args.host}:{args.port}: {listen_error}", file=sys.stderr)
        print("arena: pick another port with --port, or stop what is using it", file=sys.stderr)
        return 1
    return 0


def _without_options(argv: list[str], names: tuple[str, ...]) -> list[str]:
    """`argv` without the options `names` and their values (as `--name value` or `--name=value`)."""
    kept: list[str] = []
    skip_value = False
    for argument in argv:
        if skip_value:
            skip_value = False
        elif argument in names:
            skip_value = True
        elif not argument.startswith(tuple(f"{name}=" for name in names)):
            kept.append(argument)
    return kept


def _modes(args: argparse.Namespace) -> tuple[Mode, ...]:
    modes: tuple[Mode, ...] = DEFAULT_MODES
    if args.queue_wait is not None:
        modes = tuple(attrs.evolve(mode, fill_after_seconds=args.queue_wait) for mode in modes)
    if args.no_bots:
        modes = tuple(attrs.evolve(mode, fill_with_bots=False) for mode in modes)
    return modes


def _auth_config(args: argparse.Namespace) -> AuthConfig:
    """The token settings from the command line.

    Raises:
        ValueError: if the options do not fit together; OSError if a key file cannot be read.
    """
    key: str | None = None
    if args.auth_algorithm == "HS256":
        if args.auth_public_key_file:
            raise ValueError("--auth-public-key-file goes with RS256 or ES256; HS256 takes --auth-secret-file")
        if args.auth_secret_file:
            key = Path(args.auth_secret_file).read_text().strip()
            if len(key) < 32:
                raise ValueError(f"the secret in {args.auth_secret_file} is shorter than 32 characters")
    else:
        if not args.auth_public_key_file:
            raise ValueError(f"{args.auth_algorithm} needs --auth-public-key-file (your login service's PEM key)")
        key = Path(args.auth_public_key_file).read_text()
    guest_tokens = not args.no_guest_tokens and args.auth_algorithm == "HS256"
    return AuthConfig(
        algorithm=args.auth_algorithm,
        verification_key=key,
        issuer=args.auth_issuer,
        audience=args.auth_audience,
        guest_tokens=guest_tokens,
    )


async def _serve(server: ArenaServer) -> None:
    config = server.config
    with trio.open_signal_receiver(signal.SIGINT, signal.SIGTERM) as signals:
        async with trio.open_nursery() as nursery:

            async def serve_then_stop(*, task_status: trio.TaskStatus[ArenaServer] = trio.TASK_STATUS_IGNORED) -> None:
                await server.run(task_status=task_status)
                nursery.cancel_scope.cancel()  # drained (a signal or an operator asked): stop awaiting signals

            await nursery.start(serve_then_stop)
            scheme = "https" if config.tls_cert else "http"
            print(f"Arena is running: open {scheme}://{config.host}:{server.port}/ (Ctrl-C stops it)", flush=True)

            async def stop_on_signal() -> None:
                async for signum in signals:
                    logging.getLogger("arena").info("%s: draining", signal.Signals(signum).name)
                    server.shutdown()
                    return

            nursery.start_soon(stop_on_signal)
    print("Arena stopped.", flush=True)
