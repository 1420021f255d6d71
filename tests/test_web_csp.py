"""The Content-Security-Policy in headless Chromium: the page, /docs and /redoc run with no violation."""

from __future__ import annotations

import re
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import pytest
from playwright.sync_api import Browser, Page, expect

from tests.support.api_support import ApiServer, Script
from tests.support.browser import chromium

# Recorded by the page itself: every securitypolicyviolation event, from the first script on.
RECORD_VIOLATIONS = """
window.__csp = [];
document.addEventListener('securitypolicyviolation', (e) =>
  window.__csp.push(
    `${e.violatedDirective} blocked ${e.blockedURI || 'inline'} (${e.sourceFile}:${e.lineNumber})`));
"""


@pytest.fixture(scope="module")
def base_url(serve_api: ApiServer) -> str:
    return serve_api("csp", Script())


@pytest.fixture(scope="module")
def browser() -> Iterator[Browser]:
    with chromium() as browser:
        yield browser


@dataclass
class Watched:
    page: Page
    console_errors: list[str]

    def forget(self, violation: str) -> None:
        """Drop the violations (and their console lines) a test caused on purpose."""
        self.page.evaluate(
            "(v) => { window.__csp = window.__csp.filter((x) => !x.startsWith(v)); }", violation
        )
        self.console_errors[:] = [t for t in self.console_errors if "Executing inline script" not in t]


@pytest.fixture
def watched(browser: Browser, base_url: str) -> Iterator[Watched]:
    """A page that records CSP violations and console errors; asserts none at the end. Requests leaving the
    server are aborted (no internet here; the policy must hold without it)."""
    context = browser.new_context(viewport={"width": 1366, "height": 768})
    context.add_init_script(RECORD_VIOLATIONS)
    page = context.new_page()
    console: list[str] = []
    page.on("console", lambda msg: console.append(msg.text) if msg.type == "error" else None)
    page.on("pageerror", lambda exc: console.append(str(exc)))

    def only_local(route: Any) -> None:
        if route.request.url.startswith(base_url):
            route.continue_()
        else:
            route.abort()

    page.route("**/*", only_local)
    yield Watched(page, console)
    violations = page.evaluate("window.__csp")
    context.close()
    assert violations == [], f"CSP violations: {violations}"
    assert [text for text in console if "Content Security Policy" in text] == [], console


def test_the_page_runs_under_its_policy(watched: Watched, base_url: str) -> None:
    page = watched.page
    response = page.goto(base_url)
    assert response is not None and "script-src 'self';" in response.headers["content-security-policy"]
    expect(page.locator("#live")).to_have_text("live", timeout=15_000)  # modules ran, the feed is open
    expect(page.locator("#health")).to_contain_text("healthy")
    expect(page.locator("#chart")).to_have_attribute("data-bars", re.compile(r"^[1-9]\d*$"))
    # The chart library's attribution logo is styled by the one inline <style> the policy allows by hash.
    logo = page.locator("a#tv-attr-logo")
    expect(logo).to_have_count(1)
    assert logo.evaluate("(a) => getComputedStyle(a).position") == "absolute"
    page.fill("#message", "/signal XAUUSD 15m")
    page.click("#send")
    expect(page.get_by_test_id("signal-card")).to_be_visible()
    # What the policy exists for: an injected inline script does not run.
    ran = page.evaluate("""() => { const s = document.createElement('script');
        s.textContent = 'window.__ran = 1'; document.body.append(s); return window.__ran === 1; }""")
    assert ran is False
    # The recorder sees that violation, so its silence elsewhere means there was none.
    recorded = page.evaluate("window.__csp")
    assert [v.split(" (")[0] for v in recorded] == ["script-src-elem blocked inline"], recorded
    watched.forget("script-src-elem blocked inline")


def test_swagger_ui_runs_under_its_policy(watched: Watched, base_url: str) -> None:
    page = watched.page
    page.goto(f"{base_url}/docs")
    expect(page.locator(".swagger-ui .info .title")).to_contain_text("Trading Copilot")
    expect(page.locator(".opblock-tag-section").first).to_be_visible()
    page.locator(".opblock-summary").first.click()  # an operation opens: the UI's scripts work
    expect(page.locator(".opblock-body").first).to_be_visible()


def test_redoc_runs_under_its_policy(watched: Watched, base_url: str) -> None:
    page = watched.page
    page.goto(f"{base_url}/redoc")
    expect(page.locator("h1").first).to_contain_text("Trading Copilot", timeout=15_000)
    expect(page.locator("[role=search] input, input[placeholder=Search]").first).to_be_visible()
