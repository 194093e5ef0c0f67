"""Admin pages behind a login: dashboard, lists, subscribers, statements, issues, outbox,
users.

Every page needs a logged-in user whose role allows it, except the login, password-link and
first-admin setup pages; the check is one ``before_request`` hook for the whole blueprint
(``blueprint.py``), so a new page cannot forget it.
"""

from __future__ import annotations

# Each view module registers its routes on ``bp`` when imported.
from newsletter.web.admin import (  # noqa: F401
    audience,
    audit,
    auth,
    blocklist,
    control,
    dashboard,
    desk,
    factors,
    feeds,
    issue_desk,
    issues,
    list_edit,
    outbox,
    statements,
    subscribers,
    tokens,
    users,
)
from newsletter.web.admin.blueprint import bp

__all__ = ["bp"]
