"""Who may do what: the role table for every admin page and every API call.

Each blueprint has one table, read by one hook (``require_login`` in the admin blueprint,
``require_token`` in the API): the admin's is keyed by endpoint, the API's by URL rule (as
``request.url_rule.rule`` spells it). A value is one permission for every method, or a
``{method: permission}`` mapping. Anything a table does not name needs ``ADMIN``, so a new
route is closed until someone decides who may use it (and ``tests/auth/test_permissions.py``
fails until the table names it).

| permission | admin | editor | editor with ``can_send`` | viewer | anonymous |
| --- | --- | --- | --- | --- | --- |
| ``PUBLIC`` (login, reset and invitation links) | yes | yes | yes | yes | yes |
| ``ACCOUNT`` (own password, factors, tokens and settings) | yes | yes | yes | yes | no |
| ``READ`` (issues, statements, lists and their counts) | yes | yes | yes | yes | no |
| ``EDIT`` (statements, templates, issues, stopping a send) | yes | yes | yes | no | no |
| ``SEND`` (send now, schedule, resume, retry to lists) | yes | no | yes | no | no |
| ``ADMIN`` (lists, subscribers, deliveries, outbox, users, audit) | yes | no | no | no | no |

Subscribers' addresses (the subscriber pages, the delivery log, the outbox, the API's
subscriber and delivery calls, segments, whose queries may name them, and the export) are
for admins only: the people on the lists may be at risk.
Pausing, cancelling or unscheduling a send needs only ``EDIT``: anyone who may edit an issue
may stop it; starting one takes ``SEND``.
"""

from __future__ import annotations

import enum
from collections.abc import Mapping
from typing import Any

from newsletter.auth.models import Role


class Permission(enum.Enum):
    PUBLIC = "public"
    ACCOUNT = "account"
    READ = "read"
    EDIT = "edit"
    SEND = "send"
    ADMIN = "admin"


PUBLIC = Permission.PUBLIC
ACCOUNT = Permission.ACCOUNT
READ = Permission.READ
EDIT = Permission.EDIT
SEND = Permission.SEND
ADMIN = Permission.ADMIN

#: a route's permission: one for every method, or one per method (others need ADMIN)
Entry = Permission | Mapping[str, Permission]

