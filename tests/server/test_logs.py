"""`--log-format json`: every line a JSON object, events carrying their connection, player and match ids; a
client's mistake is one line, never a traceback."""

from __future__ import annotations

import json
import re
import subprocess
import sys

import trio

from bots.client import connect
from tests.server.rawws import http_exchange, upgrade_request


async def test_json_logs_are_one_object_a_line_with_ids(tmp_path):
    log = tmp_path / "server.log"
    with log.open("wb") as log_file:
        process = subprocess.Popen(
            [sys.executable, "-m", "server", "--port", "0", "--log-format", "json", "--queue-wait", "0"],
            stdout=subprocess.PIPE,
            stderr=log_file,
        )
    try:
        assert process.stdout is not None
        found = re.search(rb"http://127\.0\.0\.1:(\d+)/", process.stdout.readline())
        assert found
        port = int(found.group(1))
        async with connect(f"ws://127.0.0.1:{port}/ws", name="logged") as client:
            await client.join()
            player = client.authenticated.player if client.authenticated else None
            match = client.match
        refused = await http_exchange(port, upgrade_request(port, key=b"not-a-key"))
        assert refused.status == 400
        await trio.sleep(0.5)
    finally:
        process.terminate()
        process.wait(timeout=10)
        if process.stdout is not None:
            process.stdout.close()
    lines = [line for line in log.read_text().splitlines() if line.strip()]
    events = [json.loads(line) for line in lines]  # every line is one JSON object
    assert all({"timestamp", "level", "logger", "message"} <= event.keys() for event in events)
    joined = next(event for event in events if "joined as player" in event["message"])
    assert joined["player"] == player and joined["match"] == match and isinstance(joined["connection"], int)
    closed = next(event for event in events if event["message"].startswith("session") and "closed" in event["message"])
    assert closed["player"] == player and closed["close_code"] == 1000
    assert not any("exc_info" in event or event["level"] in ("ERROR", "CRITICAL") for event in events), events
