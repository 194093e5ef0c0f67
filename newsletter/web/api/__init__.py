"""JSON API under /api/v1: bearer tokens, JSON in and out, one error shape.

Every answer that is not a success is ``{"error": {"message": …, "field": …}}`` with a 4xx
(or 5xx) status, including unknown routes and wrong methods under the prefix. The routes
live in one module per resource; the schemas in ``schemas.py`` validate them and make the
OpenAPI document (``openapi.py``).
"""

from __future__ import annotations

# Each view module registers its routes on ``bp`` when imported.
from newsletter.web.api import (  # noqa: F401
    analytics,
    bounce_hooks,
    bounces,
    control,
    issues,
    lists,
    segments,
    statements,
    subscribers,
    templates,
    transactional,
    webhooks,
)
from newsletter.web.api.blueprint import bp
from newsletter.web.api.openapi import register

__all__ = ["bp", "register"]
