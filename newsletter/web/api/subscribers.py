"""Subscribers: POST /subscribers, GET /subscribers (by email or keyset pages), GET /{id}."""

from __future__ import annotations

import ipaddress

from flask import Response, jsonify, request, url_for
from sqlalchemy import Select, func, select
from sqlalchemy.orm import selectinload

from newsletter.audience import subscriptions as subscription_service
from newsletter.audience.addresses import normalise_email
from newsletter.audience.lists import get_list_by_slug
from newsletter.audience.models import (
    ConsentSource,
    Subscriber,
    Subscription,
    SubscriptionStatus,
)
from newsletter.errors import NotFound, ValidationError
from newsletter.extensions import db
from newsletter.web.api import serializers
from newsletter.web.api.blueprint import bp
from newsletter.web.api.validation import json_object, query_int
from newsletter.web.ids import MAX_ID

DEFAULT_LIMIT = 100
MAX_LIMIT = 1000


@bp.post("/subscribers")
def create_subscriber() -> tuple[Response, int, dict[str, str]]:
    """Subscribe an address to lists under each list's opt-in rule.

    Double opt-in lists leave the subscription unconfirmed and mail a confirmation link,
    unless ``confirmed`` is true (consent gathered elsewhere). 201 for a new subscriber,
    200 when the address was known already.
    """
    body = json_object({"email", "name", "lists", "confirmed", "ip"})
    email = body.string("email", required=True)
    name = body.string("name").strip()
    list_slugs = body.string_list("lists", required=True)
    confirmed = body.boolean("confirmed", default=False)
    ip = _consent_ip(body.string("ip").strip() or None)
    for slug in list_slugs:  # name the field before the service touches anything
        get_list_by_slug(slug)
    existed = _find_by_email(normalise_email(email)) is not None
    subscriber = subscription_service.subscribe(
        email, name=name, list_slugs=list_slugs, source=ConsentSource.API, ip=ip,
        confirmed=confirmed,
    )
    location = url_for("api.get_subscriber", subscriber_id=subscriber.id)
    return jsonify(serializers.subscriber(subscriber)), 200 if existed else 201, {
        "Location": location
    }


def _consent_ip(value: str | None) -> str | None:
    """The subscriber's own address when the client collected consent on its form."""
    if value is None:
        return None
    try:
        return str(ipaddress.ip_address(value))
    except ValueError:
        raise ValidationError("ip must be an IPv4 or IPv6 address", field="ip") from None


@bp.get("/subscribers")
def list_subscribers() -> Response:
    """``?email=`` finds one address; otherwise keyset pages by id (``after``, ``limit``),
    optionally only those on ``?list=SLUG`` (and with ``?status=`` on it)."""
    email = request.args.get("email")
    if email is not None:
        subscriber = _find_by_email(normalise_email(email))
        items = [serializers.subscriber(subscriber)] if subscriber else []
        return jsonify({"items": items, "next": None})
    after = query_int("after", default=0, minimum=0, maximum=MAX_ID)
    limit = query_int("limit", default=DEFAULT_LIMIT, minimum=1, maximum=MAX_LIMIT)
    query = _with_subscriptions(select(Subscriber)).where(Subscriber.id > after)
    query = _filter_by_list(query)
    # One row more than asked says whether a next page exists, without a COUNT.
    rows = db.session.scalars(query.order_by(Subscriber.id).limit(limit + 1)).all()
    page = rows[:limit]
    next_after = page[-1].id if len(rows) > limit else None
    return jsonify({"items": [serializers.subscriber(s) for s in page], "next": next_after})


def _filter_by_list(query: Select[Subscriber]) -> Select[Subscriber]:
    slug = request.args.get("list")
    status = request.args.get("status")
    if not slug:
        if status:
            raise ValidationError("status filters need a list", field="status")
        return query
    lst = get_list_by_slug(slug)
    condition = (Subscription.subscriber_id == Subscriber.id) & (Subscription.list_id == lst.id)
    if status:
        try:
            condition &= Subscription.status == SubscriptionStatus(status)
        except ValueError:
            choices = ", ".join(s.value for s in SubscriptionStatus)
            raise ValidationError(f"status must be one of: {choices}", field="status") from None
    return query.where(select(Subscription).where(condition).exists())


@bp.get("/subscribers/<int:subscriber_id>")
def get_subscriber(subscriber_id: int) -> Response:
    """One subscriber with their subscriptions."""
    subscriber = db.session.scalars(
        _with_subscriptions(select(Subscriber)).where(Subscriber.id == subscriber_id)
    ).first()
    if subscriber is None:
        raise NotFound("subscriber", subscriber_id)
    return jsonify(serializers.subscriber(subscriber))


def _with_subscriptions(query: Select[Subscriber]) -> Select[Subscriber]:
    # Two extra queries per page, not two per subscriber.
    return query.options(
        selectinload(Subscriber.subscriptions).selectinload(Subscription.list)
    )


def _find_by_email(email: str) -> Subscriber | None:
    return db.session.scalars(
        _with_subscriptions(select(Subscriber)).where(
            func.lower(Subscriber.email) == email.lower()
        )
    ).first()

