"""The web page in headless Chromium: the model's Markdown rendered (bold, lists, code, tables) and sanitised,
hostile HTML in a model reply, an alert text and a session name inert (a global flag the payloads would set
stays unset, and the DOM holds no such element or attribute), and the preferences panel."""

from __future__ import annotations

import re
import uuid
from collections.abc import Iterator
from datetime import timedelta
from pathlib import Path
from typing import Any

import httpx
import pytest
from fastapi import FastAPI
from langchain_core.messages import AIMessage, BaseMessage, HumanMessage, SystemMessage
from playwright.sync_api import Browser, Page, expect

from server.app import create_app
from tests.support.api_support import Script, api_settings, buy_command, scripted_model
from tests.support.browser import chromium, open_page
from tests.support.serving import serve_app
from tools.redis_embedded import EmbeddedRedis

MARKDOWN_REPLY = """**BUY** XAUUSD, *carefully*:

- entry `4400.5`
- stop loss below the low

```
/buy XAUUSD sl 4390 tp 4420
```

| level | price |
|-------|-------|
| SL    | 4390  |
| TP    | 4420  |
"""
# Each payload would set window.__pwned if anything ran.
HOSTILE = [
    '<img src=x onerror="window.__pwned=1">',
    "<script>window.__pwned=2</script>",
    "[click me](javascript:window.__pwned=3)",
    '<a href="javascript:window.__pwned=4">link</a>',
    '<svg onload="window.__pwned=5"></svg>',
    '<iframe src="javascript:window.__pwned=6"></iframe>',
    '<p style="color:red" onclick="window.__pwned=7">para</p>',
    "[data](data:text/html;base64,PHNjcmlwdD53aW5kb3cuX19wd25lZD04PC9zY3JpcHQ+)",
]
HOSTILE_REPLY = "Here you go:\n\n" + "\n\n".join(HOSTILE)
ALERT_TEXT = '<img src=x onerror="window.__pwned=9"> <script>window.__pwned=10</script> **gold** up'
SESSION_NAME = 'x"><img src=x onerror="window.__pwned=11"><script>window.__pwned=12</script>'

INERT = """() => {
    const log = document.body;
    const bad = [...log.querySelectorAll('*')].filter((n) =>
        [...n.attributes].some((a) => a.name.startsWith('on') || /^\\s*(javascript|data):/i.test(a.value)));
    return {
        pwned: window.__pwned === undefined ? null : window.__pwned,
        img: document.querySelectorAll('#log img, #sessions img, #session-title img').length,
        script: document.querySelectorAll('body script').length,
        svg: document.querySelectorAll('#log svg').length,
        iframe: document.querySelectorAll('iframe').length,
        styled: document.querySelectorAll('#log [style]').length,
        bad: bad.map((n) => n.outerHTML.slice(0, 120)),
    };
}"""
CLEAN = {"pwned": None, "img": 0, "script": 0, "svg": 0, "iframe": 0, "styled": 0, "bad": []}


class Replies(Script):
    """The usual scripted model, plus a Markdown answer and a hostile one on demand."""

    def __call__(self, messages: list[BaseMessage]) -> AIMessage | str:
        last = next(m for m in reversed(messages) if not isinstance(m, SystemMessage))
        said = str(last.content) if isinstance(last, HumanMessage) else ""
        if "markdown please" in said:
            return MARKDOWN_REPLY
        if "hostile please" in said:
            return HOSTILE_REPLY
        return super().__call__(messages)


@pytest.fixture(scope="module")
def app(redis_server: EmbeddedRedis, shared_data: Path, tmp_path_factory: pytest.TempPathFactory) -> FastAPI:
    settings = api_settings(
        redis_server.url, shared_data, tmp_path_factory.mktemp("web-md"), broker={"tick_seconds": 1}
    )
    return create_app(settings, chat_model=scripted_model(Replies()))


@pytest.fixture(scope="module")
def base_url(app: FastAPI) -> Iterator[str]:
    with serve_app(app) as url:
        yield url


@pytest.fixture(scope="module")
def browser() -> Iterator[Browser]:
    with chromium() as browser:
        yield browser


@pytest.fixture
def page(browser: Browser, base_url: str) -> Iterator[Page]:
    with httpx.Client(base_url=base_url, timeout=30) as client:  # the local user's preferences: defaults
        reset = {"language": None, "symbol": None, "timeframe": None, "risk_per_trade_pct": None}
        client.put("/api/preferences", json={**reset, "notify": None}).raise_for_status()
    yield from open_page(browser, base_url, session=f"md-{uuid.uuid4().hex[:8]}")


def send(page: Page, text: str) -> None:
    page.fill("#message", text)
    page.click("#send")


def inert(page: Page) -> dict[str, Any]:
    return page.evaluate(INERT)  # type: ignore[no-any-return]


