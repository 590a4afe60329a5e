"""The bot swarm's HTML report, from a real (short, chaotic) swarm run, rendered in Chromium: every plot is
there, with its axes, units and legend."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path


def test_the_swarm_report_renders_with_labelled_plots(server_process, open_page, tmp_path: Path, artifacts):
    server = server_process("--queue-wait", "0.5")
    report_dir = tmp_path / "reports"
    subprocess.run(
        [sys.executable, "-m", "bots", "--url", f"ws://127.0.0.1:{server.port}/ws", "--count", "8",
         "--duration", "8s", "--chaos", "drop=0.1,burst=0.1,storm=0.2", "--report-dir", str(report_dir), "--quiet"],
        check=True,
        timeout=60,
        capture_output=True,
    )  # fmt: skip
    (html,) = report_dir.glob("*/report.html")
    page = open_page(html.as_uri()).page
    figures = page.locator("figure")
    assert figures.count() == 4
    for index in range(4):
        figure = figures.nth(index)
        assert figure.locator("svg").count() == 1
        text = figure.inner_text()
        assert text.strip(), "a plot without a caption"
    svg_text = " ".join(page.locator("figure svg").all_text_contents())
    for label in ("seconds into the run", "bots", "updates per second", "kB per second", "milliseconds", "drop"):
        assert label in svg_text, label
    assert "drop" in page.locator("pre").first.inner_text()  # chaos counts, readable
    page.screenshot(path=str(artifacts / "swarm-report.png"), full_page=True)
