"""The HTML audit report, written by `splitkey audit report`, rendered by headless Chromium.

Needs Debian's `chromium` package, which scripts/setup.sh installs. Without it
the test fails, unless SPLITKEY_SKIP_BROWSER_TESTS=1 is set to skip it.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys

import pytest
from PIL import Image

from splitkey.audit.charts import PALETTE
from tests.servers import REPO_ROOT
from tests.test_audit_support import build_two_day_logs

CHROMIUM_FLAGS = [
    "--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
    "--disable-background-networking", "--disable-component-update", "--disable-sync", "--hide-scrollbars",
]
CHART_COUNT = 4
# Rows without chart colour between two charts, in pixels: the heading and margins between them.
MIN_GAP_PX = 30


def _chromium() -> str:
    for name in ("chromium", "chromium-browser"):
        path = shutil.which(name)
        if path:
            return path
    if os.environ.get("SPLITKEY_SKIP_BROWSER_TESTS") == "1":
        pytest.skip("chromium is not installed and SPLITKEY_SKIP_BROWSER_TESTS=1")
    pytest.fail("chromium is not installed; run scripts/setup.sh (installs Debian's chromium) "
                "or set SPLITKEY_SKIP_BROWSER_TESTS=1 to skip this test")


def _hex_rgb(colour: str) -> tuple[int, int, int]:
    return tuple(int(colour[i:i + 2], 16) for i in (1, 3, 5))  # type: ignore[return-value]


def _chart_bands(image: Image.Image) -> list[tuple[int, int]]:
    """Return (first row, last row) of each vertical band of rows that contains chart colours."""
    palette = {_hex_rgb(colour) for colour in PALETTE}
    rgb = image.convert("RGB")
    width, height = rgb.size
    pixels = rgb.load()
    rows = [y for y in range(height) if sum(1 for x in range(0, width, 2) if pixels[x, y] in palette) >= 3]
    bands: list[tuple[int, int]] = []
    for y in rows:
        if bands and y - bands[-1][1] <= MIN_GAP_PX:
            bands[-1] = (bands[-1][0], y)
        else:
            bands.append((y, y))
    return bands


def test_report_charts_render_in_chromium(tmp_path):
    chromium = _chromium()
    logs = build_two_day_logs(tmp_path)
    report = tmp_path / "report.html"
    written = subprocess.run(
        [sys.executable, "-m", "client.cli.main", "audit", "report", "-o", str(report),
         "--keystore-export", str(logs["keystore"]), "--secret-export", str(logs["secret"]), "--burst-limit", "10"],
        capture_output=True, text=True, cwd=REPO_ROOT, timeout=60,
    )
    assert written.returncode == 0, written.stderr

    screenshot = tmp_path / "report.png"
    shot = subprocess.run(
        [chromium, *CHROMIUM_FLAGS, f"--user-data-dir={tmp_path / 'chromium-profile'}",
         f"--screenshot={screenshot}", "--window-size=1000,1800", report.as_uri()],
        capture_output=True, text=True, timeout=90,
    )
    assert shot.returncode == 0, shot.stderr[-2000:]
    assert screenshot.exists(), f"chromium wrote no screenshot:\n{shot.stderr[-2000:]}"
    print(f"screenshot of the audit report: {screenshot}")

    with Image.open(screenshot) as image:
        assert image.size == (1000, 1800)
        bands = _chart_bands(image)
    assert len(bands) >= CHART_COUNT, f"found chart colours in {len(bands)} bands of rows: {bands}"
    assert all(last - first >= 10 for first, last in bands[:CHART_COUNT]), bands
