"""Arena behind Debian's nginx (docs/nginx/arena-locations.conf): a match played through it, the per-address
cap applied to the client's address forwarded by the trusted proxy, and forwarded addresses from anyone else
ignored. Clients come from their own loopback addresses (127.0.0.5, ...), nginx from 127.0.0.1."""

from __future__ import annotations

import os
import socket
import subprocess
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
import trio

from bots.client import connect
from tests.browser.conftest import start_server_process
from tests.conftest import join_together
from tests.server.rawws import open_raw_websocket, parse_response_head, read_response_head, upgrade_request
from tests.server.test_workers import free_consecutive_ports, wait_for_workers

NGINX = Path("/usr/sbin/nginx")
LOCATIONS = Path(__file__).resolve().parents[2] / "docs" / "nginx" / "arena-locations.conf"
WORKER_LOCATIONS = LOCATIONS.with_name("arena-worker-locations.conf")
PLAYER, NEIGHBOUR, STRANGER = "127.0.0.5", "127.0.0.6", "127.0.0.7"
KEY = b"dGhlIHNhbXBsZSBub25jZQ=="


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@pytest.fixture
def nginx(tmp_path: Path) -> Iterator[Callable[[int], int]]:
    """`nginx(arena_port)` starts nginx in front of Arena on a free port and returns that port; `nginx([port,
    port + 1])` in front of workers, each also on its own path (docs/nginx/arena-worker-locations.conf)."""
    if not NGINX.exists():
        pytest.fail(f"{NGINX} is missing: run `bash scripts/setup.sh --test-packages` (installs Debian's nginx)")
    processes: list[subprocess.Popen[bytes]] = []

    def start(arena_ports: int | list[int]) -> int:
        port = free_port()
        workers = arena_ports if isinstance(arena_ports, list) else [arena_ports]
        upstreams = " ".join(f"server 127.0.0.1:{worker};" for worker in workers)
        worker_map = " ".join(f"{index} {worker};" for index, worker in enumerate(workers))
        worker_locations = f"include {WORKER_LOCATIONS};" if isinstance(arena_ports, list) else ""
        worker_map = f'map $arena_worker $arena_worker_port {{ {worker_map} default ""; }}' if worker_locations else ""
        user = "user root;" if os.geteuid() == 0 else ""
        config = tmp_path / "nginx.conf"
        config.write_text(
            f"""{user}
worker_processes 1;
daemon off;
pid {tmp_path}/nginx.pid;
error_log {tmp_path}/error.log warn;
events {{ worker_connections 512; }}
http {{
    access_log off;
    client_body_temp_path {tmp_path}/body;
    proxy_temp_path {tmp_path}/proxy;
    fastcgi_temp_path {tmp_path}/fastcgi;
    uwsgi_temp_path {tmp_path}/uwsgi;
    scgi_temp_path {tmp_path}/scgi;
    map $http_upgrade $connection_upgrade {{ default upgrade; '' close; }}
    {worker_map}
    upstream arena {{ {upstreams} }}
    server {{
        listen 127.0.0.1:{port};
        include {LOCATIONS};
        {worker_locations}
    }}
}}
"""
        )
        process = subprocess.Popen(
            [str(NGINX), "-p", str(tmp_path), "-c", str(config), "-e", str(tmp_path / "error.log")],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.PIPE,
        )
        processes.append(process)
        for _ in range(100):
            try:
                socket.create_connection(("127.0.0.1", port), timeout=0.1).close()
                return port
            except OSError:
                if process.poll() is not None:
                    break
                time.sleep(0.05)
        error = process.stderr.read().decode() if process.poll() is not None and process.stderr else ""
        raise RuntimeError(f"nginx did not start on port {port}: {error or (tmp_path / 'error.log').read_text()}")

    yield start
    for process in processes:
        process.terminate()
        process.wait(timeout=10)
        if process.stderr:
            process.stderr.close()


