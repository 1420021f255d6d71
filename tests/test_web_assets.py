"""The web page's JavaScript: linted ES modules; the vendored chart library as npm ships it."""

from __future__ import annotations

import subprocess
from pathlib import Path

import pytest

from tests.support import ROOT

VENDOR = ROOT / "server" / "web" / "vendor" / "lightweight-charts"
PACKAGE = ROOT / "node_modules" / "lightweight-charts"
ESLINT = ROOT / "node_modules" / ".bin" / "eslint"


def _needs_node_modules(path: Path) -> None:
    if not path.exists():
        pytest.fail(f"{path} is missing: run `make js` (make test and make lint do it)")


def test_the_web_modules_pass_eslint() -> None:
    _needs_node_modules(ESLINT)
    done = subprocess.run(
        [str(ESLINT), "server/web", "eslint.config.js"], cwd=ROOT, capture_output=True, text=True, timeout=120
    )
    assert done.returncode == 0, done.stdout + done.stderr


def test_the_vendored_chart_library_is_the_npm_package_with_its_licence_and_notice() -> None:
    _needs_node_modules(PACKAGE)
    bundle = "lightweight-charts.standalone.production.mjs"
    assert (VENDOR / bundle).read_bytes() == (PACKAGE / "dist" / bundle).read_bytes(), "run `make web-vendor`"
    assert (VENDOR / "LICENSE").read_bytes() == (PACKAGE / "LICENSE").read_bytes()
    notice = (VENDOR / "NOTICE").read_text()
    assert "TradingView" in notice and "https://www.tradingview.com/" in notice
    page = (ROOT / "server" / "web" / "index.html").read_text()
    assert "https://www.tradingview.com/" in page  # the attribution link the licence asks for


@pytest.mark.parametrize(
    ("name", "built"),
    [("marked", "lib/marked.esm.js"), ("dompurify", "dist/purify.es.mjs")],
)
def test_the_vendored_markdown_parser_and_sanitiser_are_the_pinned_npm_builds(name: str, built: str) -> None:
    """The page renders the model's Markdown with marked and sanitises it with DOMPurify: the very files npm
    ships at the versions package.json pins exactly, each with its licence."""
    import json

    package = ROOT / "node_modules" / name
    _needs_node_modules(package)
    pinned = json.loads((ROOT / "package.json").read_text())["dependencies"][name]
    assert pinned[0].isdigit(), f"{name} must be pinned to an exact version, not {pinned}"
    assert json.loads((package / "package.json").read_text())["version"] == pinned, "run `make js`"
    vendor = ROOT / "server" / "web" / "vendor" / name
    file = built.rsplit("/", 1)[1]
    assert (vendor / file).read_bytes() == (package / built).read_bytes(), "run `make web-vendor`"
    assert (vendor / "LICENSE").read_bytes() == (package / "LICENSE").read_bytes()
