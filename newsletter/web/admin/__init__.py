"""Admin pages behind a login: dashboard, lists, subscribers, statements, issues, outbox,
users.

Every page needs a logged-in user whose role allows it, except the login, password-link and
first-admin setup pages; the check is one ``before_request`` hook for the whole blueprint
(``blueprint.py``), so a new page cannot forget it.
"""

from __future__ import annotations

# Each view module registers its routes on ``bp`` when imported.
from newsletter.web.admin import (  # noqa: F401
    analytics,
    archive,
    audience,
    audit,
    auth,
    blocklist,
    bounces,
    control,
    dashboard,
    desk,
    embed,
    factors,
    feeds,
    formatting,
    imports,
    issue_desk,
    issues,
    list_edit,
    outbox,
    segments,
    statements,
    subscribers,
    templates,
    tokens,
    users,
    webhooks,
)
from newsletter.web.admin.blueprint import bp

__all__ = ["bp"]
