"""A client generated from /openapi.json (openapi-python-client, as a user of the API would) chats, gets a
proposal, approves it and reads the position in the portfolio: the document is enough to drive the API."""

from __future__ import annotations

import importlib
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from types import ModuleType

import httpx
import pytest

from tests.support.api_support import ApiServer, user_keys

USERS = user_keys("bea")
KEY = next(iter(USERS))
PACKAGE = "copilot_client"


@pytest.fixture(scope="module")
def url(serve_api: ApiServer) -> str:
    return serve_api("generated_client", server={"api_keys": USERS})


@pytest.fixture
def generated(url: str, tmp_path: Path) -> Iterator[Path]:
    """The client package, generated into tmp_path from the live server's document."""
    document = tmp_path / "openapi.json"
    document.write_text(httpx.get(f"{url}/openapi.json", timeout=30).text)
    command = [sys.executable, "-m", "openapi_python_client", "generate", "--path", str(document)]
    command += ["--output-path", str(tmp_path / PACKAGE), "--meta", "none"]
    done = subprocess.run(command, capture_output=True, text=True, timeout=180, check=False, cwd=tmp_path)
    assert done.returncode == 0, done.stdout + done.stderr
    sys.path.insert(0, str(tmp_path))
    try:
        yield tmp_path / PACKAGE
    finally:
        sys.path.remove(str(tmp_path))
        for name in [n for n in sys.modules if n == PACKAGE or n.startswith(f"{PACKAGE}.")]:
            del sys.modules[name]


def module(name: str) -> ModuleType:
    return importlib.import_module(f"{PACKAGE}.{name}")


def test_a_generated_client_chats_approves_and_reads_the_portfolio(url: str, generated: Path) -> None:
    models = module("models")
    get_quote = module("api.portfolio.get_quote_api_quote_symbol_get")
    chat = module("api.chat.chat_api_chat_post")
    decide = module("api.sessions.decide_api_sessions_session_id_approval_post")
    get_portfolio = module("api.portfolio.get_portfolio_api_portfolio_get")
    with module("client").AuthenticatedClient(
        base_url=url, token=KEY, raise_on_unexpected_status=True
    ) as api:
        quote = get_quote.sync(symbol="XAUUSD", client=api)
        assert isinstance(quote, models.Quote), quote
        message = f"/buy XAUUSD sl {round(quote.ask - 10, 2)} tp {round(quote.ask + 20, 2)}"
        turn = chat.sync(client=api, body=models.ChatRequest(message=message, session_id="gen-1"))
        assert isinstance(turn, models.ChatResult), turn
        proposal = turn.pending_approval
        assert isinstance(proposal, models.Proposal) and proposal.side == "BUY", turn
        approve = models.ApproveDecision(proposal_id=proposal.proposal_id, decision="approve")
        done = decide.sync("gen-1", client=api, body=approve)
        assert isinstance(done, models.ChatResult), done
        assert isinstance(done.order, models.Outcome) and done.order.status == "executed", done
        portfolio = get_portfolio.sync(client=api)
        assert isinstance(portfolio, models.Portfolio), portfolio
        assert [(p.symbol, p.size) for p in portfolio.positions] == [("XAUUSD", proposal.size_lots)]

        # A 422 parses as its declared model too (HTTPValidationError, the code's own check included).
        refused = chat.sync(client=api, body=models.ChatRequest(message=" ", session_id="gen-1"))
        assert isinstance(refused, models.HTTPValidationError)
        assert [e.loc for e in refused.detail] == [["body", "message"]]
        # The same approval sent again answers with its outcome and places nothing more.
        again = decide.sync("gen-1", client=api, body=approve)
        assert isinstance(again, models.ChatResult) and again.order.status == "executed", again
        positions = get_portfolio.sync(client=api).positions
        assert [p.ticket for p in positions] == [p.ticket for p in portfolio.positions]
