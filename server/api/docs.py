"""API docs that work offline: Swagger UI and ReDoc served from a Python package, and the API-key scheme.

The assets come from the `fastapi-offline` package (Swagger UI and ReDoc bundles, installed by pip with the
rest of the project), never from a CDN, so /docs renders next to a local model with no internet.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from importlib.resources import files
from pathlib import Path

from fastapi import FastAPI
from fastapi.openapi.docs import get_redoc_html, get_swagger_ui_html
from fastapi.openapi.utils import get_openapi
from fastapi.responses import HTMLResponse
from fastapi.staticfiles import StaticFiles
from pydantic import JsonValue
from pydantic.json_schema import models_json_schema

from server.api.streams import STREAM_MODELS
from server.csp import docs_policy

DOCS_ASSETS = "/docs-assets"
PUBLIC_PATHS = {"/api/health"}  # answered without a key
SECURITY_SCHEMES: dict[str, dict[str, str]] = {
    "ApiKeyHeader": {
        "type": "apiKey",
        "in": "header",
        "name": "X-API-Key",
        "description": "A key from `server.api_keys` (key → user). Not needed when no keys are configured.",
    },
    "BearerKey": {
        "type": "http",
        "scheme": "bearer",
        "description": "The same API key as `Authorization: Bearer KEY`.",
    },
}


def assets_dir() -> Path:
    return Path(str(files("fastapi_offline") / "static"))


def _openapi(app: FastAPI) -> dict[str, JsonValue]:
    if app.openapi_schema is None:
        schema = get_openapi(
            title=app.title, version=app.version, description=app.description, routes=app.routes
        )
        components = schema.setdefault("components", {})
        components["securitySchemes"] = SECURITY_SCHEMES
        _, defs = models_json_schema(
            [(model, "serialization") for model in sorted(STREAM_MODELS, key=lambda m: m.__name__)],
            ref_template="#/components/schemas/{model}",
        )
        for name, definition in defs.get("$defs", {}).items():  # the streams' payloads, next to the rest
            components.setdefault("schemas", {}).setdefault(name, definition)
        either: list[dict[str, list[str]]] = [{name: []} for name in SECURITY_SCHEMES]
        for path, operations in schema.get("paths", {}).items():
            if path.startswith("/api/") and path not in PUBLIC_PATHS:
                for operation in operations.values():
                    operation["security"] = either
        app.openapi_schema = schema
    return app.openapi_schema


def install_docs(app: FastAPI) -> None:
    """/docs (Swagger UI) and /redoc from local assets; the OpenAPI declares the API-key scheme.
    The app must be created with docs_url=None and redoc_url=None."""
    app.mount(DOCS_ASSETS, StaticFiles(directory=assets_dir()), name="docs-assets")
    app.openapi = lambda: _openapi(app)  # type: ignore[method-assign]
    openapi_url, title = app.openapi_url or "/openapi.json", app.title
    pages = {
        "/docs": get_swagger_ui_html(
            openapi_url=openapi_url,
            title=f"{title} - API",
            swagger_js_url=f"{DOCS_ASSETS}/swagger-ui-bundle.js",
            swagger_css_url=f"{DOCS_ASSETS}/swagger-ui.css",
            swagger_favicon_url=f"{DOCS_ASSETS}/favicon.png",
            swagger_ui_parameters={"persistAuthorization": True},
        ),
        "/redoc": get_redoc_html(
            openapi_url=openapi_url,
            title=f"{title} - API reference",
            redoc_js_url=f"{DOCS_ASSETS}/redoc.standalone.js",
            redoc_favicon_url=f"{DOCS_ASSETS}/favicon.png",
            with_google_fonts=False,
        ),
    }
    for path, page in pages.items():
        html = bytes(page.body)
        csp = docs_policy(html.decode(), redoc=path == "/redoc")
        app.add_api_route(path, _serve(html, csp), methods=["GET"], include_in_schema=False)


def _serve(html: bytes, csp: str) -> Callable[[], Awaitable[HTMLResponse]]:
    """An endpoint answering with a page rendered once (its app's title and URLs do not change), with the
    Content-Security-Policy that allows its own inline start-up code."""

    async def page() -> HTMLResponse:
        return HTMLResponse(html, headers={"Content-Security-Policy": csp})

    return page
