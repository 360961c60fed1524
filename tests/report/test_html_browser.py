"""The HTML report renders in a real headless Chromium, offline, with the expected content."""

from __future__ import annotations

import subprocess
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from watchkeeper import compare

pytestmark = pytest.mark.service

_FLAGS = [
    "--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
    "--disable-background-networking", "--disable-component-update", "--disable-sync",
    "--disable-extensions",
]  # fmt: skip


def _chromium(chromium: str, tmp_path: Path, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [chromium, *_FLAGS, f"--user-data-dir={tmp_path / 'profile'}", *args],
        capture_output=True, text=True, timeout=120,
    )  # fmt: skip


def test_report_renders_in_chromium(chromium: str, tmp_path: Path) -> None:
    rng = np.random.default_rng(8)
    ref = pd.DataFrame({"speed": rng.normal(50, 5, 2000), "road": rng.choice(["a", "b"], 2000)})
    cur = pd.DataFrame({"speed": rng.normal(60, 5, 2000), "road": rng.choice(["a", "b"], 2000)})
    page = tmp_path / "report.html"
    compare(ref, cur).to_html(page, title="Speed check")

    dom = _chromium(chromium, tmp_path, "--dump-dom", page.as_uri())
    assert dom.returncode == 0, dom.stderr[-2000:]
    text = dom.stdout
    assert "<title>Speed check</title>" in text
    assert "drift detected" in text
    assert 'id="col-speed"' in text
    assert 'id="col-road"' in text
    assert text.count("<svg") >= 2  # one chart per column

    shot = tmp_path / "report.png"
    run = _chromium(
        chromium, tmp_path, "--window-size=1200,1600", f"--screenshot={shot}", page.as_uri()
    )
    assert run.returncode == 0, run.stderr[-2000:]
    data = shot.read_bytes()
    assert data[:8] == b"\x89PNG\r\n\x1a\n"
    # A blank 1200x1600 page compresses to a few kilobytes; text, tables and charts do not.
    assert len(data) > 50_000, f"screenshot of {len(data)} bytes looks blank"
