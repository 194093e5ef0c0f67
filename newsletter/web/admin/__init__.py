"""Admin pages behind a login: dashboard, lists, subscribers, statements, issues, outbox.

Every page needs a logged-in user except the login and first-admin setup pages; the check is
one ``before_request`` hook for the whole blueprint, so a new page cannot forget it.
"""

from __future__ import annotations

# Each view module registers its routes on ``bp`` when imported.
from newsletter.web.admin import (  # noqa: F401
    audience,
    audit,
    auth,
    control,
    dashboard,
    factors,
    issues,
    outbox,
    statements,
    tokens,
)
from newsletter.web.admin.blueprint import bp

__all__ = ["bp"]
