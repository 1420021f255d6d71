"""One router per resource: chat, sessions, health, portfolio, metrics."""
