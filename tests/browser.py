"""A real browser for tests: Debian's Chromium driven by Playwright, never a downloaded build.

`make test` installs the `chromium` package when it is missing (scripts/system-deps.sh);
Playwright's own browser download is never used. The flags keep Chromium off the network
it would otherwise reach for at start (updates, sync, safe browsing), which this suite
does not have, and let it run as root in a container.

    async with chromium() as browser:
        page = await browser.new_page()
"""

from __future__ import annotations

import contextlib
import os
import shutil
from collections.abc import AsyncIterator

from playwright.async_api import Browser, async_playwright

FLAGS = (
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--disable-default-apps",
)


def chromium_path() -> str:
    """The system Chromium: CHROMIUM if set, else `chromium` on PATH."""
    path = os.environ.get("CHROMIUM") or shutil.which("chromium")
    if path is None:
        raise RuntimeError(
            "the browser tests need Debian's chromium: apt-get install chromium "
            "(make test installs it when run as root), or set CHROMIUM to its path"
        )
    return path


@contextlib.asynccontextmanager
async def chromium() -> AsyncIterator[Browser]:
    """A headless Chromium, closed on exit whatever happened."""
    async with async_playwright() as playwright:
        browser = await playwright.chromium.launch(
            executable_path=chromium_path(), headless=True, args=list(FLAGS)
        )
        try:
            yield browser
        finally:
            await browser.close()
