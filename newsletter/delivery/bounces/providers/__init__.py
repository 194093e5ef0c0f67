"""Signed provider webhooks: Amazon SES through SNS, Postmark, SendGrid and Mailgun.

Each provider's module checks that a request really comes from the provider (SNS's
certificate signature, Postmark's basic-auth credentials, SendGrid's ECDSA signature,
Mailgun's HMAC), refuses stale and replayed requests where the provider lets us tell, and
turns the body into :class:`ProviderReport` values. :func:`receive` hands each report to a
handler: by default :func:`record_report`, which calls the bounce policy, so a webhook ends
where every other intake does.

A provider is off until its secret is set (``NEWSLETTER_BOUNCE_SES_TOPICS``,
``…_POSTMARK_PASSWORD``, ``…_SENDGRID_PUBLIC_KEY``, ``…_MAILGUN_SIGNING_KEY``); a request
to one that is off is :class:`ProviderNotConfigured`, which the web layer answers like an
unknown route.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Mapping
from types import ModuleType
from typing import Any

from flask import current_app

from newsletter.delivery.bounces import policy, returnpath
from newsletter.delivery.bounces.models import BounceSource
from newsletter.delivery.bounces.providers import mailgun, postmark, replay, sendgrid, ses
from newsletter.delivery.bounces.providers.base import (
    MAX_BODY_BYTES,
    ProviderNotConfigured,
    ProviderReport,
    Received,
    WebhookError,
    WebhookMalformed,
    WebhookRefused,
    WebhookRequest,
)
from newsletter.delivery.models import Delivery
from newsletter.extensions import db

log = logging.getLogger(__name__)

#: called once per report: the sink of every webhook (tests pass their own)
Handler = Callable[[ProviderReport, BounceSource], Any]


__all__ = [
    "MAX_BODY_BYTES",
    "PROVIDERS",
    "ProviderNotConfigured",
    "ProviderReport",
    "Received",
    "WebhookError",
    "WebhookMalformed",
    "WebhookRefused",
    "WebhookRequest",
    "receive",
    "record_report",
]


def _modules() -> dict[str, tuple[ModuleType, BounceSource]]:
    return {
        "ses": (ses, BounceSource.SES),
        "postmark": (postmark, BounceSource.POSTMARK),
        "sendgrid": (sendgrid, BounceSource.SENDGRID),
        "mailgun": (mailgun, BounceSource.MAILGUN),
    }


PROVIDERS = ("ses", "postmark", "sendgrid", "mailgun")


def is_configured(provider: str, config: Mapping[str, Any] | None = None) -> bool:
    """Whether ``provider``'s webhook is on (its secret is set)."""
    entry = _modules().get(provider)
    if entry is None:
        return False
    return bool(entry[0].configured(config if config is not None else current_app.config))


def receive(provider: str, request: WebhookRequest, *, handler: Handler | None = None) -> Received:
    """Check a provider's webhook request and hand each report it carries to ``handler``.

    :param handler: called with each report and its source; default :func:`record_report`.
    :raises ProviderNotConfigured: no such provider, or it is off.
    :raises WebhookRefused: the request failed the provider's check (nothing was handed on).
    :raises WebhookMalformed: the body could not be read.
    """
    entry = _modules().get(provider)
    config = current_app.config
    if entry is None or not entry[0].configured(config):
        raise ProviderNotConfigured(provider)
    module, source = entry
    received: Received = module.receive(request, config)
    sink = handler if handler is not None else record_report
    try:
        for report in received.reports:
            sink(report, source)
    except BaseException:
        # Not handled: the provider retries, and the retry must not look like a replay.
        for key in received.claims:
            replay.forget(key)
        raise
    log.info(
        "%s webhook: %s report(s)%s", provider, len(received.reports),
        f"; {received.note}" if received.note else "",
    )  # fmt: skip
    return received


def record_report(report: ProviderReport, source: BounceSource) -> Any:
    """The default sink: record the report through the bounce policy (committed).

    When the provider saw our signed return path, the delivery (hence the issue) is found
    from its token; an address nobody has is ignored by the policy, silently.
    """
    issue_id = delivery_id = None
    if report.return_path:
        issue_id, delivery_id = _delivery_of(report.return_path)
    return policy.record(
        report.email, report.kind, report.reason, source,
        issue_id=issue_id, delivery_id=delivery_id,
    )  # fmt: skip


def _delivery_of(return_path: str) -> tuple[int | None, int | None]:
    """(issue id, delivery id) of the delivery a ``bounces+TOKEN@…`` return path names."""
    delivery_id = returnpath.delivery_of(return_path, None, str(current_app.config["SECRET_KEY"]))
    delivery = db.session.get(Delivery, delivery_id) if delivery_id is not None else None
    if delivery is None:
        return None, None
    return delivery.issue_id, delivery.id
