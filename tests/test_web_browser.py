"""The web chat page in headless Chromium: streamed answer, signal card, approval card, approve, position."""

from __future__ import annotations

import os
import re
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
from playwright.sync_api import Browser, Page, expect, sync_playwright

from server.redis_embedded import EmbeddedRedis
from tests.api_support import Script, api_settings, buy_command, running_app

CHROMIUM = "/usr/bin/chromium"
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
SHOTS = Path(os.environ.get("COPILOT_SCREENSHOTS", "/tmp"))


@pytest.fixture(scope="module")
def base_url(
    redis_server: EmbeddedRedis, shared_data: Path, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[str]:
    settings = api_settings(redis_server.url, shared_data, tmp_path_factory.mktemp("web"))
    with running_app(settings, Script()) as url:
        yield url


@pytest.fixture(scope="module")
def browser() -> Iterator[Browser]:
    if not Path(CHROMIUM).exists():
        pytest.fail(f"{CHROMIUM} is missing: `apt-get install -y chromium` (make test does it)")
    with sync_playwright() as pw:
        browser = pw.chromium.launch(executable_path=CHROMIUM, args=ARGS, headless=True)
        yield browser
        browser.close()


@pytest.fixture
def page(browser: Browser, base_url: str) -> Iterator[Page]:
    context = browser.new_context(viewport={"width": 1400, "height": 900})
    page = context.new_page()
    errors: list[str] = []
    page.on("pageerror", lambda exc: errors.append(str(exc)))
    page.goto(base_url)
    yield page
    context.close()
    assert errors == [], f"JavaScript errors on the page: {errors}"


def send(page: Page, text: str) -> None:
    page.fill("#message", text)
    page.click("#send")


def test_chat_streams_an_answer_and_shows_a_signal_card(page: Page) -> None:
    expect(page.locator("#health")).to_contain_text("healthy")
    send(page, "hola desde el navegador")
    expect(page.locator(".msg.user").last).to_have_text("hola desde el navegador")
    expect(page.locator(".msg.assistant").last).to_have_text("Echo: hola desde el navegador")
    send(page, "/signal XAUUSD 15m")
    card = page.get_by_test_id("signal-card")
    expect(card).to_be_visible()
    expect(card).to_contain_text("XAUUSD")
    expect(card).to_contain_text("Confidence")
    expect(card).to_contain_text("AMD phase")
    expect(card).to_contain_text("Killzone")
    page.screenshot(path=str(SHOTS / "copilot_signal.png"), full_page=True)


def test_buy_shows_the_approval_card_and_approve_opens_the_position(page: Page, base_url: str) -> None:
    with httpx.Client(base_url=base_url, timeout=30) as client:
        command = buy_command(client)
        assert client.get("/api/portfolio").json()["positions"] == []
    page.click("#new-session")
    send(page, command)
    card = page.get_by_test_id("approval-card")
    expect(card).to_be_visible()
    expect(card).to_contain_text("BUY")
    expect(card).to_contain_text("At risk")
    expect(card).to_contain_text("% of equity")
    expect(card).to_contain_text("R:R")
    expect(card.locator(".countdown")).to_have_text(re.compile(r"^\d+:\d\d$"))
    page.screenshot(path=str(SHOTS / "copilot_approval.png"), full_page=True)

    card.get_by_role("button", name="Approve").click()
    position = page.get_by_test_id("position")
    expect(position).to_have_count(1)
    expect(position).to_contain_text("BUY")
    expect(position).to_contain_text("XAUUSD")
    expect(page.locator(".msg.assistant").last).to_contain_text("EXECUTED")
    page.screenshot(path=str(SHOTS / "copilot_executed.png"), full_page=True)
    # The page only shows what the broker holds.
    with httpx.Client(base_url=base_url, timeout=30) as client:
        assert len(client.get("/api/portfolio").json()["positions"]) == 1


def test_reload_restores_the_session_with_its_pending_approval(page: Page, base_url: str) -> None:
    with httpx.Client(base_url=base_url, timeout=30) as client:
        command = buy_command(client)
    page.click("#new-session")
    send(page, command)
    expect(page.get_by_test_id("approval-card")).to_be_visible()
    session = page.locator("#session-title").inner_text()
    page.reload()
    expect(page.locator("#session-title")).to_have_text(session)
    expect(page.locator(".msg.user").first).to_have_text(command)
    restored = page.get_by_test_id("approval-card")
    expect(restored).to_be_visible()  # the pending proposal comes back from the checkpoint
    expect(restored.get_by_role("button", name="Approve")).to_be_enabled()


def test_api_key_is_asked_for_and_remembered(
    browser: Browser, redis_server: EmbeddedRedis, shared_data: Path, tmp_path: Path
) -> None:
    keys = {"web-key-0123456789": "webuser"}
    settings = api_settings(redis_server.url, shared_data, tmp_path, server={"api_keys": keys})
    with running_app(settings, Script()) as url:
        context = browser.new_context()
        page = context.new_page()
        page.goto(url)
        expect(page.locator("#key-form")).to_be_visible()  # the server said 401
        page.fill("#api-key", "web-key-0123456789")
        page.click("#key-form button")
        expect(page.locator("#key-form")).to_be_hidden()
        send(page, "hola con clave")
        expect(page.locator(".msg.assistant").last).to_have_text("Echo: hola con clave")
        page.reload()  # the key survives a reload (localStorage)
        expect(page.locator(".msg.user").first).to_have_text("hola con clave")
        expect(page.locator("#key-form")).to_be_hidden()
        context.close()


def test_edit_size_then_approve_by_typing_the_command(page: Page, base_url: str) -> None:
    with httpx.Client(base_url=base_url, timeout=30) as client:
        command = buy_command(client)
        before = len(client.get("/api/portfolio").json()["positions"])
    page.click("#new-session")
    send(page, command)
    first = page.get_by_test_id("approval-card")
    expect(first).to_be_visible()
    first.get_by_role("button", name="Edit…").click()
    first.locator("input[name=size_lots]").fill("0.01")
    first.get_by_role("button", name="Send edit").click()
    cards = page.get_by_test_id("approval-card")
    expect(cards).to_have_count(2)  # the edit went back through the gate: a new proposal
    expect(cards.last).to_contain_text("0.01 lots")
    expect(cards.first.get_by_role("button", name="Approve")).to_be_disabled()
    send(page, "/approve")
    expect(cards.last.get_by_role("button", name="Approve")).to_be_disabled()
    expect(page.get_by_test_id("position")).to_have_count(before + 1)
    expect(page.get_by_test_id("position").last).to_contain_text("0.01 XAUUSD")


def test_close_card_shows_the_position_without_placeholders(page: Page, base_url: str) -> None:
    """A close proposal has no signal reasoning or take-profit math: the card must not show 'null'."""
    with httpx.Client(base_url=base_url, timeout=30) as client:
        command = buy_command(client)
    page.click("#new-session")
    send(page, command)
    expect(page.locator(".msg.assistant").last).to_contain_text("Approval required", timeout=30_000)
    # A click while the page is still busy with a run (the card shows before its run has finished) must
    # wait for that run, not be dropped: hold the page busy, click, then let the run "finish".
    page.evaluate("state.busy = true")
    page.get_by_test_id("approval-card").last.get_by_role("button", name="Approve").click()
    page.wait_for_timeout(300)
    page.evaluate("state.busy = false")
    expect(page.locator(".msg.assistant").last).to_contain_text("EXECUTED", timeout=30_000)
    with httpx.Client(base_url=base_url, timeout=30) as client:
        ticket = client.get("/api/portfolio").json()["positions"][-1]["ticket"]
    send(page, f"/close {ticket}")
    expect(page.locator(".msg.assistant").last).to_contain_text(f"CLOSE position #{ticket}", timeout=30_000)
    card = page.get_by_test_id("approval-card").last
    expect(card).to_contain_text(f"Close #{ticket}")
    assert "null" not in card.inner_text() and "undefined" not in card.inner_text()
    card.get_by_role("button", name="Approve").click()
    expect(page.locator(".msg.assistant").last).to_contain_text("EXECUTED", timeout=30_000)
    with httpx.Client(base_url=base_url, timeout=30) as client:
        assert ticket not in [p["ticket"] for p in client.get("/api/portfolio").json()["positions"]]
