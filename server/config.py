"""Everything an operator can set about a server, with the defaults of the embedded setup."""

from __future__ import annotations

from pathlib import Path

import attrs

from server.auth import AuthConfig
from server.limits import FrameLimits
from server.matchmaker import DEFAULT_MODES, Mode

FRAMES_PER_SECOND_BEFORE_HELLO = 4.0
PING_BURST = 5.0

CLIENT_DIR = Path(__file__).resolve().parent.parent / "client_web"


@attrs.frozen(kw_only=True)
class ServerConfig:
    """Settings of one Arena server process.

    Attributes:
        host, port: where to listen; port 0 picks a free port (tests).
        tick_rate: simulation ticks (and deltas sent) per second.
        ping_interval: seconds between keepalive pings to each client.
        pong_timeout: seconds a client may take to answer a ping before it is closed (1011).
        hello_timeout: seconds a new connection has to send its hello, and to finish the HTTP request head.
        outbox_capacity: frames a client may have waiting to be sent; beyond that its backlog is dropped and
            it is resynced with a full snapshot.
        overflow_limit, overflow_window: a client whose backlog overflows this many times within this many
            seconds is closed with 1008.
        send_buffer_bytes: the kernel send buffer of each connection (SO_SNDBUF), or None for the system's
            default. A small buffer keeps stale state from piling up in the kernel for a slow client.
        max_frames_per_second: the most frames a client may send per second once it sent hello, every frame
            counted (data, continuation, ping, pong), averaged over one second; over it: close 1008.
        max_frames_before_hello: the frames a connection may send before its hello is accepted (refilled at
            `FRAMES_PER_SECOND_BEFORE_HELLO`); over it: close 1008.
        max_pings_per_second: of those frames, Ping frames (bursts of `PING_BURST` allowed); over it: close 1008.
        max_connections: open connections in all; None derives it from the file limit (RLIMIT_NOFILE, raised to
            its hard limit at start) less headroom; 0 means no cap. Over it: 503.
        max_connections_per_ip: open connections from one address (an IPv6 /64 counts as one); 0 means no cap.
            Over it: 429.
        guest_tokens_per_minute: guest tokens one address may get (bursts of as many); over it: 429.
        trusted_proxies: CIDR networks of reverse proxies whose X-Forwarded-For / Forwarded headers name the
            client's address; nobody else's are believed.
        allowed_origins: origins (scheme://host[:port], "null", or "*") whose pages may open a WebSocket besides
            the server's own; empty allows the server's own origin and pages on localhost.
        tls_cert, tls_key: PEM certificate chain and key: serve https:// and wss:// on the port (TLS 1.2+).
        metrics_from: networks whose clients may read GET /metrics (the client's address, as forwarded by a
            trusted proxy); anyone presenting the admin token may too.
        admin_token: the secret an operator presents (Authorization: Bearer) for /monitor and /admin/...; None
            switches them off.
        close_timeout: seconds to wait for a client to answer our Close frame.
        drain_timeout: seconds a shutdown waits for clients to close before cutting them off.
        match_linger_seconds: how long a finished match keeps its players before telling them it closed.
        client_dir: the browser client's files, served at /.
        kill_limit, match_seconds: a match ends when a player reaches `kill_limit` kills or after this long.
        seed: the seed of every match's randomness, to reproduce a match; None draws a new seed per match.
        lag_compensation_seconds: how far back a shot may be judged (docs/protocol.md); 0 turns it off.
        max_tick_load: new matches start only while the running matches' ticks take less than this share of a
            core (each match's recent tick cost times the tick rate; reading input and the rest come on top:
            in bench/whole_game.py with 10 inputs a second per player ticks are about two thirds of a busy
            server's CPU (450 players: 0.575 at 87.7% of the core, p99 4.4 ms): 0.45 stops new matches near 70%
            of the core; with an input every tick (30 a second) they are under half (300 players: 0.242 at
            53.5%), and 0.45 is then nearly the whole core, where ticks run late: lower it for such clients);
            queued players wait meanwhile, and running matches still take players.
        redis_url: join the fleet of servers sharing this Redis (server.fleet); None: a server on its own.
        public_url: the WebSocket URL clients reach this server at (listed to the fleet); None: ws:// (wss://
            with TLS) on the host and port it listens on.
        data_dir: where the server keeps its data (ratings.sqlite3, the skill ratings); None keeps no ratings.
        spectator_delay: seconds spectators watch behind the players (against ghosting); 0 shows them live.
        replay_dir: where every match is recorded (server.recording); None records nothing.
        replay_keep, replay_max_age_days: the most recordings kept, and for how long; older ones are deleted.
        auth: how tokens are verified, and whether guest tokens are handed out.
        modes: the match modes players can queue for.
        reservation_seconds: how long a seat reservation waits to be redeemed with `join`.
        resume_window: how long a dropped player's seat is held for them to resume.
        bot_takes_over: whether a server-side bot plays a dropped player's avatar until they resume (else it
            stands idle).
        simulated_latency: for development: seconds by which every frame the server sends is held back, to
            feel and test the client's netcode at a real network's round trip (the `ping` field includes it).
    """

    host: str = "127.0.0.1"
    port: int = 8000
    tick_rate: int = 30
    ping_interval: float = 5.0
    pong_timeout: float = 15.0
    hello_timeout: float = 10.0
    outbox_capacity: int = 64
    overflow_limit: int = 3
    overflow_window: float = 30.0
    send_buffer_bytes: int | None = 65536
    max_frames_per_second: int = 120
    max_frames_before_hello: int = 16
    max_pings_per_second: float = 1.0
    max_connections: int | None = None
    max_connections_per_ip: int = 64
    guest_tokens_per_minute: int = 20
    trusted_proxies: tuple[str, ...] = ()
    allowed_origins: tuple[str, ...] = ()
    tls_cert: Path | None = None
    tls_key: Path | None = None
    metrics_from: tuple[str, ...] = ("127.0.0.0/8", "::1/128")
    admin_token: str | None = None
    close_timeout: float = 2.0
    drain_timeout: float = 5.0
    match_linger_seconds: float = 10.0
    client_dir: Path = CLIENT_DIR
    kill_limit: int = 10
    match_seconds: int = 180
    seed: int | None = None
    lag_compensation_seconds: float = 0.25
    spectator_delay: float = 10.0
    data_dir: Path | None = None
    replay_dir: Path | None = None
    replay_keep: int = 1000
    replay_max_age_days: float = 7.0
    simulated_latency: float = 0.0
    auth: AuthConfig = attrs.field(factory=AuthConfig)
    modes: tuple[Mode, ...] = DEFAULT_MODES
    reservation_seconds: float = 15.0
    resume_window: float = 20.0
    bot_takes_over: bool = False
    redis_url: str | None = None
    public_url: str | None = None
    max_tick_load: float = 0.45

    def frame_limits(self) -> FrameLimits:
        """The frame budget every connection gets."""
        return FrameLimits(
            frames_per_second=self.max_frames_per_second,
            frames_before_hello=self.max_frames_before_hello,
            frames_per_second_before_hello=FRAMES_PER_SECOND_BEFORE_HELLO,
            pings_per_second=self.max_pings_per_second,
            ping_burst=PING_BURST,
        )
