"""JSON API under /api/v1: bearer tokens, JSON in and out, one error shape.

Every answer that is not a success is ``{"error": {"message": …, "field": …}}`` with a 4xx
(or 5xx) status, including unknown routes and wrong methods under the prefix. The routes
live in one module per resource; the OpenAPI document in ``openapi.py`` describes them all.
"""

from __future__ import annotations

# Each view module registers its routes on ``bp`` when imported.
from newsletter.web.api import (  # noqa: F401
    issues,
    lists,
    openapi,
    statements,
    subscribers,
    transactional,
)
from newsletter.web.api.blueprint import bp

__all__ = ["bp"]
