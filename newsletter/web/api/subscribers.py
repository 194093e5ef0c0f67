"""Subscribers: POST /subscribers, GET /subscribers (by email or keyset pages), GET, PATCH
and DELETE /subscribers/{id}."""

from __future__ import annotations

from typing import Any

from flask import g, url_for
from sqlalchemy import Select, func, select
from sqlalchemy.orm import selectinload

from newsletter.audience import profile
from newsletter.audience import subscriptions as subscription_service
from newsletter.audience.addresses import normalise_email
from newsletter.audience.consent import api_consent
from newsletter.audience.lists import get_list_by_slug
from newsletter.audience.models import (
    ConsentSource,
    Subscriber,
    SubscriberStatus,
    Subscription,
    SubscriptionStatus,
)
from newsletter.errors import NotFound, ValidationError
from newsletter.extensions import db
from newsletter.web.api.blueprint import bp
from newsletter.web.api.edge import KIB, body, errors, query
from newsletter.web.api.schemas import (
    SubscriberCreateSchema,
    SubscriberPageSchema,
    SubscriberQuerySchema,
    SubscriberSchema,
    SubscriberUpdateSchema,
)


@bp.post("/subscribers")
@body(SubscriberCreateSchema, max_bytes=64 * KIB)
@bp.response(201, SubscriberSchema, description="a new subscriber")
@bp.alt_response(200, schema=SubscriberSchema, success=True,
                 description="a known address, now also on these lists")
@errors(404, 409)
def create_subscriber(data: dict[str, Any]) -> tuple[Subscriber, int, dict[str, str]]:
    """Subscribe an address to lists, under each list's opt-in rule.

    Double opt-in lists leave the subscription unconfirmed and mail a confirmation link,
    unless ``confirmed`` is true (consent gathered elsewhere). 201 for a new subscriber,
    200 when the address was known already. A blocklisted address or domain, or an address
    erased at the person's request, is refused with a 422 that says why.
    """
    for slug in data["lists"]:  # name the field before the service touches anything
        get_list_by_slug(slug)
    existed = _find_by_email(normalise_email(data["email"])) is not None
    if not existed:
        profile.check_gate([data["email"]], via="api")  # 422 saying why
    subscriber = subscription_service.subscribe(
        data["email"], name=data["name"], list_slugs=data["lists"], source=ConsentSource.API,
        confirmed=data["confirmed"],
        consent=api_consent(getattr(g.get("api_token"), "name", None), ip=data["ip"] or None),
    )
    location = url_for("api.get_subscriber", subscriber_id=subscriber.id)
    return subscriber, 200 if existed else 201, {"Location": location}


@bp.get("/subscribers")
@query(SubscriberQuerySchema)
@bp.response(200, SubscriberPageSchema, description="a page of subscribers")
@errors(404)
def list_subscribers(args: dict[str, Any]) -> dict[str, Any]:
    """Find a subscriber by email, or page through subscribers by id.

    ``?email=`` finds one address; otherwise keyset pages by id (``after``, ``limit``),
    optionally only those on ``?list=SLUG`` (and with ``?status=`` on it).
    """
    if "email" in args:
        subscriber = _find_by_email(normalise_email(args["email"]))
        return {"items": [subscriber] if subscriber else [], "next": None}
    limit = args["limit"]
    found = _with_subscriptions(select(Subscriber)).where(Subscriber.id > args["after"])
    found = _filter_by_list(found, args.get("list"), args.get("status"))
    # One row more than asked says whether a next page exists, without a COUNT.
    rows = db.session.scalars(found.order_by(Subscriber.id).limit(limit + 1)).all()
    page = rows[:limit]
    return {"items": page, "next": page[-1].id if len(rows) > limit else None}


def _filter_by_list(
    found: Select[Subscriber], slug: str | None, status: str | None
) -> Select[Subscriber]:
    if not slug:
        if status:
            raise ValidationError("status filters need a list", field="status")
        return found
    lst = get_list_by_slug(slug)
    condition = (Subscription.subscriber_id == Subscriber.id) & (Subscription.list_id == lst.id)
    if status:
        condition &= Subscription.status == SubscriptionStatus(status)
    return found.where(select(Subscription).where(condition).exists())


@bp.get("/subscribers/<int:subscriber_id>")
@bp.response(200, SubscriberSchema, description="the subscriber")
@errors(404)
def get_subscriber(subscriber_id: int) -> Subscriber:
    """One subscriber with their subscriptions."""
    subscriber = db.session.scalars(
        _with_subscriptions(select(Subscriber)).where(Subscriber.id == subscriber_id)
    ).first()
    if subscriber is None:
        raise NotFound("subscriber", subscriber_id)
    return subscriber


@bp.patch("/subscribers/<int:subscriber_id>")
@body(SubscriberUpdateSchema, max_bytes=64 * KIB)
@bp.response(200, SubscriberSchema, description="the subscriber, changed")
@errors(404)
def update_subscriber(data: dict[str, Any], subscriber_id: int) -> Subscriber:
    """Change a subscriber: name, attributes, subscriptions, status (all or nothing).

    ``attributes`` are merged into what the subscriber has (a key set to ``null`` is
    removed), or replace it all with ``"attributes_mode": "replace"``; names starting with
    ``_`` are the tool's own and refused. ``subscriptions`` sets one status per list slug
    (``confirmed``, ``unconfirmed`` with a confirmation mail, ``unsubscribed``) and leaves
    other lists alone. ``status``: ``blocklisted`` (never mailed again) or ``active``.
    """
    status = data.get("status")
    changes = [(item["list"], item["status"]) for item in data.get("subscriptions", [])]
    try:
        profile.update_subscriber(
            subscriber_id,
            name=data.get("name"),
            attributes=data.get("attributes"),
            replace_attributes=data["attributes_mode"] == "replace",
            status=SubscriberStatus(status) if status else None,
            subscriptions=changes,
            source=ConsentSource.API,
        )
    except NotFound as error:
        if error.kind == "list":
            error.field = "subscriptions"
        raise
    return get_subscriber(subscriber_id)


@bp.delete("/subscribers/<int:subscriber_id>")
@bp.response(204, description="deleted, with their subscriptions and deliveries")
@errors(404)
def delete_subscriber(subscriber_id: int) -> tuple[str, int]:
    """Delete a subscriber for good (their subscriptions, consent and delivery history too)."""
    profile.delete_subscriber(subscriber_id)
    return "", 204


def _with_subscriptions(found: Select[Subscriber]) -> Select[Subscriber]:
    # Two extra queries per page, not two per subscriber.
    return found.options(
        selectinload(Subscriber.subscriptions).selectinload(Subscription.list)
    )


def _find_by_email(email: str) -> Subscriber | None:
    return db.session.scalars(
        _with_subscriptions(select(Subscriber)).where(
            func.lower(Subscriber.email) == email.lower()
        )
    ).first()