async def refused_upgrade(port: int, extra: str, *, path: str = "/ws") -> tuple[int, bytes]:
    """An upgrade from PLAYER through nginx that is answered with an HTTP error: its status and body (nginx
    keeps its side of the connection open, so the body is read by its length)."""
    stream = await trio.open_tcp_stream("127.0.0.1", port, local_address=PLAYER)
    async with stream:
        await stream.send_all(upgrade_request(port, key=KEY, extra=extra, path=path))
        head, body = await read_response_head(stream)
        status, _, headers = parse_response_head(head)
        with trio.fail_after(3):
            while len(body) < int(headers.get("content-length", 0)):
                body += await stream.receive_some(65536)
    return status, body


async def test_a_match_plays_through_nginx_and_the_cap_sees_the_forwarded_address(server_factory, nginx):
    server = await server_factory(trusted_proxies=("127.0.0.1/32",), max_connections_per_ip=3)
    port = nginx(server.port)
    url = f"ws://127.0.0.1:{port}/ws"
    async with connect(url, name="proxied", source_address=PLAYER) as player:
        await player.join()
        await player.send_input(mx=1)
        with trio.fail_after(5):
            while player.view is None or player.view.entities["players"][player.player]["ack"] < 1:
                await player.receive()
        busiest = server.health()["busiest_addresses"]
        assert {"address": PLAYER, "connections": 1} in busiest
        assert all(entry["address"] != "127.0.0.1" for entry in busiest)  # not nginx's own address

        more = [await open_raw_websocket(port, source=PLAYER) for _ in range(2)]
        for spoofed in ("", "X-Forwarded-For: 10.9.8.7\r\n"):  # a claim of its own is appended to, not believed
            status, body = await refused_upgrade(port, spoofed)
            assert status == 429, body
            assert b"too many connections from your address" in body
        neighbour, _ = await open_raw_websocket(port, source=NEIGHBOUR)  # the cap is per client, not per proxy
        for ws, _ in more:
            await ws.aclose()
        await neighbour.aclose()


async def test_forwarded_headers_from_an_untrusted_peer_are_ignored(server_factory):
    server = await server_factory(trusted_proxies=("127.0.0.1/32",), max_connections_per_ip=1)
    ws, _ = await open_raw_websocket(server.port, source=PLAYER)
    # a stranger claiming to forward for PLAYER (at its cap) is counted as itself, and let in
    spoofer, _ = await open_raw_websocket(
        server.port, source=STRANGER, extra=f"X-Forwarded-For: {PLAYER}\r\nForwarded: for={PLAYER}\r\n"
    )
    addresses = {entry["address"]: entry["connections"] for entry in server.health()["busiest_addresses"]}
    assert addresses == {PLAYER: 1, STRANGER: 1}
    await ws.aclose()
    await spoofer.aclose()


async def test_workers_behind_one_nginx_port_each_on_its_own_path(nginx, tmp_path):
    first = free_consecutive_ports(2)
    port = nginx([first, first + 1])
    group = start_server_process(
        "--workers", "2", "--port", str(first), "--queue-wait", "0.3", "--no-bots", "--no-replays",
        "--data-dir", str(tmp_path), "--trusted-proxy", "127.0.0.1",
        "--public-url", f"ws://127.0.0.1:{port}/w{{worker}}/ws",
    )  # fmt: skip
    try:
        await wait_for_workers(first, 2)
        # one player connected to each worker through nginx: one of them is sent to the other's path to play
        paths = [f"ws://127.0.0.1:{port}/w0/ws", f"ws://127.0.0.1:{port}/w1/ws"]
        async with connect(paths[0], name="one", source_address=PLAYER) as one, connect(paths[1], name="two") as two:
            await join_together(one, two)
            assert one.match == two.match
            assert one.url == two.url and one.url in paths
            await one.send_input(mx=1)
            with trio.fail_after(5):
                while one.view is None or one.view.entities["players"][one.player]["ack"] < 1:
                    await one.receive()
        status, _ = await refused_upgrade(port, "", path="/w7/ws")  # no such worker
        assert status == 404
    finally:
        group.process.terminate()
        group.process.wait(timeout=30)
        if group.process.stdout:
            group.process.stdout.close()
