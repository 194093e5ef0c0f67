"""Public pages: signup, confirm, manage, unsubscribe, archive. STUB."""

from __future__ import annotations

from flask import Blueprint

bp = Blueprint("public", __name__)
