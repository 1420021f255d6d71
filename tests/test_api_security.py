"""What one user cannot learn of another: /metrics behind its own key; security headers on every answer."""

from __future__ import annotations

import re

import httpx
import pytest

from server.csp import sha256_source
from tests.support.api_support import ApiServer, as_user, user_keys

USERS = user_keys("ines", "juan")
METRICS_KEY = "prometheus-scrape-0123456789"
SECURITY_HEADERS = {
    "x-content-type-options": "nosniff",
    "x-frame-options": "DENY",
    "referrer-policy": "no-referrer",
}


@pytest.fixture(scope="module")
def keyed(serve_api: ApiServer) -> str:
    return serve_api("security-keyed", server={"api_keys": USERS, "metrics_key": METRICS_KEY})


def test_metrics_answer_only_to_the_metrics_key_when_users_have_keys(keyed: str) -> None:
    with httpx.Client(base_url=keyed, timeout=30) as anonymous:
        refused = anonymous.get("/metrics")
        assert refused.status_code == 401 and "copilot_orders" not in refused.text
        assert refused.headers["www-authenticate"].startswith("Bearer")
        assert anonymous.get("/metrics", headers={"Authorization": "Bearer wrong"}).status_code == 401
        scraped = anonymous.get("/metrics", headers={"Authorization": f"Bearer {METRICS_KEY}"})
        assert scraped.status_code == 200 and "copilot_orders" in scraped.text, scraped.text[:300]
        assert anonymous.get("/metrics", headers={"X-API-Key": METRICS_KEY}).status_code == 200
    with as_user(
        keyed, "ines"
    ) as user:  # a trader's own key reads the trader's things, not everyone's counts
        assert user.get("/api/portfolio").status_code == 200
        assert user.get("/metrics").status_code == 401


def test_metrics_are_off_with_user_keys_and_no_metrics_key(serve_api: ApiServer) -> None:
    url = serve_api("security-nometrics", server={"api_keys": USERS})
    with as_user(url, "juan") as user:
        refused = user.get("/metrics")
    assert refused.status_code == 401 and "server.metrics_key" in refused.json()["detail"]


def test_metrics_are_open_in_local_single_user_mode(serve_api: ApiServer) -> None:
    url = serve_api("security-local")
    assert httpx.get(f"{url}/metrics", timeout=30).status_code == 200


@pytest.mark.parametrize(
    "path",
    ["/", "/static/js/main.js", "/api/health", "/api/sessions", "/api/nowhere", "/openapi.json", "/metrics"],
)
def test_every_answer_carries_the_security_headers(keyed: str, path: str) -> None:
    answer = httpx.get(f"{keyed}{path}", timeout=30)  # no key: 401s and 404s carry them too
    for name, value in SECURITY_HEADERS.items():
        assert answer.headers.get(name) == value, (path, answer.status_code, dict(answer.headers))
    csp = answer.headers["content-security-policy"]
    assert "script-src 'self';" in csp and "frame-ancestors 'none'" in csp and "unsafe-inline" not in csp


@pytest.mark.parametrize("path", ["/docs", "/redoc"])
def test_docs_pages_allow_exactly_their_own_inline_script(keyed: str, path: str) -> None:
    page = httpx.get(f"{keyed}{path}", timeout=30)
    for name, value in SECURITY_HEADERS.items():
        assert page.headers.get(name) == value
    csp = page.headers["content-security-policy"]
    assert len(page.headers.get_list("content-security-policy")) == 1  # the page's own, not the default too
    script = re.search(r"script-src ([^;]*)", csp)
    assert script is not None
    inline = re.findall(r"<script>(.*?)</script>", page.text, re.S)
    assert script.group(1).split() == ["'self'", *(sha256_source(code) for code in inline)]
    assert ("'unsafe-inline'" in csp) == (path == "/redoc")  # ReDoc writes its styles at run time
