"""Abuse bench: the attacks of docs/security.md against `arena serve` with its default limits, alone on core 0,
while a bystander plays a match; the attackers and the bystander run here, on core 1.

For each attack it prints what the attackers got (close codes or HTTP statuses), how long the server took to
close them, the server's CPU over the attack, its RSS after it, and the bystander's updates per second (the
tick rate is 30). At the end: RSS before and after everything, with a churn of 10,000 sessions in between.
Attackers come from 127.0.0.3 and other loopback addresses, the bystander from 127.0.0.2.

    .venv/bin/python bench/abuse.py [--port 8765] [--churn 10000]
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
from collections import Counter
from collections.abc import Awaitable, Callable

import h11
import msgpack
import trio
from fanout import arena_server, cpu_seconds, rss_bytes
from wsproto import ConnectionType, WSConnection
from wsproto.events import AcceptConnection, CloseConnection, RejectConnection, Request
from wsproto.frame_protocol import FrameProtocol

from bots.client import ArenaClient, connect, guest_token, http_request, loopback_address
from game import Delta, Snapshot

SERVER_CORE, LOAD_CORE = 0, 1
BYSTANDER, ATTACKER = "127.0.0.2", "127.0.0.3"
TICK_RATE = 30
_framing = FrameProtocol(client=True, extensions=[])


def _fragments() -> tuple[bytes, bytes]:
    """The first frame of a message that never ends, and an empty continuation of it (a framer of their own:
    a framer remembers an unfinished message)."""
    framer = FrameProtocol(client=True, extensions=[])
    return framer.send_data(b"", fin=False), framer.send_data(b"", fin=False)


class Refused(Exception):
    def __init__(self, status: int | str) -> None:
        super().__init__(str(status))
        self.status = status


class RawClient:
    """A WebSocket client of wsproto's, on a raw trio stream, that sends whatever bytes it is told to."""

    def __init__(self, stream: trio.SocketStream, ws: WSConnection) -> None:
        self.stream = stream
        self.ws = ws

    @classmethod
    async def open(cls, port: int, source: str, *, headers: list[tuple[bytes, bytes]] | None = None) -> RawClient:
        stream = await trio.open_tcp_stream("127.0.0.1", port, local_address=source)
        ws = WSConnection(ConnectionType.CLIENT)
        try:
            request = Request(host=f"127.0.0.1:{port}", target="/ws", extra_headers=headers or [])
            await stream.send_all(ws.send(request))
            with trio.fail_after(5):
                while True:
                    data = await stream.receive_some(65536)
                    if not data:
                        raise Refused("closed")
                    ws.receive_data(data)
                    for event in ws.events():
                        if isinstance(event, AcceptConnection):
                            return cls(stream, ws)
                        if isinstance(event, RejectConnection):
                            raise Refused(event.status_code)
        except BaseException:
            await trio.aclose_forcefully(stream)
            raise

    async def send_message(self, message: dict[str, object]) -> None:
        await self.stream.send_all(_framing.send_data(msgpack.packb(message), fin=True))

    async def close_code(self, *, timeout: float = 10.0) -> int | str:
        """Read until the server's Close frame: its code (or how the connection ended without one)."""
        with trio.move_on_after(timeout):
            while True:
                try:
                    data = await self.stream.receive_some(65536)
                except (trio.BrokenResourceError, trio.ClosedResourceError):
                    return "reset"
                if not data:
                    return "closed without Close"
                self.ws.receive_data(data)
                for event in self.ws.events():
                    if isinstance(event, CloseConnection):
                        return event.code
        return "still open"

    async def aclose(self) -> None:
        await trio.aclose_forcefully(self.stream)


async def _flood(client: RawClient, first: bytes, data: bytes) -> None:
    try:
        await client.stream.send_all(first)
        while True:
            await client.stream.send_all(data * 50)
    except (trio.BrokenResourceError, trio.ClosedResourceError):
        pass


async def _hello(client: RawClient, token: str) -> None:
    await client.send_message({"t": "hello", "protocol": 2, "token": token, "name": "attacker"})


