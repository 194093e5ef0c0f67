"""Fixtures for these tests: see ``tests/isolation.py``."""

from tests.isolation import app_config  # noqa: F401
