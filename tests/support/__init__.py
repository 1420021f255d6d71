"""Helpers shared by the tests (fixtures are in tests/conftest.py)."""
