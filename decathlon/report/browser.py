"""Headless Chromium, the one way the suite renders its leaderboard page: to a DOM (tests)
or to a PNG screenshot (`decathlon collect --screenshot`).

Chromium runs with everything that could reach the network switched off and a throw-away
profile folder, so rendering reads the page file alone. The page is self-contained, so no
fetch is ever needed.
"""
from __future__ import annotations

import os
import shutil
import subprocess
import tempfile
from pathlib import Path

from decathlon.files import write_bytes_atomic

CHROMIUM_NAMES = ("chromium", "chromium-browser")
DEBIAN_CHROMIUM = Path("/usr/bin/chromium")
RENDER_TIMEOUT_S = 120
WINDOW_SIZE = "1400,2000"
PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"
QUIET_FLAGS = ("--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
               "--disable-background-networking", "--disable-component-update", "--disable-sync")


class BrowserError(ValueError):
    """Chromium is missing, or failed to render a page."""


def find_chromium() -> Path | None:
    """Debian's /usr/bin/chromium, else the first Chromium on PATH, else None."""
    if DEBIAN_CHROMIUM.is_file() and os.access(DEBIAN_CHROMIUM, os.X_OK):
        return DEBIAN_CHROMIUM
    found = next((shutil.which(name) for name in CHROMIUM_NAMES if shutil.which(name)), None)
    return Path(found) if found else None


def require_chromium(what: str = "rendering the page") -> Path:
    """The Chromium to run, or BrowserError saying `what` needs one and how to install it."""
    chromium = find_chromium()
    if chromium is None:
        raise BrowserError(f"{what} needs Chromium (/usr/bin/chromium or chromium on PATH); "
                           "on Debian: apt-get install chromium")
    return chromium


def _render(url: str, *flags: str) -> subprocess.CompletedProcess:
    chromium = require_chromium()
    with tempfile.TemporaryDirectory(prefix="decathlon-chromium-") as profile:
        command = [str(chromium), *QUIET_FLAGS, f"--user-data-dir={profile}", *flags, url]
        try:
            done = subprocess.run(command, capture_output=True, text=True, timeout=RENDER_TIMEOUT_S,
                                  stdin=subprocess.DEVNULL)
        except subprocess.TimeoutExpired as err:
            raise BrowserError(f"{chromium} did not finish rendering {url} within {RENDER_TIMEOUT_S} s") from err
    if done.returncode != 0:
        last = (done.stderr.strip().splitlines() or ["no output"])[-1]
        raise BrowserError(f"{chromium} failed to render {url} (exit {done.returncode}): {last}")
    return done


def page_url(page: Path, fragment: str = "") -> str:
    """file:// URL of a page, with an optional fragment such as 'sort=<table>:<column>:desc'."""
    return Path(page).resolve().as_uri() + (f"#{fragment}" if fragment else "")


def dump_dom(page: Path, fragment: str = "") -> str:
    """The page's DOM after its scripts ran (sorting from the fragment included), as HTML."""
    return _render(page_url(page, fragment), "--dump-dom").stdout


def screenshot(page: Path, png: Path, fragment: str = "", window_size: str = WINDOW_SIZE) -> Path:
    """Render `page` into `png`, written atomically: a failed render leaves the old file. Chromium
    picks the image format by the file's extension, so it writes into a temporary folder first."""
    with tempfile.TemporaryDirectory(prefix="decathlon-screenshot-") as folder:
        shot = Path(folder) / "page.png"
        done = _render(page_url(page, fragment), f"--screenshot={shot}", f"--window-size={window_size}")
        data = shot.read_bytes() if shot.is_file() else b""
    if not data.startswith(PNG_SIGNATURE):
        last = (done.stderr.strip().splitlines() or ["no output"])[-1]
        raise BrowserError(f"{require_chromium()} wrote no PNG screenshot of {page}: {last}")
    return write_bytes_atomic(png, data)