#: The admin pages, by endpoint.
ADMIN_ENDPOINTS: dict[str, Entry] = {
    # before logging in
    "admin.login": PUBLIC,
    "admin.login_code": PUBLIC,  # the second factor's step: the session says who is waiting
    "admin.setup": PUBLIC,
    "admin.forgot_password": PUBLIC,
    "admin.reset_password": PUBLIC,
    "admin.accept_invite": PUBLIC,
    # one's own account
    "admin.logout": ACCOUNT,
    "admin.profile": ACCOUNT,
    "admin.change_password": ACCOUNT,
    "admin.two_factor": ACCOUNT,
    "admin.two_factor_disable": ACCOUNT,
    "admin.recovery_codes": ACCOUNT,
    "admin.tokens": ACCOUNT,  # one's own API tokens: each can do at most what its owner may
    "admin.token_revoke": ACCOUNT,
    # reading
    "admin.dashboard": READ,
    "admin.issues": READ,
    "admin.issue": READ,
    "admin.issue_preview": READ,
    "admin.issue_progress": READ,
    "admin.issue_analytics_page": READ,
    "admin.statement": READ,
    "admin.statements": {"GET": READ, "POST": EDIT},
    "admin.templates": READ,
    "admin.template": {"GET": READ, "POST": EDIT},
    "admin.template_preview": READ,
    "admin.lists": {"GET": READ, "POST": ADMIN},
    "admin.media_library": {"GET": READ, "POST": EDIT},
    "admin.list_signup": {"GET": READ, "POST": ADMIN},  # the embeddable form, welcome mail
    "admin.feeds": {"GET": READ, "POST": EDIT},  # turning on auto-send also takes SEND
    # composing
    "admin.issue_new": EDIT,
    "admin.issue_edit": EDIT,
    "admin.issue_unschedule": EDIT,
    "admin.issue_pause": EDIT,
    "admin.issue_cancel": EDIT,
    "admin.issue_tracking": EDIT,  # turning tracking up is refused once sending started
    # the writing desk: statements, media, test sends (to editors only), delete and hide
    "admin.statement_new": EDIT,
    "admin.statement_edit": EDIT,
    "admin.statement_delete": EDIT,
    "admin.statement_preview": EDIT,
    "admin.media_upload": EDIT,
    "admin.media_delete": EDIT,
    "admin.issue_test_send": EDIT,  # a proof reaches editors and admins, never a list
    "admin.issue_delete": EDIT,
    "admin.issue_hide": EDIT,
    "admin.template_new": EDIT,
    "admin.template_copy": EDIT,
    "admin.template_delete": EDIT,
    "admin.issue_kept_out": EDIT,
    "admin.feed_edit": EDIT,
    "admin.feed_delete": EDIT,
    "admin.feed_poll": EDIT,
    # sending to lists
    "admin.issue_send": SEND,
    "admin.issue_schedule": SEND,
    "admin.issue_resume": SEND,
    "admin.issue_retry": SEND,
    # the audience and the accounts
    "admin.subscribers": ADMIN,
    "admin.subscriber": ADMIN,
    "admin.subscriber_edit": ADMIN,
    "admin.subscriber_add_list": ADMIN,
    "admin.subscriber_subscription": ADMIN,
    "admin.subscriber_blocklist": ADMIN,
    "admin.subscriber_unblocklist": ADMIN,
    "admin.subscriber_revoke_links": ADMIN,
    "admin.subscriber_delete": ADMIN,
    "admin.list_edit": ADMIN,
    "admin.list_archive": ADMIN,
    "admin.subscriber_new": ADMIN,
    "admin.subscribers_import": ADMIN,
    "admin.blocklist_page": ADMIN,
    "admin.blocklist_domain_remove": ADMIN,
    "admin.blocklist_address_remove": ADMIN,
    "admin.subscribers_export": ADMIN,
    "admin.segments": ADMIN,
    "admin.segment_new": ADMIN,
    "admin.segment_edit": ADMIN,
    "admin.segment_delete": ADMIN,
    "admin.segment_count": ADMIN,
    "admin.import_job": ADMIN,
    "admin.import_progress": ADMIN,
    "admin.import_report": ADMIN,
    "admin.deliveries": ADMIN,
    "admin.outbox": ADMIN,
    "admin.outbox_message": ADMIN,
    "admin.outbox_message_html": ADMIN,
    "admin.users": ADMIN,
    "admin.user_invite": ADMIN,
    "admin.user_reinvite": ADMIN,
    "admin.user_role": ADMIN,
    "admin.user_can_send": ADMIN,
    "admin.user_active": ADMIN,
    "admin.user_tokens": ADMIN,  # every user's API tokens, with their owners
    "admin.user_token_revoke": ADMIN,  # anyone's token; one's own is admin.token_revoke
    "admin.site_settings": ADMIN,
    "admin.audit_log": ADMIN,
    # bounces: the addresses that bounced or complained, the policy, unread reports
    "admin.bounces": ADMIN,
    "admin.bounce_unread": ADMIN,
    "admin.bounce_unread_resolve": ADMIN,
    "admin.subscriber_reinstate": ADMIN,
    # outgoing webhooks: their messages name subscribers, and their secrets sign for us
    "admin.webhooks": ADMIN,
    "admin.webhook": ADMIN,
    "admin.webhook_secret": ADMIN,
    "admin.webhook_rotate": ADMIN,
    "admin.webhook_active": ADMIN,
    "admin.webhook_delete": ADMIN,
    "admin.webhook_retry": ADMIN,
}

_API = "/api/v1"
_ISSUE = f"{_API}/issues/<int:issue_id>"

