"""Delivering webhook messages (retries with backoff, give up after the schedule), and the
endpoints and the delivery log that the admin pages and the API show.

A delivery claims its message with a lease (one conditional UPDATE), so two jobs for the
same message, from a sweep and a retry, never POST it twice at once; the outcome of each
attempt is one row of the log. Status handling follows the Standard Webhooks
specification: 2xx is delivered; 410 Gone turns the endpoint off; 429 and 503 honour
``Retry-After``; anything else, a redirect included, is retried on the schedule.
"""

from __future__ import annotations

import ipaddress
import logging
import random
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any
from urllib.parse import urlsplit

from flask import current_app
from sqlalchemy import delete, func, or_, select, update

from newsletter import queue
from newsletter.content.fetch import is_public
from newsletter.delivery.webhooks import sender, signing
from newsletter.delivery.webhooks.models import (
    MessageStatus,
    WebhookAttempt,
    WebhookEndpoint,
    WebhookMessage,
)
from newsletter.delivery.webhooks.outbox import ACTOR
from newsletter.errors import ConfigError, NotFound, ValidationError
from newsletter.extensions import db
from newsletter.models import get_or_raise, utcnow

log = logging.getLogger(__name__)

messages = WebhookMessage.__table__

#: how long the secret before a rotation keeps signing beside the new one
ROTATION_GRACE = timedelta(hours=24)
#: the sweep queues again a pending message this long overdue (its job was lost)
STALL_MARGIN = timedelta(seconds=60)
#: at most this many messages queued again by one sweep
SWEEP_LIMIT = 500
#: the longest wait a ``Retry-After`` may ask for
MAX_RETRY_AFTER = 24 * 3600.0
#: the longest delay a queued job is given (brokers refuse a week)
MAX_QUEUE_DELAY = 6 * 24 * 3600.0
URL_MAX = 2000
DESCRIPTION_MAX = 200


# --- settings -----------------------------------------------------------------------------


def retry_schedule() -> list[float]:
    """Seconds to wait before each retry (``WEBHOOKS_RETRY_SCHEDULE``: comma-separated);
    the message is given up after one attempt more than it has entries.

    :raises ConfigError: an entry that is not a number of seconds, or is negative.
    """
    value = current_app.config["WEBHOOKS_RETRY_SCHEDULE"]
    if isinstance(value, str):
        parts: list[Any] = [part for part in value.split(",") if part.strip()]
    elif isinstance(value, int | float):  # one number, as the environment reads "5"
        parts = [value]
    else:
        parts = list(value)
    try:
        delays = [float(part) for part in parts]
    except (TypeError, ValueError):
        delays = [-1.0]
    if any(delay < 0 for delay in delays):
        raise ConfigError(
            "NEWSLETTER_WEBHOOKS_RETRY_SCHEDULE",
            f"{value!r}: give the seconds before each retry, comma-separated (5,300,1800)",
        )
    return delays


def max_attempts() -> int:
    """Attempts before a message is given up: the first one and each retry."""
    return len(retry_schedule()) + 1


def _allow_private() -> bool:
    return bool(current_app.config["WEBHOOKS_ALLOW_PRIVATE"])


def _timeout() -> float:
    return float(current_app.config["WEBHOOKS_TIMEOUT"])


# --- endpoints ----------------------------------------------------------------------------


def check_url(url: str, *, allow_private: bool | None = None) -> str:
    """The address, trimmed, if webhooks may be sent to it: absolute http(s), no
    credentials, and (unless private targets are allowed) not a private, loopback or
    link-local address or ``localhost``. A name is not resolved here (that would make this
    form a way to probe the DNS): every address it resolves to is checked at each delivery,
    where the connection is made.

    :raises ValidationError: ``field="url"``, saying why not.
    """
    value = (url or "").strip()
    parts = urlsplit(value)
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise ValidationError("a webhook's address starts with https:// or http://", field="url")
    if len(value) > URL_MAX:
        raise ValidationError(f"the address is longer than {URL_MAX} characters", field="url")
    if parts.username or parts.password:
        raise ValidationError("put no user name or password in the address", field="url")
    try:
        parts.port  # noqa: B018 - raises for a port that is not a number
    except ValueError:
        raise ValidationError("the address has a port that is not a number", field="url") from None
    if not (_allow_private() if allow_private is None else allow_private):
        _check_public(parts.hostname)
    return value


