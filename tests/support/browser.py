"""Headless Chromium for the web page's tests: Debian's /usr/bin/chromium under Playwright (which cannot
download its own browser here), with the same options for every test module."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest
from playwright.sync_api import Browser, Page, expect, sync_playwright

CHROMIUM = "/usr/bin/chromium"
DESKTOP = {"width": 1366, "height": 768}
ARGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]


@contextmanager
def chromium() -> Iterator[Browser]:
    """A headless Chromium, closed on exit; fails the test (not skips) where the browser is not installed."""
    if not Path(CHROMIUM).exists():
        pytest.fail(f"{CHROMIUM} is missing: `apt-get install -y chromium` (make test does it)")
    with sync_playwright() as pw:
        browser = pw.chromium.launch(executable_path=CHROMIUM, args=ARGS, headless=True)
        yield browser
        browser.close()


def open_page(
    browser: Browser, url: str, viewport: dict[str, int] = DESKTOP, session: str | None = None
) -> Iterator[Page]:
    """The web page, live (its feed connected); `session`: what it remembers as its session (localStorage),
    set before it loads. Fails the test on any JavaScript error the page raised."""
    context = browser.new_context(viewport=viewport)  # type: ignore[arg-type]
    if session is not None:
        context.add_init_script(f"localStorage.setItem('copilot.session', {session!r})")
    page = context.new_page()
    errors: list[str] = []
    page.on("pageerror", lambda exc: errors.append(str(exc)))
    page.goto(url)
    expect(page.locator("#live")).to_have_text("live", timeout=15_000)
    yield page
    context.close()
    assert errors == [], f"JavaScript errors on the page: {errors}"
