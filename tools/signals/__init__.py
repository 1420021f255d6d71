"""Signals: the transparent technical engine (embedded), the ML engine's HTTP client, and their API router."""