def _check_public(host: str) -> None:
    try:
        refused = not is_public(ipaddress.ip_address(host))
    except ValueError:  # a name
        name = host.rstrip(".").lower()
        refused = name == "localhost" or name.endswith(".localhost")
    if refused:
        raise ValidationError(
            f"{host} is a private, loopback or link-local address; webhooks go to public "
            "addresses only (NEWSLETTER_WEBHOOKS_ALLOW_PRIVATE)",
            field="url",
        )


def check_events(kinds: Iterable[str], known: Sequence[str]) -> list[str]:
    """The event kinds chosen, each once, in the order of ``known``.

    :raises ValidationError: ``field="events"``: none chosen, or one that does not exist.
    """
    chosen = set(kinds)
    unknown = sorted(chosen - set(known))
    if unknown:
        raise ValidationError(f"no event kind {unknown[0]!r}", field="events")
    if not chosen:
        raise ValidationError("choose at least one event", field="events")
    return [kind for kind in known if kind in chosen]


def create_endpoint(
    url: str, events: Iterable[str], *, known: Sequence[str], description: str = ""
) -> WebhookEndpoint:
    """Register an endpoint with a new secret (committed).

    :raises ValidationError: a refused address (``url``), no or unknown events (``events``),
        a description too long (``description``).
    """
    endpoint = WebhookEndpoint(
        url=check_url(url),
        events=check_events(events, known),
        description=_description(description),
        secret=signing.new_secret(),
        active=True,
    )
    db.session.add(endpoint)
    db.session.commit()
    return endpoint


def _description(text: str) -> str:
    cleaned = " ".join((text or "").split())
    if len(cleaned) > DESCRIPTION_MAX:
        raise ValidationError(
            f"the description is longer than {DESCRIPTION_MAX} characters", field="description"
        )
    return cleaned


def list_endpoints() -> list[WebhookEndpoint]:
    """Every endpoint, oldest first."""
    return list(db.session.scalars(select(WebhookEndpoint).order_by(WebhookEndpoint.id)))


def get_endpoint(endpoint_id: int) -> WebhookEndpoint:
    """The endpoint with this id.

    :raises NotFound: no such endpoint.
    """
    return get_or_raise(WebhookEndpoint, endpoint_id, "webhook endpoint")


def update_endpoint(
    endpoint_id: int, *, url: str, events: Iterable[str], known: Sequence[str],
    description: str = "",
) -> WebhookEndpoint:  # fmt: skip
    """Change an endpoint's address, events and description (committed).

    :raises NotFound: no such endpoint.
    :raises ValidationError: as :func:`create_endpoint`.
    """
    endpoint = get_endpoint(endpoint_id)
    endpoint.url = check_url(url)
    endpoint.events = check_events(events, known)
    endpoint.description = _description(description)
    db.session.commit()
    return endpoint


def set_active(endpoint_id: int, active: bool, *, reason: str = "turned off by an admin") -> None:
    """Turn an endpoint on or off (committed). Off, it gets no new message, and its pending
    messages are given up when their turn comes (an admin can retry them later)."""
    endpoint = get_endpoint(endpoint_id)
    endpoint.active = active
    endpoint.disabled_reason = None if active else reason
    db.session.commit()


def rotate_secret(endpoint_id: int, *, now: datetime | None = None) -> WebhookEndpoint:
    """Give the endpoint a new secret; the old one keeps signing beside it for
    ``ROTATION_GRACE``, so a receiver can switch without refusing a message (committed)."""
    endpoint = get_endpoint(endpoint_id)
    endpoint.previous_secret = endpoint.secret
    endpoint.previous_secret_until = (now or utcnow()) + ROTATION_GRACE
    endpoint.secret = signing.new_secret()
    db.session.commit()
    return endpoint


