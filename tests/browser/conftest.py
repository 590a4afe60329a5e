"""Fixtures for browser tests: the real server as a subprocess, and Debian's Chromium driven by Playwright."""

from __future__ import annotations

import re
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import attrs
import pytest
from playwright.sync_api import Browser, ConsoleMessage, Page, sync_playwright

CHROMIUM = "/usr/bin/chromium"
CHROMIUM_ARGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]
ARTIFACTS = Path(__file__).resolve().parents[2] / "test-artifacts"


@attrs.define(eq=False)
class ServerProcess:
    process: subprocess.Popen[bytes]
    port: int
    scheme: str = "http"

    @property
    def base_url(self) -> str:
        return f"{self.scheme}://127.0.0.1:{self.port}"


def start_server_process(*options: str) -> ServerProcess:
    """`python -m server --port 0 *options`, once it says where it listens."""
    process = subprocess.Popen(
        [sys.executable, "-m", "server", "--port", "0", *options],
        stdout=subprocess.PIPE,
        stderr=subprocess.DEVNULL,
    )
    assert process.stdout is not None
    deadline = time.monotonic() + 15
    while time.monotonic() < deadline:
        line = process.stdout.readline()
        found = re.search(rb"(https?)://127\.0\.0\.1:(\d+)/", line)
        if found:
            return ServerProcess(process, int(found.group(2)), scheme=found.group(1).decode())
        if not line and process.poll() is not None:
            break
    process.kill()
    raise RuntimeError("the Arena server did not start: run `python -m server --port 0` to see why")


@pytest.fixture
def server_process() -> Iterator[Callable[..., ServerProcess]]:
    """`server_process("--match-seconds", "60")` starts a server; all are stopped after the test."""
    started: list[ServerProcess] = []

    def start(*options: str) -> ServerProcess:
        server = start_server_process(*options)
        started.append(server)
        return server

    yield start
    for server in started:
        server.process.terminate()
        try:
            server.process.wait(timeout=10)
        except subprocess.TimeoutExpired:
            server.process.kill()
            server.process.wait()
        if server.process.stdout:
            server.process.stdout.close()


@pytest.fixture(scope="session")
def browser() -> Iterator[Browser]:
    if not Path(CHROMIUM).exists():
        pytest.fail(f"{CHROMIUM} is missing: run `bash scripts/setup.sh --test-packages` (installs Debian's chromium)")
    with sync_playwright() as playwright:
        chromium = playwright.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS, headless=True)
        yield chromium
        chromium.close()


@attrs.define(eq=False)
class PageWithConsole:
    page: Page
    errors: list[str] = attrs.field(factory=list)


@pytest.fixture
def open_page(browser: Browser) -> Iterator[Callable[[str], PageWithConsole]]:
    """`open_page(url)` opens the page in a fresh browser context and records its console errors."""
    contexts = []

    def open_(url: str, *, ignore_https_errors: bool = False, **context_options: Any) -> PageWithConsole:
        """`context_options` go to Playwright's new_context: e.g. a phone's viewport with has_touch=True."""
        options = {"viewport": {"width": 1280, "height": 760}, **context_options}
        context = browser.new_context(ignore_https_errors=ignore_https_errors, **options)
        contexts.append(context)
        page = context.new_page()
        watched = PageWithConsole(page)

        def on_console(message: ConsoleMessage) -> None:
            if message.type == "error":
                watched.errors.append(message.text)

        page.on("console", on_console)
        page.on("pageerror", lambda error: watched.errors.append(str(error)))
        page.goto(url)
        return watched

    yield open_
    for context in contexts:
        context.close()


@pytest.fixture(scope="session")
def artifacts() -> Path:
    ARTIFACTS.mkdir(exist_ok=True)
    return ARTIFACTS