#: The API, by URL rule.
API_RULES: dict[str, Entry] = {
    f"{_API}/openapi.json": READ,
    # unknown paths and wrong methods: they only ever answer 404 or 405
    f"{_API}/": READ,
    f"{_API}/<path:path>": READ,
    f"{_API}/lists": {"GET": READ, "POST": ADMIN},
    f"{_API}/lists/<slug>": {"GET": READ, "PATCH": ADMIN},  # PATCH: only ever a 404
    f"{_API}/lists/<int:list_id>": {"PATCH": ADMIN},
    f"{_API}/statements": {"GET": READ, "POST": EDIT},
    f"{_API}/statements/<int:statement_id>": {"GET": READ},
    f"{_API}/issues": {"GET": READ, "POST": EDIT},
    _ISSUE: {"GET": READ},
    f"{_ISSUE}/analytics": {"GET": READ},
    f"{_ISSUE}/send": SEND,
    f"{_ISSUE}/schedule": SEND,
    f"{_ISSUE}/resume": SEND,
    f"{_ISSUE}/retry": SEND,
    f"{_ISSUE}/unschedule": EDIT,
    f"{_ISSUE}/pause": EDIT,
    f"{_ISSUE}/cancel": EDIT,
    f"{_ISSUE}/deliveries": ADMIN,
    f"{_API}/deliveries": ADMIN,
    f"{_API}/subscribers": ADMIN,
    f"{_API}/subscribers/export": ADMIN,
    # segments: a query may name addresses and counts people by them, so segments are for
    # admins, like the subscribers (editors pick them by name in the compose form)
    f"{_API}/segments": ADMIN,
    f"{_API}/segments/<int:segment_id>": ADMIN,
    f"{_API}/subscribers/<int:subscriber_id>": ADMIN,
    f"{_API}/subscribers/<int:subscriber_id>/revoke-links": ADMIN,
    f"{_API}/templates": {"GET": READ, "POST": EDIT},
    f"{_API}/templates/<int:template_id>": {"GET": READ, "PATCH": EDIT, "DELETE": EDIT},
    f"{_API}/templates/<int:template_id>/copy": EDIT,
    f"{_API}/tx": ADMIN,
    # provider webhooks: no token, the provider signs (web/api/bounce_hooks.py)
    f"{_API}/bounces/ses": PUBLIC,
    f"{_API}/bounces/postmark": PUBLIC,
    f"{_API}/bounces/sendgrid": PUBLIC,
    f"{_API}/bounces/mailgun": PUBLIC,
    f"{_API}/tx/<int:tx_id>": ADMIN,
    f"{_API}/bounces": ADMIN,  # changes subscribers (stops, unsubscribes)
    f"{_API}/webhooks": ADMIN,
    f"{_API}/webhooks/<int:endpoint_id>": ADMIN,
}


def needed(table: Mapping[str, Entry], key: str | None, method: str) -> Permission:
    """The permission ``method`` on the route ``key`` needs; ``ADMIN`` for anything unnamed.

    HEAD and OPTIONS need what GET needs (they show no more than it does).
    """
    entry = table.get(key or "")
    if entry is None:
        return ADMIN
    if isinstance(entry, Permission):
        return entry
    if method in ("HEAD", "OPTIONS"):
        method = "GET"
    return entry.get(method, ADMIN)


def allows(user: Any, permission: Permission) -> bool:
    """True when ``user`` (a ``User``, or Flask-Login's anonymous user) has ``permission``."""
    if permission is PUBLIC:
        return True
    if user is None or not getattr(user, "is_authenticated", False):
        return False
    role = user.role
    if permission in (ACCOUNT, READ):
        return True
    if permission is EDIT:
        return role in (Role.ADMIN, Role.EDITOR)
    if permission is SEND:
        return role is Role.ADMIN or (role is Role.EDITOR and bool(user.can_send))
    return bool(role is Role.ADMIN)


def refusal(user: Any, permission: Permission) -> str | None:
    """Why ``user`` may not do what needs ``permission`` (None: they may)."""
    if allows(user, permission):
        return None
    if permission is SEND and user.role is Role.EDITOR:
        return "sending to lists needs an admin's permission for this editor"
    needs = {EDIT: "an editor or admin", SEND: "an admin", ADMIN: "an admin"}[permission]
    return f"your role ({user.role.value}) may not do this; it needs {needs}"


def api_refusal(user: Any, rule: str | None, method: str) -> str | None:
    """Why ``user``'s token may not call ``method`` on the API rule ``rule`` (None: it may)."""
    return refusal(user, needed(API_RULES, rule, method))


def admin_permission(endpoint: str | None, method: str) -> Permission:
    """What ``method`` on the admin page ``endpoint`` needs."""
    return needed(ADMIN_ENDPOINTS, endpoint, method)


def may_open(user: Any, endpoint: str, method: str = "GET") -> bool:
    """True when ``user`` may use this admin page (for showing or hiding links and buttons)."""
    return allows(user, admin_permission(endpoint, method))
