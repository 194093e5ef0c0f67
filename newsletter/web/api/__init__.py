"""JSON API under /api/v1 with bearer tokens. STUB."""

from __future__ import annotations

from flask import Blueprint

bp = Blueprint("api", __name__)
