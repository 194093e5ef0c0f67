"""Subscribers: POST /subscribers, GET /subscribers (by email or keyset pages), GET, PATCH
and DELETE /subscribers/{id}, POST /subscribers/{id}/revoke-links."""

from __future__ import annotations

from typing import Any

from flask import Response, g, jsonify, url_for
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
from newsletter.auth import scopes
from newsletter.auth.permissions import api_refusal
from newsletter.errors import NotFound, ValidationError
from newsletter.extensions import db
from newsletter.web.api.blueprint import bp
from newsletter.web.api.edge import KIB, body, errors, query
from newsletter.web.api.schemas import (
    SubscriberAcceptedSchema,
    SubscriberCreateSchema,
    SubscriberPageSchema,
    SubscriberQuerySchema,
    SubscriberSchema,
    SubscriberUpdateSchema,
)


@bp.post("/subscribers")
@body(SubscriberCreateSchema, max_bytes=64 * KIB)
@bp.response(201, SubscriberSchema,
             description="the subscriber, new or known (the same answer either way)")
@bp.alt_response(202, schema=SubscriberAcceptedSchema, success=True,
                 description="for a token that cannot read subscribers: the request is "
                             "taken; nothing says whether the address was known")
@errors(404, 409)
def create_subscriber(
    data: dict[str, Any],
) -> tuple[Subscriber, int, dict[str, str]] | Response:
    """Subscribe an address to lists, under each list's opt-in rule.

    Double opt-in lists leave the subscription unconfirmed and mail a confirmation link,
    unless ``confirmed`` is true (consent gathered elsewhere). A known address and a new one
    get the same status: 201 with the subscriber for a token that may read subscribers, 202
    with only ``accepted`` (no id, no subscriptions) for one that may not, so a write-only
    token cannot tell which addresses are on file. A blocklisted address or domain, or an
    address erased at the person's request, is refused with a 422 that says why.
    """
    for slug in data["lists"]:  # name the field before the service touches anything
        get_list_by_slug(slug)
    # The gate for every address, known or not: the answer must not depend on which.
    profile.check_gate([data["email"]], via="api")  # 422 saying why
    subscriber = subscription_service.subscribe(
        data["email"], name=data["name"], list_slugs=data["lists"], source=ConsentSource.API,
        confirmed=data["confirmed"],
        consent=api_consent(getattr(g.get("api_token"), "name", None), ip=data["ip"] or None),
    )
    if not _may_read_subscribers():
        # The address as asked (not as stored: its case would tell), as a response of its
        # own: the decorator's schema is the subscriber's.
        accepted = SubscriberAcceptedSchema().dump(
            {"accepted": True, "email": normalise_email(data["email"]),
             "lists": list(data["lists"])}
        )
        answer = jsonify(accepted)
        answer.status_code = 202
        return answer
    location = url_for("api.get_subscriber", subscriber_id=subscriber.id)
    return subscriber, 201, {"Location": location}


def _may_read_subscribers() -> bool:
    """Whether this call's token could look subscribers up (``GET /subscribers/{id}``):
    the read scope, and an owner whose role may read them."""
    token = g.get("api_token")
    if token is None or scopes.READ not in scopes.parse_scopes(token.scopes):
        return False
    rule = f"{scopes.API_PREFIX}/subscribers/<int:subscriber_id>"
    return api_refusal(g.api_user, rule, "GET") is None


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


@bp.post("/subscribers/<int:subscriber_id>/revoke-links")
@bp.response(204, description="revoked: the links in mail sent so far open nothing")
@errors(404)
def revoke_subscriber_links(subscriber_id: int) -> tuple[str, int]:
    """Make the manage and unsubscribe links in every mail sent to a subscriber so far
    worthless (someone else holds them: a forwarded mail, a shared inbox).

    The next mail to them carries new links. Revoking twice is harmless. The answer is
    empty: a token that may only write learns nothing about the subscriber from it.
    """
    subscription_service.revoke_links(subscriber_id)
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