def test_the_models_markdown_is_rendered(page: Page) -> None:
    send(page, "markdown please")
    answer = page.locator(".msg.assistant").last
    expect(answer.locator("strong")).to_have_text("BUY")
    expect(answer.locator("em")).to_have_text("carefully")
    expect(answer.locator("ul > li")).to_have_count(2)
    expect(answer.locator("li code")).to_have_text("4400.5")
    expect(answer.locator("pre code")).to_contain_text("/buy XAUUSD sl 4390 tp 4420")
    expect(answer.locator("table th")).to_have_text(["level", "price"])
    expect(answer.locator("table tbody tr")).to_have_count(2)
    assert "**" not in answer.inner_text()
    # The transcript read back (a reload) renders the same way.
    page.reload()
    expect(page.locator(".msg.assistant").last.locator("table tbody tr")).to_have_count(2)


def test_hostile_html_in_a_model_reply_runs_nothing(page: Page) -> None:
    send(page, "hostile please")
    answer = page.locator(".msg.assistant").last
    expect(answer).to_contain_text("Here you go")
    expect(answer).to_contain_text("click me")  # the link's words stay, without the javascript: target
    expect(answer.locator("p", has_text="para")).to_have_count(1)
    assert inert(page) == CLEAN
    assert answer.locator("a[href]").count() == 0
    answer.get_by_text("click me").click()
    answer.get_by_text("link").click()
    page.wait_for_timeout(300)
    assert inert(page) == CLEAN
    page.reload()  # the stored transcript, rendered again
    expect(page.locator(".msg.assistant").last).to_contain_text("Here you go")
    assert inert(page) == CLEAN


def test_a_hostile_session_name_runs_nothing(browser: Browser, base_url: str) -> None:
    pages = open_page(browser, base_url, session=SESSION_NAME)
    page = next(pages)
    try:
        expect(page.locator("#session-title")).to_have_text(f"session {SESSION_NAME}")
        expect(page.locator("#sessions button.active")).to_have_text(SESSION_NAME)
        send(page, "hola")  # the server refuses the id; the page says so as text
        expect(page.locator(".msg.error").last).to_contain_text("session_id")
        assert inert(page) == CLEAN
    finally:
        next(pages, None)


def test_the_preferences_panel_changes_what_a_new_session_and_the_gate_do(page: Page, base_url: str) -> None:
    page.click("#prefs-panel summary")
    form = page.locator("#prefs-form")
    expect(form.locator("[name=risk_per_trade_pct]")).to_have_value("1")
    expect(page.locator("#prefs-cap")).to_have_text("cap 1 %")
    # Out of bounds: refused by the server, the reason shown, nothing stored.
    form.locator("[name=risk_per_trade_pct]").fill("5")
    form.locator("button[type=submit]").click()
    expect(page.locator("#prefs-status")).to_contain_text(re.compile(r"Not saved: risk_per_trade_pct: .*1"))
    with httpx.Client(base_url=base_url, timeout=30) as client:
        assert client.get("/api/preferences").json()["risk_per_trade_pct"] == 1.0
        command = buy_command(client)
    form.locator("[name=risk_per_trade_pct]").fill("0.5")
    form.locator("[name=timeframe]").select_option("1h")
    form.locator("[name=language]").select_option("en")
    form.locator("input[name=notify][value=alerts]").uncheck()
    form.locator("button[type=submit]").click()
    expect(page.locator("#prefs-status")).to_contain_text("Saved")
    with httpx.Client(base_url=base_url, timeout=30) as client:
        stored = client.get("/api/preferences").json()
    assert stored == {
        "language": "en",
        "symbol": "XAUUSD",
        "timeframe": "1h",
        "risk_per_trade_pct": 0.5,
        "notify": ["fills", "closes", "expiries"],
    }
    page.click("#new-session")
    expect(page.locator("#timeframes .tf.active")).to_have_text("1h")
    send(page, command)
    card = page.get_by_test_id("approval-card")
    expect(card).to_contain_text("your risk 0.5 %, cap 1 %")
    # /prefs typed in the chat changes the same values; the panel follows.
    send(page, "/prefs symbol EURUSD")
    expect(page.locator(".msg.assistant").last).to_contain_text("symbol: EURUSD")
    expect(form.locator("[name=symbol]")).to_have_value("EURUSD")
    page.click("#new-session")
    expect(page.locator("#chart-symbol")).to_have_text("EURUSD")


# Last: it moves the market clock on, which the other tests' /buy must not meet.
def test_a_hostile_alert_text_runs_nothing_when_set_or_when_it_fires(page: Page, app: FastAPI) -> None:
    send(page, f"/alert XAUUSD above 1 {ALERT_TEXT}")
    answer = page.locator(".msg.assistant").last
    expect(answer).to_contain_text("gold")
    assert inert(page) == CLEAN
    clock = app.state.copilot.services.clock
    notices = page.get_by_test_id("notice")
    for _ in range(30):  # the market moves on; the next bar is above 1, so the alert fires
        if notices.count():
            break
        clock.history_anchor += timedelta(minutes=15)
        page.wait_for_timeout(700)
    expect(notices.last).to_contain_text("<img src=x")  # shown as the text it is
    assert inert(page) == CLEAN
