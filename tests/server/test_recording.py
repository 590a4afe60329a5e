"""Every match recorded as it runs: listed and downloaded over HTTP, and re-simulated in another process (another
hash seed) to the same state hashes; corrupt, truncated, foreign and tampered files are told apart."""

from __future__ import annotations

import math
import os
import subprocess
import sys
import zlib
from pathlib import Path

import trio

from bots.client import connect
from game import Delta, Snapshot
from server.app import render_replay_view
from server.codec import pack_replay_record, unpack_replay_records
from server.recording import VERSION
from tests.conftest import ws_url
from tests.server.rawws import http_get


async def _play_a_short_match(server) -> str:
    """Two players move and fire (with view ticks) until a 3-second match ends; returns its id."""
    url = ws_url(server)
    async with connect(url, name="alice") as alice, connect(url, name="bob") as bob:
        await alice.join()
        await bob.join()

        async def play(client, phase: float) -> None:
            for step in range(10_000):
                angle = phase + step / 4
                await client.send_input(
                    mx=round(math.cos(angle)), my=round(math.sin(angle)), aim=math.sin(angle) * 3, fire=step % 3 != 0
                )
                await trio.sleep(0.05)

        async with trio.open_nursery() as nursery:
            nursery.start_soon(play, alice, 0.0)
            nursery.start_soon(play, bob, 1.5)
            with trio.fail_after(10):
                while True:
                    message = await bob.receive()
                    if isinstance(message, Delta | Snapshot) and any(e.kind == "match_end" for e in message.events):
                        break
            nursery.cancel_scope.cancel()
        return alice.match or ""


def _verify(path: Path, *, hash_seed: str = "12345") -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "server.replay", str(path), "--verify"],
        capture_output=True,
        text=True,
        timeout=60,
        env={**os.environ, "PYTHONHASHSEED": hash_seed},
    )


async def test_a_recorded_match_replays_to_the_same_hashes_in_another_process(server_factory, tmp_path):
    replays = tmp_path / "replays"
    server = await server_factory(replay_dir=replays, match_seconds=3)
    match_id = await _play_a_short_match(server)
    with trio.fail_after(5):
        while not list(replays.glob(f"*_{match_id}.arena-replay")):
            await trio.sleep(0.1)
        (path,) = replays.glob(f"*_{match_id}.arena-replay")
        while b"end" not in zlib.decompressobj().decompress(path.read_bytes()):
            await trio.sleep(0.1)

    listing = (await http_get(server.port, "/replays")).json()["replays"]
    replay_id = path.name.removesuffix(".arena-replay")
    assert [entry["id"] for entry in listing] == [replay_id]
    assert listing[0]["match"] == match_id
    download = await http_get(server.port, f"/replays/{replay_id}")
    assert download.status == 200 and download.body == path.read_bytes()
    assert (await http_get(server.port, "/replays/..%2Fetc")).status == 404

    # the viewer's download, rendered in a process of its own (server.replay_view): what the server's own code makes
    view = await http_get(server.port, f"/replays/{replay_id}/view")
    assert view.status == 200 and view.body == render_replay_view(path.read_bytes())
    foreign = replays / "20260101T000000_foreign.arena-replay"
    foreign.write_bytes(os.urandom(4000))
    refused = await http_get(server.port, "/replays/20260101T000000_foreign/view")
    assert refused.status == 422 and b"not an Arena replay" in refused.body and b"Traceback" not in refused.body

    result = _verify(path)
    assert result.returncode == 0, result.stderr
    verified = result.stdout.splitlines()[-1]
    assert verified.startswith("verified: ") and "state hashes match" in verified
    assert int(verified.split()[3]) >= 1  # a hash every 5 s and one of the final state

    header, *records = unpack_replay_records(zlib.decompress(path.read_bytes()))
    assert header["match"] == match_id and header["version"] == VERSION
    fired = [i for r in records if r[0] == "t" for i in r[3].values() if i and i[4]]
    assert fired and all(isinstance(i[5], int) for i in fired)  # view ticks are recorded

    # a hash changed: the first divergence is named by its tick
    tampered = [r if r[0] != "hash" else ["hash", r[1], "0" * 32] for r in records]
    first_hash_tick = next(r[1] for r in records if r[0] == "hash")
    tampered_path = tmp_path / "tampered.arena-replay"
    tampered_path.write_bytes(zlib.compress(b"".join(pack_replay_record(r) for r in [header, *tampered])))
    result = _verify(tampered_path)
    assert result.returncode == 1 and f"diverged at tick {first_hash_tick}" in result.stderr

    # truncated, as a crash leaves it: what is there still verifies, and the output says it is incomplete
    truncated = tmp_path / "truncated.arena-replay"
    truncated.write_bytes(path.read_bytes()[: len(path.read_bytes()) // 2])
    result = _verify(truncated)
    assert "no end record" in result.stdout and result.returncode == 0, result.stderr

    for name, data, message in (
        ("foreign", os.urandom(4000), "not an Arena replay"),
        ("corrupt", path.read_bytes()[:10] + bytes(50) + path.read_bytes()[60:], "corrupt"),
        ("not msgpack", zlib.compress(b"\xc1" * 100), "not"),
        ("other version", zlib.compress(pack_replay_record({"format": "arena-replay", "version": 99})), "version 99"),
    ):
        bad = tmp_path / f"{name}.arena-replay"
        bad.write_bytes(data)
        result = _verify(bad)
        assert result.returncode == 1, (name, result.stdout)
        assert message in result.stderr and "Traceback" not in result.stderr, (name, result.stderr)

    # a version 1 file (same records, hashes of states with whole-number positions at walls): replays, not checked
    records = unpack_replay_records(zlib.decompress(path.read_bytes()))
    records[0]["version"] = 1
    old = tmp_path / "version-1.arena-replay"
    old.write_bytes(zlib.compress(b"".join(pack_replay_record(record) for record in records)))
    result = _verify(old)
    assert result.returncode == 1 and "a version 1 replay" in result.stderr and "Traceback" not in result.stderr
    result = subprocess.run(
        [sys.executable, "-m", "server.replay", str(old)], capture_output=True, text=True, timeout=60, check=False
    )
    assert result.returncode == 0 and " ticks (" in result.stdout, result.stderr


async def test_without_a_replay_dir_nothing_is_recorded(server):
    response = await http_get(server.port, "/replays")
    assert response.status == 404 and b"--replay-dir" in response.body