def delete_endpoint(endpoint_id: int) -> None:
    """Delete an endpoint with its messages and their log (committed).

    :raises NotFound: no such endpoint.
    """
    endpoint = get_endpoint(endpoint_id)
    db.session.delete(endpoint)
    db.session.commit()


def live_secrets(endpoint: WebhookEndpoint, now: datetime) -> list[str]:
    """The secrets a message is signed with now: the current one, and the previous one
    during its grace period."""
    found = [endpoint.secret]
    until = endpoint.previous_secret_until
    if endpoint.previous_secret and until is not None and now < until:
        found.append(endpoint.previous_secret)
    return found


# --- the delivery log ---------------------------------------------------------------------


@dataclass
class EndpointStats:
    """Counts of an endpoint's messages, for the list page."""

    pending: int = 0
    delivered: int = 0
    failed: int = 0


def endpoint_stats() -> dict[int, EndpointStats]:
    """Per endpoint id, how many of its messages stand where (one grouped query)."""
    stats: dict[int, EndpointStats] = {}
    rows = db.session.execute(
        select(messages.c.endpoint_id, messages.c.status, func.count()).group_by(
            messages.c.endpoint_id, messages.c.status
        )
    )
    for endpoint_id, status, count in rows:
        value = status.value if isinstance(status, MessageStatus) else str(status)
        setattr(stats.setdefault(int(endpoint_id), EndpointStats()), value, int(count))
    return stats


def recent_messages(
    endpoint_id: int, *, before: int | None = None, limit: int = 50
) -> list[WebhookMessage]:
    """The endpoint's messages, newest first (keyset pages: ``before`` an id)."""
    query = select(WebhookMessage).where(WebhookMessage.endpoint_id == endpoint_id)
    if before is not None:
        query = query.where(WebhookMessage.id < before)
    return list(db.session.scalars(query.order_by(WebhookMessage.id.desc()).limit(limit)))


def get_message(endpoint_id: int, message_id: int) -> WebhookMessage:
    """One message of the endpoint.

    :raises NotFound: no such message for this endpoint.
    """
    message = db.session.get(WebhookMessage, message_id)
    if message is None or message.endpoint_id != endpoint_id:
        raise NotFound("webhook message", message_id)
    return message


def retry_message(endpoint_id: int, message_id: int) -> WebhookMessage:
    """Try a message again now, once (an admin's retry): queued after the commit.

    :raises NotFound: no such message for this endpoint.
    :raises ValidationError: it is still pending, or the endpoint is off.
    """
    message = get_message(endpoint_id, message_id)
    if message.status is MessageStatus.PENDING:
        raise ValidationError("this message is still being delivered", field="message")
    if not message.endpoint.active:
        raise ValidationError("turn the endpoint on first", field="message")
    message.status = MessageStatus.PENDING
    message.manual_retry = True
    message.next_attempt_at = utcnow()
    message.finished_at = None
    db.session.commit()
    queue.enqueue(ACTOR, message.id)
    return message


# --- delivering ---------------------------------------------------------------------------


def deliver(message_id: int) -> MessageStatus | None:
    """Attempt one message if it is due and nobody else is attempting it; record the
    attempt, and schedule the next one or give up. Returns the message's status after,
    or None when there was nothing to do (not due, taken, gone)."""
    now = utcnow()
    lease = now + timedelta(seconds=3 * _timeout() + 5)
    claimed = db.session.execute(
        update(messages)
        .where(
            messages.c.id == message_id,
            messages.c.status == MessageStatus.PENDING,
            or_(messages.c.next_attempt_at.is_(None), messages.c.next_attempt_at <= now),
            or_(messages.c.leased_until.is_(None), messages.c.leased_until < now),
        )
        .values(leased_until=lease)
    )
    db.session.commit()
    if claimed.rowcount != 1:  # type: ignore[attr-defined]
        return None
    message = db.session.get(WebhookMessage, message_id)
    if message is None:
        return None
    endpoint = message.endpoint
    if not endpoint.active:
        return _give_up(message, f"not sent: the endpoint is off ({endpoint.disabled_reason})")
    timestamp = int(now.timestamp())
    body = message.payload.encode()
    headers = signing.headers(live_secrets(endpoint, now), message.event_id, timestamp, body)
    url = endpoint.url
    db.session.commit()  # no transaction held open while the endpoint thinks
    answer = sender.post(
        url, body, headers,
        timeout=_timeout(),
        max_bytes=int(current_app.config["WEBHOOKS_MAX_RESPONSE_BYTES"]),
        allow_private=_allow_private(),
    )  # fmt: skip
    return _record(message_id, answer, attempted_at=now)


