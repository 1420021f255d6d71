"""Helpers shared by the tests (fixtures are in tests/conftest.py)."""

from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]  # the repository
