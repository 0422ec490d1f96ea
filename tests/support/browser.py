"""Headless Chromium for the web console's tests (tests/integration/test_console.py), driven by Playwright for Python.

The browser is Debian's `chromium` package (scripts/test installs it as root when /usr/bin/chromium is missing):
Playwright's own browser download cannot work on a machine that reaches only the package registries. Without the
background-networking flags Chromium keeps trying to reach Google's services, which a closed network refuses.
"""

from __future__ import annotations

import os
import shutil
from pathlib import Path

CHROMIUM_ARGS = [
    "--headless=new",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]


def chromium_path() -> Path | None:
    """PAUSABLE_CHROMIUM, else /usr/bin/chromium, else a `chromium` on PATH; None when there is none."""
    for candidate in (os.environ.get("PAUSABLE_CHROMIUM"), "/usr/bin/chromium", shutil.which("chromium")):
        if candidate and Path(candidate).is_file() and os.access(candidate, os.X_OK):
            return Path(candidate)
    return None