async def _tokens(url: str, count: int) -> list[str]:
    """Guest tokens, minted from as many loopback addresses as the per-address rate needs."""
    return [
        await guest_token(url, f"a{index}", source_address=loopback_address(5000 + index // 20))
        for index in range(count)
    ]


def flood_attack(first: bytes, data: bytes, *, sockets: int, authenticated: bool):
    async def attack(port: int, results: Counter[str], close_times: list[float]) -> None:
        tokens = await _tokens(f"http://127.0.0.1:{port}", sockets) if authenticated else []
        clients = [await RawClient.open(port, ATTACKER) for _ in range(sockets)]
        for client, token in zip(clients, tokens, strict=False):
            await _hello(client, token)

        async def one(client: RawClient) -> None:
            started = trio.current_time()
            async with trio.open_nursery() as nursery:
                nursery.start_soon(_flood, client, first, data)
                results[str(await client.close_code())] += 1
                close_times.append(trio.current_time() - started)
                nursery.cancel_scope.cancel()
            await client.aclose()

        async with trio.open_nursery() as nursery:
            for client in clients:
                nursery.start_soon(one, client)

    return attack


async def many_connections(port: int, results: Counter[str], close_times: list[float]) -> None:
    """2,000 TCP connections from one address, each asking for /healthz and then holding on."""
    held: list[trio.SocketStream] = []
    request = f"GET /healthz HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\n\r\n".encode()

    async def one() -> None:
        stream = await trio.open_tcp_stream("127.0.0.1", port, local_address=ATTACKER)
        held.append(stream)
        started = trio.current_time()
        try:
            await stream.send_all(b"GET /ws HTTP/1.1\r\n")  # a request head that never ends: it is held
            with trio.move_on_after(2):
                answer = await stream.receive_some(4096)
                results["429" if b" 429 " in answer[:20] else answer[:12].decode() or "closed"] += 1
                close_times.append(trio.current_time() - started)
                return
            results["held"] += 1
        except (trio.BrokenResourceError, OSError):
            results["reset"] += 1

    async with trio.open_nursery() as nursery:
        for _ in range(2000):
            nursery.start_soon(one)
            await trio.sleep(0.0005)
    health_stream = await trio.open_tcp_stream("127.0.0.1", port, local_address=BYSTANDER)
    async with health_stream:
        await health_stream.send_all(request)
        results["/healthz from elsewhere: " + (await health_stream.receive_some(100))[9:12].decode()] += 1
    for stream in held:
        await trio.aclose_forcefully(stream)


async def guest_minting(port: int, results: Counter[str], close_times: list[float]) -> None:
    """300 guest tokens asked for at once from one address."""

    async def one() -> None:
        started = trio.current_time()
        try:
            status, _ = await http_request(
                f"http://127.0.0.1:{port}", "POST", "/auth/guest", b'{"name": "minter"}', source_address=ATTACKER
            )
        except (h11.RemoteProtocolError, trio.BrokenResourceError):
            results["closed unanswered"] += 1
            return
        results[str(status)] += 1
        close_times.append(trio.current_time() - started)

    async with trio.open_nursery() as nursery:
        for _ in range(300):
            nursery.start_soon(one)


def handshake_attack(headers: list[tuple[bytes, bytes]], *, raw: bytes | None = None):
    async def attack(port: int, results: Counter[str], close_times: list[float]) -> None:
        for _ in range(100):
            started = trio.current_time()
            if raw is not None:
                stream = await trio.open_tcp_stream("127.0.0.1", port, local_address=ATTACKER)
                async with stream:
                    await stream.send_all(raw.replace(b"PORT", str(port).encode()))
                    answer = await stream.receive_some(100)
                    results[answer[9:12].decode() or "no answer"] += 1
            else:
                try:
                    client = await RawClient.open(port, ATTACKER, headers=headers)
                    results["101"] += 1
                    await client.aclose()
                except Refused as refused:
                    results[str(refused.status)] += 1
            close_times.append(trio.current_time() - started)

    return attack


async def unread_replies(port: int, results: Counter[str], close_times: list[float]) -> None:
    """Ask for the match list 100 times a second and never read an answer."""
    (token,) = await _tokens(f"http://127.0.0.1:{port}", 1)
    sock = trio.socket.socket()
    sock.setsockopt(trio.socket.SOL_SOCKET, trio.socket.SO_RCVBUF, 4096)
    await sock.bind((ATTACKER, 0))
    await sock.connect(("127.0.0.1", port))
    stream = trio.SocketStream(sock)
    ws = WSConnection(ConnectionType.CLIENT)
    await stream.send_all(ws.send(Request(host=f"127.0.0.1:{port}", target="/ws")))
    client = RawClient(stream, ws)
    await _hello(client, token)
    started = trio.current_time()
    ask = _framing.send_data(msgpack.packb({"t": "list_matches"}), fin=True)
    with trio.move_on_after(30):
        try:
            while True:
                await stream.send_all(ask)
                await trio.sleep(0.01)
        except (trio.BrokenResourceError, trio.ClosedResourceError):
            pass
    close_times.append(trio.current_time() - started)
    results["connection ended" if close_times[-1] < 30 else "still open"] += 1
    await client.aclose()


async def churn(port: int, count: int) -> None:
    """Open and close `count` sessions (hello included), 20 at a time."""
    done = 0

    async def worker(first: int, share: int) -> None:
        nonlocal done
        for index in range(first, first + share):
            source = loopback_address(10_000 + index // 20)
            token = await guest_token(f"http://127.0.0.1:{port}", "churner", source_address=source)
            client = await RawClient.open(port, source)
            await _hello(client, token)
            await client.stream.send_all(client.ws.send(CloseConnection(code=1000)))
            await client.close_code()
            await client.aclose()
            done += 1

    async with trio.open_nursery() as nursery:
        for worker_index in range(20):
            nursery.start_soon(worker, worker_index * (count // 20), count // 20)
        while done < count // 20 * 20:
            print(f"  churn: {done}/{count} sessions", end="\r", flush=True)
            await trio.sleep(1)
    print(f"  churn: {done}/{count} sessions")


async def _count_updates(client: ArenaClient, counter: list[int]) -> None:
    while True:
        if isinstance(await client.receive(), Delta | Snapshot):
            counter[0] += 1


ATTACKS: list[tuple[str, Callable[..., Awaitable[None]]]] = [
    ("32 sockets flood pings, no hello", flood_attack(b"", _framing.ping(b"p"), sockets=32, authenticated=False)),
    ("16 sockets flood pongs after hello", flood_attack(b"", _framing.pong(b"p"), sockets=16, authenticated=True)),
    (
        "32 sockets flood empty fragments, no hello",
        flood_attack(*_fragments(), sockets=32, authenticated=False),
    ),
    ("2,000 TCP connections from one address", many_connections),
    ("300 guest tokens at once from one address", guest_minting),
    ("100 upgrades with Origin: https://evil.example", handshake_attack([(b"Origin", b"https://evil.example")])),
    (
        "100 upgrades with an 8,000-byte key",
        handshake_attack(
            [],
            raw=b"GET /ws HTTP/1.1\r\nHost: 127.0.0.1:PORT\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
            b"Sec-WebSocket-Version: 13\r\nSec-WebSocket-Key: " + b"A" * 8000 + b"\r\n\r\n",
        ),
    ),
    (
        "100 upgrades with Host: xn--zz",
        handshake_attack(
            [],
            raw=b"GET /ws HTTP/1.1\r\nHost: xn--zz\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
            b"Sec-WebSocket-Version: 13\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n\r\n",
        ),
    ),
    ("a client that never reads its replies", unread_replies),
]


async def run(port: int, pid: int, churn_count: int) -> None:
    url = f"ws://127.0.0.1:{port}/ws"
    async with connect(url, name="bystander", source_address=BYSTANDER) as bystander:
        await bystander.join()
        updates = [0]
        async with trio.open_nursery() as nursery:
            nursery.start_soon(_count_updates, bystander, updates)
            await trio.sleep(2)
            rss_start = rss_bytes(pid)
            print(f"server RSS at the start (a bystander playing): {rss_start / 2**20:.1f} MiB\n")
            header = f"{'attack':<46} {'what the attackers got':<40} {'close p50/max':>14} {'CPU':>5} {'RSS':>9}"
            header += f" {'bystander':>10}"
            print(header)
            print("-" * len(header))
            for name, attack in ATTACKS:
                results: Counter[str] = Counter()
                close_times: list[float] = []
                updates[0] = 0
                started, cpu_before = trio.current_time(), cpu_seconds(pid)
                await attack(port, results, close_times)
                await trio.sleep_until(max(trio.current_time(), started + 2.0))
                elapsed = trio.current_time() - started
                cpu = (cpu_seconds(pid) - cpu_before) / elapsed
                rate = updates[0] / elapsed
                got = ", ".join(f"{key} x{count}" for key, count in results.most_common())
                closes = (
                    f"{statistics.median(close_times) * 1000:.0f}/{max(close_times) * 1000:.0f} ms"
                    if close_times
                    else "-"
                )
                print(
                    f"{name:<46} {got:<40} {closes:>14} {cpu:>5.0%} {rss_bytes(pid) / 2**20:>5.1f} MiB {rate:>6.1f}/s"
                )
                await trio.sleep(1)
            print(f"\nchurn of {churn_count} sessions (guest token, upgrade, hello, close):")
            updates[0] = 0
            started = trio.current_time()
            await churn(port, churn_count)
            rate = updates[0] / (trio.current_time() - started)
            await trio.sleep(3)
            rss_end = rss_bytes(pid)
            print(f"bystander during the churn: {rate:.1f} updates/s")
            print(f"server RSS: {rss_start / 2**20:.1f} MiB at the start, {rss_end / 2**20:.1f} MiB at the end "
                  f"({(rss_end - rss_start) / 2**20:+.1f} MiB; target: within +10 MiB)")  # fmt: skip
            nursery.cancel_scope.cancel()


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--port", type=int, default=8765)
    parser.add_argument("--churn", type=int, default=10_000, help="sessions to open and close at the end")
    args = parser.parse_args()
    os.sched_setaffinity(0, {LOAD_CORE})
    with arena_server(args.port, core=SERVER_CORE, load_from_one_host=False) as server:
        try:
            trio.run(run, args.port, server.pid, args.churn)
        except KeyboardInterrupt:
            return 130
    return 0


if __name__ == "__main__":
    sys.exit(main())
