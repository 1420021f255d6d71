"""Process logging from settings.logging: level, stderr, and the optional log file (parent dir created)."""

from __future__ import annotations

import logging
from pathlib import Path

from config import Settings

FORMAT = "%(asctime)s %(levelname)s %(name)s %(process)d: %(message)s"


def setup_logging(settings: Settings) -> None:
    """Idempotent: a worker process calls it once from the app factory. Request headers (API keys) are never
    logged by the server; uvicorn's access log has method, path and status only."""
    root = logging.getLogger()
    if getattr(root, "_copilot_configured", False):
        return
    handlers: list[logging.Handler] = [logging.StreamHandler()]
    if settings.logging.file:
        path = Path(settings.logging.file)
        path.parent.mkdir(parents=True, exist_ok=True)
        handlers.append(logging.FileHandler(path, encoding="utf-8"))
    for handler in handlers:
        handler.setFormatter(logging.Formatter(FORMAT))
        root.addHandler(handler)
    root.setLevel(settings.logging.level)
    root._copilot_configured = True  # type: ignore[attr-defined]
