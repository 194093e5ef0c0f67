"""Commands of this domain for the ``newsletter`` CLI. STUB."""

from __future__ import annotations

from flask import Flask


def register(app: Flask) -> None:
    """Add this domain's commands to ``app.cli``."""