def _record(
    message_id: int, answer: sender.Answer, *, attempted_at: datetime
) -> MessageStatus | None:
    message = db.session.get(WebhookMessage, message_id)
    if message is None:  # its endpoint was deleted during the attempt
        db.session.commit()
        return None
    message.attempts += 1
    message.leased_until = None
    message.last_status_code = answer.status
    message.last_error = answer.error or None
    db.session.add(
        WebhookAttempt(
            message_id=message.id, attempted_at=attempted_at, status_code=answer.status,
            error=answer.error[:2000], duration_ms=answer.duration_ms,
        )
    )  # fmt: skip
    if answer.ok:
        message.status = MessageStatus.DELIVERED
        message.finished_at = utcnow()
        message.next_attempt_at = None
        message.manual_retry = False
        db.session.commit()
        return message.status
    if answer.status == 410:
        message.endpoint.active = False
        message.endpoint.disabled_reason = "the endpoint answered 410 Gone"
        return _give_up(message, None)
    if answer.refused or message.manual_retry or message.attempts >= max_attempts():
        return _give_up(message, None)
    delay = _next_delay(message.attempts, answer.retry_after)
    message.next_attempt_at = utcnow() + timedelta(seconds=delay)
    db.session.commit()
    # A broker keeps a delayed job at most 7 days (Redis); a longer wait is the sweep's.
    queue.enqueue(ACTOR, message.id, delay_ms=int(min(delay, MAX_QUEUE_DELAY) * 1000))
    return message.status


def _next_delay(attempts: int, retry_after: float | None) -> float:
    schedule = retry_schedule()
    base = schedule[min(attempts, len(schedule)) - 1]
    # Jitter, so that endpoints that failed together are not all retried at one instant.
    delay = base * random.uniform(0.9, 1.1)  # noqa: S311 - not for secrets
    if retry_after is not None:
        delay = max(delay, min(retry_after, MAX_RETRY_AFTER))
    return delay


def _give_up(message: WebhookMessage, error: str | None) -> MessageStatus:
    message.status = MessageStatus.FAILED
    message.finished_at = utcnow()
    message.leased_until = None
    message.next_attempt_at = None
    message.manual_retry = False
    if error is not None:
        message.last_error = error
    db.session.commit()
    log.info("webhook message %s given up after %s attempts", message.id, message.attempts)
    return message.status


# --- the sweep ----------------------------------------------------------------------------


def enqueue_stalled(now: datetime | None = None) -> int:
    """Queue again the pending messages overdue by ``STALL_MARGIN`` (their job was lost
    with the broker, or never queued); and delete finished messages older than
    ``WEBHOOKS_LOG_DAYS``. Returns how many were queued."""
    now = now or utcnow()
    overdue = db.session.scalars(
        select(messages.c.id)
        .where(
            messages.c.status == MessageStatus.PENDING,
            messages.c.next_attempt_at <= now - STALL_MARGIN,
            or_(messages.c.leased_until.is_(None), messages.c.leased_until < now),
        )
        .order_by(messages.c.next_attempt_at)
        .limit(SWEEP_LIMIT)
    ).all()
    days = int(current_app.config["WEBHOOKS_LOG_DAYS"])
    if days > 0:
        db.session.execute(
            delete(messages).where(
                messages.c.status != MessageStatus.PENDING,
                messages.c.created_at < now - timedelta(days=days),
            )
        )
    db.session.commit()
    for message_id in overdue:
        queue.enqueue(ACTOR, int(message_id))
    return len(overdue)
