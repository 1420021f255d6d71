"""The Content-Security-Policy of each page: scripts and styles from this server only, nothing framed.

The web page has no inline script or style; the one `<style>` element the vendored chart library adds (its
TradingView attribution logo) is allowed by its hash. /docs (Swagger UI) has one inline start-up script,
allowed by its hash; /redoc's bundle writes its styles at run time (styled-components), so that page alone
allows inline styles, and the Redocly footer logo it links from its CDN.
"""

from __future__ import annotations

import base64
import hashlib
import re
from pathlib import Path

CHART_LIB = (
    Path(__file__).resolve().parent / "web" / "vendor" / "lightweight-charts"
    / "lightweight-charts.standalone.production.mjs"
)  # fmt: skip
REDOC_LOGO = "https://cdn.redoc.ly/redoc/logo-mini.svg"
BASE: dict[str, str] = {
    "default-src": "'self'",
    "script-src": "'self'",
    "style-src": "'self'",
    "img-src": "'self' data:",
    "connect-src": "'self'",
    "font-src": "'self'",
    "object-src": "'none'",
    "base-uri": "'none'",
    "form-action": "'self'",
    "frame-ancestors": "'none'",
}
# The other security headers every answer carries (pages, API, static files, errors).
HEADERS: dict[str, str] = {
    "X-Content-Type-Options": "nosniff",
    "X-Frame-Options": "DENY",
    "Referrer-Policy": "no-referrer",
}
_INLINE = {tag: re.compile(rf"<{tag}(?![^>]*\bsrc=)[^>]*>(.*?)</{tag}>", re.S) for tag in ("script", "style")}


def sha256_source(text: str) -> str:
    digest = base64.b64encode(hashlib.sha256(text.encode()).digest()).decode()
    return f"'sha256-{digest}'"


def policy(**directives: str) -> str:
    """BASE with the given directives (underscores for dashes) replaced."""
    merged = BASE | {name.replace("_", "-"): value for name, value in directives.items()}
    return "; ".join(f"{name} {value}" for name, value in merged.items())


def chart_style_sources() -> str:
    """The hash of each <style> text the chart library inserts (read from the bundle: updates keep it)."""
    found = re.findall(r'\.innerText="(a#tv-attr-logo[^"]*)"', CHART_LIB.read_text(encoding="utf-8"))
    return " ".join(sha256_source(text) for text in found)


def page_policy() -> str:
    """The page, the API and everything else: no inline code at all, but the chart library's logo style."""
    return policy(style_src=f"'self' {chart_style_sources()}".strip())


def docs_policy(html: str, *, redoc: bool) -> str:
    """A docs page: its own inline scripts by hash; ReDoc's run-time styles and footer logo."""
    scripts = " ".join(sha256_source(s) for s in _INLINE["script"].findall(html))
    if redoc:
        return policy(
            script_src=f"'self' {scripts}".strip(),
            style_src="'self' 'unsafe-inline'",
            img_src=f"'self' data: {REDOC_LOGO}",
            worker_src="'self' blob:",
        )
    styles = " ".join(sha256_source(s) for s in _INLINE["style"].findall(html))
    return policy(script_src=f"'self' {scripts}".strip(), style_src=f"'self' {styles}".strip())
