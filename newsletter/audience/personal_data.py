"""What we hold about one person, as they download it from their preferences page."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import select

from newsletter.audience.models import Subscriber, Subscription
from newsletter.audience.subscriptions import visible_attributes
from newsletter.content.models import Issue
from newsletter.delivery.models import Delivery
from newsletter.extensions import db

FORMAT_VERSION = 1


def consent_record(subscription: Subscription) -> dict[str, Any]:
    """How one subscription was consented to, as kept (the IP setting already applied)."""
    return {
        "source": subscription.consent_source.value,
        "detail": subscription.consent_detail,
        "page": subscription.consent_page,
        "given_at": _iso(subscription.created_at),
        "confirmed_at": _iso(subscription.confirmed_at),
        "ip": subscription.consent_ip,
        "user_agent": subscription.consent_user_agent,
    }


def personal_data(subscriber: Subscriber) -> dict[str, Any]:
    """Everything about ``subscriber`` worth a JSON download: the subscriber, their
    attributes (not the tool's own ``_`` keys), subscriptions with their consent, and every
    delivery of an issue to them."""
    subscriptions = sorted(subscriber.subscriptions, key=lambda s: s.list_id)
    rows = db.session.execute(
        select(Delivery, Issue.subject)
        .join(Issue, Issue.id == Delivery.issue_id)
        .where(Delivery.subscriber_id == subscriber.id)
        .order_by(Delivery.id)
    ).all()
    return {
        "format": FORMAT_VERSION,
        "subscriber": {
            "email": subscriber.email,
            "name": subscriber.name,
            "status": subscriber.status.value,
            "created_at": _iso(subscriber.created_at),
            "updated_at": _iso(subscriber.updated_at),
        },
        "attributes": visible_attributes(subscriber.attributes),
        "subscriptions": [
            {
                "list": s.list.slug,
                "list_name": s.list.name,
                "status": s.status.value,
                "created_at": _iso(s.created_at),
                "confirmed_at": _iso(s.confirmed_at),
                "unsubscribed_at": _iso(s.unsubscribed_at),
                "consent": consent_record(s),
            }
            for s in subscriptions
        ],
        "deliveries": [
            {
                "issue": delivery.issue_id,
                "subject": subject,
                "status": delivery.status.value,
                "attempts": delivery.attempts,
                "sent_at": _iso(delivery.sent_at),
            }
            for delivery, subject in rows
        ],
    }


def _iso(moment: datetime | None) -> str | None:
    return moment.isoformat() if moment is not None else None
